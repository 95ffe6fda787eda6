#!/usr/bin/env python3
"""Turns bench/run.sh's raw results into docs/BENCHMARKS.md (stdlib only).

    report.py docs/benchmarks.jsonl > docs/BENCHMARKS.md

The first line of the results holds {"meta": {machine, invocation, quick}};
every other line one measurement {size, metric, value, tool}. Quoted
figures are medians over the runs; the "runs" columns say how many.
"""
import json
import statistics
import sys
from collections import defaultdict

meta = {}
vals = defaultdict(list)
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    r = json.loads(line)
    if "meta" in r:
        meta = r["meta"]
    elif r["value"] is not None:
        vals[(r["size"], r["metric"], r["tool"])].append(float(r["value"]))


def med(size, metric, tool=""):
    v = vals.get((size, metric, tool))
    return statistics.median(v) if v else None


def runs(size, metric, tool=""):
    return len(vals.get((size, metric, tool), []))


def fmt(x, digits=0):
    return "—" if x is None else f"{x:,.{digits}f}"


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def verdict(ok):
    return "—" if ok is None else ("met" if ok else "**not met**")


def rrl_target(n):
    """The limiter-cost target row: the end-to-end difference, and the
    limiter's own cost as a share of the CPU per query (which decides:
    it is not disturbed by other load on the machine)."""
    off, on = med(n, "rrl_cpu_us", "off"), med(n, "rrl_cpu_us", "on")
    e2e = None if off is None or on is None or not off else (on - off) / off
    alone = med(0, "rrl_ns_per_answer")
    share = None if alone is None or not off else alone / 1000 / off
    text = (f"end to end {'—' if e2e is None else f'{e2e:+.1%}'}; limiter alone "
            f"{'—' if share is None else f'{share:.1%}'}")
    ok = share < 0.05 if share is not None else (None if e2e is None else e2e < 0.05)
    return text, ok


def rrl_section(n):
    """The cost of response rate limiting at N = n (bench/run.sh measure_rrl)."""
    off, on = med(n, "rrl_cpu_us", "off"), med(n, "rrl_cpu_us", "on")
    if off is None and on is None:
        return None
    w("")
    w("### Response rate limiting: cost on the UDP path")
    w("")
    w("Two servers on the same zone, measured alternately at the same paced load "
      f"({fmt(med(n, 'rrl_target_qps', 'mimi-publisher'))} q/s, 80% of the unpaced capacity with the limiter off): "
      "`--rrl-rate 0` (off) and `--rrl-rate 1000000000` (on, at a rate dnsperf's single source never reaches, "
      "so every answer is classified, hashed and charged to its bucket, and none is limited).")
    w("")
    w("| limiter | server CPU/query | q/s | lost | runs |")
    w("|---|---:|---:|---:|---:|")
    for mode in ("off", "on"):
        w(f"| {mode} | {fmt(med(n, 'rrl_cpu_us', mode), 3)} µs | {fmt(med(n, 'rrl_qps', mode))} | "
          f"{fmt(med(n, 'rrl_lost_pct', mode), 2)}% | {runs(n, 'rrl_cpu_us', mode)} |")
    cost = None if off is None or on is None or not off else (on - off) / off
    w("")
    spread = {m: vals.get((n, "rrl_cpu_us", m), []) for m in ("off", "on")}
    ranges = ", ".join(f"{m} {min(v):.3f}–{max(v):.3f} µs" for m, v in spread.items() if v)
    w(f"Cost of the limiter: **{'—' if cost is None else f'{cost:+.1%}'}** CPU per query (medians; range over runs: {ranges}).")
    alone = med(0, "rrl_ns_per_answer")
    if alone is not None and off:
        w("")
        w(f"The limiter on its own (`publisher/examples/rrl_cost.rs`: `Limiter::filter` on every core over 100,000")
        w(f"server-shaped answers, thread CPU time, median of {runs(0, 'rrl_ns_per_answer')}): **{alone:,.0f} ns per answer**, "
          f"{alone / 1000 / off:.1%} of the {off:.3f} µs the server spends per query with it off. This figure is not")
        w("disturbed by other load on the machine, which the end-to-end difference above is.")
    if med(n, "rrl_limited", "mimi-publisher"):
        w("")
        w("**The 'on' server limited some answers: the measurement includes limiting, not only accounting.**")
    return cost


SERVERS = ("mimi-publisher", "nsd", "knot")
SIGNERS = ("kzonesign", "dnssec-signzone", "ldns-signzone")
sizes = sorted({k[0] for k in vals if k[0]})
raw = med(0, "raw_sign_rate")
out = []
w = out.append

w("# Benchmarks")
w("")
if meta.get("quick"):
    w("> **Quick run** (`--quick`: N = 10,000, 1 run, 3-second dnsperf runs) that checks the")
    w("> harness; it is not the measurement the targets are judged by. Run `bench/run.sh`")
    w("> (N = 100,000 and 1,000,000, 3 runs) on a quiet machine for that.")
    w("")
w(f"Produced by `{meta.get('invocation', 'bench/run.sh')}`: rerun it to reproduce (it installs")
w("nsd, knot, knot-dnssecutils, bind9, bind9-utils, ldnsutils and dnsperf from Debian if missing,")
w("builds the release binaries, and generates every input deterministically). Raw results:")
w("`docs/benchmarks.jsonl`; this file is `python3 bench/report.py docs/benchmarks.jsonl`.")
w("")
w("Figures are medians over the runs shown. Everything runs on one machine over loopback")
w("(127.0.0.1): dnsperf, `mimi-resolve` and the signers share the cores with the server")
w("they measure, so absolute rates are lower than on separate machines, but every tool")
w("is measured the same way.")
w("")
w("## Machine")
w("")
w("```text")
w(meta.get("machine", "(unknown)"))
total = med(0, "total_seconds")
if total:
    w(f"whole run: {total / 60:.1f} minutes")
w("```")
w("")
if meta.get("rrl_only"):
    w("")
    w("Only the cost of UDP response rate limiting was measured (`--rrl-only`): see")
    w("`publisher/src/serve/rrl.rs` and docs/PROTOCOL.md for the design; CPU per query is the server")
    w("process's utime + stime over a run ÷ answered queries.")
    w("")
    w("| N | target | measured | |")
    w("|---:|---|---:|---|")
    for n in sizes:
        text, ok = rrl_target(n)
        w(f"| {n:,} | Rate limiter costs < 5% CPU per query | {text} | {verdict(ok)} |")
    for n in sizes:
        w("")
        w(f"## N = {n:,} mappings")
        rrl_section(n)
    print("\n".join(out))
    sys.exit(0)
w(f"Raw Ed25519 signing rate on all cores (ed25519-dalek with rayon, messages shaped like "
  f"assertion signing inputs; `publisher/examples/ed25519_rate.rs`): **{fmt(raw)} signatures/s** "
  f"(median of {runs(0, 'raw_sign_rate')}).")
w("")
w("## Commands")
w("")
w("```sh")
w("mimi-publisher build zone.toml --out zone.zone --json     # under /usr/bin/time -f '%e %M'; fresh output file each run")
w("dnssec-signzone -S -K . -d . -o example.com -n $(nproc) -f bind.signed zone.zone  # ED25519 ZSK + KSK")
w("ldns-signzone -f ldns.signed zone.zone Kexample.com.+015+…        # ED25519 key from ldns-keygen")
w("kzonesign -c knot-sign.conf -o out/ example.com                   # policy: algorithm ed25519, signing-threads $(nproc)")
w("mimi-publisher serve zone.toml --listen 127.0.0.1:PORT --state-dir state --rrl-rate 0   # builds (signs) at start; keeps the served zone in state/")
w("mimi-publisher serve zone.toml --listen 127.0.0.1:PORT --state-dir state --rrl-rate 0   # restart: reuses the kept zone's signatures")
w("mimi-publisher serve zone.toml --listen 127.0.0.1:PORT --state-dir copy --rrl-rate 0|1000000000   # rate limiting cost, off vs on")
w("nsd -d -c nsd.conf        # zone file from build; rrl-ratelimit: 0, server-count: $(nproc), receive-buffer-size: 4 MiB")
w("knotd -c knot.conf        # zone file from build; udp-workers: $(nproc), journal-content: none")
w("dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l SECS -t 1 -c 8 -T 2 -q 500             # capacity")
w("dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l SECS -t 1 -c 8 -T 2 -q 500 -Q 0.9×CAP     # reported runs")
w("dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l SECS -t 1 -c 8 -T 2 -q 500 -Q 20000 -v   # latency (p99)")
w("mimi-resolve batch siis.txt --trust trust.toml --server 127.0.0.1:PORT --concurrency 64")
w("echo 'bench-new-1@example.com,mimi://chat.example.com/u/new1' >> mappings.csv       # then dig until served")
w("```")
w("")
w("Zone: `example.com`, role home, N mappings `user{i}@example.com → mimi://chat.example.com/u/user{i}`,")
w("signed with one key (the authority's root key, no certificate). Queries: 90% TXT at existing")
w("discovery names (shuffled), 10% TXT at random non-existent labels under `_mimi.example.com`")
w("(NXDOMAIN). Zone load time: process start → first authoritative SOA answer. Memory: PSS")
w("(and RSS) summed over all the server's processes, from `/proc/PID/smaps_rollup`, once the zone")
w("is loaded and again after the rate runs (buffers and allocator arenas grow under load).")
w("CPU per query: the server processes' utime + stime over a reported run ÷ answered queries.")

summary = []
for n in sizes:
    w("")
    w(f"## N = {n:,} mappings")
    w("")
    w(f"Zone file: {fmt(med(n, 'zone_mb'), 1)} MB.")
    w("")
    w("### Build: parse, sign, write the zone")
    w("")
    w("| tool | mappings/s | signatures/s | vs raw Ed25519 (signatures/s) | peak RSS | runs |")
    w("|---|---:|---:|---:|---:|---:|")
    b = med(n, "build_rate", "mimi-publisher")
    w(f"| `mimi-publisher build` | {fmt(b)} | {fmt(b)} | {ratio(b, raw)} | "
      f"{fmt(med(n, 'build_rss_mb', 'mimi-publisher'))} MB | {runs(n, 'build_rate', 'mimi-publisher')} |")
    for tool in SIGNERS:
        s = med(n, "signer_rate", tool)
        w(f"| `{tool}` (ED25519, DNSSEC-signs the built zone) | {fmt(med(n, 'signer_mapping_rate', tool))} | "
          f"{fmt(s)} | {ratio(s, raw)} | {fmt(med(n, 'signer_rss_mb', tool))} MB | {runs(n, 'signer_rate', tool)} |")
    w("")
    w("`mimi-publisher build` makes one signature per mapping and the time includes parsing the")
    w("mappings, hashing, and writing the zone. The DNSSEC signers make two per mapping (the TXT")
    w("RRset and the NSEC RRset of each name; counted as RRSIG lines in their output), so")
    w("\"mappings/s\" is the comparable column for the job and \"signatures/s\" for the crypto.")
    w("")
    w("### Serve: dnsperf against each server, same zone, same settings")
    w("")
    w("| server | q/s at 90% of capacity | lost | vs NSD | p99 latency | server CPU/query | PSS loaded → after queries | RSS after queries | zone load | capacity (unpaced) | runs |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    nsd = med(n, "serve_qps", "nsd")
    for s in SERVERS:
        q = med(n, "serve_qps", s)
        tq = med(n, "serve_target_qps", s)
        short = q is not None and tq and q < 0.95 * tq
        w(f"| {s} | {fmt(q)}{' †' if short else ''} | {fmt(med(n, 'serve_lost_pct', s), 2)}% | {ratio(q, nsd)} | "
          f"{fmt(med(n, 'p99_ms', s), 2)} ms | {fmt(med(n, 'serve_cpu_us', s), 1)} µs | "
          f"{fmt(med(n, 'serve_pss_mb', s), 1)} → {fmt(med(n, 'serve_pss_after_mb', s), 1)} MB | {fmt(med(n, 'serve_rss_after_mb', s), 1)} MB | "
          f"{fmt(med(n, 'load_seconds', s), 2)} s | {fmt(med(n, 'serve_capacity_qps', s))} "
          f"({fmt(med(n, 'serve_capacity_lost_pct', s), 2)}% lost) | {runs(n, 'serve_qps', s)} |")
    w("")
    lat = {s: med(n, "latency_qps", s) for s in SERVERS}
    if any(med(n, "serve_target_qps", s) and med(n, "serve_qps", s) is not None
           and med(n, "serve_qps", s) < 0.95 * med(n, "serve_target_qps", s) for s in SERVERS):
        w("† below 95% of the paced rate asked for (`-Q`) with ~0% loss: dnsperf itself did not get the CPU")
        w("to send at that rate (other load on the machine); the ratio to NSD is unreliable in this run.")
        w("")
    w("Capacity: one unpaced dnsperf run (`-q 500` outstanding). Reported q/s, loss and CPU: dnsperf")
    rates = sorted({lat[s] for s in SERVERS if lat[s]})
    rates_text = (f"{fmt(rates[0])} q/s" if len(rates) == 1 else
                  ", ".join(f"{fmt(lat[s])} q/s ({s})" for s in SERVERS if lat[s]))
    w("paced at 90% of that (`-Q`). p99 latency: one run paced at " + rates_text
      + " (20,000, or half the capacity if less) with `-v` for per-query latencies, over answered queries; `-v`")
    w("costs dnsperf much CPU, so it is kept out of the rate runs. `mimi-publisher`'s zone load includes")
    w("building (signing) the zone from the mappings; NSD and Knot load the signed zone file. NSD runs")
    w("`server-count` processes forked from one parent: their RSS counts shared pages once per process,")
    w("PSS does not.")
    w("")
    rrl_section(n)
    w("")
    w("### Resolve and update")
    w("")
    bt = med(n, "batch_verified_rate", "mimi-resolve")
    dq = med(n, "batch_dnsperf_qps", "dnsperf")
    w("| measurement | median | runs |")
    w("|---|---:|---:|")
    w(f"| `mimi-resolve batch`: verified lookups/s (90% existing SIIs, 10% unknown; 1 TXT query + 1 Ed25519 verification each) | "
      f"{fmt(bt)} | {runs(n, 'batch_verified_rate', 'mimi-resolve')} |")
    w(f"| `mimi-resolve batch`: all lookups/s (including not found) | {fmt(med(n, 'batch_rate', 'mimi-resolve'))} | "
      f"{runs(n, 'batch_rate', 'mimi-resolve')} |")
    w(f"| dnsperf raw q/s for the same names, same server (unpaced) | {fmt(dq)} | {runs(n, 'batch_dnsperf_qps', 'dnsperf')} |")
    up = med(n, "update_ms", "mimi-publisher")
    w(f"| one mapping appended to the mappings file → its record served | {fmt(up)} ms | {runs(n, 'update_ms', 'mimi-publisher')} |")
    w(f"| of which the server's rebuild (log `zone reloaded … ms=`) | {fmt(med(n, 'reload_ms', 'mimi-publisher'))} ms | "
      f"{runs(n, 'reload_ms', 'mimi-publisher')} |")
    rs = med(n, "restart_load_seconds", "mimi-publisher")
    if rs is not None:
        w(f"| server restarted from the zone it kept (`--state-dir`) → first answer (fresh start: {fmt(med(n, 'load_seconds', 'mimi-publisher'), 2)} s) | {fmt(rs, 2)} s | "
          f"{runs(n, 'restart_load_seconds', 'mimi-publisher')} |")
    reused = med(n, "untouched_reused", "mimi-publisher")
    if reused is not None:
        w("")
        w("An untouched mapping's record was " + ("byte-identical before and after the updates (its signature was reused, not re-signed)."
          if reused else "**different** after the updates (re-signed)."))

    pss = {s: med(n, "serve_pss_after_mb", s) or med(n, "serve_pss_mb", s) for s in SERVERS}
    summary.append((n, [
        ("Build ≥ 0.70× raw Ed25519 rate", ratio(b, raw), None if b is None or not raw else b / raw >= 0.7),
        ("Serve ≥ 0.8× NSD's q/s", ratio(med(n, "serve_qps", "mimi-publisher"), nsd),
         None if not nsd or med(n, "serve_qps", "mimi-publisher") is None else med(n, "serve_qps", "mimi-publisher") / nsd >= 0.8),
        ("Serve memory (PSS after the dnsperf runs) ≤ NSD's", f"{fmt(pss['mimi-publisher'], 1)} MB vs {fmt(pss['nsd'], 1)} MB",
         None if None in (pss["mimi-publisher"], pss["nsd"]) else pss["mimi-publisher"] <= pss["nsd"]),
        ("Batch resolve ≥ 0.5× dnsperf's q/s", ratio(bt, dq), None if bt is None or not dq else bt / dq >= 0.5),
        ("One-mapping update served ≤ 1 s", f"{fmt(up)} ms", None if up is None else up <= 1000),
        ("Rate limiter costs < 5% CPU per query", *rrl_target(n)),
    ]))

w("")
w("## Targets")
w("")
w("| N | target | measured | |")
w("|---:|---|---:|---|")
for n, rows in summary:
    for name, measured, ok in rows:
        w(f"| {n:,} | {name} | {measured} | {verdict(ok)} |")

# What limits each figure, from the measurements themselves.
if sizes:
    n = sizes[-1]
    w("")
    w(f"## What limits it (N = {n:,})")
    w("")
    b = med(n, "build_rate", "mimi-publisher")
    if b and raw:
        w(f"* **Build** reaches {b / raw:.0%} of the raw signing rate. Parsing, signing, sorting and rendering")
        w("  the zone file all run on every core; what remains is reading the mappings file and writing")
        w("  the zone file (one thread each), and process start-up, which weighs on small N.")
    mq, nq = med(n, "serve_qps", "mimi-publisher"), med(n, "serve_qps", "nsd")
    mc, nc = med(n, "serve_cpu_us", "mimi-publisher"), med(n, "serve_cpu_us", "nsd")
    if mq and nq and mc and nc:
        w(f"* **Serve**: {mq / nq:.2f}× NSD's q/s while spending {mc:.1f} µs of server CPU per query against")
        w(f"  NSD's {nc:.1f} µs ({mc / nc:.2f}×). dnsperf runs on the same cores, so a server that needs more CPU")
        w("  per query also leaves less to the load generator; the CPU-per-query ratio is the figure")
        w("  that carries over to a dedicated machine. UDP is answered at the byte level by one thread")
        w("  per core blocking in `recv_from` (`publisher/src/serve/udp.rs`, `wire.rs`); a profile (`perf record`,")
        w("  N = 100,000, 130k q/s) put about 78% of the server's CPU in the kernel's UDP receive and send")
        w("  path and about 15% in finding the owner's records (a binary search over an array of integer")
        w("  owner keys and one comparison of the owner name). The server's figures include its")
        w("  background work during the runs: with SPEC §9's staggered windows some record rolls over")
        w("  every second or so at this size, and the server re-signs those in batches (at most every")
        w("  60 s), each an incremental rebuild of a few hundred ms on one core, which also shows in")
        w("  the p99 latency. Its zone load in the table is a first start, which signs every mapping;")
        w("  NSD and Knot load an already signed file. A restart from the zone the server kept")
        w("  (`--state-dir`) reuses the signatures (see the next table).")
    bt, dq, bc = med(n, "batch_verified_rate", "mimi-resolve"), med(n, "batch_dnsperf_qps", "dnsperf"), med(n, "batch_cpu_us", "mimi-resolve")
    if bt and dq:
        line = f"* **Batch resolve**: {bt / dq:.2f}× dnsperf's q/s."
        if bc:
            line += (f" `mimi-resolve` spends {bc:.0f} µs of CPU per lookup (user + system), on the same cores as")
        w(line)
        if bc:
            w("  the server, while dnsperf only sends and counts packets. A verified lookup is a DNS exchange")
            w("  through hickory-resolver *and* a strict Ed25519 verification. A profile (`perf record`,")
            w("  N = 100,000) put about 36% of `mimi-resolve`'s CPU in the verification (the double-scalar")
            w("  multiplication and the decompression of R, which every strict verification needs; certificates")
            w("  are checked once per authority, root keys decoded once), 35–40% in the kernel (hickory-resolver")
            w("  opens, binds, registers and closes a fresh random-port UDP socket per query, its defence")
            w("  against spoofed answers), and most of the rest in allocation and hickory's message handling;")
            w("  mimi's own code is under 3%. `batch` runs one single-threaded runtime per core. Reaching")
            w(f"  0.5× ({dq / 2:,.0f} verified lookups/s) would leave {2e6 / (dq / 2):.0f} µs of CPU per lookup for client *and*")
            w("  server on these 2 cores: not enough for a strict verification (35–45 µs measured) plus a")
            w("  DNS exchange, so this target is out of reach here without weakening verification (batch")
            w("  verification accepts signatures that the strict check of SPEC §4 rejects).")
    up, rl = med(n, "update_ms", "mimi-publisher"), med(n, "reload_ms", "mimi-publisher")
    if up is not None and rl is not None:
        w(f"* **Update**: {up:,.0f} ms from the write to the record being served, of which {rl:,.0f} ms is the")
        w("  server's rebuild (incremental: the lines of the mappings file that changed are parsed and")
        w("  signed, every other record is shared with the zone being served, and the index is rebuilt")
        w("  from integer keys);")
        w("  the rest is the file watcher's debounce, which coalesces an editor's or deployment tool's")
        w("  several writes into one reload, and the polling of the measurement.")

# Memory at 10M mappings, extrapolated linearly from the two largest sizes.
if len(sizes) >= 2:
    a, b = sizes[-2], sizes[-1]
    w("")
    w("## Memory at 10,000,000 mappings (estimate)")
    w("")
    w(f"Linear extrapolation from N = {a:,} and N = {b:,} (fixed cost + per-mapping cost):")
    w("")
    w("| what | per mapping | at 10M | fits 24 GiB |")
    w("|---|---:|---:|---|")
    rows = [("`mimi-publisher build` peak RSS", "build_rss_mb", "mimi-publisher")]
    rows += [(f"{s} serving (PSS after the dnsperf runs)", "serve_pss_after_mb", s) for s in SERVERS]
    for label, metric, tool in rows:
        ma, mb = med(a, metric, tool), med(b, metric, tool)
        if ma is None or mb is None:
            continue
        per = (mb - ma) / (b - a)
        est = mb + per * (10_000_000 - b)
        w(f"| {label} | {per * 1024 * 1024:,.0f} B | {est / 1024:,.1f} GiB | {'yes' if est / 1024 < 24 else '**no**'} |")
print("\n".join(out))

#!/usr/bin/env python3
"""Turns bench/run.sh's raw results into docs/BENCHMARKS.md (stdlib only).

report.py MACHINE_TXT RESULTS_JSONL ARGS
"""
import json
import statistics
import sys
from collections import defaultdict

machine, results_path, args = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
rows = [json.loads(l) for l in open(results_path) if l.strip()]
vals = defaultdict(list)
for r in rows:
    if r["value"] is not None:
        vals[(r["size"], r["metric"], r["tool"])].append(float(r["value"]))


def med(size, metric, tool=""):
    v = vals.get((size, metric, tool))
    return statistics.median(v) if v else None


def n_runs(size, metric, tool=""):
    return len(vals.get((size, metric, tool), []))


def fmt(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return "—" if a is None or b in (None, 0) else f"{a / b:.2f}×"


sizes = sorted({r["size"] for r in rows if r["size"]})
raw = med(0, "raw_sign_rate")
out = []
w = out.append
w("# Benchmarks")
w("")
w("Produced by `bench/run.sh" + (" " + args if args else "") + "` — rerun it to reproduce; raw results in `docs/benchmarks.jsonl`.")
w("Medians over the runs shown; everything on one machine, over loopback; dnsperf runs on the same 2 cores as the server it measures.")
w("")
w("## Machine")
w("")
w("```text")
w(open(machine).read().strip())
w("```")
w("")
w(f"Raw Ed25519 signing rate on all cores (ed25519-dalek, `publisher/examples/ed25519_rate.rs`): **{fmt(raw)} signatures/s** (median of {n_runs(0, 'raw_sign_rate')}).")
for n in sizes:
    w("")
    w(f"## N = {n:,} mappings")
    w("")
    w("### Build (parse, sign, write the zone)")
    w("")
    w("| tool | records/s | vs raw Ed25519 | peak RSS | runs |")
    w("|---|---:|---:|---:|---:|")
    b = med(n, "build_rate", "mimi-publisher")
    w(f"| `mimi-publisher build` | {fmt(b)} | {ratio(b, raw)} | {fmt(med(n, 'build_rss_mb', 'mimi-publisher'))} MB | {n_runs(n, 'build_rate', 'mimi-publisher')} |")
    for tool in ("kzonesign", "dnssec-signzone", "ldns-signzone"):
        s = med(n, "signer_rate", tool)
        w(f"| `{tool}` (ED25519 RRSIGs of the built zone) | {fmt(s)} | {ratio(s, raw)} | — | {n_runs(n, 'signer_rate', tool)} |")
    w("")
    w("### Serve (dnsperf: 90% existing TXT names, 10% NXDOMAIN; `-c 8 -T 2 -t 1`)")
    w("")
    w("| server | queries/s | lost | vs NSD | CPU µs/query | p99 at 80% load | PSS | zone load |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    nsd = med(n, "serve_qps", "nsd")
    for server in ("mimi-publisher", "nsd", "knot"):
        q = med(n, "serve_qps", server)
        w(
            f"| {server} | {fmt(q)} | {fmt(med(n, 'serve_lost_pct', server), 2)}% | {ratio(q, nsd)} | {fmt(med(n, 'serve_cpu_us', server), 1)} | "
            f"{fmt(med(n, 'p99_ms', server), 2)} ms | {fmt(med(n, 'serve_pss_mb', server), 1)} MB | {fmt(med(n, 'load_seconds', server), 2)} s |"
        )
    w("")
    w("`mimi-publisher`'s zone load includes signing every mapping (it serves from its inputs, not from a signed zone file).")
    w("")
    w("### Resolve and update")
    w("")
    bt = med(n, "batch_rate", "mimi-resolve")
    mq = med(n, "serve_qps", "mimi-publisher")
    w("| measurement | median | target | runs |")
    w("|---|---:|---|---:|")
    w(f"| `mimi-resolve batch` verified lookups/s (each lookup: 1 TXT query; certificates none here) | {fmt(bt)} ({ratio(bt, mq)} of dnsperf's q/s to the same server) | ≥ 0.5× | {n_runs(n, 'batch_rate', 'mimi-resolve')} |")
    w(f"| one new mapping appended → served | {fmt(med(n, 'update_ms', 'mimi-publisher'))} ms | ≤ 1,000 ms | {n_runs(n, 'update_ms', 'mimi-publisher')} |")
print("\n".join(out))

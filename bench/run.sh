#!/usr/bin/env bash
# mimi-dns benchmark: build, serve, resolve and update, side by side with
# NSD, Knot and the DNSSEC signers of BIND, Knot and ldns, on this machine,
# over loopback only.
#
#   bench/run.sh                      # N = 100,000 and 1,000,000, 3 runs each (~25 min on 2 cores)
#   bench/run.sh --size 200000 --runs 5
#   bench/run.sh --quick              # N = 10,000, 1 run, short dnsperf runs: checks the harness (~2 min)
#   bench/run.sh --rrl-only           # only the cost of response rate limiting: server CPU/query with
#                                     # the limiter off and on (N = 100,000, 5 runs each; ~3 min)
#   bench/run.sh --zones [ARGS]       # only many zones from one publisher (10,000 domains × 10 mappings,
#                                     # --big N for a large zone alongside): bench/zones.sh ARGS
#   bench/run.sh --ixfr [ARGS]        # only IXFR vs AXFR after re-sign batches at N = 1M, NSD and Knot as
#                                     # secondaries (~8 min): bench/ixfr.sh ARGS → docs/BENCHMARKS-ixfr.md
#   bench/run.sh --transfer-rss [ARGS] # only server memory during 4 concurrent slow AXFRs of a 1M zone:
#                                     # bench/transfer-rss.sh ARGS (figures in docs/BENCHMARKS-transfer.md)
#   bench/run.sh --encrypted [ARGS]   # only q/s and CPU per query over DoT and DoH next to UDP, with unbound
#                                     # serving the same zone alongside: bench/encrypted.sh ARGS (~5 min)
#   bench/run.sh --buckets [ARGS]     # only privacy buckets of a 1M zone for N = 2, 3, 4: sizes, answer
#                                     # octets, build time: bench/buckets.sh ARGS → docs/BENCHMARKS-buckets.md
#   bench/run.sh --metrics [ARGS]     # only the cost of serve --metrics: UDP q/s and CPU per query without
#                                     # and with it (~2 min): bench/metrics.sh ARGS → docs/BENCHMARKS-metrics.md
#   bench/run.sh --gateway [ARGS]     # only the HTTP gateway: lookups/s of single GETs and 500-SII POST batches
#                                     # (wrk), next to mimi-resolve batch on the same names (~4 min):
#                                     # bench/gateway.sh ARGS → docs/BENCHMARKS-gateway.md
#
# Installs what it needs (Debian packages, as root or with sudo), builds the
# release binaries, generates deterministic inputs in a temporary directory,
# and writes docs/BENCHMARKS.md with the raw results next to it
# (docs/benchmarks.jsonl). Every server it starts listens on 127.0.0.1 and is
# stopped on exit; every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source bench/lib.sh

sizes=()
runs=3
dnsperf_secs=10
quick=0
rrl_only=0
while (($#)); do
  case "$1" in
    --zones) shift; exec bash bench/zones.sh "$@" ;;
    --ixfr) shift; exec bash bench/ixfr.sh "$@" ;;
    --transfer-rss) shift; exec bash bench/transfer-rss.sh "$@" ;;
    --encrypted) shift; exec bash bench/encrypted.sh "$@" ;;
    --buckets) shift; exec bash bench/buckets.sh "$@" ;;
    --metrics) shift; exec bash bench/metrics.sh "$@" ;;
    --gateway) shift; exec bash bench/gateway.sh "$@" ;;
    --size) sizes+=("$2"); shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --dnsperf-seconds) dnsperf_secs=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --rrl-only) rrl_only=1; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ((quick)); then
  ((${#sizes[@]})) || sizes=(10000)
  runs=1; dnsperf_secs=3
fi
if ((rrl_only)); then
  ((${#sizes[@]})) || sizes=(100000)
  ((quick)) || { runs=5; dnsperf_secs=10; }
fi
((${#sizes[@]})) || sizes=(100000 1000000)
invocation="bench/run.sh$( ((quick)) && echo " --quick")$( ((rrl_only)) && echo " --rrl-only")$(for s in "${sizes[@]}"; do printf ' --size %s' "$s"; done) --runs $runs --dnsperf-seconds $dnsperf_secs"
started=$EPOCHREALTIME

# --- what it needs ---------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"
need=()
tools="dnsperf:dnsperf nsd:nsd knotd:knot kzonesign:knot-dnssecutils dnssec-signzone:bind9-utils
       dnssec-keygen:bind9-utils ldns-signzone:ldnsutils ldns-keygen:ldnsutils dig:bind9-dnsutils named:bind9"
((rrl_only)) && tools="dnsperf:dnsperf dig:bind9-dnsutils"
for pair in $tools; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
  echo "== installing $(printf '%s\n' "${need[@]}" | sort -u | xargs)"
  # Without starting the packages' system services (see the script): the
  # benchmark runs its own servers and never touches the machine's.
  # shellcheck disable=SC2046
  "$root/tests/install-packages.sh" $(printf '%s\n' "${need[@]}" | sort -u)
fi
echo "== cargo build --release"
if ((rrl_only)); then
  cargo build --release --quiet --bin mimi-publisher --example rrl_cost -p mimi-publisher
else
  cargo build --release --quiet --bins --example ed25519_rate --example rrl_cost -p mimi-publisher -p mimi-resolver
fi
pub=$root/target/release/mimi-publisher
res=$root/target/release/mimi-resolve

work=$(mktemp -d "${TMPDIR:-/tmp}/mimi-bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
results=$work/results.jsonl
: > "$results"
dnsperf_opts=(-s 127.0.0.1 -t 1 -c 8 -T 2 -q 500)
latency_qps=20000   # offered load of the p99 latency run (half the capacity if that is less)

echo "== machine"
{
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc --version)"
  echo "mimi-publisher: $("$pub" --version)"
  echo "nsd: $(nsd -v 2>&1 | head -1)"
  echo "knot: $(knotd --version 2>&1 | head -1)"
  echo "kzonesign: $(kzonesign --version 2>&1 | head -1)"
  echo "dnssec-signzone: $(dnssec-signzone -V 2>&1 | head -1)"
  echo "ldns-signzone: $(ldns-signzone -v 2>&1 | head -1)"
  echo "dnsperf: $(dnsperf -h 2>&1 | grep -m1 Version)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$work/machine.txt"

echo "== raw Ed25519 signing rate, all cores"
((rrl_only)) || for r in $(seq "$runs"); do
  v=$(timeout 60 "$root/target/release/examples/ed25519_rate" 3 | python3 -c 'import json,sys; print(json.load(sys.stdin)["signatures_per_second"])')
  echo "  $v signatures/s"; record 0 raw_sign_rate "$v"
done

echo "== response rate limiter on its own, all cores (100,000 answers from one source, never limited)"
for r in $(seq "$runs"); do
  v=$(timeout 60 "$root/target/release/examples/rrl_cost" 3 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ns_per_answer"])')
  echo "  $v ns CPU per answer"; record 0 rrl_ns_per_answer "$v"
done

# dnsperf_run OUT PORT QUERYFILE [extra options]: one bounded dnsperf run.
dnsperf_run() {
  local out=$1 port=$2 q=$3; shift 3
  timeout $((dnsperf_secs + 30)) dnsperf "${dnsperf_opts[@]}" -p "$port" -d "$q" -l "$dnsperf_secs" "$@" > "$out" 2>&1 || true
}

# measure_server N NAME PORT PID: zone load time and memory; capacity (one
# unpaced run); $runs runs paced at 90% of it (q/s, loss, server CPU per
# query); one run paced at $latency_qps with per-query output (-v) for the
# p99 latency (-v costs dnsperf CPU, so it is kept out of the rate runs).
measure_server() {
  local n=$1 server=$2 port=$3 pid=$4 d=$work/$1 load procs cap caplost target r c0 c1 qps lost answered us p99 lat_rate
  load=$(wait_soa "$port" "$pid")
  sleep 1
  procs=$(tree "$pid")
  record "$n" load_seconds "$load" "$server"
  record "$n" serve_pss_mb "$(mem_mb Pss $procs)" "$server"
  record "$n" serve_rss_mb "$(mem_mb Rss $procs)" "$server"
  dnsperf_run "$d/dnsperf.txt" "$port" "$d/queries.txt"
  cap=$(dnsperf_stat qps < "$d/dnsperf.txt"); caplost=$(dnsperf_stat lost < "$d/dnsperf.txt")
  record "$n" serve_capacity_qps "$cap" "$server"; record "$n" serve_capacity_lost_pct "$caplost" "$server"
  echo "  $server: zone loaded in ${load}s; $(mem_mb Pss $procs) MB PSS ($(mem_mb Rss $procs) MB RSS) in $(wc -w <<<"$procs") process(es); capacity ${cap:-?} q/s (lost ${caplost:-?}%)"
  target=$(calc "int(float('${cap:-0}') * 0.9)")
  for r in $(seq "$runs"); do
    c0=$(cpu_ticks $procs)
    dnsperf_run "$d/dnsperf.txt" "$port" "$d/queries.txt" -Q "$target"
    c1=$(cpu_ticks $procs)
    qps=$(dnsperf_stat qps < "$d/dnsperf.txt"); lost=$(dnsperf_stat lost < "$d/dnsperf.txt")
    answered=$(dnsperf_stat completed < "$d/dnsperf.txt")
    us=$(calc "round(($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / max(${answered:-0}, 1), 2)")
    echo "    -Q $target: ${qps:-?} q/s, lost ${lost:-?}%, ${us} µs server CPU/query"
    record "$n" serve_qps "$qps" "$server"; record "$n" serve_lost_pct "$lost" "$server"; record "$n" serve_cpu_us "$us" "$server"
    record "$n" serve_target_qps "$target" "$server"
  done
  procs=$(tree "$pid")
  record "$n" serve_pss_after_mb "$(mem_mb Pss $procs)" "$server"
  record "$n" serve_rss_after_mb "$(mem_mb Rss $procs)" "$server"
  echo "    memory after the rate runs: $(mem_mb Pss $procs) MB PSS ($(mem_mb Rss $procs) MB RSS)"
  lat_rate=$(calc "min($latency_qps, max(int(float('${cap:-0}') * 0.5), 1))")
  dnsperf_run "$d/latency.txt" "$port" "$d/queries.txt" -Q "$lat_rate" -v
  p99=$(python3 bench/gen.py p99 "$d/latency.txt")
  echo "    -Q $lat_rate -v: p99 latency ${p99} ms ($(dnsperf_stat qps < "$d/latency.txt") q/s, lost $(dnsperf_stat lost < "$d/latency.txt")%)"
  record "$n" p99_ms "$p99" "$server"; record "$n" latency_qps "$lat_rate" "$server"
  rm -f "$d/latency.txt"
}

# measure_rrl N: the cost of response rate limiting. Two mimi-publisher
# servers on the same zone, one with the limiter off (--rrl-rate 0), one on
# at a rate no single source reaches (--rrl-rate 1000000000: every answer
# goes through the accounting, none is limited), measured alternately at
# the same paced load (80% of the off server's unpaced capacity), $runs
# runs each: server CPU per answered query. They start from the zone the
# main serve run kept, if there is one (no second signing of every mapping).
measure_rrl() {
  local n=$1 d=$work/$1 mode port pid load cap target r c0 c1 qps lost answered us
  local -A mport mpid
  echo "== N = $n: response rate limiting cost (--rrl-rate 0 vs --rrl-rate 1000000000, alternating, ${dnsperf_secs}s per run)"
  for mode in off on; do
    rm -rf "$d/rrl-$mode-state"
    [[ -d $d/state ]] && cp -r "$d/state" "$d/rrl-$mode-state"
    port=$(free_port)
    "$pub" serve "$d/zone.toml" --listen "127.0.0.1:$port" --state-dir "$d/rrl-$mode-state" \
      --rrl-rate "$([[ $mode == on ]] && echo 1000000000 || echo 0)" ${RRL_BENCH_FLAGS:-} 2>"$d/rrl-$mode.log" & pid=$!
    pids+=("$pid"); mport[$mode]=$port; mpid[$mode]=$pid
    load=$(wait_soa "$port" "$pid")
    echo "  limiter $mode: answering after ${load}s"
  done
  grep -q "rate limiting on" "$d/rrl-on.log" || { echo "the 'on' server did not report rate limiting on" >&2; return 1; }
  sleep 1
  dnsperf_run "$d/rrl-cap.txt" "${mport[off]}" "$d/queries.txt"
  cap=$(dnsperf_stat qps < "$d/rrl-cap.txt")
  target=$(calc "int(float('${cap:-0}') * 0.8)")
  record "$n" rrl_target_qps "$target" mimi-publisher
  echo "  capacity (limiter off, unpaced): ${cap:-?} q/s; runs paced at $target q/s"
  for r in $(seq "$runs"); do
    # Alternate which goes first, so that drift in the machine's load
    # favours neither.
    for mode in $( ((r % 2)) && echo off on || echo on off); do
      c0=$(cpu_ticks "${mpid[$mode]}")
      dnsperf_run "$d/rrl.txt" "${mport[$mode]}" "$d/queries.txt" -Q "$target"
      c1=$(cpu_ticks "${mpid[$mode]}")
      qps=$(dnsperf_stat qps < "$d/rrl.txt"); lost=$(dnsperf_stat lost < "$d/rrl.txt")
      answered=$(dnsperf_stat completed < "$d/rrl.txt")
      us=$(calc "round(($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / max(${answered:-0}, 1), 3)")
      echo "    limiter $mode: ${qps:-?} q/s, lost ${lost:-?}%, ${us} µs server CPU/query"
      record "$n" rrl_cpu_us "$us" "$mode"; record "$n" rrl_qps "$qps" "$mode"; record "$n" rrl_lost_pct "$lost" "$mode"
    done
  done
  if grep -q "over the rate limit" "$d/rrl-on.log"; then
    echo "  the 'on' server limited some answers: its rate is not high enough for this measurement" >&2
    record "$n" rrl_limited 1 mimi-publisher
  else
    record "$n" rrl_limited 0 mimi-publisher
  fi
  for mode in off on; do stop "${mpid[$mode]}"; done
  rm -rf "$d/rrl-off-state" "$d/rrl-on-state"
}

# resolve_and_update N PORT: `mimi-resolve batch` against the mimi server on
# PORT, dnsperf on the same names, then one-mapping updates.
resolve_and_update() {
  local n=$1 port=$2 d=$work/$1 count r start t v ok name before after reloaded
  echo "== N = $n: resolve (mimi-resolve batch against mimi-publisher serve)"
  count=$(( n < 20000 ? n : 20000 ))
  python3 bench/gen.py siis "$n" "$count" "$d/siis.txt"
  python3 bench/gen.py siiqueries "$d/siis.txt" "$d/siiqueries.txt"
  for r in $(seq "$runs"); do
    start=$EPOCHREALTIME
    timeout 300 /usr/bin/time -f "%U %S" -o "$d/cpu.txt" "$res" batch "$d/siis.txt" --trust "$d/trust.toml" --server "127.0.0.1:$port" \
      --concurrency 64 > "$d/batch.jsonl"
    t=$(since "$start")
    ok=$(grep -c '"outcome":"verified"' "$d/batch.jsonl" || true)
    v=$(calc "round($ok / $t)")
    echo "  $count SIIs in ${t}s: $ok verified ($(grep -c '"outcome":"not_found"' "$d/batch.jsonl" || true) not found) = $v verified lookups/s ($(calc "round($count / $t)") lookups/s)"
    record "$n" batch_cpu_us "$(calc "round(sum(map(float, '$(tail -1 "$d/cpu.txt")'.split())) * 1e6 / $count, 1)")" mimi-resolve
    record "$n" batch_verified_rate "$v" mimi-resolve; record "$n" batch_rate "$(calc "round($count / $t)")" mimi-resolve
  done
  dnsperf_run "$d/siiperf.txt" "$port" "$d/siiqueries.txt"
  v=$(dnsperf_stat qps < "$d/siiperf.txt")
  echo "  dnsperf, same names, same server: $v q/s (lost $(dnsperf_stat lost < "$d/siiperf.txt")%)"
  record "$n" batch_dnsperf_qps "$v" dnsperf

  echo "== N = $n: update (one new mapping appended to the mappings file → served)"
  name=$(python3 bench/gen.py name user0@example.com)
  before=$(dig +short +time=2 +tries=1 @127.0.0.1 -p "$port" "$name" TXT)
  for r in $(seq "$runs"); do
    name=$(python3 bench/gen.py name "bench-new-$r@example.com")
    reloaded=$(grep -c "zone reloaded" "$d/mimi.log" || true)
    start=$EPOCHREALTIME
    echo "bench-new-$r@example.com,mimi://chat.example.com/u/new$r" >> "$d/mappings.csv"
    t=timeout
    while (( $(calc "int($EPOCHREALTIME - $start)") < 60 )); do
      if dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$name" TXT | grep -q "u/new$r;"; then
        t=$(calc "round(($EPOCHREALTIME - $start) * 1000)"); break
      fi
      sleep 0.02
    done
    # the server's own rebuild time of this reload (log: "zone reloaded … ms=N")
    for _ in $(seq 50); do (( $(grep -c "zone reloaded" "$d/mimi.log" || true) > reloaded )) && break; sleep 0.1; done
    v=$(grep "zone reloaded" "$d/mimi.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'ms=[0-9]*' | cut -d= -f2 || true)
    echo "  served after $t ms (server's rebuild: ${v:-?} ms)"
    record "$n" update_ms "$t" mimi-publisher; record "$n" reload_ms "${v:-}" mimi-publisher
  done
  after=$(dig +short +time=2 +tries=1 @127.0.0.1 -p "$port" "$(python3 bench/gen.py name user0@example.com)" TXT)
  if [[ -n $before && $before == "$after" ]]; then
    echo "  an untouched mapping's record is byte-identical after the updates: its signature was reused"
    record "$n" untouched_reused 1 mimi-publisher
  else
    echo "  an untouched mapping's record changed across the updates (re-signed)"
    record "$n" untouched_reused 0 mimi-publisher
  fi
}

for n in "${sizes[@]}"; do
  d=$work/$n; mkdir -p "$d"
  echo "== N = $n: inputs"
  python3 bench/gen.py mappings "$n" "$d/mappings.csv"
  "$pub" keygen --out "$d/key.pem" --json > "$d/key.json"
  pk=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$d/key.json")
  cat > "$d/zone.toml" <<TOML
origin = "example.com"
role = "home"
ttl = 300
ns = ["ns1.example.com"]
mappings = "mappings.csv"
[glue]
"ns1.example.com" = ["192.0.2.53"]
[soa]
mname = "ns1.example.com"
rname = "hostmaster.example.com"
[authority]
name = "example.com"
key = "key.pem"
TOML
  cat > "$d/trust.toml" <<TOML
[[authority]]
name = "example.com"
root_keys = ["$pk"]
sii_scope = ["mailto:*@example.com"]
ssi_scope = ["chat.example.com"]
TOML

  if ((rrl_only)); then
    echo "== N = $n: build (once, for the query list)"
    timeout 1800 "$pub" build "$d/zone.toml" --out "$d/zone.zone" --json > /dev/null
    python3 bench/gen.py queries "$d/zone.zone" "$(( n < 100000 ? 100000 : (n > 1000000 ? 1000000 : n) ))" "$d/queries.txt"
    measure_rrl "$n"
    rm -rf "$d/queries.txt"
    continue
  fi
  echo "== N = $n: build (mimi-publisher build, fresh output each run: every mapping signed)"
  for r in $(seq "$runs"); do
    rm -f "$d/zone.zone"
    timeout 1800 /usr/bin/time -f "%e %M" -o "$d/time.txt" "$pub" build "$d/zone.toml" --out "$d/zone.zone" --json > /dev/null
    read -r secs rss < "$d/time.txt"
    rate=$(calc "round($n / $secs)")
    echo "  ${secs}s, $rate mappings/s, peak RSS $((rss / 1024)) MB"
    record "$n" build_rate "$rate" mimi-publisher; record "$n" build_rss_mb "$((rss / 1024))" mimi-publisher
  done
  record "$n" zone_mb "$(calc "round($(stat -c %s "$d/zone.zone") / 1048576, 1)")"

  # DNSSEC signers, ED25519, on the zone file build wrote. They sign the
  # TXT RRset and the NSEC RRset of every name (2 signatures per mapping).
  # Above 200,000 mappings one run each (dnssec-signzone takes minutes).
  signer_runs=$(( n > 200000 ? 1 : runs ))
  echo "== N = $n: DNSSEC signers on the built zone (ED25519, $signer_runs run(s) each)"
  (cd "$d" && dnssec-keygen -q -a ED25519 -K "$d" example.com >/dev/null && dnssec-keygen -q -a ED25519 -f KSK -K "$d" example.com >/dev/null)
  ldns_key=$(cd "$d" && ldns-keygen -a ED25519 example.com)
  mkdir -p "$d/knot-sign"
  cat > "$d/knot-sign.conf" <<CONF
database:
    storage: "$d/knot-sign"
policy:
  - id: ed
    algorithm: ed25519
    signing-threads: $(nproc)
zone:
  - domain: example.com
    storage: "$d"
    file: "zone.zone"
    dnssec-signing: on
    dnssec-policy: ed
CONF
  for r in $(seq "$signer_runs"); do
    for tool in dnssec-signzone ldns-signzone kzonesign; do
      start=$EPOCHREALTIME
      case $tool in
        dnssec-signzone) out=$d/bind.signed
          (cd "$d" && timeout 1800 /usr/bin/time -f %M -o "$d/rss.txt" dnssec-signzone -q -K "$d" -d "$d" -S -o example.com -n "$(nproc)" -f "$out" zone.zone) >/dev/null 2>"$d/signer.err" ;;
        ldns-signzone) out=$d/ldns.signed
          (cd "$d" && timeout 1800 /usr/bin/time -f %M -o "$d/rss.txt" ldns-signzone -f "$out" zone.zone "$ldns_key") >/dev/null 2>"$d/signer.err" ;;
        kzonesign) out=$d/knot-sign/zone.zone
          timeout 1800 /usr/bin/time -f %M -o "$d/rss.txt" kzonesign -c "$d/knot-sign.conf" -o "$d/knot-sign" example.com >/dev/null 2>"$d/signer.err" ;;
      esac
      if [[ -s $out ]]; then
        t=$(since "$start"); s=$(rrsigs "$out")
        echo "  $tool: $s RRSIGs in ${t}s = $(calc "round($s / $t)") signatures/s, $(calc "round($n / $t)") mappings/s, peak RSS $(( $(tail -1 "$d/rss.txt") / 1024 )) MB"
        record "$n" signer_rate "$(calc "round($s / $t)")" "$tool"; record "$n" signer_mapping_rate "$(calc "round($n / $t)")" "$tool"
        record "$n" signer_rss_mb "$(( $(tail -1 "$d/rss.txt") / 1024 ))" "$tool"
      else
        echo "  $tool failed: $(head -3 "$d/signer.err")"
      fi
      rm -f "$out"
    done
  done

  echo "== N = $n: serve (dnsperf ${dnsperf_opts[*]}: 90% existing TXT names, 10% NXDOMAIN; ${dnsperf_secs}s per run)"
  python3 bench/gen.py queries "$d/zone.zone" "$(( n < 100000 ? 100000 : (n > 1000000 ? 1000000 : n) ))" "$d/queries.txt"
  for server in mimi-publisher nsd knot; do
    port=$(free_port)
    case $server in
      mimi-publisher)
        "$pub" serve "$d/zone.toml" --listen "127.0.0.1:$port" --state-dir "$d/state" --rrl-rate 0 2>"$d/mimi.log" & pid=$! ;;
      nsd)
        mkdir -p "$d/nsd"; cp "$d/zone.zone" "$d/nsd/example.com.zone"
        cat > "$d/nsd/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@$port
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$d/nsd"
    database: ""
    pidfile: "$d/nsd/nsd.pid"
    xfrdfile: "$d/nsd/xfrd.state"
    zonelistfile: "$d/nsd/zone.list"
    xfrdir: "$d/nsd"
    rrl-ratelimit: 0
    server-count: $(nproc)
    receive-buffer-size: 4194304
remote-control:
    control-enable: no
zone:
    name: "example.com"
    zonefile: "example.com.zone"
CONF
        nsd -d -c "$d/nsd/nsd.conf" >"$d/nsd.log" 2>&1 & pid=$! ;;
      knot)
        mkdir -p "$d/knot"; cp "$d/zone.zone" "$d/knot/example.com.zone"
        cat > "$d/knot/knot.conf" <<CONF
server:
    rundir: "$d/knot"
    listen: 127.0.0.1@$port
    udp-workers: $(nproc)
database:
    storage: "$d/knot"
zone:
  - domain: example.com
    storage: "$d/knot"
    file: "example.com.zone"
    journal-content: none
    zonefile-sync: -1
CONF
        knotd -c "$d/knot/knot.conf" >"$d/knot.log" 2>&1 & pid=$! ;;
    esac
    pids+=("$pid")
    measure_server "$n" "$server" "$port" "$pid"
    [[ $server == mimi-publisher ]] && resolve_and_update "$n" "$port"
    stop "$pid"
    if [[ $server == mimi-publisher ]]; then
      measure_rrl "$n"
      # A restart from the zone the server kept: its signatures are reused.
      port=$(free_port)
      "$pub" serve "$d/zone.toml" --listen "127.0.0.1:$port" --state-dir "$d/state" --rrl-rate 0 2>>"$d/mimi.log" & pid=$!
      pids+=("$pid")
      load=$(wait_soa "$port" "$pid")
      record "$n" restart_load_seconds "$load" mimi-publisher
      echo "  mimi-publisher restarted from its kept zone (--state-dir): answering after ${load}s"
      stop "$pid"
    fi
  done
  rm -rf "$d/nsd" "$d/knot" "$d/knot-sign" "$d/state" "$d/queries.txt"
done

record 0 total_seconds "$(since "$started")"
# --rrl-only writes its own files, leaving the full benchmark's alone.
out=docs/benchmarks.jsonl; md=docs/BENCHMARKS.md
((rrl_only)) && { out=docs/benchmarks-rrl.jsonl; md=docs/BENCHMARKS-rrl.md; }
python3 - "$work/machine.txt" "$invocation" "$quick" "$rrl_only" "$results" > "$out" <<'PY'
import json, sys
machine, invocation, quick, rrl_only, results = sys.argv[1:]
load_end = " ".join(open("/proc/loadavg").read().split()[:3])
print(json.dumps({"meta": {"machine": open(machine).read().strip() + "\nload average at end: " + load_end,
                           "invocation": invocation, "quick": quick == "1", "rrl_only": rrl_only == "1"}}))
print(open(results).read(), end="")
PY
python3 bench/report.py "$out" > "$md"
echo "== wrote $md and $out in $(calc "round($(since "$started") / 60, 1)") minutes"

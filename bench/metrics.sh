#!/usr/bin/env bash
# The cost of `serve --metrics`: q/s and server CPU per query over UDP of
# mimi-publisher serve on the same zone without and with --metrics (scraped
# once a second during the runs, as a busy Prometheus would at most), on
# this machine, over loopback only. Run through `bench/run.sh --metrics
# [...]` or directly:
#
#   bench/metrics.sh                 # N = 100,000, 3 runs of 10 s each way, interleaved (~2 min)
#   bench/metrics.sh --runs 5 --dnsperf-seconds 20
#   bench/metrics.sh --quick         # N = 10,000, 1 run of 3 s each way: checks the harness
#   MIMI_PUBLISHER=target/release/mimi-publisher bench/metrics.sh   # without building
#
# Runs alternate (off, on, off, on, ...) so that a change in the machine's
# load hits both sides alike. Every run is unpaced (dnsperf sends as fast as
# answers come back, 8 clients, at most 500 outstanding), so q/s is the
# server's capacity with dnsperf sharing its cores; CPU per query (server
# user+system time over queries answered) does not depend on who else uses
# the cores. Prints both and the difference; raw results in
# docs/benchmarks-metrics.jsonl (the figures in docs/BENCHMARKS-metrics.md
# are written by hand from them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source bench/lib.sh

n=100000
runs=3
dnsperf_secs=10
while (($#)); do
  case "$1" in
    --size) n=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --dnsperf-seconds) dnsperf_secs=$2; shift 2 ;;
    --quick) n=10000; runs=1; dnsperf_secs=3; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PATH="$PATH:/usr/sbin:/sbin"
need=()
for pair in dnsperf:dnsperf dig:bind9-dnsutils curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  # shellcheck disable=SC2046
  "$root/tests/install-packages.sh" $(printf '%s\n' "${need[@]}" | sort -u)
fi
if [[ -n ${MIMI_PUBLISHER:-} ]]; then
  # A release binary built already (the same sources), to save a build.
  pub=$MIMI_PUBLISHER
else
  echo "== cargo build --release"
  cargo build --release --quiet --bin mimi-publisher -p mimi-publisher
  pub=${CARGO_TARGET_DIR:-$root/target}/release/mimi-publisher
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mimi-metrics.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
results=$work/results.jsonl
: > "$results"
clk=$(getconf CLK_TCK)
{
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mimi-publisher: $("$pub" --version)"
  echo "dnsperf: $(dnsperf -h 2>&1 | grep -m1 Version)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$work/machine.txt"

d=$work/zone; mkdir -p "$d"
echo "== N = $n: inputs and zone"
python3 bench/gen.py mappings "$n" "$d/mappings.csv"
"$pub" keygen --out "$d/key.pem" > /dev/null
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
timeout 1800 "$pub" build "$d/zone.toml" --out "$d/zone.zone" > /dev/null
python3 bench/gen.py queries "$d/zone.zone" 100000 "$d/queries.txt"
dnsperf_opts=(-s 127.0.0.1 -t 2 -c 8 -T 2 -q 500)

# One server, one dnsperf run; with --metrics, scraped every second.
# run MODE R: MODE is off or on.
run() {
  local mode=$1 r=$2 port mport pid out c0 c1 qps lost done_q us scraper=
  port=$(free_port)
  local args=(serve "$d/zone.toml" --listen "127.0.0.1:$port" --rrl-rate 0 --state-dir "$d/state")
  if [[ $mode == on ]]; then
    mport=$(free_port)
    args+=(--metrics "127.0.0.1:$mport")
  fi
  "$pub" "${args[@]}" 2>"$work/serve-$mode-$r.log" & pid=$!
  pids+=("$pid")
  wait_soa "$port" "$pid" > /dev/null
  if [[ $mode == on ]]; then
    ( while sleep 1; do curl -s -m 2 "http://127.0.0.1:$mport/metrics" > "$work/scrape.txt" || true; done ) &
    scraper=$!
  fi
  out=$work/dnsperf-$mode-$r.txt
  c0=$(cpu_ticks "$pid")
  timeout $((dnsperf_secs + 30)) dnsperf "${dnsperf_opts[@]}" -p "$port" -d "$d/queries.txt" \
    -l "$dnsperf_secs" > "$out" 2>&1 || true
  c1=$(cpu_ticks "$pid")
  [[ -n $scraper ]] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }
  qps=$(dnsperf_stat qps < "$out"); lost=$(dnsperf_stat lost < "$out"); done_q=$(dnsperf_stat completed < "$out")
  us=$(calc "round(($c1 - $c0) * 1e6 / $clk / max(1, ${done_q:-0}), 2)")
  record "$n" "udp_qps_metrics_$mode" "$qps" mimi
  record "$n" "udp_lost_pct_metrics_$mode" "$lost" mimi
  record "$n" "udp_cpu_us_per_query_metrics_$mode" "$us" mimi
  local counted=""
  if [[ $mode == on ]]; then
    # Every answer is counted: the counters' sum against dnsperf's count.
    counted=$(curl -s -m 5 "http://127.0.0.1:$mport/metrics" | awk '/^mimi_queries_total/ {s += $2} END {print s + 0}')
    counted=", $counted queries counted by the server (dnsperf completed ${done_q:-?}, wait_soa 1)"
  fi
  echo "  metrics $mode run $r: ${qps:-?} q/s, lost ${lost:-?}%, ${us} µs server CPU per query$counted"
  stop "$pid"
}

echo "== serve without and with --metrics (dnsperf ${dnsperf_opts[*]}, ${dnsperf_secs}s per run)"
for r in $(seq "$runs"); do
  run off "$r"
  run on "$r"
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(metric):
    v = [r["value"] for r in rows if r["metric"] == metric and r["value"] is not None]
    return statistics.median(v) if v else None
off_q, on_q = med("udp_qps_metrics_off"), med("udp_qps_metrics_on")
off_c, on_c = med("udp_cpu_us_per_query_metrics_off"), med("udp_cpu_us_per_query_metrics_on")
print("== medians")
print(f"  without --metrics: {off_q} q/s, {off_c} µs server CPU per query")
print(f"  with --metrics:    {on_q} q/s, {on_c} µs server CPU per query")
if off_q and on_q:
    print(f"  difference: {on_q - off_q:+.0f} q/s ({(on_q - off_q) / off_q * 100:+.1f}%), "
          f"{on_c - off_c:+.2f} µs CPU per query ({(on_c - off_c) / off_c * 100:+.1f}%)")
PY
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/machine.txt" "$results" > docs/benchmarks-metrics.jsonl <<'PY'
import json, sys
machine, results = sys.argv[1:]
print(json.dumps({"machine": open(machine).read().strip().splitlines()}))
print(open(results).read(), end="")
PY

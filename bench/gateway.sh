#!/usr/bin/env bash
# Lookups/s of the HTTP discovery gateway (mimi-gateway serve) next to
# `mimi-resolve batch` on the same names, on this machine, over loopback
# only. Run through `bench/run.sh --gateway [...]` or directly:
#
#   bench/gateway.sh                 # zone of 100,000 mappings, 500 SIIs, 3 runs of 10 s per measurement (~4 min)
#   bench/gateway.sh --runs 5 --seconds 20
#   bench/gateway.sh --quick         # 1 run of 3 s each: checks the harness
#   MIMI_BIN_DIR=target/release bench/gateway.sh   # without building
#   GATEWAY_FLAGS="--flag value" bench/gateway.sh  # extra mimi-gateway serve flags
#
# Measures, each with a freshly started gateway (empty caches):
#   get-cycle   wrk GET /v1/lookup?sii=… cycling through 500 SIIs (90% in the
#               zone, 10% not): after the first pass every SII has been asked
#               before, so this is the warm-cache figure if the gateway caches
#   get-fresh   wrk GET with SIIs never asked before in the run (userK, one in
#               ten nobodyK): every request a cache miss (cold)
#   post-cycle  wrk POST /v1/lookup {"siis": [the same 500]}: requests/s × 500
#   post-fresh  wrk POST with 500 never-asked SIIs per request (cold)
#   resolve     mimi-resolve batch on the same 500 SIIs (--concurrency 64):
#               lookups/s from wall time (a new process each run: its
#               start-up and first certificate fetch are included)
# wrk runs 2 threads and 64 connections (4 for the batches); all of it shares
# the machine's cores with the publisher and the gateway. The gateway's
# rate limit is switched off when its --help offers a way (see below); a run
# answered with non-2xx responses is reported as such, not as a rate.
# Prints a table; raw results in docs/benchmarks-gateway.jsonl (the figures
# in docs/BENCHMARKS-gateway.md are written by hand from them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source bench/lib.sh

n=100000
count=500
runs=3
secs=10
while (($#)); do
  case "$1" in
    --size) n=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    --quick) runs=1; secs=3; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
((n >= count)) || { echo "--size must be at least $count" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:/sbin"
need=()
for pair in wrk:wrk dig:bind9-dnsutils curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  # shellcheck disable=SC2046
  "$root/tests/install-packages.sh" $(printf '%s\n' "${need[@]}" | sort -u)
fi
if [[ -n ${MIMI_BIN_DIR:-} ]]; then
  bindir=$MIMI_BIN_DIR
else
  echo "== cargo build --release"
  cargo build --release --quiet -p mimi-gateway -p mimi-publisher -p mimi-resolver
  bindir=${CARGO_TARGET_DIR:-$root/target}/release
fi
pub=$bindir/mimi-publisher res=$bindir/mimi-resolve gw=$bindir/mimi-gateway

work=$(mktemp -d "${TMPDIR:-/tmp}/mimi-gateway-bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
results=$work/results.jsonl
: > "$results"
clk=$(getconf CLK_TCK)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain -- gateway resolver 2>/dev/null | head -1)
{
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mimi-gateway: $("$gw" --version) at commit $commit${dirty:+ (with uncommitted changes)}"
  echo "wrk: $(wrk -v 2>&1 | head -1)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$work/machine.txt"

# The gateway's flags for a benchmark: the per-client token bucket out of
# the way (every request comes from 127.0.0.1, one client), and a batch
# limit of at least $count.
help=$("$gw" serve --help)
gwflags=(--rate 1000000 --burst 1000000000 --max-batch "$count")
# shellcheck disable=SC2206
[[ -n ${GATEWAY_FLAGS:-} ]] && gwflags+=($GATEWAY_FLAGS)
echo "gateway flags: ${gwflags[*]:-(none)}; rate/batch options in its --help:"
grep -iE -- 'rate|batch|cache' <<<"$help" | sed 's/^/    /' || echo "    (none)"

d=$work/zone; mkdir -p "$d"
echo "== inputs: zone of $n mappings, $count SIIs"
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
python3 bench/gen.py siis "$n" "$count" "$d/siis.txt"

dns=$(free_port)
"$pub" serve "$d/zone.toml" --listen "127.0.0.1:$dns" --state-dir "$d/state" --rrl-rate 0 2>"$work/serve.log" & spid=$!
pids+=("$spid")
echo "  publisher answering after $(wait_soa "$dns" "$spid")s"

# start_gateway: a fresh gateway (empty caches) on $gport, pid in $gpid.
start_gateway() {
  gport=$(free_port)
  "$gw" serve --listen "127.0.0.1:$gport" --trust "$d/trust.toml" --server "127.0.0.1:$dns" \
    "${gwflags[@]}" 2>>"$work/gateway.log" & gpid=$!
  pids+=("$gpid")
  local start=$EPOCHREALTIME
  until curl -sf -m 2 -o /dev/null "http://127.0.0.1:$gport/v1/lookup?sii=probe%40example.com"; do
    kill -0 "$gpid" 2>/dev/null || { echo "the gateway exited:" >&2; tail -5 "$work/gateway.log" >&2; return 1; }
    (( $(calc "int($EPOCHREALTIME - $start)") < 30 )) || { echo "the gateway never answered" >&2; return 1; }
    sleep 0.05
  done
}

# The gateway must verify what the zone publishes, and answer a batch.
start_gateway
curl -sf -m 10 "http://127.0.0.1:$gport/v1/lookup?sii=user0%40example.com" | grep -q '"outcome":"verified"' \
  || { echo "the gateway does not verify user0@example.com" >&2; exit 1; }
batch_status=$(python3 -c '
import json, sys
print(json.dumps({"siis": [l.strip() for l in open(sys.argv[1]) if l.strip()]}))' "$d/siis.txt" |
  curl -s -m 60 -o "$work/batch.json" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @- \
    "http://127.0.0.1:$gport/v1/lookup" || true)
if [[ $batch_status == 200 ]] && python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
sys.exit(0 if len(r) == int(sys.argv[2]) else 1)' "$work/batch.json" "$count" 2>/dev/null; then
  batch=1
else
  batch=0
  echo "  POST /v1/lookup with $count SIIs: HTTP $batch_status ($(head -c 200 "$work/batch.json" 2>/dev/null)): batch not measured"
fi
stop "$gpid"

# wrk_run MODE CONNECTIONS: one wrk run against a fresh gateway; records
# requests/s, lookups/s, p99 latency, non-2xx answers and gateway CPU.
wrk_run() {
  local mode=$1 conns=$2 r=$3 out=$work/wrk-$1-$3.txt per=1 c0 c1 rps bad p99 lps us
  [[ $mode == post-* ]] && per=$count
  start_gateway
  c0=$(cpu_ticks "$gpid")
  timeout $((secs + 30)) wrk -t 2 -c "$conns" -d "${secs}s" --timeout 30s --latency \
    -s bench/gateway.lua "http://127.0.0.1:$gport" -- "$mode" "$d/siis.txt" 2 "$count" > "$out" 2>&1 || true
  c1=$(cpu_ticks "$gpid")
  stop "$gpid"
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out"); bad=${bad:-0}
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  lps=$(calc "round(float('${rps:-0}') * $per)")
  local done_req
  done_req=$(awk '/requests in/ {print $1}' "$out")
  us=$(calc "round(($c1 - $c0) * 1e6 / $clk / max(1, int('${done_req:-0}') * $per), 1)")
  if ((bad > 0)); then
    echo "  $mode run $r: ${rps:-?} requests/s but $bad non-2xx answers (rate limited?): not a rate"
    record "$n" "${mode}_non2xx" "$bad" mimi-gateway
    lps=null
  else
    echo "  $mode run $r: ${rps:-?} requests/s = $lps lookups/s, p99 ${p99:-?}, ${us} µs gateway CPU per lookup"
  fi
  record "$n" "${mode}_lookups_per_s" "$lps" mimi-gateway
  record "$n" "${mode}_p99" "$(sed -E 's/([0-9.]+)ms/\1/; s/([0-9.]+)us/\1e-3/; s/([0-9.]+)s$/\1e3/' <<<"${p99:-}")" mimi-gateway
  record "$n" "${mode}_cpu_us_per_lookup" "$us" mimi-gateway
}

modes=(get-cycle get-fresh)
((batch)) && modes+=(post-cycle post-fresh)
echo "== gateway (wrk -t 2, ${secs}s per run, a fresh gateway each run)"
for r in $(seq "$runs"); do
  for mode in "${modes[@]}"; do
    wrk_run "$mode" "$([[ $mode == post-* ]] && echo 4 || echo 64)" "$r"
  done
done

echo "== mimi-resolve batch on the same $count SIIs (--concurrency 64)"
for r in $(seq "$runs"); do
  start=$EPOCHREALTIME
  timeout 300 "$res" batch "$d/siis.txt" --trust "$d/trust.toml" --server "127.0.0.1:$dns" --concurrency 64 > "$work/batch.jsonl"
  t=$(since "$start")
  ok=$(grep -c '"outcome":"verified"' "$work/batch.jsonl" || true)
  v=$(calc "round($count / $t)")
  echo "  run $r: $count SIIs in ${t}s ($ok verified) = $v lookups/s"
  record "$n" resolve_lookups_per_s "$v" mimi-resolve
done

python3 - "$results" "$count" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
count = sys.argv[2]
def med(metric):
    v = [r["value"] for r in rows if r["metric"] == metric and r["value"] is not None]
    return statistics.median(v) if v else None
labels = [
    ("get-cycle", f"gateway GET, cycling {count} SIIs (warm if cached)"),
    ("get-fresh", "gateway GET, never-asked SIIs (cold)"),
    ("post-cycle", f"gateway POST batch of the same {count}"),
    ("post-fresh", f"gateway POST batch of {count} never-asked SIIs"),
    ("resolve", f"mimi-resolve batch, the same {count}"),
]
print("== medians")
print(f"  {'measurement':<52} {'lookups/s':>10} {'p99 ms':>8} {'gw CPU µs/lookup':>17}")
for key, label in labels:
    lps = med(f"{key}_lookups_per_s")
    if lps is None and key != "resolve" and not any(r["metric"].startswith(key) for r in rows):
        continue
    p99, cpu = med(f"{key}_p99"), med(f"{key}_cpu_us_per_lookup")
    f = lambda v, d: "—" if v is None else f"{v:.{d}f}"
    print(f"  {label:<52} {f(lps, 0):>10} {f(p99, 2):>8} {f(cpu, 1):>17}")
PY
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/machine.txt" "$results" > docs/benchmarks-gateway.jsonl <<'PY'
import json, sys
machine, results = sys.argv[1:]
print(json.dumps({"machine": open(machine).read().strip().splitlines()}))
print(open(results).read(), end="")
PY
echo "== wrote docs/benchmarks-gateway.jsonl"

#!/usr/bin/env bash
# Many zones from one publisher: one [domains] configuration of D customer
# domains × M mappings (default 10,000 × 10), optionally next to one zone of
# N mappings (--big N, e.g. 1000000) served by the same process, on this
# machine, over loopback only. Run through `bench/run.sh --zones [...]` or
# directly:
#
#   bench/zones.sh                         # 10,000 × 10, no big zone, NSD and Knot alongside
#   bench/zones.sh --domains 1000 --big 1000000 --runs 3 --dnsperf-seconds 10
#   bench/zones.sh --no-knot
#
# Measures, for mimi-publisher serve: start-up time (until the last domain's
# zone answers its SOA) and memory (RSS/PSS, and per zone: the difference to
# a server of one such domain, divided by D-1); the time until a change of
# one domain's mappings is served, how long the server's rebuild took, and
# how many zones it re-announced (log lines "zone reloaded": 1 means only
# the changed one); q/s across the zones with dnsperf (90% existing names of
# random zones, 10% non-existent). NSD and Knot are configured with one zone
# entry per zone file that `mimi-publisher build --out DIR` wrote, and
# measured the same way. Writes docs/BENCHMARKS-zones.md and
# docs/benchmarks-zones.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source bench/lib.sh

domains=10000
per=10
big=0
runs=3
dnsperf_secs=10
knot=1
while (($#)); do
  case "$1" in
    --domains) domains=$2; shift 2 ;;
    --per-domain) per=$2; shift 2 ;;
    --big) big=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --dnsperf-seconds) dnsperf_secs=$2; shift 2 ;;
    --no-knot) knot=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
invocation="bench/zones.sh --domains $domains --per-domain $per --big $big --runs $runs --dnsperf-seconds $dnsperf_secs$( ((knot)) || echo " --no-knot")"
started=$EPOCHREALTIME
export PATH="$PATH:/usr/sbin:/sbin"
need=()
for pair in dnsperf:dnsperf nsd:nsd knotd:knot dig:bind9-dnsutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  # shellcheck disable=SC2046
  "$root/tests/install-packages.sh" $(printf '%s\n' "${need[@]}" | sort -u)
fi
echo "== cargo build --release"
cargo build --release --quiet --bin mimi-publisher -p mimi-publisher
pub=${CARGO_TARGET_DIR:-$root/target}/release/mimi-publisher

work=$(mktemp -d "${TMPDIR:-/tmp}/mimi-zones.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
results=$work/results.jsonl
: > "$results"
dnsperf_opts=(-s 127.0.0.1 -t 1 -c 8 -T 2 -q 500)
n=$((domains * per))

{
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mimi-publisher: $("$pub" --version)"
  echo "nsd: $(nsd -v 2>&1 | head -1)"
  echo "knot: $(knotd --version 2>&1 | head -1)"
  echo "dnsperf: $(dnsperf -h 2>&1 | grep -m1 Version)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$work/machine.txt"

# wait_zone PORT PID ZONE: seconds until ZONE's SOA is answered
# authoritatively; fails when PID dies or after 900 s.
wait_zone() {
  local start=$EPOCHREALTIME
  while (( $(calc "int($EPOCHREALTIME - $start)") < 900 )); do
    if dig +norec +time=1 +tries=1 @127.0.0.1 -p "$1" "$3" SOA 2>/dev/null | grep -q "flags:[^;]* aa"; then
      since "$start"; return 0
    fi
    kill -0 "$2" 2>/dev/null || { echo "server (pid $2) exited before answering" >&2; return 1; }
    sleep 0.05
  done
  echo "server on port $1 never answered for $3" >&2; return 1
}

# config DIR ORIGIN_LINE TABLES: a zone.toml signed by provider.example.
config() {
  cat > "$1/zone.toml" <<CONF
$2
role = "home"
ns = ["ns1.provider.example", "ns2.provider.example"]
mappings = "mappings.csv"
max_shrink = "100%"
$3
[soa]
mname = "ns1.provider.example"
rname = "hostmaster.provider.example"
[authority]
name = "provider.example"
key = "signing.pem"
CONF
}

d=$work/domains; one=$work/one; bigd=$work/big
mkdir -p "$d" "$one" "$bigd"
"$pub" keygen --out "$d/signing.pem" >/dev/null
cp "$d/signing.pem" "$one/"; cp "$d/signing.pem" "$bigd/"
chmod 600 "$one/signing.pem" "$bigd/signing.pem"
config "$d" "" $'[domains]\norigin = "_mimi.{domain}"'
config "$one" "" $'[domains]\norigin = "_mimi.{domain}"'
python3 bench/gen.py domains "$domains" "$per" "$d/mappings.csv"
python3 bench/gen.py domains 1 "$per" "$one/mappings.csv"
configs=("$d/zone.toml")
if ((big)); then
  config "$bigd" 'origin = "example.com"' ""
  python3 bench/gen.py mappings "$big" "$bigd/mappings.csv"
  configs+=("$bigd/zone.toml")
fi
last="_mimi.d$((domains - 1)).example"
echo "== inputs: $domains domains × $per mappings ($n)$( ((big)) && echo ", and example.com with $big mappings")"

echo "== zone files for NSD and Knot (mimi-publisher build --out DIR)"
start=$EPOCHREALTIME
"$pub" build "$d/zone.toml" --out "$work/zones" 2>"$work/build.log"
t=$(since "$start"); record "$n" build_dir_seconds "$t" mimi-publisher
echo "  $(ls "$work/zones" | wc -l) zone files in ${t}s"
if ((big)); then
  "$pub" build "$bigd/zone.toml" --out "$work/example.com.zone" 2>>"$work/build.log"
fi
python3 bench/gen.py zonequeries "$work/zones" 200000 "$work/queries.txt" $( ((big)) && echo "$work/example.com.zone")

# measure NAME PORT PID: memory after load, capacity, paced runs.
measure() {
  local server=$1 port=$2 pid=$3 procs cap target r c0 c1 qps lost answered us
  sleep 1
  procs=$(tree "$pid")
  record "$n" rss_mb "$(mem_mb Rss $procs)" "$server"; record "$n" pss_mb "$(mem_mb Pss $procs)" "$server"
  dnsperf_run "$work/dnsperf.txt" "$port"
  cap=$(dnsperf_stat qps < "$work/dnsperf.txt")
  record "$n" capacity_qps "$cap" "$server"
  echo "  $server: $(mem_mb Pss $procs) MB PSS ($(mem_mb Rss $procs) MB RSS); capacity ${cap:-?} q/s (lost $(dnsperf_stat lost < "$work/dnsperf.txt")%)"
  target=$(calc "int(float('${cap:-0}') * 0.9)")
  for r in $(seq "$runs"); do
    c0=$(cpu_ticks $procs)
    dnsperf_run "$work/dnsperf.txt" "$port" -Q "$target"
    c1=$(cpu_ticks $procs)
    qps=$(dnsperf_stat qps < "$work/dnsperf.txt"); lost=$(dnsperf_stat lost < "$work/dnsperf.txt")
    answered=$(dnsperf_stat completed < "$work/dnsperf.txt")
    us=$(calc "round(($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / max(${answered:-0}, 1), 2)")
    echo "    -Q $target: ${qps:-?} q/s, lost ${lost:-?}%, ${us} µs server CPU/query"
    record "$n" qps "$qps" "$server"; record "$n" lost_pct "$lost" "$server"; record "$n" cpu_us "$us" "$server"
  done
}
dnsperf_run() {
  local out=$1 port=$2; shift 2
  timeout $((dnsperf_secs + 30)) dnsperf "${dnsperf_opts[@]}" -p "$port" -d "$work/queries.txt" -l "$dnsperf_secs" "$@" > "$out" 2>&1 || true
}

echo "== mimi-publisher serve: one domain (the baseline of memory per zone)"
port=$(free_port)
"$pub" serve "$one/zone.toml" --listen "127.0.0.1:$port" --rrl-rate 0 2>"$work/one.log" & pid=$!; pids+=("$pid")
wait_zone "$port" "$pid" _mimi.d0.example >/dev/null
sleep 1
base_rss=$(mem_mb Rss "$pid"); record "$n" baseline_rss_mb "$base_rss" mimi-publisher
echo "  one zone: $base_rss MB RSS"
stop "$pid"

echo "== mimi-publisher serve: $domains zones$( ((big)) && echo " + example.com ($big)")"
for r in $(seq "$runs"); do
  rm -rf "$work/state"
  port=$(free_port)
  "$pub" serve "${configs[@]}" --listen "127.0.0.1:$port" --state-dir "$work/state" --rrl-rate 0 2>"$work/mimi.log" & pid=$!; pids+=("$pid")
  load=$(wait_zone "$port" "$pid" "$last")
  ((big)) && load=$(calc "$load + $(wait_zone "$port" "$pid" example.com)")
  record "$n" startup_seconds "$load" mimi-publisher
  sleep 1
  rss=$(mem_mb Rss "$pid")
  per_zone=$(calc "round(($rss - $base_rss) * 1024 / max($domains - 1, 1), 1)")
  record "$n" serve_rss_mb "$rss" mimi-publisher; record "$n" rss_kb_per_zone "$per_zone" mimi-publisher
  echo "  run $r: all zones answering after ${load}s; $rss MB RSS, $per_zone kB per zone"
  if ((r < runs)); then stop "$pid"; fi
done
measure mimi-publisher "$port" "$pid"

echo "== one domain's mappings change (d$((domains / 2)) gets a new user): served after, rebuild, zones re-announced"
for r in $(seq "$runs"); do
  target_domain=d$((domains / 2)).example
  name=$(python3 bench/gen.py name "bench-new-$r@$target_domain")
  before=$(grep -c "zone reloaded" "$work/mimi.log" || true)
  start=$EPOCHREALTIME
  echo "bench-new-$r@$target_domain,mimi://chat.provider.example/u/new$r" >> "$d/mappings.csv"
  t=timeout
  while (( $(calc "int($EPOCHREALTIME - $start)") < 60 )); do
    if dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$name" TXT | grep -q "u/new$r;"; then
      t=$(calc "round(($EPOCHREALTIME - $start) * 1000)"); break
    fi
    sleep 0.02
  done
  for _ in $(seq 50); do (( $(grep -c "zone reloaded" "$work/mimi.log" || true) > before )) && break; sleep 0.1; done
  sleep 0.5
  after=$(grep -c "zone reloaded" "$work/mimi.log" || true)
  ms=$(grep "zone reloaded" "$work/mimi.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'ms=[0-9]*' | cut -d= -f2 || true)
  echo "  served after $t ms; server's rebuild ${ms:-?} ms; $((after - before)) zone(s) re-announced"
  record "$n" update_ms "$t" mimi-publisher; record "$n" reload_ms "${ms:-}" mimi-publisher
  record "$n" zones_reannounced "$((after - before))" mimi-publisher
done
stop "$pid"

echo "== restart from the state directory"
port=$(free_port)
"$pub" serve "${configs[@]}" --listen "127.0.0.1:$port" --state-dir "$work/state" --rrl-rate 0 2>"$work/restart.log" & pid=$!; pids+=("$pid")
load=$(wait_zone "$port" "$pid" "$last")
record "$n" restart_seconds "$load" mimi-publisher
echo "  all zones answering after ${load}s"
stop "$pid"

zone_entries() {
  local f o
  for f in "$work"/zones/*.zone; do
    o=$(basename "$f" .zone)
    printf "$1" "$o" "$f"
  done
  if ((big)); then printf "$1" example.com "$work/example.com.zone"; fi
}

echo "== NSD, $(ls "$work/zones" | wc -l) zone entries$( ((big)) && echo " + example.com")"
mkdir -p "$work/nsd"
port=$(free_port)
{
  cat <<CONF
server:
    ip-address: 127.0.0.1@$port
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$work/nsd"
    database: ""
    pidfile: "$work/nsd/nsd.pid"
    xfrdfile: "$work/nsd/xfrd.state"
    zonelistfile: "$work/nsd/zone.list"
    xfrdir: "$work/nsd"
    rrl-ratelimit: 0
    server-count: $(nproc)
    receive-buffer-size: 4194304
remote-control:
    control-enable: no
CONF
  zone_entries 'zone:\n    name: "%s"\n    zonefile: "%s"\n'
} > "$work/nsd/nsd.conf"
start=$EPOCHREALTIME
nsd -d -c "$work/nsd/nsd.conf" >"$work/nsd.log" 2>&1 & pid=$!; pids+=("$pid")
wait_zone "$port" "$pid" "$last" >/dev/null
((big)) && wait_zone "$port" "$pid" example.com >/dev/null
t=$(since "$start"); record "$n" startup_seconds "$t" nsd
echo "  all zones answering after ${t}s"
measure nsd "$port" "$pid"
stop "$pid"

if ((knot)); then
  echo "== Knot, the same zone entries"
  mkdir -p "$work/knot"
  port=$(free_port)
  {
    cat <<CONF
server:
    rundir: "$work/knot"
    listen: 127.0.0.1@$port
    udp-workers: $(nproc)
database:
    storage: "$work/knot"
template:
  - id: default
    storage: "$work/knot"
    journal-content: none
    zonefile-sync: -1
zone:
CONF
    zone_entries '  - domain: "%s"\n    file: "%s"\n'
  } > "$work/knot/knot.conf"
  start=$EPOCHREALTIME
  knotd -c "$work/knot/knot.conf" >"$work/knot.log" 2>&1 & pid=$!; pids+=("$pid")
  wait_zone "$port" "$pid" "$last" >/dev/null
  ((big)) && wait_zone "$port" "$pid" example.com >/dev/null
  t=$(since "$start"); record "$n" startup_seconds "$t" knot
  echo "  all zones answering after ${t}s"
  measure knot "$port" "$pid"
  stop "$pid"
fi

record "$n" total_seconds "$(since "$started")" bench
cp "$results" docs/benchmarks-zones.jsonl
python3 - "$results" "$work/machine.txt" "$invocation" "$domains" "$per" "$big" > docs/BENCHMARKS-zones.md <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
machine = open(sys.argv[2]).read().strip()
invocation, domains, per, big = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def vals(metric, tool):
    return [r["value"] for r in rows if r["metric"] == metric and r["tool"] == tool and r["value"] is not None]
def med(metric, tool, fmt="{:,.0f}"):
    v = vals(metric, tool)
    return (fmt.format(statistics.median(v)) + (f" ({len(v)} runs)" if len(v) > 1 else "")) if v else "—"
print(f"# Many zones from one publisher\n")
print(f"Produced by `{invocation}` (also `bench/run.sh --zones …`); raw results in `docs/benchmarks-zones.jsonl`.")
print(f"One `[domains]` configuration: {domains:,} customer domains × {per} mappings ({domains*per:,} mappings, one zone `_mimi.<domain>` each)"
      + (f", served by the same process as one zone of {big:,} mappings (`example.com`, its own configuration)." if big else "."))
print("Every server listens on 127.0.0.1; queries come from dnsperf on the same machine: 90% existing TXT names of random zones, 10% non-existent names"
      + (", one in ten to the large zone." if big else "."))
print("Medians over the runs; the machine is shared with other work, so absolute figures vary between runs.\n")
print("## Machine\n\n```\n" + machine + "\n```\n")
print("## mimi-publisher serve\n")
print("| what | value |\n| --- | --- |")
print(f"| start-up, until every zone answers (signs everything; no state) | {med('startup_seconds','mimi-publisher','{:.2f} s')} |")
print(f"| restart from `--state-dir` (every zone kept, signatures reused) | {med('restart_seconds','mimi-publisher','{:.2f} s')} |")
print(f"| RSS after start-up | {med('serve_rss_mb','mimi-publisher','{:,.1f} MB')} |")
print(f"| RSS of a server of one such domain (baseline) | {med('baseline_rss_mb','mimi-publisher','{:,.1f} MB')} |")
print(f"| memory per zone ((RSS − baseline) / (domains − 1)) | {med('rss_kb_per_zone','mimi-publisher','{:,.1f} kB')} |")
print(f"| one domain's mappings change: served after (dig polling) | {med('update_ms','mimi-publisher','{:,.0f} ms')} |")
print(f"| of which the server's rebuild (log `zone reloaded … ms=`) | {med('reload_ms','mimi-publisher','{:,.0f} ms')} |")
print(f"| zones re-announced by that change (log lines `zone reloaded`) | {med('zones_reannounced','mimi-publisher','{:,.0f}')} |")
print(f"| `mimi-publisher build --out DIR` (every zone file, from scratch) | {med('build_dir_seconds','mimi-publisher','{:.2f} s')} |")
print("\n## Serving across the zones, next to NSD and Knot\n")
print("NSD and Knot are configured with one zone entry per zone file written by `mimi-publisher build --out DIR`.\n")
print("| server | start-up | RSS | PSS | capacity (unpaced) | q/s at 90% of capacity | lost | server CPU/query |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
for tool in ["mimi-publisher", "nsd", "knot"]:
    if not vals("qps", tool):
        continue
    print(f"| {tool} | {med('startup_seconds', tool, '{:.2f} s')} | {med('rss_mb', tool, '{:,.1f} MB')} | {med('pss_mb', tool, '{:,.1f} MB')} | {med('capacity_qps', tool)} | {med('qps', tool)} | {med('lost_pct', tool, '{:.2f}%')} | {med('cpu_us', tool, '{:.1f} µs')} |")
print(f"\nTotal benchmark time: {med('total_seconds','bench','{:,.0f} s')}.")
PY
echo "== wrote docs/BENCHMARKS-zones.md"

#!/usr/bin/env bash
# Memory of concurrent zone transfers: how much the server's resident memory
# grows while several slow secondaries each transfer the whole zone, next to
# the size of one transfer. Loopback only; every wait is bounded.
#
#   bench/transfer-rss.sh                         # N = 1,000,000, 4 readers at 8 MB/s each
#   bench/transfer-rss.sh --size 100000 --rate 1000000
#   bench/transfer-rss.sh --readers 8 --rate 0    # 0: read as fast as possible
#
# Builds the release binary, generates the mappings (bench/gen.py), starts
# `mimi-publisher serve` (which signs the zone at start), waits for it to
# answer and its memory to settle, samples VmRSS from /proc/PID/status every 0.2 s
# before (baseline: 3 s), during and after the transfers, and runs the
# readers (bench/axfr_reader.py, a throttled raw-TCP AXFR client) at once.
# Prints the figures; docs/BENCHMARKS-transfer.md holds a run's results.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source bench/lib.sh

size=1000000
readers=4
rate=8000000
while (($#)); do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --readers) readers=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

export PATH="$PATH:/usr/sbin:/sbin"
command -v dig >/dev/null || { echo "needs dig (bind9-dnsutils)" >&2; exit 1; }
echo "== cargo build --release"
cargo build --release --quiet --bin mimi-publisher -p mimi-publisher
pub=${CARGO_TARGET_DIR:-$root/target}/release/mimi-publisher

work=$(mktemp -d "${TMPDIR:-/tmp}/mimi-xfr-rss.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== machine"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc); memory: $(free -g | awk '/Mem:/ {print $2}') GiB; kernel: $(uname -r)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); tcp_wmem: $(cat /proc/sys/net/ipv4/tcp_wmem | xargs)"
echo "mimi-publisher: $("$pub" --version); date: $(date -u +%Y-%m-%dT%H:%MZ)"

echo "== N = $size: inputs"
python3 bench/gen.py mappings "$size" "$work/mappings.csv"
"$pub" keygen --out "$work/key.pem" --json > /dev/null
cat > "$work/zone.toml" <<TOML
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
[transfer]
allow = ["127.0.0.1"]
TOML

echo "== serve (signs the zone at start)"
port=$(free_port)
"$pub" serve "$work/zone.toml" --listen "127.0.0.1:$port" --rrl-rate 0 \
  --max-transfers "$readers" 2> "$work/serve.log" & pid=$!
pids+=("$pid")
load=$(wait_soa "$port" "$pid")
echo "  answering after ${load}s"

rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
# sample SECONDS|-: VmRSS every 0.2 s, one value (kB) per line, for SECONDS
# or until the file $work/stop exists.
sample() {
  local until=$(calc "$EPOCHREALTIME + ${1/-/100000}")
  while [[ ! -e $work/stop ]] && (( $(calc "int($EPOCHREALTIME < $until)") )); do
    rss_kb "$pid"; sleep 0.2
  done
}

# The re-sign timers rebuild the zone soon after start and then about once
# a minute (SPEC §9); a rebuild during the transfers would be measured with
# them. Start right after the first one (waiting at most 180 s), and say so
# if one overlaps anyway.
reloads() { grep -c "zone reloaded" "$work/serve.log" || true; }
wait_start=$EPOCHREALTIME
while (( $(reloads) == 0 && $(calc "int($EPOCHREALTIME - $wait_start)") < 180 )); do sleep 0.2; done
(( $(reloads) > 0 )) && echo "  first re-sign rebuild done after $(since "$wait_start")s more"
# The server frees what the start-up build used in the seconds after it
# answers: wait until VmRSS has moved less than 1 MB over 5 s (at most
# 300 s) before taking the baseline.
settle_start=$EPOCHREALTIME
while :; do
  sample 5 > "$work/settle.txt"
  spread=$(( $(sort -n "$work/settle.txt" | tail -1) - $(sort -n "$work/settle.txt" | head -1) ))
  (( spread < 1024 )) && break
  (( $(calc "int($EPOCHREALTIME - $settle_start)") < 300 )) || { echo "VmRSS never settled" >&2; exit 1; }
done
echo "  VmRSS settled after $(since "$settle_start")s more"
sample 3 > "$work/before.txt"
baseline=$(sort -n "$work/before.txt" | tail -1)
echo "  baseline VmRSS (max of 3 s of samples): $baseline kB"

echo "== $readers concurrent AXFRs, each read at $( ((rate)) && echo "$rate octets/s" || echo "full speed")"
rm -f "$work/stop"
reloads_before=$(reloads)
sample - > "$work/during.txt" & sampler=$!
pids+=("$sampler")
started=$EPOCHREALTIME
rpids=()
for i in $(seq "$readers"); do
  timeout 3600 python3 bench/axfr_reader.py "$port" example.com "$rate" > "$work/reader$i.json" & rpids+=($!)
done
failed=0
for p in "${rpids[@]}"; do wait "$p" || failed=1; done
elapsed=$(since "$started")
touch "$work/stop"; wait "$sampler" || true
rm -f "$work/stop"
sample 3 > "$work/after.txt"
peak=$(sort -n "$work/during.txt" | tail -1)
after=$(sort -n "$work/after.txt" | tail -1)
hwm=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status")

for i in $(seq "$readers"); do echo "  reader $i: $(cat "$work/reader$i.json")"; done
((failed == 0)) || { echo "a reader failed" >&2; exit 1; }
octets=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["octets"])' "$work/reader1.json")
all_complete=$(python3 -c 'import json,sys; print(all(json.load(open(f))["complete"] for f in sys.argv[1:]))' "$work"/reader*.json)
transferred=$(grep -c "zone transferred" "$work/serve.log" || true)
growth=$((peak - baseline))
echo "== result"
echo "  transfers: $readers, all complete: $all_complete; server logged $transferred 'zone transferred'"
echo "  zone transfer size: $octets octets ($(calc "round($octets / 1e6, 1)") MB); samples during: $(wc -l < "$work/during.txt") over ${elapsed}s"
echo "  VmRSS: baseline $baseline kB, peak during $peak kB, after $after kB (VmHWM $hwm kB, includes the build at start)"
echo "  growth during the transfers: $growth kB = $(calc "round($growth * 1024 * 100 / $octets, 2)")% of one transfer's size (target < 10%)"
if (( $(reloads) > reloads_before )); then
  echo "  NOTE: a re-sign rebuild overlapped the transfers: the growth includes the rebuild and the previous zone the transfers keep"
else
  echo "  no rebuild during the transfers"
fi
echo "  server log besides the transfers:"
grep -v "zone transferred" "$work/serve.log" | sed 's/^/    /' | tail -20
[[ $all_complete == True ]] || { echo "not every transfer completed" >&2; exit 1; }

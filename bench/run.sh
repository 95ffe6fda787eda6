#!/usr/bin/env bash
# mimi-dns benchmark: build, serve, resolve and update, side by side with
# NSD, Knot and BIND's tools, on this machine, over loopback only.
#
#   bench/run.sh                      # N = 100,000 and 1,000,000, 3 runs each
#   bench/run.sh --size 200000 --runs 5
#   bench/run.sh --quick              # N = 10,000, 1 run: checks the harness in a few minutes
#
# Writes docs/BENCHMARKS.md (and the raw results next to it as
# docs/benchmarks.jsonl). Every server it starts listens on 127.0.0.1 and is
# stopped on exit; every measurement is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

sizes=()
runs=3
dnsperf_secs=10
while (($#)); do
  case "$1" in
    --size) sizes+=("$2"); shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --quick) sizes=(10000); runs=1; dnsperf_secs=4; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
((${#sizes[@]})) || sizes=(100000 1000000)

# --- what it needs ---------------------------------------------------------
need=()
for pair in dnsperf:dnsperf nsd:nsd knotd:knot kzonesign:knot-dnssecutils dnssec-signzone:bind9-utils \
            dnssec-keygen:bind9-utils ldns-signzone:ldnsutils dig:bind9-dnsutils; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
  for svc in named knotd nsd unbound; do $sudo pkill -x "$svc" 2>/dev/null || true; done
fi
export PATH="$PATH:/usr/sbin:/sbin"
cargo build --release --quiet --bins --example ed25519_rate
pub=$root/target/release/mimi-publisher
res=$root/target/release/mimi-resolve

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
results=$work/results.jsonl
: > "$results"
record() { # size metric value [tool]
  printf '{"size": %s, "metric": "%s", "value": %s, "tool": "%s"}\n' "$1" "$2" "$3" "${4:-}" >> "$results"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_soa() { # port → seconds until an authoritative SOA answer (max 600 s)
  local start=$EPOCHREALTIME
  for _ in $(seq 6000); do
    if dig +norec +time=1 +tries=1 @127.0.0.1 -p "$1" example.com SOA 2>/dev/null | grep -q "flags:.* aa"; then
      python3 -c "print(round($EPOCHREALTIME - $start, 3))"; return 0
    fi
    sleep 0.1
  done
  echo "server on port $1 never answered" >&2; return 1
}
pss_mb() { # pids → summed PSS in MB
  local t=0; for p in "$@"; do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done
  python3 -c "print(round($t/1024, 1))"
}
cpu_ticks() { # utime+stime of the pids (the command name may contain spaces: cut after ")")
  local t=0; for p in "$@"; do v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}'); t=$((t + ${v:-0})); done; echo $t; }
rrsigs() { grep -cE 'RRSIG[[:space:]]+[A-Z0-9]+[[:space:]]+15[[:space:]]' "$1" || true; }
tree() { # a process and all its descendants (NSD serves from forked children)
  local all=("$1") kids
  kids=$(pgrep -P "$1" 2>/dev/null || true)
  for k in $kids; do all+=($(tree "$k")); done
  echo "${all[@]}"
}

echo "== machine"
{
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "nsd: $(nsd -v 2>&1 | head -1)"
  echo "knot: $(knotd --version 2>&1 | head -1)"
  echo "dnssec-signzone: $(dnssec-signzone -V 2>&1 | head -1)"
  echo "ldns-signzone: $(ldns-signzone -v 2>&1 | head -1)"
  echo "dnsperf: $(dnsperf -h 2>&1 | grep -m1 Version)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$work/machine.txt"

echo "== raw Ed25519 signing rate, all cores"
for r in $(seq "$runs"); do
  v=$("$root/target/release/examples/ed25519_rate" 3 | python3 -c 'import json,sys; print(json.load(sys.stdin)["signatures_per_second"])')
  echo "  $v signatures/s"; record 0 raw_sign_rate "$v"
done

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

  echo "== N = $n: build"
  for r in $(seq "$runs"); do
    rm -f "$d/zone.zone"
    /usr/bin/time -f "%e %M" -o "$d/time.txt" "$pub" build "$d/zone.toml" --out "$d/zone.zone" --json > /dev/null
    read -r secs rss < "$d/time.txt"
    rate=$(python3 -c "print(round($n/$secs))")
    echo "  ${secs}s, $rate mappings/s, peak RSS $((rss/1024)) MB"
    record "$n" build_rate "$rate" mimi-publisher; record "$n" build_rss_mb "$((rss/1024))" mimi-publisher
  done
  records=$(grep -c " IN TXT " "$d/zone.zone")

  echo "== N = $n: DNSSEC signers on the same zone (ED25519), one run each"
  ( cd "$d" && dnssec-keygen -q -a ED25519 -K "$d" example.com >/dev/null && dnssec-keygen -q -a ED25519 -f KSK -K "$d" example.com >/dev/null )
  start=$EPOCHREALTIME
  if timeout 1800 dnssec-signzone -q -K "$d" -S -o example.com -n "$(nproc)" -f "$d/bind.signed" "$d/zone.zone" >/dev/null 2>"$d/bind.err"; then
    t=$(python3 -c "print($EPOCHREALTIME - $start)"); s=$(rrsigs "$d/bind.signed")
    v=$(python3 -c "print(round($s/$t))"); echo "  dnssec-signzone: $s RRSIGs in ${t:0:6}s = $v/s"; record "$n" signer_rate "$v" dnssec-signzone
  else echo "  dnssec-signzone failed: $(head -3 "$d/bind.err")"; fi
  key=$(cd "$d" && ldns-keygen -a ED25519 example.com)
  start=$EPOCHREALTIME
  if (cd "$d" && timeout 1800 ldns-signzone -f "$d/ldns.signed" "$d/zone.zone" "$key" >/dev/null 2>"$d/ldns.err"); then
    t=$(python3 -c "print($EPOCHREALTIME - $start)"); s=$(rrsigs "$d/ldns.signed")
    v=$(python3 -c "print(round($s/$t))"); echo "  ldns-signzone: $s RRSIGs in ${t:0:6}s = $v/s"; record "$n" signer_rate "$v" ldns-signzone
  else echo "  ldns-signzone failed: $(head -3 "$d/ldns.err")"; fi
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
  start=$EPOCHREALTIME
  if timeout 1800 kzonesign -c "$d/knot-sign.conf" -o "$d/knot-sign" example.com >/dev/null 2>"$d/knot.err"; then
    t=$(python3 -c "print($EPOCHREALTIME - $start)"); s=$(rrsigs "$d/knot-sign/zone.zone")
    v=$(python3 -c "print(round($s/$t))"); echo "  kzonesign: $s RRSIGs in ${t:0:6}s = $v/s"; record "$n" signer_rate "$v" kzonesign
  else echo "  kzonesign failed: $(head -3 "$d/knot.err")"; fi

  echo "== N = $n: serve (dnsperf, 90% existing TXT names, 10% NXDOMAIN)"
  python3 bench/gen.py queries "$d/zone.zone" 200000 "$d/queries.txt"
  for server in mimi-publisher nsd knot; do
    port=$(free_port)
    case $server in
      mimi-publisher)
        "$pub" serve "$d/zone.toml" --listen "127.0.0.1:$port" 2>"$d/mimi.log" & pid=$! ;;
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
    load=$(wait_soa "$port")
    sleep 1
    procs=$(tree "$pid")
    pss=$(pss_mb $procs)
    c0=$(cpu_ticks $procs)
    out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$d/queries.txt" -l "$dnsperf_secs" -t 1 -c 8 -T 2 -q 500 2>&1)
    c1=$(cpu_ticks $procs)
    qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
    done_q=$(awk '/Queries completed/ {print $3}' <<<"$out")
    lost=$(awk '/Queries lost/ {gsub(/[()%]/,"",$4); print $4}' <<<"$out")
    us=$(python3 -c "print(round(($c1-$c0)*1e6/$(getconf CLK_TCK)/max($done_q,1),2))")
    target=$(python3 -c "print(int(float('$qps')*0.8))")
    dnsperf -s 127.0.0.1 -p "$port" -d "$d/queries.txt" -l 4 -t 1 -c 8 -T 2 -q 500 -Q "$target" -v > "$d/lat.txt" 2>&1 || true
    p99=$(python3 bench/gen.py p99 "$d/lat.txt")
    echo "  $server: load ${load}s, PSS ${pss} MB, ${qps} q/s (lost ${lost}%), ${us} µs CPU/query, p99 ${p99} ms at 80% of that rate"
    record "$n" serve_qps "$qps" "$server"; record "$n" serve_lost_pct "$lost" "$server"; record "$n" serve_cpu_us "$us" "$server"
    record "$n" serve_pss_mb "$pss" "$server"; record "$n" load_seconds "$load" "$server"; record "$n" p99_ms "$p99" "$server"
    if [[ $server == mimi-publisher ]]; then
      echo "== N = $n: resolve (mimi-resolve batch against the same server)"
      count=$(( n < 20000 ? n : 20000 ))
      python3 bench/gen.py siis "$n" "$count" "$d/siis.txt"
      for r in $(seq "$runs"); do
        start=$EPOCHREALTIME
        "$res" batch "$d/siis.txt" --trust "$d/trust.toml" --server "127.0.0.1:$port" --concurrency 256 > "$d/batch.jsonl"
        t=$(python3 -c "print($EPOCHREALTIME - $start)")
        v=$(python3 -c "print(round($count/$t))"); ok=$(grep -c '"outcome":"verified"' "$d/batch.jsonl" || true)
        echo "  $count SIIs in ${t:0:6}s = $v lookups/s ($ok verified)"; record "$n" batch_rate "$v" mimi-resolve
      done
      echo "== N = $n: update (one new mapping → served)"
      for r in $(seq "$runs"); do
        name=$(python3 -c "
import hashlib,base64
h=hashlib.sha256(b'mailto:bench-new-$r@example.com').digest()
print(base64.b32hexencode(h).decode().rstrip('=').lower()+'._mimi.example.com')")
        start=$EPOCHREALTIME
        echo "bench-new-$r@example.com,mimi://chat.example.com/u/new$r" >> "$d/mappings.csv"
        for _ in $(seq 1200); do
          dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$name" TXT | grep -q "new$r" && break
          sleep 0.05
        done
        t=$(python3 -c "print(round(($EPOCHREALTIME - $start)*1000))")
        echo "  served after $t ms"; record "$n" update_ms "$t" mimi-publisher
      done
      grep "zone reloaded" "$d/mimi.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^/  /'
    fi
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done
  rm -f "$d"/*.signed "$d"/knot-sign/* 2>/dev/null || true
done

cp "$results" docs/benchmarks.jsonl
python3 bench/report.py "$work/machine.txt" docs/benchmarks.jsonl "$*" > docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md"

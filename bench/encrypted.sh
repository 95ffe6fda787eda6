#!/usr/bin/env bash
# Encrypted transports: q/s and server CPU per query over UDP, DNS over TLS
# and DNS over HTTPS (dnsperf -m udp|dot|doh), for mimi-publisher serve and,
# side by side, unbound serving the same zone file as an auth-zone on its
# own TLS and HTTPS listeners; plus one-connection-per-query rates with kdig
# over TLS, and response sizes with and without padding. On this
# machine, over loopback only. Run through `bench/run.sh --encrypted [...]`
# or directly:
#
#   bench/encrypted.sh                        # N = 100,000, 3 runs of 10 s per transport
#   bench/encrypted.sh --size 1000000 --runs 5 --dnsperf-seconds 20
#   bench/encrypted.sh --quick                # N = 10,000, 1 run of 3 s: checks the harness
#   bench/encrypted.sh --no-unbound
#
# Every run is unpaced (dnsperf sends as fast as answers come back, 8
# clients, at most 500 queries outstanding), so q/s is each server's
# capacity on this machine with dnsperf sharing its cores; CPU per query is
# the server's user+system CPU time during the run divided by the queries
# answered, which does not depend on who else shares the cores. Writes
# docs/BENCHMARKS-encrypted.md and docs/benchmarks-encrypted.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source bench/lib.sh

n=100000
runs=3
dnsperf_secs=10
unbound=1
kdig_queries=300
while (($#)); do
  case "$1" in
    --size) n=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --dnsperf-seconds) dnsperf_secs=$2; shift 2 ;;
    --quick) n=10000; runs=1; dnsperf_secs=3; kdig_queries=50; shift ;;
    --no-unbound) unbound=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
invocation="bench/encrypted.sh --size $n --runs $runs --dnsperf-seconds $dnsperf_secs$( ((unbound)) || echo " --no-unbound")"
started=$EPOCHREALTIME
export PATH="$PATH:/usr/sbin:/sbin"
need=()
for pair in dnsperf:dnsperf unbound:unbound kdig:knot-dnsutils dig:bind9-dnsutils openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
  # shellcheck disable=SC2046
  "$root/tests/install-packages.sh" $(printf '%s\n' "${need[@]}" | sort -u)
fi
echo "== cargo build --release"
cargo build --release --quiet --bin mimi-publisher -p mimi-publisher
pub=${CARGO_TARGET_DIR:-$root/target}/release/mimi-publisher

work=$(mktemp -d "${TMPDIR:-/tmp}/mimi-encrypted.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
results=$work/results.jsonl
: > "$results"
clk=$(getconf CLK_TCK)

{
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) × $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "mimi-publisher: $("$pub" --version)"
  echo "unbound: $(unbound -V 2>&1 | head -1)"
  echo "dnsperf: $(dnsperf -h 2>&1 | grep -m1 Version)"
  echo "kdig: $(kdig --version 2>&1 | head -1)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$work/machine.txt"

d=$work/zone; mkdir -p "$d"
echo "== N = $n: inputs, zone, certificate"
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
# A throw-away CA and server certificate for 127.0.0.1, made here, never kept.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$d/ca.key" -out "$d/ca.pem" -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$d/tls.key" -out "$d/tls.csr" -subj /CN=ns1.example.com 2>/dev/null
openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:ns1.example.com\n') -out "$d/tls.pem" 2>/dev/null
chmod 600 "$d/tls.key"

dnsperf_opts=(-s 127.0.0.1 -t 2 -c 8 -T 2 -q 500)

# measure SERVER PID MODE PORT [dnsperf args]: $runs unpaced runs; q/s,
# lost %, and server CPU µs per answered query.
measure() {
  local server=$1 pid=$2 mode=$3 port=$4 r out c0 c1 qps lost done_q us; shift 4
  for r in $(seq "$runs"); do
    out=$work/$server-$mode-$r.txt
    c0=$(cpu_ticks $(tree "$pid"))
    timeout $((dnsperf_secs + 30)) dnsperf "${dnsperf_opts[@]}" -m "$mode" -p "$port" -d "$d/queries.txt" \
      -l "$dnsperf_secs" "$@" > "$out" 2>&1 || true
    c1=$(cpu_ticks $(tree "$pid"))
    qps=$(dnsperf_stat qps < "$out"); lost=$(dnsperf_stat lost < "$out"); done_q=$(dnsperf_stat completed < "$out")
    us=$(calc "round(($c1 - $c0) * 1e6 / $clk / max(1, ${done_q:-0}), 1)")
    record "$n" "${mode}_qps" "$qps" "$server"
    record "$n" "${mode}_lost_pct" "$lost" "$server"
    record "$n" "${mode}_cpu_us_per_query" "$us" "$server"
    echo "  $server $mode run $r: ${qps:-?} q/s, lost ${lost:-?}%, ${us} µs server CPU per query"
  done
}

# kdig_rate SERVER MODE PORT: one new connection (and handshake) per query,
# $kdig_queries sequential queries; queries per second. (Debian 12's kdig
# is built without QUIC, so there is no DoQ figure.)
kdig_rate() {
  local server=$1 mode=$2 port=$3 start i ok=0 name
  name=$(python3 bench/gen.py name user1@example.com)
  start=$EPOCHREALTIME
  for i in $(seq "$kdig_queries"); do
    if kdig "+$mode" +tls-ca="$d/ca.pem" +tls-hostname=ns1.example.com +time=2 +retry=0 \
        @127.0.0.1 -p "$port" "$name" TXT 2>/dev/null | grep -q 'status: NOERROR'; then
      ok=$((ok + 1))
    fi
  done
  record "$n" "kdig_${mode}_qps" "$(calc "round($ok / ($EPOCHREALTIME - $start), 1)")" "$server"
  record "$n" "kdig_${mode}_failed" "$((kdig_queries - ok))" "$server"
  echo "  $server kdig +$mode: $(calc "round($ok / ($EPOCHREALTIME - $start), 1)") q/s with a new connection per query ($((kdig_queries - ok)) failed)"
}

# sizes SERVER UDPPORT TLSPORT: mean reply size in octets of 20 found and 20
# missing names over UDP and over TLS (EDNS, kdig +padding asks for padding).
sizes() {
  local server=$1 up=$2 tp=$3 kind names f u t
  for kind in found missing; do
    if [[ $kind == found ]]; then
      names=$(awk '{split($1, l, "."); if (length(l[1]) == 52 && k++ < 20) print $1}' "$d/queries.txt")
    else
      names=$(awk '{split($1, l, "."); if (length(l[1]) == 32 && k++ < 20) print $1}' "$d/queries.txt")
    fi
    u=0; t=0
    for f in $names; do
      u=$((u + $(kdig +edns +time=2 @127.0.0.1 -p "$up" "$f" TXT 2>/dev/null | awk '/Received [0-9]+ B/ && !k++ {print $3}')))
      t=$((t + $(kdig +tls +padding +tls-ca="$d/ca.pem" +tls-hostname=ns1.example.com +time=2 @127.0.0.1 -p "$tp" "$f" TXT 2>/dev/null | awk '/Received [0-9]+ B/ && !k++ {print $3}')))
    done
    record "$n" "reply_octets_udp_$kind" "$(calc "round($u / 20, 1)")" "$server"
    record "$n" "reply_octets_tls_$kind" "$(calc "round($t / 20, 1)")" "$server"
    echo "  $server reply size, $kind names: $(calc "round($u / 20, 1)") octets over UDP, $(calc "round($t / 20, 1)") over TLS (padded)"
  done
}

udp=$(free_port); dot=$(free_port); doh=$(free_port); doq=$(free_port)
echo "== mimi-publisher serve (udp $udp, tls $dot, https $doh, quic $doq)"
"$pub" serve "$d/zone.toml" --listen "127.0.0.1:$udp" --listen-tls "127.0.0.1:$dot" \
  --listen-https "127.0.0.1:$doh" --listen-quic "127.0.0.1:$doq" \
  --tls-cert "$d/tls.pem" --tls-key "$d/tls.key" --rrl-rate 0 --tcp-max-queries 1000000 --state-dir "$d/state" 2>"$work/mimi.log" & pid=$!
pids+=("$pid")
wait_soa "$udp" "$pid" > /dev/null
measure mimi "$pid" udp "$udp"
measure mimi "$pid" dot "$dot"
measure mimi "$pid" doh "$doh" -O "doh-uri=https://127.0.0.1:$doh/dns-query"
kdig_rate mimi tls "$dot"
sizes mimi "$udp" "$dot"
record "$n" serve_rss_mb "$(mem_mb Rss $(tree "$pid"))" mimi
stop "$pid"

if ((unbound)); then
  uudp=$(free_port); udot=$(free_port); udoh=$(free_port)
  mkdir -p "$work/unbound"
  cat > "$work/unbound/unbound.conf" <<CONF
server:
  interface: 127.0.0.1@$uudp
  interface: 127.0.0.1@$udot
  interface: 127.0.0.1@$udoh
  tls-port: $udot
  https-port: $udoh
  tls-service-key: "$d/tls.key"
  tls-service-pem: "$d/tls.pem"
  username: ""
  chroot: ""
  directory: "$work/unbound"
  pidfile: ""
  use-syslog: no
  logfile: ""
  do-daemonize: no
  access-control: 127.0.0.0/8 allow
  num-threads: 2
  so-reuseport: yes
  incoming-num-tcp: 100
  ratelimit: 0
auth-zone:
  name: "example.com"
  zonefile: "$d/zone.zone"
  for-downstream: yes
  for-upstream: no
CONF
  echo "== unbound (auth-zone; udp $uudp, tls $udot, https $udoh)"
  unbound -d -c "$work/unbound/unbound.conf" 2>"$work/unbound.log" & upid=$!
  pids+=("$upid")
  wait_soa "$uudp" "$upid" > /dev/null
  measure unbound "$upid" udp "$uudp"
  measure unbound "$upid" dot "$udot"
  measure unbound "$upid" doh "$udoh" -O "doh-uri=https://127.0.0.1:$udoh/dns-query"
  kdig_rate unbound tls "$udot"
  sizes unbound "$uudp" "$udot"
  record "$n" serve_rss_mb "$(mem_mb Rss $(tree "$upid"))" unbound
  stop "$upid"
fi

cp "$results" docs/benchmarks-encrypted.jsonl
python3 - "$results" "$work/machine.txt" "$invocation" "$(since "$started")" > docs/BENCHMARKS-encrypted.md <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
machine = open(sys.argv[2]).read().strip()
def vals(metric, tool):
    return [r["value"] for r in rows if r["metric"] == metric and r["tool"] == tool and r["value"] is not None]
def med(metric, tool):
    v = vals(metric, tool)
    return statistics.median(v) if v else None
def fmt(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"
tools = sorted({r["tool"] for r in rows}, key=lambda t: (t != "mimi", t))
n = rows[0]["size"] if rows else 0
print("# Encrypted transports: DNS over TLS, HTTPS and QUIC next to UDP\n")
print(f"Generated by `{sys.argv[3]}` in {float(sys.argv[4]) / 60:.1f} min. Zone of {n:,} mappings; "
      "dnsperf unpaced, 8 clients, 2 threads, ≤500 outstanding, on the same 2 cores as the server; "
      "medians of the runs. CPU per query is the server's user+system time over the queries answered.\n")
print("```\n" + machine + "\n```\n")
print("| server | transport | q/s | server CPU µs/query | lost % |")
print("|---|---|---:|---:|---:|")
for t in tools:
    for mode, label in (("udp", "UDP"), ("dot", "DoT (TLS 1.3)"), ("doh", "DoH (HTTP/2)")):
        if vals(f"{mode}_qps", t):
            print(f"| {t} | {label} | {fmt(med(f'{mode}_qps', t))} | {fmt(med(f'{mode}_cpu_us_per_query', t), 1)} | {fmt(med(f'{mode}_lost_pct', t), 2)} |")
print("\nOne new connection per query (sequential `kdig` runs, each a process start, a TCP and TLS handshake and one query; why unbound takes ~50 ms per connection here was not investigated):\n")
print("| server | transport | q/s | failed |")
print("|---|---|---:|---:|")
for t in tools:
    for mode, label in (("tls", "DoT"),):
        if vals(f"kdig_{mode}_qps", t):
            print(f"| {t} | {label} | {fmt(med(f'kdig_{mode}_qps', t), 1)} | {fmt(med(f'kdig_{mode}_failed', t))} |")
print("\nMean reply size in octets (20 names each; over TLS with `kdig +padding`, RFC 8467 pads replies to a multiple of 468):\n")
print("| server | names | UDP | TLS |")
print("|---|---|---:|---:|")
for t in tools:
    for kind in ("found", "missing"):
        if vals(f"reply_octets_udp_{kind}", t):
            print(f"| {t} | {kind} | {fmt(med(f'reply_octets_udp_{kind}', t), 1)} | {fmt(med(f'reply_octets_tls_{kind}', t), 1)} |")
rss = [(t, med("serve_rss_mb", t)) for t in tools]
print("\nServer RSS after the runs: " + ", ".join(f"{t} {fmt(v, 1)} MB" for t, v in rss) + ".")
PY
echo "== wrote docs/BENCHMARKS-encrypted.md ($(since "$started") s)"

# Helpers for bench/run.sh (sourced, not run). All network traffic goes to
# 127.0.0.1; every wait is bounded.

# Append one raw result: size metric value [tool]. A non-numeric value is
# recorded as null (the report shows "—").
record() {
  local v=$3
  [[ $v =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] || v=null
  printf '{"size": %s, "metric": "%s", "value": %s, "tool": "%s"}\n' "$1" "$2" "$v" "${4:-}" >> "$results"
}

# Arithmetic on floats: calc 'EXPR' (python3 expression, printed).
calc() { python3 -c "print($1)"; }

# Seconds since an $EPOCHREALTIME reading.
since() { calc "round($EPOCHREALTIME - $1, 3)"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_soa PORT PID: seconds until the server answers example.com SOA
# authoritatively (the zone is loaded); fails when PID dies or after 600 s.
wait_soa() {
  local start=$EPOCHREALTIME
  while (( $(calc "int($EPOCHREALTIME - $start)") < 600 )); do
    if dig +norec +time=1 +tries=1 @127.0.0.1 -p "$1" example.com SOA 2>/dev/null | grep -q "flags:[^;]* aa"; then
      since "$start"; return 0
    fi
    kill -0 "$2" 2>/dev/null || { echo "server (pid $2) exited before answering" >&2; return 1; }
    sleep 0.05
  done
  echo "server on port $1 never answered" >&2; return 1
}

# A process and all its descendants (NSD serves from forked children).
tree() {
  local all=("$1") k
  for k in $(pgrep -P "$1" 2>/dev/null || true); do all+=($(tree "$k")); done
  echo "${all[@]}"
}

# mem_mb FIELD PIDS...: sum of FIELD (Pss or Rss) over the processes, in MB.
mem_mb() {
  local field=$1 t=0 p v; shift
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  calc "round($t / 1024, 1)"
}

# CPU time (utime + stime, clock ticks) of the processes. The command name
# in /proc/PID/stat may contain spaces: cut after the last ")".
cpu_ticks() {
  local t=0 p v
  for p in "$@"; do
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# One field of dnsperf's summary: dnsperf_stat 'Queries per second' < output
dnsperf_stat() {
  case $1 in
    qps) awk '/Queries per second:/ {print $4}' ;;
    completed) awk '/Queries completed:/ {print $3}' ;;
    lost) awk '/Queries lost:/ {gsub(/[()%]/, "", $4); print $4}' ;;
  esac
}

# Number of ED25519 (algorithm 15) RRSIGs in a signed zone file.
rrsigs() { grep -cE 'RRSIG[[:space:]]+[A-Z0-9]+[[:space:]]+15[[:space:]]' "$1" || true; }

# stop PID: SIGTERM, wait up to 10 s, then SIGKILL.
stop() {
  local p=$1 i
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

#!/usr/bin/env bash
# Runs every test of the workspace. The interoperability tests start the DNS
# servers operators already run (BIND, Knot, NSD, unbound) from Debian's
# packages on ephemeral loopback ports; this script installs the missing ones
# first (as root, or with sudo), then runs `cargo test --workspace`.
# Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in named:bind9 named-checkzone:bind9-utils tsig-keygen:bind9-utils dig:bind9-dnsutils \
            knotd:knot kzonecheck:knot-dnssecutils nsd:nsd nsd-checkzone:nsd unbound:unbound; do
  bin=${pair%%:*} pkg=${pair##*:}
  PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  echo "installing Debian packages for the interoperability tests: $pkgs"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  # Packages may start their system services on install; no test needs them.
  for svc in named knotd nsd unbound; do $sudo pkill -x "$svc" 2>/dev/null || true; done
fi

exec cargo test --workspace "$@"

#!/usr/bin/env bash
# Runs every test of the workspace. The interoperability tests start the DNS
# servers operators already run (BIND, Knot, NSD, unbound) from Debian's
# packages on ephemeral loopback ports; this script installs the missing ones
# first (as root, or with sudo) without starting their system services, then
# runs `cargo test --workspace`. It never stops or kills any process: the
# tests manage only the servers they start themselves, by pid.
# Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in named:bind9 named-checkzone:bind9-utils tsig-keygen:bind9-utils dig:bind9-dnsutils \
            knotd:knot kzonecheck:knot-dnssecutils kdig:knot-dnsutils nsd:nsd nsd-checkzone:nsd \
            unbound:unbound openssl:openssl; do
  bin=${pair%%:*} pkg=${pair##*:}
  PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  echo "installing Debian packages for the interoperability tests: $pkgs"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  # Installing a server package normally starts its system service. The
  # tests start their own instances on ephemeral loopback ports and must
  # never touch the machine's services, so while installing, a
  # policy-rc.d that answers 101 ("action forbidden", see invoke-rc.d(8))
  # keeps the new services from starting. An existing policy is left as is.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# written by mimi-dns tests/run.sh during apt-get install\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
    trap '$sudo rm -f "$policy"' EXIT # also when interrupted
  fi
  status=0
  { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; } || status=$?
  if [[ -n $own_policy ]]; then $sudo rm -f "$policy"; trap - EXIT; fi
  ((status == 0)) || { echo "apt-get failed ($status)"; exit "$status"; }
fi

exec cargo test --workspace "$@"

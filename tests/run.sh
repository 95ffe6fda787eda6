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
            unbound:unbound openssl:openssl curl:curl dnsperf:dnsperf; do
  bin=${pair%%:*} pkg=${pair##*:}
  PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  echo "installing Debian packages for the interoperability tests: $pkgs"
  # shellcheck disable=SC2086
  tests/install-packages.sh $pkgs
fi

exec cargo test --workspace "$@"

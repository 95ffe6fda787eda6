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
            unbound:unbound openssl:openssl curl:curl dnsperf:dnsperf \
            kotlinc:kotlin java:default-jdk-headless clang:clang chromium:chromium valgrind:valgrind cc:gcc; do
  bin=${pair%%:*} pkg=${pair##*:}
  PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
# The Kotlin bindings test (tests/bindings_kotlin.rs) runs on Debian's jars.
for pair in jna.jar:libjna-java kotlinx-coroutines-core.jar:libkotlinx-coroutines-java \
            atomicfu.jar:libkotlinx-atomicfu-java; do
  [[ -e /usr/share/java/${pair%%:*} ]] || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  echo "installing Debian packages for the interoperability tests: $pkgs"
  # shellcheck disable=SC2086
  tests/install-packages.sh $pkgs
fi

# An independent DNS-over-QUIC client (dnspython over aioquic, from PyPI;
# Debian 12's kdig has no QUIC) for tests/doq_independent.rs, in a virtual
# environment of its own: nothing is installed into the system's Python.
venv=tests/.venv
if ! "$venv/bin/python" -c 'import aioquic, dns.quic' 2>/dev/null; then
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || tests/install-packages.sh python3-venv
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'aioquic>=1.2' 'dnspython>=2.6'
fi

# The Python binding's tests (tests/bindings_python.rs): maturin builds the
# wheel of bindings/python, pytest runs its suite and mypy checks its types,
# all from PyPI in a virtual environment of their own (tests/.venv-py).
pyvenv=tests/.venv-py
if ! "$pyvenv/bin/python" -c 'import pytest, mypy' 2>/dev/null || [[ ! -x "$pyvenv/bin/maturin" ]]; then
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || tests/install-packages.sh python3-venv
  rm -rf "$pyvenv"
  python3 -m venv "$pyvenv"
  "$pyvenv/bin/pip" install --quiet --disable-pip-version-check 'maturin>=1.7,<2' 'pytest>=8' 'mypy>=1.10'
fi

# promtool (from Debian's prometheus package) checks the metrics endpoint's
# exposition and the example alert rules. Installing that package would
# start a Prometheus service, so only the package file is fetched and its
# promtool extracted into tests/.tools.
tools=tests/.tools
if [[ -z "${PROMTOOL:-}" ]] && ! command -v promtool >/dev/null 2>&1; then
  if [[ ! -x "$tools/usr/bin/promtool" ]]; then
    mkdir -p "$tools"
    (cd "$tools" && rm -f prometheus_*.deb && apt-get download prometheus >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; })
    dpkg-deb -x "$tools"/prometheus_*.deb "$tools"
  fi
  export PROMTOOL="$PWD/$tools/usr/bin/promtool"
fi

exec cargo test --workspace "$@"

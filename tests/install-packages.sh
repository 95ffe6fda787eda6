#!/usr/bin/env bash
# Installs Debian packages (as root, or with sudo) WITHOUT starting their
# system services: used by tests/run.sh and bench/run.sh, whose DNS servers
# run as their own processes on loopback ports. Installing bind9, knot, nsd
# or unbound normally starts the system daemon; a test must never start,
# stop or kill the machine's own services, so while apt-get runs, a
# policy-rc.d that answers 101 ("action forbidden", invoke-rc.d(8); also
# honoured by deb-systemd-invoke) keeps them from starting. An existing
# policy-rc.d is left untouched (and then governs).
#
# Usage: tests/install-packages.sh PACKAGE...
set -euo pipefail
(($#)) || exit 0
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# written by mimi-dns tests/install-packages.sh while apt-get runs\nexit 101\n' |
    $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT # also when interrupted or failing
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null

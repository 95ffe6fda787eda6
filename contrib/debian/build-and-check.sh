#!/bin/sh
# Builds the mimi-dns Debian package with cargo-deb, installs it with
# dpkg -i, and checks the installed files: both binaries' --version, a
# `check` of the shipped example configuration, the unit, and the system
# user. It INSTALLS A PACKAGE on this machine, so it runs only in CI
# (CI=true) or when asked explicitly (--install); `--remove` also removes
# the package afterwards (the user mimi-dns stays, as on any remove).
#
# Needs: cargo-deb (`cargo install cargo-deb`), dpkg, root for dpkg -i.
set -eu

install=false
remove=false
for arg in "$@"; do
    case "$arg" in
        --install) install=true ;;
        --remove) remove=true ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
if [ "${CI:-}" = "true" ]; then install=true; fi
if ! $install; then
    echo "build-and-check.sh installs a package: run it with CI=true or --install" >&2
    exit 2
fi

cd "$(dirname "$0")/../.."
# mimi-resolve belongs to the resolver crate: build it too, in release.
# No debug line tables: the package is stripped anyway, and they cost
# build time.
CARGO_PROFILE_RELEASE_DEBUG=0 cargo build --release --locked -p mimi-publisher -p mimi-resolver --bins
# Stripped, as Debian ships binaries (the release profile keeps line
# tables, which would make the package six times larger).
deb=$(cargo deb -p mimi-publisher --no-build --locked --strip | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb did not report a package: $deb" >&2; exit 1; }
echo "built $deb"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"

dpkg -i "$deb"
/usr/bin/mimi-publisher --version
/usr/bin/mimi-resolve --version
/usr/bin/mimi-publisher check /etc/mimi-dns/zone.toml
# Packaged in usr/lib/systemd/system: the same file on merged-/usr Debian 12.
test -f /lib/systemd/system/mimi-publisher.service
getent passwd mimi-dns
id mimi-dns
test "$(stat -c %U /var/lib/mimi-dns)" = mimi-dns
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify --man=no /lib/systemd/system/mimi-publisher.service
fi
echo "ok: mimi-dns installed and checked"

if $remove; then
    dpkg -r mimi-dns
    getent passwd mimi-dns >/dev/null || { echo "remove deleted the user mimi-dns" >&2; exit 1; }
    echo "ok: removed; user mimi-dns kept"
fi

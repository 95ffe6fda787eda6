#!/usr/bin/env bash
# Runs the main job on the example zones: certifies the demo signing keys,
# signs the third-party pre-signed assertions, checks and builds every zone,
# serves them all on 127.0.0.1:5300 and resolves a few SIIs through DNS.
#
#   zones/demo.sh           # ... then keeps serving until Ctrl-C
#   zones/demo.sh --once    # ... then stops (used by CI)
#
# Everything it generates goes to zones/generated/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[[ "${1:-}" == "--once" ]] && once=true
listen=${MIMI_DEMO_LISTEN:-127.0.0.1:5300}

cargo build --quiet --bins
pub=target/debug/mimi-publisher
res=target/debug/mimi-resolve
gen=zones/generated
mkdir -p "$gen"

# Git does not keep file modes; the publisher refuses group/world-readable keys.
chmod 600 zones/keys/*.pem

echo "== certify signing keys (certificates valid 180 days from now)"
$pub certify --root zones/keys/DEMO-ONLY-example.com-root.pem \
  --key zones/keys/DEMO-ONLY-example.com-signing.pem --authority example.com --validity 180d > "$gen/example.com.cert"
$pub certify --root zones/keys/DEMO-ONLY-ma.example.net-root.pem \
  --key zones/keys/DEMO-ONLY-ma.example.net-signing.pem --authority ma.example.net --validity 180d > "$gen/ma.example.net.cert"
cat "$gen/example.com.cert" "$gen/ma.example.net.cert"

echo "== ma.example.net pre-signs a mapping for example.com's zone"
$pub sign --key zones/keys/DEMO-ONLY-ma.example.net-signing.pem --authority ma.example.net \
  --sii alice@example.com --ssi mimi://chat.example.com/u/alice > "$gen/ma.example.net.presigned"
cat "$gen/ma.example.net.presigned"

zonescfg=(zones/example.com/zone.toml zones/ma.example.net/zone.toml zones/dir.chat.example.org/zone.toml zones/e164.mimi.example/zone.toml)
echo "== check"
$pub check "${zonescfg[@]}"
echo "== build zone files into $gen/"
for c in "${zonescfg[@]}"; do
  z=$(basename "$(dirname "$c")")
  $pub build "$c" --out "$gen/$z.zone"
done

echo "== serve on $listen"
$pub serve "${zonescfg[@]}" --listen "$listen" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if $res lookup x@example.com --trust zones/trust.toml --server "$listen" --timeout 1s >/dev/null 2>&1; [[ $? -ne 3 ]]; then break; fi
  sleep 0.2
done

lookup() {
  echo
  echo "\$ mimi-resolve lookup $* --trust zones/trust.toml --server $listen --zone dir.chat.example.org --tel-root e164.mimi.example"
  $res lookup "$@" --trust zones/trust.toml --server "$listen" --zone dir.chat.example.org --tel-root e164.mimi.example || echo "(exit code $?)"
}
echo "== resolve"
lookup Alice@Example.com
lookup "+39 06 1234 5678"
lookup carol@mail.example
lookup dave@example.com
lookup nobody@example.com

if $once; then
  exit 0
fi
echo
echo "Serving the example zones on $listen (Ctrl-C to stop). Try:"
echo "  $res lookup bob@example.com --trust zones/trust.toml --server $listen --json"
echo "  dig @${listen%:*} -p ${listen##*:} TXT _mimi-ma.example.com"
echo "Edit zones/*/mappings.csv and the server reloads within 2 seconds."
wait $server

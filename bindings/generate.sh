#!/usr/bin/env bash
# Generates the Python, Kotlin and Swift bindings of the resolver from the
# one uniffi interface (bindings/uniffi) into target/bindings/{python,kotlin,swift}
# (under $CARGO_TARGET_DIR when set). The generated code is not committed:
# it must come from the same uniffi version as the library it is loaded
# with, so it is regenerated from the built library every time.
# Usage: bindings/generate.sh [--release] [python|kotlin|swift ...]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug cargo_flags=()
if [[ "${1:-}" == --release ]]; then profile=release cargo_flags=(--release); shift; fi
langs=("$@")
((${#langs[@]})) || langs=(python kotlin swift)
for l in "${langs[@]}"; do
  case $l in python | kotlin | swift) ;; *) echo "unknown language: $l (python, kotlin or swift)" >&2; exit 2 ;; esac
done

target=${CARGO_TARGET_DIR:-target}
cargo build --quiet "${cargo_flags[@]}" -p mimi-resolver-uniffi
lib=$target/$profile/libmimi_dns.so
[[ $(uname) == Darwin ]] && lib=$target/$profile/libmimi_dns.dylib
for l in "${langs[@]}"; do
  out=$target/bindings/$l
  rm -rf "$out"
  # --no-format: ktlint and swift-format are not needed (nor packaged).
  "$target/$profile/uniffi-bindgen" generate --no-format --library "$lib" --language "$l" --out-dir "$out"
  # The library next to the Python module, where it loads it from (a link:
  # the library is large).
  [[ $l == python ]] && ln -sf "$(realpath "$lib")" "$out/"
  echo "$l: $out"
done

#!/usr/bin/env bash
# Builds the libFuzzer harnesses and fuzzes each target for SECONDS
# (default 600), then merges what the fuzzer found into fuzz/corpus/<target>/
# keeping the corpus minimal. See fuzz/README.md.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (default: every target, one at a time)
#
# Environment: FUZZ_NICE (default 10), FUZZ_MAX_LEN (default 4096),
# FUZZ_NO_MERGE=1 to leave the corpus as it is.
set -euo pipefail

secs=${1:-600}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
triple=$(rustc -vV | sed -n 's/^host: //p')
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(sii record verify udp zonefile mappings presigned)
fi

# Coverage instrumentation on stable Rust: the same LLVM SanitizerCoverage
# flags cargo-fuzz passes, without a sanitizer (-Zsanitizer needs nightly).
# --target keeps them off build scripts and proc-macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$here/harness/target"
nice -n "${FUZZ_NICE:-10}" cargo build --manifest-path "$here/harness/Cargo.toml" \
    --release --target "$triple" --bins

status=0
for t in "${targets[@]}"; do
    bin="$CARGO_TARGET_DIR/$triple/release/$t"
    corpus="$here/corpus/$t"
    out="$here/artifacts/$t"
    rm -rf "$out/new" "$out/min"
    mkdir -p "$out/new" "$out/min"
    echo "== $t: fuzzing for ${secs}s (log: $out/log)"
    rc=0
    rm -f "$out"/crash-* "$out"/timeout-* "$out"/oom-* "$out"/leak-*
    # Fork mode with one job: a finding is saved and fuzzing goes on, so
    # every target gets its full time.
    nice -n "${FUZZ_NICE:-10}" "$bin" "$out/new" "$corpus" \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$secs" -max_len="${FUZZ_MAX_LEN:-4096}" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$out/" \
        >"$out/log" 2>&1 || rc=$?
    # Fork mode's status lines: "#EXECS: cov: C ft: F corp: N exec/s: S
    # oom/timeout/crash: O/T/C time: Ts".
    last=$(grep -E '^#[0-9]+: cov' "$out/log" | tail -1 || true)
    echo "$t: rc=$rc last: $last"
    findings=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    if [ "$findings" -gt 0 ]; then
        status=1
        echo "$t: $findings FINDING(S) in $out/ (crash-*, timeout-*, oom-*); first panics:"
        grep -E 'panicked at|^assertion|FORGERY' "$out/log" | sort | uniq -c | head -10 || true
    fi
    if [ "${FUZZ_NO_MERGE:-0}" != 1 ]; then
        # Seeds (seed-*) and regression inputs (regress-*) always stay;
        # fuzzer finds are kept only where they add coverage.
        find "$corpus" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regress-*' \) \
            -exec cp {} "$out/min/" \;
        nice -n "${FUZZ_NICE:-10}" "$bin" -set_cover_merge=1 -use_counters=0 -max_len="${FUZZ_MAX_LEN:-4096}" \
            "$out/min" "$corpus" "$out/new" >"$out/merge.log" 2>&1
        find "$corpus" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' -delete
        find "$out/min" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' \
            -exec cp {} "$corpus/" \;
        echo "$t: corpus now $(find "$corpus" -type f | wc -l) files, $(du -sh "$corpus" | cut -f1)"
    fi
done
exit $status

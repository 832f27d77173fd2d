#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on a crash.
#
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_TARGETS    space-separated targets (default: decode decode_chunked jsonrpc envelope request)
#   FUZZ_SANITIZER  none (default: works on stable) or address (ASan; this
#                   script then sets RUSTC_BOOTSTRAP=1 so stable rustc accepts -Zsanitizer)
#   CARGO_TARGET_DIR  honoured (passed to cargo fuzz as --target-dir)
#
# Seeds are read from fuzz/seeds/<target> (committed); new inputs go to
# fuzz/corpus/<target>, crashes to fuzz/artifacts/<target> (both ignored by git).
# See docs/FUZZING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-decode decode_chunked jsonrpc envelope request}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it"
    cargo install cargo-fuzz --locked
fi

if [[ "$sanitizer" != none ]]; then
    export RUSTC_BOOTSTRAP=1
fi
target_dir_args=()
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    target_dir_args=(--target-dir "$CARGO_TARGET_DIR")
fi

cargo fuzz build -s "$sanitizer" "${target_dir_args[@]}"

failed=()
for target in $targets; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    echo "== fuzz target $target: ${seconds}s, sanitizer $sanitizer"
    if ! cargo fuzz run -s "$sanitizer" "${target_dir_args[@]}" "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1; then
        failed+=("$target")
        echo "!! $target failed: the crashing input is in fuzz/artifacts/$target/"
        echo "   reproduce: cargo fuzz run -s $sanitizer $target fuzz/artifacts/$target/<file>"
    fi
done

echo "corpus: fuzz/corpus/<target>; crash artifacts: fuzz/artifacts/<target>"
if ((${#failed[@]})); then
    echo "fuzzing found crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzzing: ${targets// /, } ran ${seconds}s each without a crash"

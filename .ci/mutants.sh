#!/usr/bin/env bash
# Mutation testing of the pool core (issue 11): cargo-mutants over src/pool/
# with the pool's own tests, then the score. Run by hand, not from .ci/test.sh
# (it takes most of an hour on 2 shared cores; CI must stay under 45 minutes).
#
#   bash .ci/mutants.sh              # everything
#   MUTANTS_ITERATE=1 bash .ci/mutants.sh   # only mutants not caught last time
#
# Two runs, because the invariant checker (State::check and the lock guard that
# calls it) only fires on broken accounting, which no public-API test can
# produce: its mutants are tested by the unit tests that break the accounting
# on purpose (`cargo test --lib pool::`); every other mutant by the pool's
# integration tests (tests/pool_*.rs). Results land in target/mutants/{api,checker}/
# (caught.txt, missed.txt, timeout.txt, unviable.txt). docs/VERIFICATION.md
# records the last score and explains each survivor.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi
cargo mutants --version

# Integration test targets of the pool: every tests/pool_*.rs. Passed with
# --cargo-arg so that the build step (`cargo test --no-run`) also builds only
# these, not the crate's thirty other test targets: that cuts each mutant's
# build several-fold.
pool_tests=()
for f in tests/pool_*.rs; do
    pool_tests+=(--cargo-arg="--test=$(basename "$f" .rs)")
done

checker_re='State<O, E>::check|Locked<'
common=(
    --file 'src/pool/**'
    -j "${MUTANTS_JOBS:-1}"
    --timeout "${MUTANTS_TIMEOUT:-180}"
    --build-timeout "${MUTANTS_BUILD_TIMEOUT:-900}"
    # Start from this tree's warm target/ so the baseline is not a cold build.
    --copy-target true
    --no-shuffle
)
if [[ "${MUTANTS_ITERATE:-0}" == 1 ]]; then
    common+=(--iterate)
fi

mkdir -p target/mutants/api target/mutants/checker
status=0
printf '\n==== mutants: public-API tests (tests/pool_*.rs) ====\n'
cargo mutants "${common[@]}" -E "$checker_re" --output target/mutants/api \
    "${pool_tests[@]}" || status=$?
printf '\n==== mutants: the invariant checker, with its unit tests ====\n'
cargo mutants "${common[@]}" -F "$checker_re" --output target/mutants/checker \
    --cargo-arg=--lib -- pool:: || status=$?

# The score covers the mutants of the tree as it is now. A run with --iterate
# tests only what was not caught before and lists the rest as
# previously_caught (caught *or* unviable), so each run's outcomes are merged
# into target/mutants/<run>/all-{caught,unviable}.txt, which survive the next
# run's rotation of mutants.out.
merge_outcomes() {
    local dir=target/mutants/$1 cur=target/mutants/$1/mutants.out
    local prev_caught prev_unviable
    prev_caught=$(cat "$dir/all-caught.txt" 2>/dev/null || true)
    prev_unviable=$(cat "$dir/all-unviable.txt" 2>/dev/null || true)
    local previously
    previously=$(cat "$cur/previously_caught.txt" 2>/dev/null || true)
    {
        cat "$cur/caught.txt" "$cur/timeout.txt" 2>/dev/null || true
        grep -Fxf <(printf '%s\n' "$previously") <<<"$prev_caught" || true
    } | sed '/^$/d' | sort -u >"$dir/all-caught.txt"
    {
        cat "$cur/unviable.txt" 2>/dev/null || true
        grep -Fxf <(printf '%s\n' "$previously") <<<"$prev_unviable" || true
    } | sed '/^$/d' | sort -u >"$dir/all-unviable.txt"
    sort -u "$cur/missed.txt" 2>/dev/null | sed '/^$/d' >"$dir/all-missed.txt" || true
}
merge_outcomes api
merge_outcomes checker

# The current mutants, each with its last outcome.
cargo mutants --list --file 'src/pool/**' 2>/dev/null | sort -u >target/mutants/current.txt
in_current() { grep -Fxf target/mutants/current.txt "$@" 2>/dev/null | grep -c . || true; }
caught=$(in_current target/mutants/{api,checker}/all-caught.txt)
missed=$(in_current target/mutants/{api,checker}/all-missed.txt)
unviable=$(in_current target/mutants/{api,checker}/all-unviable.txt)
total=$(grep -c . target/mutants/current.txt)
untested=$((total - caught - missed - unviable))
viable=$((caught + missed))
printf '\n==== mutation score (src/pool/, %s) ====\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf 'mutants %d: caught %d (timeouts included), missed %d, unviable %d, not tested %d\n' \
    "$total" "$caught" "$missed" "$unviable" "$untested"
if ((viable > 0)); then
    awk -v c="$caught" -v v="$viable" \
        'BEGIN { printf "score: %.1f %% (%d of %d viable mutants caught)\n", 100 * c / v, c, v }'
fi
if ((missed > 0)); then
    printf '\nmissed:\n'
    grep -hFxf target/mutants/current.txt target/mutants/{api,checker}/all-missed.txt || true
fi
# cargo-mutants exits 2 when some mutant was missed, 3 on a timeout: the score
# above is the verdict, so only a failure to run at all fails this script.
if ((status != 0 && status != 2 && status != 3)); then
    exit "$status"
fi

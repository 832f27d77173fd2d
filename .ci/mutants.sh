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

count() { [[ -f "$1" ]] && grep -c . "$1" || echo 0; }
caught=0 missed=0 timeout=0 unviable=0
for run in api checker; do
    out="target/mutants/$run/mutants.out"
    caught=$((caught + $(count "$out/caught.txt")))
    missed=$((missed + $(count "$out/missed.txt")))
    timeout=$((timeout + $(count "$out/timeout.txt")))
    unviable=$((unviable + $(count "$out/unviable.txt")))
done
# A timed-out mutant was detected (the tests did not pass); an unviable one
# did not compile and says nothing either way.
viable=$((caught + missed + timeout))
printf '\n==== mutation score (src/pool/) ====\n'
printf 'caught %d, timeout %d, missed %d, unviable %d\n' "$caught" "$timeout" "$missed" "$unviable"
if ((viable > 0)); then
    awk -v c=$((caught + timeout)) -v v="$viable" \
        'BEGIN { printf "score: %.1f %% (%d of %d viable mutants caught)\n", 100 * c / v, c, v }'
fi
for run in api checker; do
    out="target/mutants/$run/mutants.out/missed.txt"
    if [[ -s "$out" ]]; then
        printf '\nmissed (%s):\n' "$run"
        cat "$out"
    fi
done
# cargo-mutants exits 2 when some mutant was missed, 3 on a timeout: the score
# above is the verdict, so only a failure to run at all fails this script.
if ((status != 0 && status != 2 && status != 3)); then
    exit "$status"
fi

#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET (default 20), one after the other,
# each a single libFuzzer process, over a copy of the committed corpus (fuzz/corpus/<target>): new
# inputs go to a temporary folder, never into the repository. Exit 1 on the first crash, with the
# reproducer's path (kept in fuzz/artifacts/<target>/, which git ignores).
#
# Needs cargo-fuzz (installed here when `cargo fuzz --version` fails) and a nightly toolchain, or,
# without one, stable with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags to rustc).
# FUZZ_STABLE=1 uses that fallback even when nightly is there. Extra libFuzzer options can be given
# in FUZZ_ARGS (e.g. FUZZ_ARGS=-seed=1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=${1:-20}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]: expected a whole number of seconds, got '$secs'" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ -z ${FUZZ_STABLE:-} ]] && rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    echo "== toolchain: $(rustup run nightly rustc --version)"
else
    # cargo-fuzz needs -Z flags; stable rustc accepts them with RUSTC_BOOTSTRAP=1.
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    echo "== toolchain: $(rustc --version) with RUSTC_BOOTSTRAP=1"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/airgap-check-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

cd fuzz
mapfile -t targets < <("${fuzz[@]}" list)
echo "== building the targets: ${targets[*]}"
"${fuzz[@]}" build

for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "$root/fuzz/artifacts/$t"
    echo "== $t: ${secs}s over fuzz/corpus/$t ($(find "$root/fuzz/corpus/$t" -type f | wc -l) inputs)"
    status=0
    # The temporary folder comes first: libFuzzer writes new inputs to the first corpus folder only.
    # No -jobs/-fork: one fuzzing process. A single input taking over 10 s counts as a crash (a hang).
    # shellcheck disable=SC2086
    "${fuzz[@]}" run "$t" "$work/$t" "$root/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$root/fuzz/artifacts/$t/" ${FUZZ_ARGS:-} \
        >"$work/$t.log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    if [[ $status -ne 0 ]]; then
        tail -n 60 "$work/$t.log"
        repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/$t.log" | tail -1)
        echo "FAIL: fuzz target $t crashed (exit $status) after ${execs:-?} runs" >&2
        if [[ -n $repro ]]; then
            echo "reproducer: $repro" >&2
            echo "replay it:  (cd fuzz && ${fuzz[*]} run $t $repro)" >&2
        fi
        exit 1
    fi
    echo "   ok: ${execs:-?} runs, $(find "$work/$t" -type f | wc -l) new inputs (discarded)"
done
echo "fuzz OK: ${secs}s per target, no crash"

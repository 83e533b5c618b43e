#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS (default 30) each, from the
# committed seeds and with its dictionary, and prints a summary: executions
# per second and coverage (libFuzzer's cov = edges, ft = features) per target.
# Fails if any target finds a crash, a timeout or an out-of-memory input.
# Needs the nightly toolchain: without it, says so and succeeds (the same
# properties run on stable in `cargo test`). Installs cargo-fuzz if missing.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped, no nightly toolchain (cargo +nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# No sanitizer: the fuzzed library code is safe Rust, whose bounds checks
# already trap; debug assertions add overflow checks. Built once for all.
build=(--release --debug-assertions --sanitizer none)
cargo +nightly fuzz build "${build[@]}"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

logs=fuzz/artifacts/logs
mkdir -p "$logs"
summary=()
failed=()
for target in "${targets[@]}"; do
    case $target in
    decode | roundtrip | resync | encode | msg) dict=fuzz/dict/tags.dict ;;
    control) dict=fuzz/dict/control.dict ;;
    sched_ctl) dict=fuzz/dict/sched_ctl.dict ;;
    newc) dict=fuzz/dict/newc.dict ;;
    handover) dict=fuzz/dict/handover.dict ;;
    *) dict=fuzz/dict/text.dict ;;
    esac
    log=$logs/$target.log
    echo "fuzz: $target for ${seconds}s"
    status=ok
    cargo +nightly fuzz run "${build[@]}" "$target" -- \
        -max_total_time="$seconds" -dict="$dict" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || status=FAILED
    # The last status line ("#N DONE cov: .. ft: ..", or the last "pulse"
    # before a crash) and the final stats give the numbers.
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log")
    summary+=("$(printf '%-13s %-7s %10s runs %8s exec/s  cov %5s  ft %6s' \
        "$target" "$status" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}")")
    if [ $status != ok ]; then
        failed+=("$target")
        tail -40 "$log" >&2
    fi
done

echo "fuzz: summary (${seconds}s per target; logs in $logs)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi

#!/usr/bin/env bash
# The bounded CI fuzz run: builds the cargo-fuzz targets in fuzz/ (libFuzzer) and runs each
# for FUZZ_SECONDS (default 60) starting from its committed corpus (fuzz/corpus/<target>/,
# never modified here). Fails on any crash, panic, timeout or out-of-memory; prints the
# executions of each target and, on failure, where the crashing input was saved.
#
#   bash tests/fuzz/run.sh                               # every target, 60 s each
#   FUZZ_SECONDS=300 FUZZ_TARGETS="config" bash tests/fuzz/run.sh
#
# Only the stable toolchain exists here: RUSTC_BOOTSTRAP=1 lets it take the -Z flags that
# cargo-fuzz passes. cargo-fuzz itself is installed once into $TEST_CACHE_DIR/fuzz-tools (default /var/cache/alisay-test).
# Builds go to target/fuzz; crashing inputs to target/fuzz/artifacts/<target>/. To reproduce
# one: RUSTC_BOOTSTRAP=1 /var/cache/alisay-test/fuzz-tools/bin/cargo-fuzz run --fuzz-dir fuzz \
#        --target-dir target/fuzz -s none <target> <file>
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac

seconds=${FUZZ_SECONDS:-60}
read -r -a targets <<<"${FUZZ_TARGETS:-signaling config hub}"
case $seconds in '' | *[!0-9]*) echo "FUZZ_SECONDS must be a whole number" >&2; exit 2 ;; esac
# FUZZ_SECONDS=0 replays the committed corpus only (libFuzzer's own 0 would mean "forever").
if [ "$seconds" = 0 ]; then budget=(-runs=0); else budget=(-max_total_time="$seconds"); fi

tools=${TEST_CACHE_DIR:-/var/cache/alisay-test}/fuzz-tools
cargo_fuzz=$tools/bin/cargo-fuzz
if ! [ -x "$cargo_fuzz" ]; then
  echo "installing cargo-fuzz into $tools"
  cargo install --locked --quiet cargo-fuzz --version 0.13.2 --root "$tools"
fi

export RUSTC_BOOTSTRAP=1
# The config target loads like `alisay serve`, merging ALISAY_* overrides: run without any.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ALISAY_' || true)

# No sanitizer: the crate forbids unsafe code, so AddressSanitizer would mostly slow the run;
# panics, timeouts and libFuzzer's RSS limit still fail it. Release build with debug
# assertions and overflow checks (cargo-fuzz's default).
build=(--fuzz-dir fuzz --target-dir target/fuzz -s none)
started=$(date +%s)
echo "==> building fuzz targets: ${targets[*]}"
for t in "${targets[@]}"; do
  "$cargo_fuzz" build "${build[@]}" "$t"
done
built=$(date +%s)
echo "built in $((built - started))s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "no corpus fuzz/corpus/$t" >&2; exit 2; }
  artifacts=$root/target/fuzz/artifacts/$t
  mkdir -p "$artifacts" "$work/$t"
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
  log=$work/$t.log
  echo "==> fuzzing $t for ${seconds}s"
  # New inputs go to the scratch corpus (the first directory); the committed one is read only.
  status=0
  "$cargo_fuzz" run "${build[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
    "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
  seeds=$(sed -n 's/^INFO: seed corpus: files: \([0-9]*\).*/\1/p' "$log" | head -n 1)
  if [ "$status" = 0 ] && [ -n "$runs" ]; then
    echo "$t: ${runs} executions in ${seconds}s from ${seeds:-?} corpus files," \
      "${cov:-cov: ?}, peak RSS ${peak:-?} MB"
  else
    echo "$t: FAILED (exit $status) after ${runs:-?} executions:" >&2
    grep -A 2 'panicked at' "$log" >&2 || true
    grep -E 'SUMMARY|Test unit written|^Base64' "$log" >&2 || true
    echo "--- last lines of the log:" >&2
    tail -n 15 "$log" >&2
    failed+=("$t")
  fi
done

echo "fuzz phase took $(($(date +%s) - started))s (build $((built - started))s)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in target/fuzz/artifacts/)" >&2
  exit 1
fi
echo "no crash in: ${targets[*]}"

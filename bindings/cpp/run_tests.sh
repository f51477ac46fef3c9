#!/usr/bin/env bash
# Builds rnncore (release), compiles the C++ wrapper's tests with -Wall -Wextra -Werror
# against the static library, and runs them: under AddressSanitizer + UBSan when the
# compiler supports it here, else under valgrind (if installed), else plainly.
# The last line printed is the test summary, "N passed, M failed"; the exit status is
# non-zero when anything failed.
#
# Environment: CARGO_TARGET_DIR (default: <repo>/target), CXX (default: g++),
# RNNCORE_SANITIZE=0 to run plainly, =valgrind to use valgrind even where ASan works.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
CXX="${CXX:-g++}"

cargo build --release --quiet >&2
LIB="$TARGET_DIR/release/librnncore.a"
[ -f "$LIB" ] || { echo "run_tests.sh: $LIB not found" >&2; exit 2; }

OUT="$TARGET_DIR/cpp-tests"
mkdir -p "$OUT"
BIN="$OUT/test_rnncore"
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
          -O1 -g -I "$ROOT/include" -I "$ROOT/bindings/cpp")
LIBS=("$LIB" -lpthread -ldl -lm)

# Sanitizers, if this compiler and machine can build and run a sanitized program.
RUNNER=()
SAN=()
if [ "${RNNCORE_SANITIZE:-1}" = valgrind ]; then
  RUNNER=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite)
elif [ "${RNNCORE_SANITIZE:-1}" != 0 ]; then
  probe="$OUT/asan-probe"
  if echo 'int main(){return 0;}' | "$CXX" -x c++ -fsanitize=address,undefined - -o "$probe" 2>/dev/null \
     && "$probe" 2>/dev/null; then
    SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  elif command -v valgrind >/dev/null; then
    RUNNER=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite)
  fi
fi

"$CXX" "${CXXFLAGS[@]}" "${SAN[@]}" "$ROOT/bindings/cpp/tests/test_rnncore.cpp" "${LIBS[@]}" -o "$BIN"
if [ ${#SAN[@]} -gt 0 ]; then
  echo "running under AddressSanitizer + UBSan" >&2
elif [ ${#RUNNER[@]} -gt 0 ]; then
  echo "running under valgrind" >&2
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
"${RUNNER[@]}" "$BIN" 2>&1 | tee "$OUT/last-run.txt" || status=$?
if [ "$status" -ne 0 ]; then
  # Repeat the summary after whatever the sanitizer/valgrind printed, so it stays last;
  # count a failure when every check passed but the run still failed (leak, crash at exit).
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$OUT/last-run.txt" | tail -n 1 || true)"
  last="$(tail -n 1 "$OUT/last-run.txt")"
  if [ -n "$summary" ] && [ "$last" = "$summary" ] && [ "${summary##*, }" != "0 failed" ]; then
    :  # the summary is already the last line
  elif [ -z "$summary" ]; then
    echo "0 passed, 1 failed (the test binary exited with status $status before its summary)"
  elif [ "${summary##*, }" = "0 failed" ]; then
    echo "${summary%%,*}, 1 failed (the test binary exited with status $status: see the report above)"
  else
    echo "$summary"
  fi
fi
exit "$status"

#!/usr/bin/env bash
# The C test suite: builds the crate in release, compiles every C file of bindings/c with
# -std=c99 -Wall -Wextra -Werror -pedantic against the static library alone (no Rust
# toolchain at run time) and the C benchmark programs of benches/c that call the ABI,
# compiles and runs the header as C++, runs the tests, builds a
# program against the ABI-1 header (tests/abi_v1) and runs it with this library, runs the
# examples, checks pkg-config (and CMake when cmake is installed), then reruns the tests
# under valgrind memcheck when valgrind is installed. Last line: "N passed, M failed".
#
#   bindings/c/run_tests.sh [--no-build] [--no-valgrind]
#
# CARGO_TARGET_DIR is honoured; everything built goes to $target/c-tests.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build_crate=1
use_valgrind=1
for arg in "$@"; do
    case $arg in
        --no-build) build_crate=0 ;;
        --no-valgrind) use_valgrind=0 ;;
        *) echo "usage: $0 [--no-build] [--no-valgrind]" >&2; exit 2 ;;
    esac
done

target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
lib=$target/release
out=$target/c-tests
CC=${CC:-cc}
CXX=${CXX:-c++}
CFLAGS="-std=c99 -Wall -Wextra -Werror -pedantic -g -O1"
CXXFLAGS="-std=c++11 -Wall -Wextra -Werror -pedantic -g -O1"
STATIC_LIBS=("$lib/librnncore.a" -lpthread -ldl -lm)

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
# run NAME CMD...: one unit, its output shown only when it fails.
run() {
    local name=$1 log
    shift
    log=$out/log.txt
    if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name"; sed 's/^/    /' "$log"; fi
}

if [ $build_crate = 1 ]; then
    echo "== cargo build --release"
    (cd "$root" && cargo build --release) || { echo "0 passed, 1 failed"; exit 1; }
fi
for f in "$lib/librnncore.a" "$lib/librnncore.so"; do
    [ -f "$f" ] || { echo "missing $f (build with cargo build --release)"; echo "0 passed, 1 failed"; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/tmp"
export TMPDIR=$out/tmp

echo "== the header"
printf '#include "rnncore.h"\n' >"$out/header_only.c"
run "header compiles alone as C99 (-pedantic)" \
    "$CC" $CFLAGS -Wstrict-prototypes -Wmissing-prototypes -I"$root/include" -c "$out/header_only.c" -o "$out/header_only.o"
run "header compiles as C11" "$CC" -std=c11 -Wall -Wextra -Werror -pedantic -I"$root/include" -c "$out/header_only.c" -o "$out/header_c11.o"
run "header compiles, links and runs as C++11" sh -c \
    "\"$CXX\" $CXXFLAGS -I\"$root/include\" \"$here/tests/header_cpp.cpp\" ${STATIC_LIBS[*]} -o \"$out/header_cpp\" && \"$out/header_cpp\""

echo "== compile (static library only)"
progs=()
for src in "$here"/tests/*.c "$here"/examples/*.c "$here"/cmake-example/main.c; do
    name=$(basename "$src" .c)
    [ "$name" = main ] && name=cmake_main
    if "$CC" $CFLAGS -I"$root/include" -I"$here/tests" "$src" "${STATIC_LIBS[@]}" -o "$out/$name" >"$out/log.txt" 2>&1; then
        pass "compile $(basename "$src")"
        progs+=("$name")
    else
        fail "compile $(basename "$src")"
        sed 's/^/    /' "$out/log.txt"
    fi
done
# The C benchmark programs that call the ABI (run by benches/compare/ab.sh and
# benches/c/run.sh, not here): compiled, so that a change cannot break them unseen.
for src in "$root"/benches/c/ab.c "$root"/benches/c/model_step.c "$root"/benches/c/step_latency.c; do
    if "$CC" -O2 -std=c99 -Wall -Wextra -Werror -I"$root/include" "$src" "${STATIC_LIBS[@]}" \
        -o "$out/bench_$(basename "$src" .c)" >"$out/log.txt" 2>&1; then
        pass "compile benches/c/$(basename "$src")"
    else
        fail "compile benches/c/$(basename "$src")"
        sed 's/^/    /' "$out/log.txt"
    fi
done
has() { local p; for p in "${progs[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

# Adds a test program's "N passed, M failed" to the totals; a crash or a missing summary
# counts as one failure.
tally() {
    local name=$1 log=$2 rc=$3 line p f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=${line%% passed*}
        f=${line#*passed, }
        f=${f%% failed*}
        passed=$((passed + p))
        failed=$((failed + f))
    fi
    if [ -z "$line" ] || { [ "$rc" != 0 ] && [ "${f:-0}" = 0 ]; }; then
        fail "$name exited with status $rc"
    fi
}

echo "== tests"
tests=()
for src in "$here"/tests/test_*.c; do
    name=$(basename "$src" .c)
    has "$name" || continue
    tests+=("$name")
    echo "-- $name"
    "$out/$name" >"$out/$name.log" 2>&1
    rc=$?
    cat "$out/$name.log"
    tally "$name" "$out/$name.log" $rc
done

echo "== a version-1 program against this library"
# Built unchanged against the ABI-1 header (tests/abi_v1/rnncore.h, not include/), then
# linked with the current library, statically and as a shared library (an old binary
# meeting a new librnncore.so): old programs keep compiling and working.
v1=(-I"$here/tests/abi_v1" -I"$here/tests" "$here/tests/abi_v1/test_abi_v1.c")
if "$CC" $CFLAGS "${v1[@]}" "${STATIC_LIBS[@]}" -o "$out/test_abi_v1" >"$out/log.txt" 2>&1; then
    pass "compile abi_v1/test_abi_v1.c against the version-1 header"
    tests+=(test_abi_v1)
    echo "-- test_abi_v1 (static)"
    "$out/test_abi_v1" >"$out/test_abi_v1.log" 2>&1
    rc=$?
    cat "$out/test_abi_v1.log"
    tally test_abi_v1 "$out/test_abi_v1.log" $rc
else
    fail "compile abi_v1/test_abi_v1.c against the version-1 header"
    sed 's/^/    /' "$out/log.txt"
fi
if "$CC" $CFLAGS "${v1[@]}" -L"$lib" -lrnncore -o "$out/test_abi_v1_shared" >"$out/log.txt" 2>&1; then
    echo "-- test_abi_v1 (librnncore.so)"
    LD_LIBRARY_PATH="$lib" "$out/test_abi_v1_shared" >"$out/test_abi_v1_shared.log" 2>&1
    rc=$?
    cat "$out/test_abi_v1_shared.log"
    tally test_abi_v1_shared "$out/test_abi_v1_shared.log" $rc
else
    fail "link abi_v1/test_abi_v1.c with librnncore.so"
    sed 's/^/    /' "$out/log.txt"
fi

echo "== examples"
has infer && run "examples/infer (a fresh model)" "$out/infer"
has stream_audio && run "examples/stream_audio (blocks == single samples)" "$out/stream_audio"
# the three task shapes: each trains a small model and exits non-zero unless it beats
# chance / the trivial predictor by the margin it states
has one_to_many && run "examples/one_to_many (waveforms: MSE < 10% of the zero predictor's)" "$out/one_to_many"
has many_to_one && run "examples/many_to_one (motifs, last-step loss: >= 90%, chance 25%)" "$out/many_to_one"
has many_to_many && run "examples/many_to_many (delayed copy: >= 90%, chance 20%; step == forward)" "$out/many_to_many"
if has train; then
    run "examples/train (loss falls, model saved)" "$out/train" "$out/tmp/trained.safetensors"
    has infer && run "examples/infer on the trained model file" "$out/infer" "$out/tmp/trained.safetensors"
fi
has cmake_main && run "cmake-example/main.c" "$out/cmake_main"

echo "== pkg-config and the shared library"
if command -v pkg-config >/dev/null 2>&1; then
    prefix=$out/prefix
    run "install.sh into a prefix" env CARGO_TARGET_DIR="$target" "$here/install.sh" "$prefix"
    run "pkg-config --static lists -lpthread -ldl -lm" sh -c \
        "PKG_CONFIG_PATH=\"$prefix/lib/pkgconfig\" pkg-config --static --libs rnncore | grep -q -- '-lpthread -ldl -lm'"
    run "infer.c built with pkg-config against librnncore.so" sh -c \
        "export PKG_CONFIG_PATH=\"$prefix/lib/pkgconfig\"; \"$CC\" $CFLAGS \"$here/examples/infer.c\" \$(pkg-config --cflags --libs rnncore) -o \"$out/infer_shared\" && LD_LIBRARY_PATH=\"$prefix/lib\" \"$out/infer_shared\""
else
    echo "skipped: pkg-config is not installed"
fi

echo "== CMake example"
if command -v cmake >/dev/null 2>&1; then
    run "cmake-example configures, builds and runs" sh -c \
        "cmake -S \"$here/cmake-example\" -B \"$out/cmake\" -DRNNCORE_LIB_DIR=\"$lib\" && cmake --build \"$out/cmake\" && \"$out/cmake/rnn_hello\""
else
    echo "skipped: cmake is not installed (apt-get install cmake to test the CMake example)"
fi

echo "== valgrind memcheck"
if [ $use_valgrind = 1 ] && command -v valgrind >/dev/null 2>&1; then
    for name in "${tests[@]}"; do
        run "valgrind $name" valgrind -q --error-exitcode=1 --leak-check=full --num-callers=40 \
            --suppressions="$here/valgrind.supp" "$out/$name"
    done
    has cmake_main && run "valgrind cmake-example/main.c" valgrind -q --error-exitcode=1 \
        --leak-check=full --num-callers=40 --suppressions="$here/valgrind.supp" "$out/cmake_main"
elif [ $use_valgrind = 1 ]; then
    echo "skipped: valgrind is not installed"
else
    echo "skipped: --no-valgrind"
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]

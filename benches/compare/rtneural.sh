#!/usr/bin/env bash
# rnncore vs RTNeural: streaming LSTM/GRU latency, one sample at a time, on one pinned core
# (see benches/compare/rtneural/README.md).
#   RTNEURAL_DIR=/path/to/RTNeural bash benches/compare/rtneural.sh [rounds]
# RTNeural is never vendored here: git clone https://github.com/jatinchowdhury18/RTNeural
# EIGEN_DIR: Eigen's include dir; default $RTNEURAL_DIR/modules/Eigen, else /usr/include/eigen3.
# CXX: the C++ compiler (default g++). Builds librnncore.a (honours CARGO_TARGET_DIR) and the
# benchmark, runs it once per rnncore kernel tier this CPU can run (RNNCORE_KERNEL=avx512,
# avx2, avx, sse41 or neon, scalar), and writes the tables to benches/compare/results/rtneural-latest.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
rounds="${1:-5}"
case "$rounds" in
  '' | *[!0-9]*) echo "rtneural.sh: rounds must be a positive integer, got '$rounds'" >&2; exit 2 ;;
esac

if [ -z "${RTNEURAL_DIR:-}" ]; then
  echo "rtneural.sh: set RTNEURAL_DIR to an RTNeural source tree, e.g." >&2
  echo "  git clone https://github.com/jatinchowdhury18/RTNeural /tmp/RTNeural" >&2
  echo "  RTNEURAL_DIR=/tmp/RTNeural bash benches/compare/rtneural.sh" >&2
  exit 2
fi
if [ ! -f "$RTNEURAL_DIR/RTNeural/RTNeural.h" ] || [ ! -f "$RTNEURAL_DIR/RTNeural/ModelT.h" ]; then
  echo "rtneural.sh: RTNEURAL_DIR=$RTNEURAL_DIR is not an RTNeural source tree" >&2
  echo "  (no RTNeural/RTNeural.h or RTNeural/ModelT.h in it);" >&2
  echo "  git clone https://github.com/jatinchowdhury18/RTNeural" >&2
  exit 2
fi
RTNEURAL_DIR="$(cd "$RTNEURAL_DIR" && pwd)"
if [ ! -f "$RTNEURAL_DIR/modules/json/json.hpp" ]; then
  echo "rtneural.sh: $RTNEURAL_DIR/modules/json/json.hpp is missing (RTNeural's headers include it)" >&2
  exit 2
fi

if [ -z "${EIGEN_DIR:-}" ]; then
  if [ -f "$RTNEURAL_DIR/modules/Eigen/Eigen/Dense" ]; then
    EIGEN_DIR="$RTNEURAL_DIR/modules/Eigen"
  elif [ -f /usr/include/eigen3/Eigen/Dense ]; then
    EIGEN_DIR=/usr/include/eigen3
  else
    echo "rtneural.sh: Eigen not found: neither $RTNEURAL_DIR/modules/Eigen nor /usr/include/eigen3." >&2
    echo "  Install it (apt-get install libeigen3-dev), run" >&2
    echo "  git -C \"$RTNEURAL_DIR\" submodule update --init, or set EIGEN_DIR." >&2
    exit 2
  fi
fi
if [ ! -f "$EIGEN_DIR/Eigen/Dense" ]; then
  echo "rtneural.sh: EIGEN_DIR=$EIGEN_DIR has no Eigen/Dense" >&2
  exit 2
fi

case "$EIGEN_DIR" in
  "$RTNEURAL_DIR"/*) eigen_from="RTNeural's ${EIGEN_DIR#"$RTNEURAL_DIR"/}" ;;
  *) eigen_from="$EIGEN_DIR" ;;
esac
if git -C "$RTNEURAL_DIR" rev-parse --short HEAD >/dev/null 2>&1; then
  rtneural_commit="$(git -C "$RTNEURAL_DIR" rev-parse --short HEAD)"
else
  rtneural_commit="(not a git tree)"
fi

cargo build --release --lib
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
lib="$target/release/librnncore.a"
[ -f "$lib" ] || { echo "rtneural.sh: $lib was not built" >&2; exit 1; }

cxx="${CXX:-g++}"
# RTNeural's CMake (RTNEURAL_USE_AVX) uses 32-byte alignment where AVX is on, else 16.
native_macros="$("$cxx" -march=native -dM -E -x c++ /dev/null)"
case "$native_macros" in *"#define __AVX__ "*) align=32 ;; *) align=16 ;; esac
# At H = 128 RTNeural's fixed-size weight matrix (4H x (H+2) floats, 260 KiB) is over
# Eigen's 128 KiB static-size limit, a compile-time assertion; the models live on the
# heap here, so the limit is raised (it changes no kernel).
flags=(-O3 -march=native -std=c++17 -DRTNEURAL_USE_EIGEN=1 "-DRTNEURAL_DEFAULT_ALIGNMENT=$align"
  -DEIGEN_STACK_ALLOCATION_LIMIT=524288)
# One build of the benchmark: build_bench OUT FLAGS...
build_bench() {
  local out="$1"
  shift
  "$cxx" "$@" -Wall -Wextra \
    "-DRTNEURAL_COMMIT=\"$rtneural_commit\"" "-DBENCH_CXXFLAGS=\"$*\"" \
    -I include -isystem "$RTNEURAL_DIR" -isystem "$EIGEN_DIR" \
    benches/compare/rtneural/bench.cpp "$lib" -lpthread -ldl -lm -o "$out"
}
bin="$target/rtneural-bench"
build_bench "$bin" "${flags[@]}"
# RTNeural as on a CPU with less than this one, for the rnncore tier of that CPU:
# on a CPU with AVX-512, -march=native gives RTNeural (Eigen) 512-bit vectors while
# rnncore's avx2 tier has 256-bit ones, so the avx2 tier also runs against RTNeural built
# without AVX-512 (-mno-avx512f), both libraries as on an AVX2-only CPU of this core; the
# avx tier against RTNeural without AVX2 and FMA (AVX code, as on Intel's Sandy Bridge and
# Ivy Bridge); the sse41 tier against RTNeural without AVX (SSE4.2 code).
bin_avx2="" bin_avx="" bin_sse=""
case "$native_macros" in
  *"#define __AVX512F__ "*)
    bin_avx2="$target/rtneural-bench-avx2"
    build_bench "$bin_avx2" "${flags[@]}" -mno-avx512f
    ;;
esac
case "$native_macros" in
  *"#define __AVX2__ "*)
    bin_avx="$target/rtneural-bench-avx"
    build_bench "$bin_avx" "${flags[@]}" -mno-avx512f -mno-avx2 -mno-fma
    ;;
esac
case "$native_macros" in
  *"#define __AVX__ "*)
    bin_sse="$target/rtneural-bench-sse"
    build_bench "$bin_sse" -O3 -march=native -mno-avx -std=c++17 -DRTNEURAL_USE_EIGEN=1 \
      -DRTNEURAL_DEFAULT_ALIGNMENT=16 -DEIGEN_STACK_ALLOCATION_LIMIT=524288
    ;;
esac
# The same model files loaded both ways: RTNeural's own Keras exports (its models/ folder),
# through RTNeural's run-time JSON parser and rnn_model_load.
json_bin="$target/rtneural-json-models"
"$cxx" "${flags[@]}" -Wall -Wextra -I include -isystem "$RTNEURAL_DIR" -isystem "$EIGEN_DIR" \
  -isystem "$RTNEURAL_DIR/modules/json" \
  benches/compare/rtneural/json_models.cpp "$lib" -lpthread -ldl -lm -o "$json_bin"
json_models=()
for m in lstm_1d lstm gru_1d gru; do
  [ -f "$RTNEURAL_DIR/models/$m.json" ] && json_models+=("$RTNEURAL_DIR/models/$m.json")
done

# One pinned core: the first CPU this process may run on.
pin=()
if command -v taskset >/dev/null 2>&1; then
  cpu="$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status | cut -d, -f1 | cut -d- -f1)"
  [ -n "$cpu" ] && pin=(taskset -c "$cpu")
else
  echo "rtneural.sh: taskset not found: running unpinned" >&2
fi

tiers=()
grep -qw avx512f /proc/cpuinfo && tiers+=(avx512)
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && tiers+=(avx2)
grep -qw avx /proc/cpuinfo && grep -qw sse4_1 /proc/cpuinfo && tiers+=(avx)
grep -qw sse4_1 /proc/cpuinfo && tiers+=(sse41)
grep -qw asimd /proc/cpuinfo && tiers+=(neon)
tiers+=(scalar)

out="$root/benches/compare/results/rtneural-latest.md"
mkdir -p "$(dirname "$out")"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
{
  echo "## rnncore vs RTNeural, streaming (batch 1, one sample per call)"
  echo
  echo "\`RTNEURAL_DIR=... bash benches/compare/rtneural.sh $rounds\`, $(date -u +%Y-%m-%d), pinned: ${pin[*]:-no}, RTNeural commit $rtneural_commit, Eigen from $eigen_from."
  echo
} >"$tmp"
# The tier TIER against a restricted RTNeural build BIN (skipped where none was built):
# restricted TIER BIN TITLE DESCRIPTION-LINES...
restricted() {
  local tier="$1" rbin="$2" title="$3"
  shift 3
  [ -n "$rbin" ] || return 0
  {
    echo "### rnncore kernel \`$tier\` against RTNeural built $title"
    echo
    printf '%s\n' "$@"
    echo
  } >>"$tmp"
  RNNCORE_KERNEL="$tier" RAYON_NUM_THREADS=1 "${pin[@]}" "$rbin" "$rounds" | sed '/^### /d' >>"$tmp"
}
for tier in "${tiers[@]}"; do
  RNNCORE_KERNEL="$tier" RAYON_NUM_THREADS=1 "${pin[@]}" "$bin" "$rounds" >>"$tmp"
  case "$tier" in
    avx2)
      restricted avx2 "$bin_avx2" "without AVX-512" \
        "The same comparison, RTNeural compiled with \`-mno-avx512f\` added (Eigen's 256-bit" \
        "AVX2 code): both libraries as they would run on an AVX2-only CPU with this core."
      ;;
    avx)
      restricted avx "$bin_avx" "without AVX2 and FMA" \
        "The same comparison, RTNeural compiled with \`-mno-avx512f -mno-avx2 -mno-fma\`" \
        "added (Eigen's 256-bit AVX code, no fused multiply-add): both libraries as they would" \
        "run on an x86-64 CPU with AVX but not AVX2 (Intel Sandy Bridge, Ivy Bridge) with this" \
        "core, which runs 256-bit operations at full width where those split their loads."
      ;;
    sse41)
      restricted sse41 "$bin_sse" "without AVX" \
        "The same comparison, RTNeural compiled with \`-mno-avx\` added (Eigen's SSE code," \
        "no AVX, AVX2 or FMA): both libraries as they would run on an x86-64 CPU without AVX."
      ;;
  esac
done
if [ "${#json_models[@]}" -gt 0 ]; then
  {
    echo "## The same model files, loaded both ways"
    echo
    echo "RTNeural's own Keras-exported models (\`\$RTNEURAL_DIR/models/\`), loaded by"
    echo "RTNeural's run-time parser (\`json_parser::parseJson<float>\`, a \`Model<float>\`) and"
    echo "by \`rnn_model_load\`; one sample per call (see \`rtneural/json_models.cpp\`)."
    echo
  } >>"$tmp"
  for tier in "${tiers[@]}"; do
    RNNCORE_KERNEL="$tier" RAYON_NUM_THREADS=1 "${pin[@]}" "$json_bin" "$rounds" "${json_models[@]}" >>"$tmp"
  done
fi
cp "$tmp" "$out"
cat "$out"
echo "written: $out" >&2

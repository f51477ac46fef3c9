#!/usr/bin/env bash
# Multi-core scaling of rnncore against PyTorch (and ONNX Runtime when importable) on a
# many-core machine that already has PyTorch and numpy but may have no network and no Rust,
# e.g. a lent benchmark box. Two steps:
#   bash benches/compare/device.sh --prepare          (here: builds into .devbin/, git-ignored)
#   bash benches/compare/device.sh OUT_DIR [THREADS]  (there, default THREADS 1,2,4,8,16)
# The second writes OUT_DIR/machine.txt, streaming.log (single-thread criterion step/block/
# streams64 figures and the C ABI step latency, when .devbin/ has those programs) and
# {infer,train}.{md,svg,log} from compare.py. Without .devbin/ it builds the library with
# cargo. The kernels pick their instruction set at run time, so binaries built on another
# x86-64 machine run there.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/.devbin"
cd "$root"
if [ "${1:-}" = "--prepare" ]; then
  set -e
  cargo build --release --lib
  exe="$(cargo bench --bench rnncore --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "rnncore" and "bench" in m["target"]["kind"]][0])')"
  bash benches/c/run.sh > /dev/null
  mkdir -p "$bin"
  cp target/release/librnncore.so "$bin/"
  cp "$exe" "$bin/bench"
  cp target/c-step-latency "$bin/"
  strip "$bin"/* 2>/dev/null || true
  ls -la "$bin"
  exit 0
fi
out="${1:-$root/benches/compare/results}"
threads="${2:-1,2,4,8,16}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -f "$bin/librnncore.so" ]; then
  export RNNCORE_LIB="$bin/librnncore.so"
else
  export RNNCORE_LIB="$root/target/release/librnncore.so"
  [ -f "$RNNCORE_LIB" ] || cargo build --release --lib || exit 2
fi
py="${RNNCORE_BENCH_PYTHON:-python3}"
"$py" -c "import torch, numpy" || { echo "$py lacks torch or numpy" >&2; exit 2; }
{ nproc; lscpu; "$py" -c "import torch; print('torch', torch.__version__, torch.get_num_threads())"
  "$py" -c "import onnxruntime as o; print('onnxruntime', o.__version__)"; } > "$out/machine.txt" 2>&1
if [ -x "$bin/bench" ]; then
  { echo "== criterion"
    RAYON_NUM_THREADS=1 timeout 120 "$bin/bench" --bench "step/|block64|block512|streams64" \
      --warm-up-time 0.3 --measurement-time 1 2>&1 | grep -E "^[a-z0-9]+/|time:"
    echo "== C ABI"; timeout 40 "$bin/c-step-latency"; } > "$out/streaming.log" 2>&1
fi
# Each kind under its own time limit, so that a slow machine still returns the other table;
# compare.py prints every row as it is measured, so a cut-off log keeps what was done.
for kind in ${KINDS:-infer train}; do
  timeout "${LIMIT:-240}" "$py" benches/compare/compare.py --out "$out" --name "$kind" \
    --threads "$threads" --batched-only --reps "${REPS:-5}" --kinds "$kind" \
    ${CELLS:+--cells "$CELLS"} > "$out/$kind.log" 2>&1
  echo "$kind: exit $?"
done

#!/usr/bin/env bash
# Multi-core scaling of rnncore against PyTorch on a many-core machine that already has
# PyTorch and numpy (ONNX Runtime is used when importable), e.g. a lent benchmark box
# without network access:
#   bash benches/compare/device.sh [OUT_DIR] [THREADS]      (default THREADS 1,2,4,8,16)
# Uses target/release/librnncore.so when it is there (copied from a machine of the same
# architecture; the kernels pick the instruction set at run time), else builds it with
# cargo. Writes OUT_DIR/scaling.{md,svg}, the log and machine.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/benches/compare/results}"
threads="${2:-1,2,4,8,16}"
mkdir -p "$out"
cd "$root"
export RNNCORE_LIB="$root/target/release/librnncore.so"
if [ ! -f "$RNNCORE_LIB" ]; then cargo build --release --lib; fi
test -f "$RNNCORE_LIB" || { echo "no $RNNCORE_LIB: build it or copy it here" >&2; exit 2; }
py="${RNNCORE_BENCH_PYTHON:-python3}"
"$py" -c "import torch, numpy" || { echo "$py lacks torch or numpy" >&2; exit 2; }
{ nproc; lscpu | grep -E "Model name|^CPU\(s\)|Thread|Socket|NUMA node\(s\)" || true; "$py" -c "import torch; print('torch', torch.__version__, torch.get_num_threads())"; } | tee "$out/machine.txt"
"$py" benches/compare/compare.py --out "$out" --name scaling --threads "$threads" \
  --batched-only --reps "${REPS:-5}" ${CELLS:+--cells "$CELLS"} ${KINDS:+--kinds "$KINDS"} 2>&1 | tee "$out/scaling.log"

#!/usr/bin/env bash
# Side-by-side benchmark: rnncore (C ABI via Python ctypes) vs PyTorch vs ONNX Runtime.
#   bash benches/compare/run.sh [--quick] [--reps N] [--threads 1,2] [--isa avx2|avx|sse41] [--sgemm]
# Builds the release library, then makes (or reuses) a Python environment with torch,
# onnx, onnxruntime and numpy: ${RNNCORE_BENCH_VENV:-target/bench-venv}. PyTorch from
# PyPI is the CUDA build (about 3.5 GB); point RNNCORE_BENCH_VENV at an environment that
# already has it to skip the download. Results: benches/compare/results/latest.{md,svg}.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release --lib
venv="${RNNCORE_BENCH_VENV:-$root/target/bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c "import torch, onnx, onnxruntime, numpy" 2>/dev/null ||
  "$venv/bin/pip" install --quiet torch onnx onnxruntime numpy
exec "$venv/bin/python" "$root/benches/compare/compare.py" "$@"

#!/usr/bin/env bash
# rnncore on 1 thread and on more, interleaved, over the comparison harness's shapes
# (threads.py). Builds the release library and reuses the Python test environment
# (${CARGO_TARGET_DIR:-target}/pyenv, numpy; made here if missing).
#   bash benches/compare/threads.sh [--reps N] [--threads 1,2] [--quick]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release --lib
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
venv="$target/pyenv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy
fi
# The checkout's package and library (not an installed copy).
export RNNCORE_LIB="$target/release/librnncore.so"
exec "$venv/bin/python" "$root/benches/compare/threads.py" "$@"

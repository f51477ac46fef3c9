#!/usr/bin/env bash
# Builds rnncore (release), makes a virtual environment with numpy, pytest and setuptools
# (under ${CARGO_TARGET_DIR:-<repo>/target}/pyenv, reused when present), installs the
# package into it the way a user does (`pip install ./bindings/python`, which bundles
# target/release/librnncore.so), and runs the Python binding's tests against that install.
# Exits with pytest's status; the last line printed is pytest's summary.
#
# Environment: CARGO_TARGET_DIR, PYTHON (default: python3), RNNCORE_LIB (a library to test
# instead of the one built here); extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
export CARGO_TARGET_DIR="$TARGET_DIR"

cargo build --release --quiet >&2

VENV="$TARGET_DIR/pyenv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import numpy, pytest, setuptools, wheel' 2>/dev/null; then
  echo "setting up $VENV (numpy, pytest, setuptools, wheel)" >&2
  "${PYTHON:-python3}" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy pytest 'setuptools>=61' wheel >&2
fi

# The README's install command, into the test environment (no build isolation: setuptools
# is already there, and nothing else is fetched).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
  --no-deps --force-reinstall "$ROOT/bindings/python" >&2
rm -rf "$ROOT/bindings/python/build" "$ROOT/bindings/python/rnncore.egg-info"

status=0
RNNCORE_TEST_INSTALLED=1 "$VENV/bin/python" -m pytest -p no:cacheprovider \
  "$ROOT/bindings/python/tests" "$@" || status=$?
exit "$status"

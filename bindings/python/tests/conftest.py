"""Test setup: import the package from this checkout (no install needed), or, with
RNNCORE_TEST_INSTALLED=1 (as run_tests.sh does), the one `pip install ./bindings/python`
put into the environment; and locate the repository root, where include/rnncore.h and
tests/fixtures/ live."""

import os
import sys
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PYTHON_DIR.parents[1]
INSTALLED = os.environ.get("RNNCORE_TEST_INSTALLED") == "1"
if not INSTALLED:
    sys.path.insert(0, str(PYTHON_DIR))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT

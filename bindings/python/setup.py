"""`pip install ./bindings/python` builds the Rust library (`cargo build --release --lib`
in the repository that holds this directory) and puts librnncore into the installed
package, so the install works on its own, away from the checkout. `RNNCORE_LIB` names a
library to bundle instead of building one. Metadata is in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
LIB_NAMES = {"linux": "librnncore.so", "darwin": "librnncore.dylib", "win32": "rnncore.dll"}


def built_library() -> Path:
    given = os.environ.get("RNNCORE_LIB")
    if given:
        return Path(given)
    if not (REPO_ROOT / "Cargo.toml").exists():
        sys.exit(
            f"rnncore: {REPO_ROOT} is not the rnncore repository; install from a checkout "
            "(pip install ./bindings/python) or set RNNCORE_LIB to a built library"
        )
    subprocess.run(["cargo", "build", "--release", "--lib", "-p", "rnncore"], cwd=REPO_ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else REPO_ROOT / "target"
    if not base.is_absolute():
        base = REPO_ROOT / base
    return base / "release" / LIB_NAMES.get(sys.platform, "librnncore.so")


class BuildWithLibrary(build_py):
    """The package's Python files plus the shared library, next to _lib.py."""

    def run(self) -> None:
        super().run()
        lib = built_library()
        if not lib.is_file():
            sys.exit(f"rnncore: no library at {lib}")
        dest = Path(self.build_lib) / "rnncore" / LIB_NAMES.get(sys.platform, lib.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lib, dest)


class BinaryDistribution(Distribution):
    """The wheel holds a native library: tag it for this platform, not 'any'."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)

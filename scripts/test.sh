#!/usr/bin/env bash
# The whole test suite: Rust (unit, integration, doc tests), formatting and lints, then
# the C, C++ and Python bindings, each through its own run_tests.sh. Installs what it
# needs itself (the Python tests make a venv with numpy, pytest, setuptools and wheel, and pip-install the package into it).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test (release)"
cargo test --release --workspace --all-targets
cargo test --release --workspace --doc
echo "== cargo doc (the public API, every item documented, no broken links)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p rnncore --quiet
# the implementation's docs too: their links must resolve as well; the CLI's first (its
# binary is also called rnncore, so its pages share the folder the library's overwrite)
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p rnncore-cli --quiet --document-private-items
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p rnncore --quiet --document-private-items
# Every kernel tier this CPU has runs the whole Rust suite (the default run used the best).
for tier in avx2 avx sse41 scalar; do
  echo "== cargo test with RNNCORE_KERNEL=$tier"
  RNNCORE_KERNEL=$tier cargo test --release -p rnncore --tests --quiet
done

# The NEON tier (aarch64) is compiled and linted too, so that no change breaks it unseen
# (type checks only: running it takes an AArch64 machine or qemu-user, see README).
# rustup fetches the target's standard library on first use.
echo "== cargo clippy --target aarch64-unknown-linux-gnu (the NEON tier)"
if rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  cargo clippy -p rnncore --all-targets --quiet --target aarch64-unknown-linux-gnu -- -D warnings
else
  echo "   NOT RUN: rustup could not add the aarch64-unknown-linux-gnu target (offline?)"
fi

for lang in c cpp python; do
  script="bindings/$lang/run_tests.sh"
  if [ -f "$script" ]; then
    echo "== $lang bindings"
    bash "$script"
  fi
done
echo "== all test suites passed"

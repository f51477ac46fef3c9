#!/usr/bin/env bash
# The model-file fuzzer (tests/fuzz.rs, tests/fuzzing/) for SECONDS instead of the
# suite's fixed number of cases; prints cases, accepted, refused, time and memory.
#   bash scripts/fuzz.sh 600            # ten minutes
#   RNNCORE_FUZZ_SEED=7 bash scripts/fuzz.sh 60
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: scripts/fuzz.sh SECONDS}"
RNNCORE_FUZZ_SECONDS="$seconds" cargo test --release --test fuzz -- --nocapture

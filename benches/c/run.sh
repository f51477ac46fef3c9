#!/usr/bin/env bash
# Streaming step latency through the C ABI (see step_latency.c).
#   bash benches/c/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release --lib
target="${CARGO_TARGET_DIR:-$root/target}"
gcc -O2 -std=c99 -Wall -Wextra -Werror -I include benches/c/step_latency.c \
  "$target/release/librnncore.a" -lpthread -ldl -lm -o "$target/c-step-latency"
"$target/c-step-latency"

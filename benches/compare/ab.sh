#!/usr/bin/env bash
# Before/after: an earlier revision of rnncore against the working tree, both in one
# process, their timings alternated (benches/c/ab.c), on one pinned core.
#   bash benches/compare/ab.sh REV [rounds] [kinds]
# REV: any git revision since the C ABI was frozen (e.g. HEAD~3, a tag, a commit).
# rounds: timings per build and configuration (default 7); kinds: a comma-separated
# subset of step,block,infer,train (default all; train takes a few minutes).
# RNNCORE_KERNEL applies to both builds; AB_CELLS, AB_H, AB_STREAMS, AB_LAYERS and AB_MODELS (model
# files, e.g. RTNeural's JSON, for their step and block) narrow or extend the run (see
# benches/c/ab.c). Writes benches/compare/results/ab-latest.md (copy it to a named file to keep it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
rev="${1:?usage: bash benches/compare/ab.sh REV [rounds] [kinds]}"
rounds="${2:-7}"
kinds="${3:-step,block,infer,train}"
commit="$(git rev-parse --verify --quiet "$rev^{commit}")" ||
  { echo "ab.sh: $rev is not a revision of this repository" >&2; exit 2; }
short="$(git rev-parse --short "$commit")"

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
work="$target/ab"
mkdir -p "$work"
# The earlier revision: its files only (git archive), built in its own target folder.
rm -rf "$work/src-$short"
mkdir -p "$work/src-$short"
git archive "$commit" | tar -x -C "$work/src-$short"
(cd "$work/src-$short" && CARGO_TARGET_DIR="$work/target-$short" cargo build --release --lib)
cp "$work/target-$short/release/librnncore.so" "$work/librnncore-$short.so"
rm -rf "$work/src-$short"
cargo build --release --lib
cp "$target/release/librnncore.so" "$work/librnncore-tree.so"

gcc -O2 -std=c99 -Wall -Wextra -Werror -I include benches/c/ab.c -ldl -lm -o "$work/ab"

pin=()
if command -v taskset >/dev/null 2>&1; then
  cpu="$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status | cut -d, -f1 | cut -d- -f1)"
  [ -n "$cpu" ] && pin=(taskset -c "$cpu")
fi
out="$root/benches/compare/results/ab-latest.md"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
{
  echo "## Before/after: $short (A) against the working tree (B)"
  echo
  echo "\`bash benches/compare/ab.sh $rev $rounds $kinds\`, $(date -u +%Y-%m-%d), CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), pinned: ${pin[*]:-no}, RNNCORE_KERNEL=${RNNCORE_KERNEL:-(unset)}, tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' with uncommitted changes in src/')."
  echo
} >"$tmp"
RAYON_NUM_THREADS=1 "${pin[@]}" "$work/ab" "$work/librnncore-$short.so" "$work/librnncore-tree.so" \
  "$rounds" "$kinds" >>"$tmp"
cp "$tmp" "$out"
cat "$out"
echo "written: $out" >&2

#!/bin/sh
# Installs the C library: header, static and shared library, pkg-config file.
#   install.sh PREFIX
# Builds nothing: run `cargo build --release` first (CARGO_TARGET_DIR is honoured).
# Puts PREFIX/include/rnncore.h, PREFIX/lib/librnncore.{a,so}, PREFIX/lib/pkgconfig/rnncore.pc.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
prefix=$1
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
lib=$target/release
for f in "$lib/librnncore.a" "$lib/librnncore.so"; do
    [ -f "$f" ] || { echo "$f missing: run cargo build --release" >&2; exit 1; }
done
mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
cp "$root/include/rnncore.h" "$prefix/include/"
cp "$lib/librnncore.a" "$lib/librnncore.so" "$prefix/lib/"
"$here/make-pc.sh" "$prefix" > "$prefix/lib/pkgconfig/rnncore.pc"
echo "installed rnncore into $prefix"

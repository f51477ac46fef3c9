#!/bin/sh
# Writes rnncore.pc from rnncore.pc.in.
#   make-pc.sh PREFIX [LIBDIR [INCLUDEDIR]] > rnncore.pc
# LIBDIR defaults to PREFIX/lib, INCLUDEDIR to PREFIX/include; the version is the crate's.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PREFIX [LIBDIR [INCLUDEDIR]]" >&2; exit 2; }
prefix=$1
libdir=${2:-$prefix/lib}
includedir=${3:-$prefix/include}
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" \
    -e "s|@INCLUDEDIR@|$includedir|g" -e "s|@VERSION@|$version|g" "$here/rnncore.pc.in"

#!/usr/bin/env bash
# Compiles every engine source with a non-x86 compiler (default: Debian's aarch64 cross g++,
# package g++-aarch64-linux-gnu) to check that the portable build has no x86-only code outside
# the AIOV_X86 guards. Syntax and semantics only (-fsyntax-only): nothing is linked or run, so
# the portable kernels' results on such a machine stay untested.
#
#   tools/cross_check.sh [compiler]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CXX_CROSS="${1:-aarch64-linux-gnu-g++}"
command -v "$CXX_CROSS" >/dev/null || { echo "$CXX_CROSS not found (apt install g++-aarch64-linux-gnu)" >&2; exit 2; }
cd "$ROOT"
failed=0
count=0
for f in native/core/*.cpp native/executor/*.cpp native/plan/*.cpp native/plan/passes/*.cpp \
  native/ops/*.cpp native/kernels/*.cpp; do
  count=$((count + 1))
  "$CXX_CROSS" -std=c++17 -fsyntax-only -Wall -Wno-unused-function -Inative "$f" || { echo "FAILED: $f"; failed=$((failed + 1)); }
done
echo "$CXX_CROSS: $((count - failed)) of $count engine sources compile"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# Builds the engine with AddressSanitizer and UndefinedBehaviorSanitizer in its own build
# directory and runs the test suite (or the pytest arguments given) against that build.
#
#   tools/sanitize.sh                       # the whole suite, then a fuzz slice
#   tools/sanitize.sh tests/test_engine.py  # a subset (any pytest arguments), no fuzzing
#
# The fuzz slice (`python -m tests.fuzz`) runs AIOV_SANITIZE_FUZZ_MINUTES minutes (default 3,
# 0 skips it) with every case's child process under the sanitizers too; any crash (an ASan or
# UBSan report aborts the child) fails the run.
#
# The active Python environment must have aiov's test dependencies (see README). Python
# itself is not instrumented: libasan is preloaded, leak detection is off (the interpreter
# keeps memory until exit by design) and any UB report fails the run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AIOV_SANITIZE_BUILD:-$ROOT/build/sanitize}"
PYTHON="${PYTHON:-python}"
JOBS="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"

cmake -S "$ROOT" -B "$BUILD/cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER="$CMAKE_CXX_COMPILER_LAUNCHER"} \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$BUILD/cmake" --target _core -j "$JOBS"

# A package directory with the sources of aiov/ and the sanitized extension module.
PKG="$BUILD/pkg"
rm -rf "$PKG"
mkdir -p "$PKG/aiov"
for entry in "$ROOT"/aiov/*; do
  case "$entry" in *.so) continue ;; esac
  ln -s "$entry" "$PKG/aiov/$(basename "$entry")"
done
cp "$BUILD"/cmake/_core*.so "$PKG/aiov/"
# An editable install of aiov puts a finder first on sys.meta_path; drop it so that the
# package above is the one imported (child processes of the tests inherit this too).
# Native code of other projects is not built for the sanitizers: OpenVINO's compile_model aborts under
# the preloaded ASan runtime (no report, its own abort), so it is hidden here and the tests that
# compare with it skip. AIOV_SANITIZE_HIDE names the modules to hide (space-separated).
cat > "$PKG/sitecustomize.py" <<PY
import sys
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__name__.startswith("ScikitBuild")]
_HIDDEN = set("${AIOV_SANITIZE_HIDE-openvino ray}".split())


class _HidePeers:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"{name} is hidden under the sanitizers", name=name)
        return None


sys.meta_path.insert(0, _HidePeers())
PY

LIBASAN="$("${CXX:-g++}" -print-file-name=libasan.so)"
# libstdc++ too: python does not link it, and ASan's __cxa_throw interceptor needs it
# loaded at start-up (else the first C++ exception fails an ASan CHECK).
LIBSTDCXX="$("${CXX:-g++}" -print-file-name=libstdc++.so)"
export LD_PRELOAD="$LIBASAN:$LIBSTDCXX${LD_PRELOAD:+:$LD_PRELOAD}"
# Reports go to files (one per process, .PID appended), not to stderr: pytest captures a test's
# file descriptor 2 into a temporary file, so a report that ends the process would be lost with it
# (the run just stops, exit status 1, no summary). Child processes of the tests write there too.
REPORTS="$BUILD/reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}:log_path=$REPORTS/asan"
export AIOV_SANITIZED=1  # the fuzzer's children limit their address space on top of ASan's shadow
# abort_on_error again: UBSan's options reset the flags it shares with ASan, and without it a UB
# report ends the process with status 1, indistinguishable from an ordinary failure.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}:log_path=$REPORTS/ubsan"
export PYTHONPATH="$PKG${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONMALLOC=malloc  # let ASan see Python's allocations too
export PYTHONSAFEPATH=1   # the source tree in the working directory must not shadow the package (3.11+)

cd "$ROOT"
"$PYTHON" -c "import aiov, sys; assert aiov.__file__.startswith('$PKG'), aiov.__file__; print('sanitized aiov:', aiov._core.__file__)"
# The tests run from a link inside the package directory: pytest puts the parent of the tests
# package first on sys.path, and that must be the sanitized package, not the source tree (the
# tests' child processes inherit sys.path as PYTHONPATH).
ln -sfn "$ROOT/tests" "$PKG/tests"
# -c: the tests' path (under $PKG) has no pyproject.toml above it to find the settings in.
PYTEST=("$PYTHON" -m pytest -q -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml")
status=0
if [ "$#" -gt 0 ]; then
  "${PYTEST[@]}" "$@" || status=$?
else
  # The docs tests build the site from the tests' parent directory, which under $PKG holds no
  # mkdocs.yml or docs/: they check no native code, and run in the ordinary suite.
  # --deselect matches node ids, which pytest writes relative to the rootdir.
  TESTS_ID="$(realpath --relative-to="$ROOT" "$PKG")/tests"
  "${PYTEST[@]}" "$PKG/tests" --deselect "$TESTS_ID/test_docs.py::test_the_site_builds_strictly_and_lists_every_registered_op" \
    --deselect "$TESTS_ID/api/test_environment.py::test_the_docs_list_every_variable_the_engine_reads" || status=$?
  MINUTES="${AIOV_SANITIZE_FUZZ_MINUTES:-3}"
  if [ "$MINUTES" != 0 ]; then
    # The fuzzer is the tests.fuzz package of the source tree; aiov still comes from $PKG (first).
    PYTHONPATH="$PYTHONPATH:$ROOT" "$PYTHON" -m tests.fuzz --minutes "$MINUTES" || status=$?
  fi
fi
# A file holding only "failed to allocate" warnings is not a finding: allocator_may_return_null
# makes an impossible allocation fail, and the tests check that it becomes a MemoryError.
reports=()
for report in "$REPORTS"/*; do
  [ -e "$report" ] || continue
  if grep -v -e '^$' -e 'WARNING: AddressSanitizer failed to allocate' "$report" | grep -q .; then
    reports+=("$report")
  else
    echo "(allocation refused as asked, not a report: $report: $(head -c 200 "$report"))"
  fi
done
for report in "${reports[@]}"; do
  echo "== $report"
  head -n 40 "$report"
done
echo "sanitizers: ${#reports[@]} reports (in $REPORTS)"
if [ "${#reports[@]}" -gt 0 ] && [ "$status" = 0 ]; then status=1; fi
exit "$status"

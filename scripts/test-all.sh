#!/usr/bin/env bash
# Every test of multiproj in one command: the Rust workspace's (`cargo test --workspace`), then
# the Python package's — built and installed with `pip install ./python` (a release build, as a
# user gets it) into the virtual environment target/py-venv, and run with pytest.
#
#   scripts/test-all.sh                  # both
#   scripts/test-all.sh --python-only    # only the Python package (build, install, pytest)
#   scripts/test-all.sh --setup-only     # only the virtual environment and what it installs
#   scripts/test-all.sh -- -k torch -x   # arguments after `--` go to pytest
#
# Environment:
#   MULTIPROJ_TORCH=1      also install torch from PyPI (several GB with its CUDA libraries; the
#                          CPU is all the tests use), scikit-learn and matplotlib, and run the
#                          torch tests and the SAE example's fast mode, which skip without them
#   MULTIPROJ_MPI=1        also build the `mpi` feature and run the MPI tests (tests/mpi.rs: mpirun
#                          with 2, 3 and 4 processes; needs an MPI library, its development files
#                          and libclang; .ci/run installs them). MULTIPROJ_REQUIRE_MPI=1 makes a
#                          missing mpirun a failure instead of a skip.
#   CARGO_TEST_ARGS        more arguments for cargo test and the extension's build (CI: --locked)
#   PYTHON                 the interpreter the virtual environment is made from (default python3)
#   MULTIPROJ_TIMING_TESTS=1  also run the speed-up test of python/tests/test_threads.py (off by
#                          default: a busy machine can fail it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv="$root/target/py-venv"

run_cargo=1
setup_only=0
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python-only) run_cargo=0 ;;
    --setup-only) setup_only=1 ;;
    --) shift; pytest_args=("$@"); break ;;
    *) echo "usage: scripts/test-all.sh [--python-only | --setup-only] [-- PYTEST-ARGS...]" >&2; exit 2 ;;
  esac
  shift
done
# Word splitting is wanted: CARGO_TEST_ARGS holds zero or more flags.
# shellcheck disable=SC2206
cargo_args=(${CARGO_TEST_ARGS:-})

# The Python environment comes first: torch's wheels take several GB while pip unpacks them, and
# that peak is better reached before the Rust builds fill target/ (a CI machine's disk ran out).
echo "== python: virtual environment target/py-venv"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet maturin pytest hypothesis numpy ml_dtypes
if [ "${MULTIPROJ_TORCH:-0}" = 1 ]; then
  echo "== python: torch, scikit-learn, matplotlib (MULTIPROJ_TORCH=1)"
  # One wheel at a time: pip would first download every wheel (about 3 GB for torch's CUDA
  # libraries) and only then unpack them (about 6 GB), so the disk must hold both at once; a CI
  # machine ran out of disk there twice. pip resolves the set (from the index's metadata, without
  # downloading the wheels), then each wheel is fetched, unpacked and its download deleted before
  # the next; the last command checks the whole set.
  if ! "$py" -c "import torch, sklearn, matplotlib" 2>/dev/null; then
    report="$(mktemp "${TMPDIR:-/tmp}/multiproj-pip-report.XXXXXX")"
    "$py" -m pip install --quiet --dry-run --report "$report" torch scikit-learn matplotlib
    mapfile -t urls < <("$py" -c 'import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    print(item["download_info"]["url"])' "$report")
    rm -f "$report"
    for url in "${urls[@]}"; do
      "$py" -m pip install --quiet --no-deps "$url"
    done
  fi
  "$py" -m pip install --quiet torch scikit-learn matplotlib
fi
if [ "$setup_only" = 1 ]; then
  exit 0
fi

if [ "$run_cargo" = 1 ]; then
  features=()
  if [ "${MULTIPROJ_MPI:-0}" = 1 ]; then
    features=(--features multiproj/mpi,multiproj-cli/mpi)
  fi
  echo "== cargo test --workspace ${cargo_args[*]} ${features[*]}"
  cargo test --workspace "${cargo_args[@]}" "${features[@]}"
fi

echo "== python: pip install ./python"
# A fresh install every time (the version number does not change with the code).
"$py" -m pip uninstall --quiet --yes multiproj >/dev/null 2>&1 || true
start=$SECONDS
MATURIN_PEP517_ARGS="${cargo_args[*]}" "$py" -m pip install --quiet ./python
echo "built and installed in $((SECONDS - start)) s"

echo "== python: pytest"
# From the repository's root, so that `import multiproj` finds the installed package, not the
# sources in python/multiproj (which lack the native module).
"$py" -m pytest python/tests "${pytest_args[@]}"

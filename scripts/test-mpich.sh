#!/usr/bin/env bash
# The MPI tests under MPICH instead of the system's default MPI (OpenMPI on Debian when both
# are installed): the library's (tests/mpi.rs, running examples/shard_mpi.rs under mpirun with
# 2, 3 and 4 processes) and the command's (cli/tests/mpi.rs). The `mpi` crate is built against
# MPICH in a target directory of its own, so the default build is left alone.
#
#   apt-get install mpich libmpich-dev libclang-dev    # once
#   scripts/test-mpich.sh
#
# MPICH's launcher (Hydra) ends the other processes of a job with SIGKILL when one dies, where
# OpenMPI sends SIGTERM first: the killed-process tests hold the command to leaving nothing
# behind in both cases. Not part of .ci/run (a second build of the workspace against another
# MPI takes about 6 minutes on 2 cores); run it when the MPI code changes.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in mpicc.mpich mpirun.mpich; do
  command -v "$tool" >/dev/null || {
    echo "test-mpich.sh: $tool is missing (apt-get install mpich libmpich-dev)" >&2
    exit 1
  }
done

# A PATH where `mpicc` and `mpirun` are MPICH's. mpirun must be a script that execs the real
# one: Hydra finds its proxy beside the path it was started from, which a symbolic link here
# would hide.
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
ln -s "$(command -v mpicc.mpich)" "$shim/mpicc"
printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v mpirun.mpich)" >"$shim/mpirun"
chmod +x "$shim/mpirun"
export PATH="$shim:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/mpich}"
export MULTIPROJ_REQUIRE_MPI=1

mpirun --version | head -2
cargo build -p multiproj --features mpi --example shard_mpi
cargo test -p multiproj --features mpi --test mpi
cargo test -p multiproj-cli --features mpi --test mpi

#!/usr/bin/env bash
# bench/out_of_core.sh — project a tensor larger than RAM through the memory map.
#
# Creates an f32 .npy of SIZE_GIB GiB (default 32, more than this 24 GiB machine's RAM) with
# 4096 columns, as a sparse file whose data is then written in 64 MiB chunks (NumPy from
# target/bench-venv; values uniform(-1, 1) times a per-row scale uniform in (0, 1], so the
# projection zeroes whole rows), measures the disk's sequential read and write rates with dd in
# the same run, then runs (in this order: the in-place run changes BIG.npy)
#   multiproj project 'l1 over dim0 of linf over dim1' BIG.npy --radius R --output OUT.npy
#   multiproj project 'l1 over dim0 of linf over dim1' BIG.npy --radius R --in-place
# each under /usr/bin/time -v (peak RSS) while sampling /proc/PID/status (anonymous memory: the
# mapped file's pages count in RSS but are page cache the kernel reclaims, anonymous memory is
# what could run the machine out of memory), and prints a report: time, throughput against dd's
# rates, the floor of the passes' bytes at those rates, and peak memory.
#
# This is a documented experiment, not a CI test. It needs SIZE_GIB of free disk for the input
# and as much again for the out-of-place output (skipped, with a message, when there is not
# enough). Try it small first:  SIZE_GIB=1 bench/out_of_core.sh
#
# Environment:
#   SIZE_GIB=32          size of the tensor (GiB, whole number)
#   DIR=target/out-of-core   where the files go (the disk under test)
#   RADIUS_FRAC=0.25     radius as a fraction of the norm (~50% of the rows zeroed)
#   KEEP=1               keep the files afterwards (default: removed)
#   DROP_CACHES=1        drop the page cache before each run (root only; affects the whole
#                        machine), so that even a small SIZE_GIB reads from the disk
#   RECORD=path.md       where the report is also written as markdown, with the date, the
#                        machine and the command (default bench/out_of_core.md, which
#                        bench/report.py copies into BENCHMARKS.md; RECORD= to skip)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SIZE_GIB=${SIZE_GIB:-32}
DIR=${DIR:-target/out-of-core}
RADIUS_FRAC=${RADIUS_FRAC:-0.25}
KEEP=${KEEP:-0}
DROP_CACHES=${DROP_CACHES:-0}
RECORD=${RECORD-bench/out_of_core.md}
COLS=4096
SPEC='l1 over dim0 of linf over dim1'
VENV=target/bench-venv
PY=$VENV/bin/python
BIN=target/release/multiproj

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'out_of_core.sh: %s\n' "$*" >&2; exit 1; }

[[ $SIZE_GIB =~ ^[1-9][0-9]*$ ]] || die "SIZE_GIB must be a whole number of GiB, not '$SIZE_GIB'"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package 'time')"
command -v dd >/dev/null || die "dd is missing"

mkdir -p "$DIR"
BIG=$DIR/big.npy
OUT=$DIR/projected.npy
DD=$DIR/dd.tmp
cleanup() {
    rm -f "$DD"
    if [ "$KEEP" != 1 ]; then rm -f "$BIG" "$OUT"; fi
}
trap cleanup EXIT

ROWS=$((SIZE_GIB * 1024 * 1024 * 1024 / (4 * COLS)))
BYTES=$((ROWS * COLS * 4))
mem_kib=$(awk '/MemTotal:/ {print $2}' /proc/meminfo)
free_kib=$(df -Pk "$DIR" | awk 'NR == 2 {print $4}')
need_kib=$((BYTES / 1024 + 1024 * 1024))
say "tensor: ${ROWS}x${COLS} f32 = ${SIZE_GIB} GiB; RAM $((mem_kib / 1024 / 1024)) GiB; free disk in $DIR: $((free_kib / 1024 / 1024)) GiB"
[ "$free_kib" -gt "$need_kib" ] || die "not enough free disk in $DIR for a ${SIZE_GIB} GiB file"
OUT_OF_PLACE=1
if [ "$free_kib" -lt $((2 * need_kib)) ]; then
    OUT_OF_PLACE=0
    say "not enough disk for the out-of-place output as well: only the in-place run will happen"
fi
if [ $((BYTES / 1024)) -le "$mem_kib" ]; then
    say "note: ${SIZE_GIB} GiB fits in RAM; the page cache may serve the reads (DROP_CACHES=1 avoids that)"
fi

if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
    say "creating $VENV and installing NumPy from PyPI"
    python3 -m venv "$VENV" || die "could not create a virtual environment"
    "$PY" -m pip install --quiet numpy || die "pip could not install numpy"
fi
say "cargo build --release"
cargo build --release || die "the release build failed"

drop_caches() {
    if [ "$DROP_CACHES" = 1 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches || die "cannot drop caches (DROP_CACHES=1 needs root)"
    fi
}

# 1. The tensor: header and a sparse file, then the data in chunks. Prints the norm, the radius
#    and what the projection will do to the rows (from the row maxima, by NumPy), so that the
#    timed runs need no --stats passes of their own.
say "writing $BIG"
t0=$(date +%s.%N)
read -r NORM RADIUS ZEROED PROJECTED UNTOUCHED < <("$PY" - "$BIG" "$ROWS" "$COLS" "$RADIUS_FRAC" <<'PYEOF'
import sys
import numpy as np

path, rows, cols, frac = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
# The header and a file of the final size, all holes.
m = np.lib.format.open_memmap(path, mode="w+", dtype="<f4", shape=(rows, cols))
offset = m.offset
del m
rng = np.random.default_rng(1)
chunk = max(1, (64 << 20) // (4 * cols))
maxima = np.empty(rows)
with open(path, "r+b") as f:
    f.seek(offset)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        scales = (1.0 - rng.random(n, dtype=np.float32))[:, None]
        block = rng.random((n, cols), dtype=np.float32)
        block *= 2.0
        block -= 1.0
        block *= scales
        maxima[start:start + n] = np.maximum(block.max(axis=1), -block.min(axis=1))
        f.write(block.tobytes())
norm = float(maxima.sum())
radius = frac * norm
# The l1 projection of the row maxima, by sorting: each row's radius.
s = np.sort(maxima)[::-1]
css = np.cumsum(s)
k = np.arange(1, rows + 1)
rho = np.nonzero(s * k > css - radius)[0][-1]
u = np.maximum(maxima - (css[rho] - radius) / (rho + 1), 0.0)
print(repr(norm), repr(radius), int((u == 0).sum()), int(((u > 0) & (u < maxima)).sum()),
      int((u >= maxima).sum()))
PYEOF
)
t1=$(date +%s.%N)
[ -n "${UNTOUCHED:-}" ] || die "writing $BIG failed"
say "written in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s; norm $NORM, radius $RADIUS (${RADIUS_FRAC} × norm): expect $ZEROED rows zeroed, $PROJECTED clipped, $UNTOUCHED untouched"
sync

# 2. The disk's sequential rates, bypassing the page cache.
DD_GIB=$((SIZE_GIB < 4 ? SIZE_GIB : 4))
dd_rate() { LC_ALL=C "$@" 2>&1 | awk '/copied/ {print $(NF-1), $NF}'; }
to_gbps() { # "1.2 GB/s" | "800 MB/s" | "2.1 GiB/s" -> GB/s
    python3 -c "
v, u = '$1'.split()
f = {'kB/s': 1e-6, 'MB/s': 1e-3, 'GB/s': 1.0, 'KiB/s': 1024 / 1e9, 'MiB/s': 2**20 / 1e9, 'GiB/s': 2**30 / 1e9}[u]
print(float(v) * f)"
}
say "dd: sequential write and read of $DD_GIB GiB (O_DIRECT)"
W=$(dd_rate dd if=/dev/zero of="$DD" bs=64M count=$((DD_GIB * 16)) oflag=direct conv=fdatasync)
R=$(dd_rate dd if="$DD" of=/dev/null bs=64M iflag=direct)
rm -f "$DD"
[ -n "$W" ] && [ -n "$R" ] || die "could not read dd's rates"
DD_WRITE=$(to_gbps "$W")
DD_READ=$(to_gbps "$R")
say "dd: write $W, read $R"

# 3. The runs. Each under /usr/bin/time -v, with a sampler of the child's memory.
run() { # name, then the multiproj arguments
    local name=$1
    shift
    drop_caches
    local log=$DIR/$name.time mem=$DIR/$name.mem
    say "$name: multiproj project $*"
    /usr/bin/time -v -o "$log" "$BIN" project "$@" &
    local tpid=$! pid="" peak_anon=0 peak_file=0
    while kill -0 "$tpid" 2>/dev/null; do
        [ -n "$pid" ] || pid=$(pgrep -P "$tpid" 2>/dev/null | head -n 1 || true)
        if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
            read -r anon file < <(awk '/RssAnon:/ {a=$2} /RssFile:/ {f=$2} END {print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
            [ "${anon:-0}" -gt "$peak_anon" ] && peak_anon=$anon
            [ "${file:-0}" -gt "$peak_file" ] && peak_file=$file
        fi
        sleep 0.2
    done
    wait "$tpid" || die "$name failed: see $log"
    echo "$peak_anon $peak_file" >"$mem"
}
if [ "$OUT_OF_PLACE" = 1 ]; then
    run out-of-place "$SPEC" "$BIG" --radius "$RADIUS" --output "$OUT"
    rm -f "$OUT"
fi
run in-place "$SPEC" "$BIG" --radius "$RADIUS" --in-place

# 4. The report.
say "report"
REPORT=$DIR/report.txt
(python3 - "$DIR" "$BYTES" "$DD_READ" "$DD_WRITE" "$SIZE_GIB" "$mem_kib" "$OUT_OF_PLACE" \
    "$ROWS" "$ZEROED" "$PROJECTED" "$UNTOUCHED" "$DROP_CACHES" <<'PYEOF'
import re, sys

d, size, rd, wr, gib, mem_kib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6])
oop = sys.argv[7] == "1"
r = dict(zip(("groups", "zeroed", "projected", "untouched"), map(int, sys.argv[8:12])))
cached = size <= mem_kib * 1024 and sys.argv[12] != "1"
print(f"tensor         {gib} GiB f32 ({size} bytes), machine RAM {mem_kib / 2**20:.1f} GiB")
print(f"disk (dd)      sequential read {rd:.2f} GB/s, write {wr:.2f} GB/s (O_DIRECT, same run)")
if cached:
    print("note           the tensor fits in RAM and the page cache was not dropped: reads came "
          "from memory,\n               so the floor at the disk's rates does not bound these runs")
elif sys.argv[12] != "1":
    print("note           the page cache was not dropped (DROP_CACHES=1 does): the first run may "
          "find part of\n               the file, written just before, still in memory")
for name in (["out-of-place"] if oop else []) + ["in-place"]:
    t = open(f"{d}/{name}.time").read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", t).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    anon, filek = (int(x) for x in open(f"{d}/{name}.mem").read().split())
    group = size // r["groups"]
    kept = r["untouched"] * group
    proj = r["projected"] * group
    zero = r["zeroed"] * group
    # Bytes read and written, as `multiproj bench` models them.
    if name == "in-place":
        read, write = size + proj, proj + zero
    else:
        read, write = size + kept + proj, size
    floor = read / (rd * 1e9) + write / (wr * 1e9)
    print(f"{name:15}{secs:.1f} s wall; {size / secs / 1e9:.2f} GB/s of tensor; "
          f"{(read + write) / secs / 1e9:.2f} GB/s moved")
    print(f"{'':15}groups: {r['zeroed']} zeroed, {r['projected']} clipped, {r['untouched']} untouched of {r['groups']}")
    print(f"{'':15}floor at dd's rates {floor:.1f} s ({read / 2**30:.1f} GiB read, {write / 2**30:.1f} GiB written): "
          f"{secs / floor:.2f}× the floor")
    print(f"{'':15}peak RSS {rss / 2**20:.2f} GiB (/usr/bin/time -v); sampled peaks: anonymous "
          f"{anon / 2**10:.0f} MiB, mapped file {filek / 2**20:.2f} GiB (page cache, reclaimable)")
PYEOF
) | tee "$REPORT"

if [ -n "$RECORD" ]; then
    {
        echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/out_of_core.sh\` with" \
            "\`SIZE_GIB=$SIZE_GIB RADIUS_FRAC=$RADIUS_FRAC DROP_CACHES=$DROP_CACHES\`" \
            "($(nproc) cores, $((mem_kib / 1024 / 1024)) GiB RAM," \
            "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)). The runs:"
        echo
        echo '```sh'
        if [ "$OUT_OF_PLACE" = 1 ]; then
            echo "multiproj project '$SPEC' big.npy --radius $RADIUS --output projected.npy"
        fi
        echo "multiproj project '$SPEC' big.npy --radius $RADIUS --in-place"
        echo '```'
        echo
        echo '```'
        cat "$REPORT"
        echo '```'
    } >"$RECORD"
    say "wrote $RECORD"
fi

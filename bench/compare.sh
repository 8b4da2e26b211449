#!/usr/bin/env bash
# bench/compare.sh — the benchmark suite of issue 4, written up as BENCHMARKS.md.
#
# For every case (bi-level l1,inf rows at 1024², 4096², 8192² in f64 and f32; columns; a 3-D
# tri-level 256³; an innermost-l1 case; an l1∘l2 case; each with radii that zero ~50% and ~95% of
# the groups; an in-place case) it runs `multiproj bench … --json` with every available backend
# (jit when `multiproj bench --backend jit` works, interp always), times the vectorized NumPy
# implementations in bench/numpy_ref.py the same way, in both of its styles (tuned: what a
# careful NumPy programmer writes, `$id.numpy.json`; textbook: the paper's formulas, vectorized,
# `$id.numpy_textbook.json`) (median of --repeat runs after a warm-up, on NumPy's own random data
# of the same shape and distribution, at the same fraction of the norm), measures the memory
# bandwidth with `multiproj bench --probe`, and writes BENCHMARKS.md (bench/report.py): times,
# the floor `bytes moved / bandwidth`, ratios, speed-ups, 1 vs 2 threads, cost per element at
# four sizes, the machine, the date and the exact commands.
#
# Usage:  bench/compare.sh                 (5 to 6 minutes on 2 cores, most of it the interpreter)
# Environment:
#   BACKENDS="jit interp"   backends to run (default: jit if it works, and interp)
#   REPEAT=5 WARMUP=1       timed and untimed runs per case
#   QUICK=1                 only 1024² and 2048² cases (a smoke test of the script, ~1 minute)
#   OUT=BENCHMARKS.md       where to write the report
#   PROBE_MIB=512           size of each probe buffer (≥ 4× the last-level cache)
#   THREADS=$(nproc)        threads of the main runs (the thread comparison also runs 1)
# Needs: cargo, python3 (with venv and pip; NumPy is installed into target/bench-venv from PyPI
# when missing), lscpu. Writes intermediate results to target/bench-results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPEAT=${REPEAT:-5}
WARMUP=${WARMUP:-1}
QUICK=${QUICK:-0}
OUT=${OUT:-BENCHMARKS.md}
PROBE_MIB=${PROBE_MIB:-512}
THREADS=${THREADS:-$(nproc)}
VENV=target/bench-venv
PY=$VENV/bin/python
BIN=target/release/multiproj
RESULTS=target/bench-results

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not on PATH"
command -v python3 >/dev/null || die "python3 is not on PATH"

# 1. NumPy, in a virtual environment of its own.
if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
    say "creating $VENV and installing NumPy from PyPI"
    python3 -m venv "$VENV" || die "could not create a virtual environment (is python3-venv installed?)"
    "$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    "$PY" -m pip install --quiet numpy || die "pip could not install numpy"
fi
NUMPY_VERSION=$("$PY" -c 'import numpy; print(numpy.__version__)')

# 2. The release binary.
say "cargo build --release"
cargo build --release || die "the release build failed"
[ -x "$BIN" ] || die "$BIN was not built"

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
COMMANDS=$RESULTS/commands.txt
: >"$COMMANDS"

# Prints a command as one shell line, quoting only the arguments that need it.
quote() {
    local a words=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then
            words+=("$a")
        else
            words+=("'${a//\'/\'\\\'\'}'")
        fi
    done
    printf '%s\n' "${words[*]}"
}

# Runs a command, logs it, and stores its stdout in the file named first.
record() {
    local dest=$1
    shift
    quote "$@" >>"$COMMANDS"
    if ! "$@" <"/dev/null" >"$dest"; then
        die "this command failed: $*"
    fi
}

# One line about a result file, on stderr.
summary() {
    "$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))
name = r["backend"] + ("/" + r["style"] if "style" in r else "")
print("   {:15} median {:10.3f} ms   zero groups {}/{}".format(
    name, r["median_ms"], r["zero_groups"], r["groups"]))' "$1" >&2
}

# The load on the machine: other processes share the cores and the memory bus. The load average
# lags by minutes, so also the share of CPU time other processes used over two seconds.
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown; }
cpu_busy() {
    local cpu a b c d e f g h t1 i1 t2 i2
    read -r cpu a b c d e f g h _ </proc/stat || { echo unknown; return; }
    t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
    sleep 2
    read -r cpu a b c d e f g h _ </proc/stat || { echo unknown; return; }
    t2=$((a + b + c + d + e + f + g + h)) i2=$((d + e))
    echo $((100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1 > 0 ? t2 - t1 : 1)))
}
echo "$(loadavg)" >"$RESULTS/load.start"
cpu_busy >"$RESULTS/busy.start"
if [ "$(cat "$RESULTS/busy.start")" != unknown ] && [ "$(cat "$RESULTS/busy.start")" -gt 20 ]; then
    say "warning: other processes use $(cat "$RESULTS/busy.start")% of the CPU; the numbers will be depressed"
fi

# 3. Backends.
if [ -z "${BACKENDS:-}" ]; then
    BACKENDS=interp
    if "$BIN" bench 'l1 over dim0 of linf over dim1' --shape 8x8 --radius 1 --backend jit \
        --repeat 1 --warmup 0 >/dev/null 2>&1; then
        BACKENDS="jit interp"
    else
        say "the jit backend is not available; timing the interpreter only"
    fi
fi
for b in $BACKENDS; do
    "$BIN" bench 'l1 over dim0 of linf over dim1' --shape 8x8 --radius 1 --backend "$b" \
        --repeat 1 --warmup 0 >/dev/null || die "backend $b does not run"
done
say "backends: $BACKENDS; NumPy $NUMPY_VERSION; $REPEAT timed runs after $WARMUP warm-up"

# 4. Both sides compute the same projection (both NumPy styles against every backend).
say "checking NumPy (tuned and textbook) against multiproj project"
check_args=()
for b in $BACKENDS; do check_args+=(--backend "$b"); done
record "$RESULTS/check.txt" "$PY" bench/numpy_ref.py check --multiproj "$BIN" "${check_args[@]}"
tail -n 1 "$RESULTS/check.txt" >&2

# 5. Bandwidth, with 2 threads and with 1.
say "bandwidth probe (${PROBE_MIB} MiB buffers)"
record "$RESULTS/probe.t$THREADS.json" "$BIN" bench --probe --size-mib "$PROBE_MIB" --threads "$THREADS" --repeat 7 --json
if [ "$THREADS" != 1 ]; then
    record "$RESULTS/probe.t1.json" "$BIN" bench --probe --size-mib "$PROBE_MIB" --threads 1 --repeat 7 --json
fi
cat "$RESULTS/probe.t$THREADS.json" >&2

# 6. The cases: id | table | label | spec | shape | dtype | zero fraction | threads | in place
ROWS='l1 over dim0 of linf over dim1'
CASES=$RESULTS/cases.tsv
: >"$CASES"
add() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$CASES"; }
if [ "$QUICK" = 1 ]; then
    SIZES="1024"
    SERIES="512 1024 2048"
    BIG=1024
    TRI=64x64x64
else
    SIZES="1024 4096 8192"
    SERIES="1024 2048 4096 8192"
    BIG=4096
    TRI=256x256x256
fi
for n in $SIZES; do
    for dt in f64 f32; do
        for z in 0.5 0.95; do
            add "rows-$n-$dt-$z" main "bi-level l1,∞ rows" "$ROWS" "${n}x${n}" "$dt" "$z" "$THREADS" 0
        done
    done
done
for z in 0.5 0.95; do
    add "cols-$BIG-$z" main "bi-level l1,∞ columns" 'l1 over dim1 of linf over dim0' "${BIG}x${BIG}" f64 "$z" "$THREADS" 0
done
for z in 0.5 0.95; do
    add "tri-$z" main "tri-level l1,∞,∞ (3-D)" 'l1 over dim0 of linf over dim1 of linf over dim2' "$TRI" f64 "$z" "$THREADS" 0
done
for z in 0.5 0.95; do
    add "l1l1-$BIG-$z" main "l1,1 (innermost l1)" 'l1 over dim0 of l1 over dim1' "${BIG}x${BIG}" f64 "$z" "$THREADS" 0
done
for z in 0.5 0.95; do
    add "l1l2-$BIG-$z" main "l1,2 (group lasso)" 'l1 over dim0 of l2 over dim1' "${BIG}x${BIG}" f64 "$z" "$THREADS" 0
done
LAST=${SIZES##* }
add "inplace-$LAST-0.95" inplace "bi-level l1,∞ rows, in place" "$ROWS" "${LAST}x${LAST}" f64 0.95 "$THREADS" 1
add "inplace-$LAST-0.5" inplace "bi-level l1,∞ rows, in place" "$ROWS" "${LAST}x${LAST}" f64 0.5 "$THREADS" 1
add "threads1-$BIG" threads "bi-level l1,∞ rows" "$ROWS" "${BIG}x${BIG}" f64 0.5 1 0
for n in $SERIES; do
    case " $SIZES " in
        *" $n "*) ;; # measured above as rows-$n-f64-0.5
        *) add "rows-$n-f64-0.5" series "bi-level l1,∞ rows" "$ROWS" "${n}x${n}" f64 0.5 "$THREADS" 0 ;;
    esac
done

total=$(wc -l <"$CASES")
i=0
while IFS=$'\t' read -r -u 3 id table label spec shape dtype zero threads inplace; do
    i=$((i + 1))
    say "[$i/$total] $id: $spec, $shape $dtype, ~${zero} zero groups, $threads thread(s)$([ "$inplace" = 1 ] && echo ', in place')"
    flags=(--shape "$shape" --dtype "$dtype" --zero-frac "$zero" --threads "$threads"
        --repeat "$REPEAT" --warmup "$WARMUP" --json)
    np_flags=()
    if [ "$inplace" = 1 ]; then
        flags+=(--in-place)
        np_flags+=(--in-place)
    fi
    # The interpreter runs first: its radius fraction is handed to NumPy. The data and the
    # radius do not depend on the backend.
    for b in interp $BACKENDS; do
        [ "$b" = interp ] && [ -e "$RESULTS/$id.interp.json" ] && continue
        record "$RESULTS/$id.$b.json" "$BIN" bench "$spec" "${flags[@]}" --backend "$b"
        summary "$RESULTS/$id.$b.json"
    done
    if [ "$table" != threads ]; then
        frac=$("$PY" -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["radius_frac"]))' "$RESULTS/$id.interp.json")
        # Both NumPy styles: tuned into $id.numpy.json, textbook into $id.numpy_textbook.json.
        for style in tuned textbook; do
            dest=$RESULTS/$id.numpy.json
            [ "$style" = tuned ] || dest=$RESULTS/$id.numpy_$style.json
            record "$dest" "$PY" bench/numpy_ref.py run --spec "$spec" --shape "$shape" \
                --dtype "$dtype" --radius-frac "$frac" --style "$style" --repeat "$REPEAT" \
                --warmup "$WARMUP" "${np_flags[@]}"
            summary "$dest"
        done
    fi
done 3<"$CASES"

# The probe again, between the cases and the latency runs (the report takes the median of
# three probe runs for each rate).
say "bandwidth probe, second run"
record "$RESULTS/probe2.t$THREADS.json" "$BIN" bench --probe --size-mib "$PROBE_MIB" --threads "$THREADS" --repeat 7 --json
if [ "$THREADS" != 1 ]; then
    record "$RESULTS/probe2.t1.json" "$BIN" bench --probe --size-mib "$PROBE_MIB" --threads 1 --repeat 7 --json
fi

# 6b. Compile latency (jit): a fresh process per run, so that every kernel the projection needs
#     is compiled (cold, the disk cache off) — the `compile` stage of `--warmup 0 --repeat 1` —
#     for each spec on a 1 MiB f64 tensor, five times; the same with the kernels in a disk cache
#     an earlier run filled (what a second `multiproj` run sees); and the projection of that
#     tensor alone, warm, by both backends, for scale.
if [[ " $BACKENDS " == *" jit "* ]]; then
    say "compile latency"
    LATENCY=$RESULTS/latency.tsv
    : >"$LATENCY"
    n=0
    for spec in "$ROWS" 'l1 over dim1 of linf over dim0' \
        'l1 over dim0 of linf over dim1 of linf over dim2' 'l1 over dim0 of l1 over dim1' \
        'l1 over dim1 of l1 over dim0' 'l1 over dim0 of l2 over dim1'; do
        n=$((n + 1))
        shape=362x362
        [[ $spec == *dim2 ]] && shape=52x52x52
        printf '%s\t%s\t%s\n' "lat$n" "$spec" "$shape" >>"$LATENCY"
        for k in 1 2 3 4 5; do
            record "$RESULTS/lat$n.cold$k.json" env MULTIPROJ_KERNEL_CACHE=off "$BIN" bench \
                "$spec" --shape "$shape" --zero-frac 0.5 --warmup 0 --repeat 1 --json --backend jit
        done
        for k in 0 1 2 3 4 5; do # run 0 fills the cache
            record "$RESULTS/lat$n.disk$k.json" env MULTIPROJ_KERNEL_CACHE="$RESULTS/kernel-cache" \
                "$BIN" bench "$spec" --shape "$shape" --zero-frac 0.5 --warmup 0 --repeat 1 --json \
                --backend jit
        done
        for b in jit interp; do
            record "$RESULTS/lat$n.warm.$b.json" "$BIN" bench "$spec" --shape "$shape" \
                --zero-frac 0.5 --warmup "$WARMUP" --repeat "$REPEAT" --json --backend "$b"
        done
        "$PY" -c 'import json, sys
c = sorted(json.load(open(f"{sys.argv[1]}.cold{k}.json"))["stages"]["compile"] for k in range(1, 6))
d = sorted(json.load(open(f"{sys.argv[1]}.disk{k}.json"))["stages"]["compile"] for k in range(1, 6))
w = json.load(open(f"{sys.argv[1]}.warm.jit.json"))["median_ms"]
print(f"   cold compile median {c[2]:.3f} ms, from the disk cache {d[2]:.3f} ms, warm run {w:.3f} ms")' "$RESULTS/lat$n" >&2
    done
fi

# 6c. The main target, paired: the probe right before the projection in the same process
#     (`--probe-floor`), five times, so that each ratio to the floor has its own probe.
if [[ " $BACKENDS " == *" jit "* ]]; then
    say "paired probe and projection: $ROWS, ${LAST}x${LAST} f64"
    for k in 1 2 3 4 5; do
        record "$RESULTS/paired$k.json" "$BIN" bench "$ROWS" --shape "${LAST}x${LAST}" --dtype f64 \
            --zero-frac 0.5 --threads "$THREADS" --repeat "$REPEAT" --warmup "$WARMUP" \
            --probe-floor --json --backend jit
    done
fi

# The probe a third time: each rate of the floor is the median of the three runs.
say "bandwidth probe, third run"
record "$RESULTS/probe3.t$THREADS.json" "$BIN" bench --probe --size-mib "$PROBE_MIB" --threads "$THREADS" --repeat 7 --json
if [ "$THREADS" != 1 ]; then
    record "$RESULTS/probe3.t1.json" "$BIN" bench --probe --size-mib "$PROBE_MIB" --threads 1 --repeat 7 --json
fi
echo "$(loadavg)" >"$RESULTS/load.end"
cpu_busy >"$RESULTS/busy.end"

# 7. The report.
say "writing $OUT"
"$PY" bench/report.py --results "$RESULTS" --backends "$BACKENDS" --repeat "$REPEAT" \
    --warmup "$WARMUP" --threads "$THREADS" --out "$OUT" || die "bench/report.py failed"
say "done: $OUT"

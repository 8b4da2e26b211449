#!/usr/bin/env bash
# bench/profile.sh — where the instructions of a projection go, by callgrind.
#
# `perf` reports no cycle counts on this kind of virtual machine (`perf stat -e cycles true`
# says "not supported"), so the profile is an instruction count: `valgrind --tool=callgrind`,
# collecting only inside the projection (`--toggle-collect` on the executor's entry point, so
# that data generation and the radius search of `multiproj bench` are left out), one thread,
# small tensors (callgrind runs ~50× slower). Instruction counts are exact and repeatable
# whatever else the machine does; they say nothing of memory stalls, which the timed benchmarks
# (bench/compare.sh) cover. JIT-compiled code has no symbols: callgrind shows it as `???`
# addresses, summed here as "JIT kernels".
#
# For each case it prints the instructions per element of the tensor, split into: JIT kernels,
# the l1 threshold search (runtime/src/balls/), memset/memcpy, and everything else; and, for
# compilation, the instructions of compiling every kernel a spec needs. Writes the report to
# bench/profile.md (RECORD= to skip), which bench/report.py copies into BENCHMARKS.md.
#
# Usage: bench/profile.sh        (about a minute; needs valgrind and a release build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RECORD=${RECORD-bench/profile.md}
# Every run compiles: no kernels from the disk cache (see README, "Kernel cache").
export MULTIPROJ_KERNEL_CACHE=off
BIN=target/release/multiproj
OUTDIR=target/profile
command -v valgrind >/dev/null || { echo "profile.sh: valgrind is missing (Debian package valgrind)" >&2; exit 1; }
command -v callgrind_annotate >/dev/null || { echo "profile.sh: callgrind_annotate is missing" >&2; exit 1; }
cargo build --release >&2
mkdir -p "$OUTDIR"

# id | spec | shape | what to collect (a function glob) | label
CASES=(
    "rows|l1 over dim0 of linf over dim1|1024x1024|*Executor*::run|bi-level l1,∞ rows, 1024² f64, ~50% zero"
    "cols|l1 over dim1 of linf over dim0|1024x1024|*Executor*::run|bi-level l1,∞ columns, 1024² f64, ~50% zero"
    "l1l1|l1 over dim0 of l1 over dim1|1024x1024|*Executor*::run|l1,1 (innermost l1), 1024² f64, ~50% zero"
    "l1l2|l1 over dim0 of l2 over dim1|1024x1024|*Executor*::run|l1,2 (group lasso), 1024² f64, ~50% zero"
)
COMPILE=(
    "l1 over dim0 of linf over dim1"
    "l1 over dim1 of linf over dim0"
    "l1 over dim0 of l1 over dim1"
    "l1 over dim1 of l1 over dim0"
    "l1 over dim0 of l2 over dim1"
)

report=$OUTDIR/report.md
{
    echo "Instructions per element of the projection alone (\`valgrind --tool=callgrind\`, one"
    echo "thread, the timed runs of \`multiproj bench SPEC --shape S --zero-frac 0.5 --threads 1"
    echo "--warmup 1 --repeat 2\`, collected inside the executor only, averaged over the 3 runs)."
    echo "JIT kernels have no symbols and are counted as such; the first run also compiles the"
    echo "kernels, counted apart (Cranelift and the translator) and left out of the total."
    echo
    echo "| case | total / element | JIT kernels | l1 threshold search | memset, memcpy | other | compiling (once) |"
    echo "|---|---|---|---|---|---|---|"
} >"$report"

for c in "${CASES[@]}"; do
    IFS='|' read -r id spec shape glob label <<<"$c"
    out=$OUTDIR/$id.callgrind
    valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="$glob" \
        "$BIN" bench "$spec" --shape "$shape" --zero-frac 0.5 --threads 1 --warmup 1 --repeat 2 \
        >/dev/null 2>"$OUTDIR/$id.log"
    callgrind_annotate --threshold=100 --auto=no "$out" >"$OUTDIR/$id.txt" 2>/dev/null
    python3 - "$OUTDIR/$id.txt" "$shape" "$label" >>"$report" <<'PYEOF'
import re, sys
text, shape, label = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
elements = 1
for n in shape.split("x"):
    elements *= int(n)
runs = 3  # one warm-up and two timed runs
total = jit = l1 = mem = comp = 0
for line in text.splitlines():
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
    if not m:
        continue
    n, where = int(m.group(1).replace(",", "")), m.group(2)
    if "PROGRAM TOTALS" in where:
        total = n
        continue
    if where.startswith("???:0x"):
        jit += n
    elif "balls::" in where:
        l1 += n
    elif "memset" in where or "memmove" in where or "memcpy" in where:
        mem += n
    elif any(k in where for k in ("cranelift", "regalloc2", "codegen::", "translate::")):
        comp += n
if total == 0:
    # The toggle glob matched no function (a rename or an inlining): say so, never print zeros.
    sys.exit(f"profile.sh: callgrind collected nothing for {label}: check the function glob")
per = lambda n: n / runs / elements
other = total - jit - l1 - mem - comp
print(f"| {label} | {per(total - comp):.1f} | {per(jit):.1f} | {per(l1):.1f} | {per(mem):.1f} | "
      f"{per(other):.1f} | {comp / 1e6:.1f} M |")
PYEOF
done

{
    echo
    echo "Compiling: instructions of \`Jit::kernel\` (translation to CLIF, Cranelift's"
    echo "compilation, code emission) for every kernel a fresh process's first projection runs"
    echo "(reduce, apply out of place, and the gather of the threshold for an innermost l1), on a"
    echo "64×64 f64 tensor at ~50% zero groups."
    echo
    echo "| spec | instructions compiling |"
    echo "|---|---|"
} >>"$report"
for spec in "${COMPILE[@]}"; do
    out=$OUTDIR/compile.callgrind
    n=$(valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*codegen::Jit::kernel*' \
        "$BIN" bench "$spec" --shape 64x64 --zero-frac 0.5 --warmup 0 --repeat 1 2>&1 >/dev/null \
        | awk '/Collected/ {print $NF}')
    printf '| `%s` | %s |\n' "$spec" "$n" >>"$report"
done

cat "$report"
if [ -n "$RECORD" ]; then
    {
        echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/profile.sh\` ($(valgrind --version))."
        echo
        cat "$report"
    } >"$RECORD"
    echo "profile.sh: wrote $RECORD" >&2
fi

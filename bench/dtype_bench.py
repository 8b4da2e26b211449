#!/usr/bin/env python3
"""Every element type against its own bandwidth floor: f64, f32, f16 and bf16.

    python bench/dtype_bench.py [--multiproj target/release/multiproj] [--threads 1,2] [--quick]
                                [--out FILE]

Needs a release build of the `multiproj` binary (nothing else: `multiproj bench` generates the
data). For each two-level spec with rows or columns as groups, each dtype, out of place and in
place, and each thread count of --threads (default 1), it runs `multiproj bench SPEC --shape S
--dtype D --radius-frac 0.1 --threads T --probe-floor --json` in rounds that visit the dtypes in a rotating order (so that every dtype
sees the same states of a shared machine), and reports the median over the rounds of:
the projection's median time, the floor (the bytes the passes must move, at the bandwidth the
probe measured in the same call: 2 bytes per element for f16 and bf16), their ratio, and the
time of each stage.

The targets of the performance issue: at most 1.15× the floor for every row and column spec,
every dtype, in and out of place; 2× for an innermost l1 at about half zero groups.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = [
    ("rows, linf", "l1 over dim0 of linf over dim1"),
    ("columns, linf", "l1 over dim1 of linf over dim0"),
    ("rows, l2", "l1 over dim0 of l2 over dim1"),
    ("columns, l2", "l1 over dim1 of l2 over dim0"),
    ("rows, l1", "l1 over dim0 of l1 over dim1"),
]
DTYPES = ["f64", "f32", "f16", "bf16"]


def run(binary, spec, shape, dtype, in_place, repeat, threads):
    cmd = [binary, "bench", spec, "--shape", shape, "--dtype", dtype, "--radius-frac", "0.1",
           "--threads", str(threads), "--repeat", str(repeat), "--warmup", "1", "--probe-floor",
           "--json"]
    if in_place:
        cmd.append("--in-place")
    env = dict(os.environ, MULTIPROJ_KERNEL_CACHE="off")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--multiproj", default=os.path.join(ROOT, "target", "release", "multiproj"))
    ap.add_argument("--shapes", default="4096x4096")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1", help="comma-separated thread counts")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="1024x1024, 1 round, 3 repeats")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "dtype_bench.md"))
    args = ap.parse_args()
    if args.quick:
        args.shapes, args.rounds, args.repeat = "1024x1024", 1, 3

    rows = []
    threads = [int(t) for t in args.threads.split(",")]
    cases = [(shape, name, spec, in_place, t)
             for shape in args.shapes.split(",")
             for name, spec in SPECS
             for in_place in (False, True)
             for t in threads]
    for shape, name, spec, in_place, t in cases:
        got = {d: [] for d in DTYPES}
        for r in range(args.rounds):
            order = DTYPES[r % len(DTYPES):] + DTYPES[:r % len(DTYPES)]
            for d in order:
                got[d].append(run(args.multiproj, spec, shape, d, in_place, args.repeat, t))
        for d in DTYPES:
            runs = got[d]
            med = statistics.median(x["median_ms"] for x in runs)
            floor = statistics.median(x["floor_ms"] for x in runs)
            stages = {}
            for k in runs[0]["stages"]:
                v = statistics.median(x["stages"].get(k, 0.0) for x in runs)
                if v >= 0.05:
                    stages[k] = v
            rows.append((shape, name, spec, "in place" if in_place else "out of place",
                         t, d, med, floor, med / floor, stages))
            print(rows[-1][:9], file=sys.stderr)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Recorded {now}, `python3 bench/dtype_bench.py --threads {args.threads}"
        f"{' --quick' if args.quick else ''}` "
        f"({args.rounds} rounds visiting the dtypes in rotating order, `multiproj bench "
        f"--repeat {args.repeat} --warmup 1 --radius-frac 0.1 --threads T --probe-floor`; "
        "medians over the rounds; each floor from the probe at the same thread count):",
        "",
        "| shape | groups | spec | mode | threads | dtype | ms | floor ms | ratio | stages (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for shape, name, spec, mode, t, d, med, floor, ratio, stages in rows:
        st = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        lines.append(f"| {shape} | {name} | `{spec}` | {mode} | {t} | {d} | {med:.2f} | "
                     f"{floor:.2f} | {ratio:.2f}× | {st} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compare two builds of `multiproj` on the same cases, as ratios from one run.

    bench/compare_builds.py OLD_BINARY NEW_BINARY [--rounds 5] [--repeat 7] [--quick]
                            [--only CASE ...] [--out FILE]

For every case it runs `multiproj bench ... --json` with the old and the new binary in
alternation (old, new, old, new, ... for --rounds rounds), so that both see the same state of a
shared, noisy machine; each run reports the median of --repeat timed projections (after a
warm-up). The table gives, per case, the median over rounds of each build's medians and the
ratio new / old, with the spread of the per-round ratios (min..max). A ratio within the spread
of 1.0 is noise. Also checks that both builds chose the same radius and left the same group
counts, so the comparison is between equal computations.
"""

import argparse
import json
import statistics
import subprocess
import sys

ROWS = "l1 over dim0 of linf over dim1"

CASES = [
    # id, spec, shape, dtype, zero fraction, extra flags
    ("tiny-64x48", ROWS, "64x48", "f64", 0.5, []),
    ("rows-1024-f64", ROWS, "1024x1024", "f64", 0.5, []),
    ("rows-4096-f64-0.5", ROWS, "4096x4096", "f64", 0.5, []),
    ("rows-4096-f64-0.95", ROWS, "4096x4096", "f64", 0.95, []),
    ("rows-4096-f32", ROWS, "4096x4096", "f32", 0.5, []),
    ("cols-4096", "l1 over dim1 of linf over dim0", "4096x4096", "f64", 0.5, []),
    ("tri-128", "l1 over dim0 of linf over dim1 of linf over dim2", "128x128x128", "f64", 0.5, []),
    ("l1l1-4096", "l1 over dim0 of l1 over dim1", "4096x4096", "f64", 0.5, []),
    ("l1l1-cols-2048", "l1 over dim1 of l1 over dim0", "2048x2048", "f64", 0.5, []),
    ("l1l2-4096", "l1 over dim0 of l2 over dim1", "4096x4096", "f64", 0.5, []),
    ("inplace-4096", ROWS, "4096x4096", "f64", 0.95, ["--in-place"]),
]

QUICK = {"tiny-64x48", "rows-1024-f64", "cols-4096", "l1l1-4096"}


def run(binary, case, repeat):
    _, spec, shape, dtype, zero, extra = case
    cmd = [binary, "bench", spec, "--shape", shape, "--dtype", dtype, "--zero-frac", str(zero),
           "--repeat", str(repeat), "--warmup", "2", "--json", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="+", metavar="CASE", help="run only these cases")
    ap.add_argument("--out", help="also write the table (Markdown) to this file")
    args = ap.parse_args()

    lines = [
        "| case | old ms | new ms | new / old | per-round ratios |",
        "|---|---:|---:|---:|---|",
    ]
    worst = 0.0
    for case in CASES:
        if args.quick and case[0] not in QUICK:
            continue
        if args.only and case[0] not in args.only:
            continue
        old, new, ratios = [], [], []
        for _ in range(args.rounds):
            a = run(args.old, case, args.repeat)
            b = run(args.new, case, args.repeat)
            for key in ("radius", "zero_groups", "untouched", "projected"):
                if a[key] != b[key]:
                    sys.exit(f"{case[0]}: the builds differ in {key}: {a[key]} vs {b[key]}")
            old.append(a["median_ms"])
            new.append(b["median_ms"])
            ratios.append(b["median_ms"] / a["median_ms"])
        mo, mn, mr = statistics.median(old), statistics.median(new), statistics.median(ratios)
        worst = max(worst, mr)
        line = (f"| {case[0]} | {mo:.3f} | {mn:.3f} | {mr:.3f} | "
                f"{min(ratios):.3f}..{max(ratios):.3f} |")
        lines.append(line)
        print(line, flush=True)
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    print(f"largest median ratio new/old: {worst:.3f}")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

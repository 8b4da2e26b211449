#!/usr/bin/env python3
"""The exact l1,∞ projection against multiproj's own bi-level (multi-level) projection.

    python bench/exact_bench.py [--multiproj target/release/multiproj] [--quick] [--out FILE]

Needs NumPy (to write the data) and a release build of the `multiproj` binary. Measures, each
as a ratio of medians from one run of this script (both projections on the same data, in
alternating rounds, so that both see the same state of a shared machine):

1. The issue's grid: 4096² and 10⁴×10⁴ f64, Gaussian and uniform(0, 1) data, radius 0.01, 0.1
   and 0.5 × the norm, 1 and 2 threads: `multiproj bench 'exact l1 over dim0 of linf over dim1'
   --input` against the same without `exact`. Also what each zeroes (`multiproj compare`).
2. The paper authors' timing protocol: 1000×m for m = 1000…8000, f64, uniform(0, 1), radius 1.
3. How the cost grows with the number of active groups: 4096² Gaussian, radii from 1e-4 to
   0.9 × the norm, with the rows each projection keeps and the entries the exact solve gathers.

Every time is `multiproj bench`'s median of its timed runs (projection only, output allocated
beforehand), then the median over the rounds.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

MULTI = "l1 over dim0 of linf over dim1"
EXACT = "exact " + MULTI
# The groups as the columns of C-order data (feature selection on a (out, in) weight).
MULTI_COLUMNS = "l1 over dim1 of linf over dim0"
EXACT_COLUMNS = "exact " + MULTI_COLUMNS


def bench(binary, spec, path, threads, repeat, radius=None, frac=None):
    """(median ms, exact-solve ms or None) of `multiproj bench SPEC --input PATH`."""
    cmd = [binary, "bench", spec, "--input", path, "--threads", str(threads),
           "--repeat", str(repeat), "--warmup", "1"]
    cmd += ["--radius", repr(radius)] if radius is not None else ["--radius-frac", repr(frac)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    median = float(re.search(r"median ([0-9.]+) ms", out).group(1))
    solve = re.search(r"exact-solve ([0-9.]+) ms", out)
    return median, float(solve.group(1)) if solve else None


def alternate(binary, path, threads, rounds, repeat, radius=None, frac=None, columns=False):
    """Medians over `rounds` alternating rounds: (multi ms, exact ms, exact-solve ms)."""
    multi, exact = (MULTI_COLUMNS, EXACT_COLUMNS) if columns else (MULTI, EXACT)
    m, e, s = [], [], []
    for _ in range(rounds):
        m.append(bench(binary, multi, path, threads, repeat, radius, frac)[0])
        t, solve = bench(binary, exact, path, threads, repeat, radius, frac)
        e.append(t)
        s.append(solve)
    return statistics.median(m), statistics.median(e), statistics.median(s)


def compare(binary, path, radius=None, frac=None):
    cmd = [binary, "compare", MULTI, path, "--json"]
    cmd += ["--radius", repr(radius)] if radius is not None else ["--radius-frac", repr(frac)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def gathered(binary, path, frac):
    out = os.path.join(os.path.dirname(path), "out.npy")
    cmd = [binary, "project", EXACT, path, "--radius-frac", repr(frac), "-o", out, "--json"]
    j = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    os.remove(out)
    return j["exact"]["gathered"]


def data(kind, shape, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal(shape)
    return rng.random(shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--multiproj", default="target/release/multiproj")
    ap.add_argument("--quick", action="store_true", help="smaller shapes, fewer rounds")
    ap.add_argument("--out", default=None, help="write the Markdown report here too")
    args = ap.parse_args()
    binary = args.multiproj
    rounds, repeat = (1, 3) if args.quick else (3, 5)
    shapes = [(1024, 1024)] if args.quick else [(4096, 4096), (10000, 10000)]
    authors = [1000, 2000] if args.quick else list(range(1000, 9000, 1000))
    tmp = tempfile.mkdtemp(prefix="multiproj-exact-")
    lines = []
    say = lambda s="": (print(s, flush=True), lines.append(s))

    say(f"Recorded {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, `python3 bench/exact_bench.py"
        f"{' --quick' if args.quick else ''}` ({rounds} alternating rounds of `multiproj bench "
        f"--repeat {repeat} --warmup 1` per cell; NumPy writes the data: `standard_normal` or "
        f"`random`, seed 1).")
    say()
    say("### Exact l1,∞ against the bi-level projection")
    say()
    say("| shape | data | radius | threads | bi-level ms | exact ms | exact-solve ms | ratio | zero rows bi-level / exact |")
    say("|---|---|---|---|---|---|---|---|---|")
    worst = []
    for shape in shapes:
        for kind in ("gaussian", "uniform(0,1)"):
            path = os.path.join(tmp, "y.npy")
            np.save(path, data(kind, shape))
            for frac in (0.01, 0.1, 0.5):
                c = compare(binary, path, frac=frac)
                zeros = f"{c['multi_level']['zeroed']} / {c['exact']['zeroed']}"
                for threads in (1, 2):
                    m, e, s = alternate(binary, path, threads, rounds, repeat, frac=frac)
                    worst.append(e / m)
                    say(f"| {shape[0]}×{shape[1]} | {kind} | {frac} × norm | {threads} | {m:.1f} | "
                        f"{e:.1f} | {s:.1f} | {e / m:.2f}× | {zeros} |")
            os.remove(path)
    say()
    say(f"Ratio exact / bi-level: median {statistics.median(worst):.2f}×, largest {max(worst):.2f}×.")
    say()
    shape = (1024, 1024) if args.quick else (4096, 4096)
    say(f"### Groups as columns: `{EXACT_COLUMNS}` against `{MULTI_COLUMNS}`, {shape[0]}×{shape[1]}")
    say()
    say("| data | radius | threads | bi-level ms | exact ms | exact-solve ms | ratio |")
    say("|---|---|---|---|---|---|---|")
    columns = []
    for kind in ("gaussian", "uniform(0,1)"):
        path = os.path.join(tmp, "y.npy")
        np.save(path, data(kind, shape))
        for frac in (0.01, 0.1, 0.5):
            for threads in (1, 2):
                m, e, s = alternate(binary, path, threads, rounds, repeat, frac=frac, columns=True)
                columns.append(e / m)
                say(f"| {kind} | {frac} × norm | {threads} | {m:.1f} | {e:.1f} | {s:.1f} | {e / m:.2f}× |")
        os.remove(path)
    say()
    say(f"Ratio exact / bi-level, columns: median {statistics.median(columns):.2f}×, "
        f"largest {max(columns):.2f}×.")
    say()
    say("### The authors' protocol: 1000×m, uniform(0, 1), radius 1, f64, 2 threads")
    say()
    say("| m | bi-level ms | exact ms | ratio |")
    say("|---|---|---|---|")
    for m_cols in authors:
        path = os.path.join(tmp, "a.npy")
        np.save(path, data("uniform(0,1)", (1000, m_cols), seed=m_cols))
        m, e, _ = alternate(binary, path, 2, rounds, repeat, radius=1.0)
        say(f"| {m_cols} | {m:.2f} | {e:.2f} | {e / m:.2f}× |")
        os.remove(path)
    say()
    shape = (1024, 1024) if args.quick else (4096, 4096)
    say(f"### Cost against the number of active rows: {shape[0]}×{shape[1]} Gaussian, 1 thread")
    say()
    say("| radius | rows kept bi-level | rows kept exact | entries gathered | bi-level ms | exact ms | ratio |")
    say("|---|---|---|---|---|---|---|")
    path = os.path.join(tmp, "c.npy")
    np.save(path, data("gaussian", shape))
    for frac in (1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.2, 0.5, 0.9):
        c = compare(binary, path, frac=frac)
        k = gathered(binary, path, frac)
        m, e, _ = alternate(binary, path, 1, rounds, repeat, frac=frac)
        say(f"| {frac} × norm | {c['multi_level']['survivors']} | {c['exact']['survivors']} | {k} | "
            f"{m:.1f} | {e:.1f} | {e / m:.2f}× |")
    os.remove(path)
    os.rmdir(tmp)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())

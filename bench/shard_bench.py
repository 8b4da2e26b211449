#!/usr/bin/env python3
"""Sharded projections over MPI: what they communicate, what each phase costs for P = 1, 2, 4
processes on this machine, and a model that extrapolates to P = 1,024.

    bench/shard_bench.py [--quick] [--out bench/shard_bench.md]

Builds `examples/shard_mpi.rs` (release, feature `mpi`) and runs it under `mpirun`:
- `bench SPEC ROWS COLS AXIS REPEAT`: the phases of a sharded projection (median of REPEAT
  runs; the slowest process's total and time inside collectives), the bytes each process
  sends and receives, and the number of collectives;
- `collectives`: the time of an all-reduce (sum, done as a reduce and a broadcast) and of an
  all-gather of n doubles, n = 1 … 2^20, from which the latency α and the time per byte β of
  this machine's MPI are fitted.

The model (per projection, per process, one process per node, with P processes):
    T(P) = c · N / P                       the local passes (reduce, threshold, apply) over N/P
                                           elements, c measured at P = 1
         + s · G                           the solve, on all G group norms, on every process
         + C(P)                            the collectives
with, for groups whole on each process (the shard axis indexes groups), one all-gather of
G norms in all — a ring: (P − 1)·α + (P − 1)/P · 8G·β — and, for groups split across processes,
one all-reduce of G norms — a reduce and a broadcast, binomial trees: 2·⌈log2 P⌉·(α + 8G·β) —
plus about ten all-reduces of one number (the layout, the scales, the agreement flags):
10 · 2⌈log2 P⌉·α. Two sets of (α, β): this machine's (shared memory, fitted here) and a cluster's
(α = 2 µs, β = 1 / (12 GB/s): the MPI latency and bandwidth of 100 Gb/s EDR InfiniBand as its
vendors and the OSU micro-benchmarks report them — an assumption, not measured here).
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(ROOT, "target", "release", "examples", "shard_mpi")

CASES = [
    # (title, spec, axis): rows are the groups; axis 0 keeps them whole, axis 1 splits them.
    ("whole groups (rows, sharded by rows)", "l1 over dim0 of linf over dim1", 0),
    ("split groups, linf (sharded by columns)", "l1 over dim0 of linf over dim1", 1),
    ("split groups, l1 (sharded by columns)", "l1 over dim0 of l1 over dim1", 1),
]

CLUSTER = {"alpha": 2e-6, "beta": 1 / 12e9}


def mpirun(p, args):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               RAYON_NUM_THREADS="1")
    out = subprocess.run(["mpirun", "--oversubscribe", "-n", str(p), EXE] + args, env=env,
                         check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def fit(points):
    """Least-squares (α, β) of t = α + β·bytes over the points (bytes, t)."""
    n = len(points)
    mx = sum(b for b, _ in points) / n
    my = sum(t for _, t in points) / n
    sxx = sum((b - mx) ** 2 for b, _ in points)
    beta = sum((b - mx) * (t - my) for b, t in points) / sxx
    return max(my - beta * mx, 0.0), beta


def model(case, c, s, rows, cols, p, net):
    """Predicted seconds per projection and process for a rows × cols tensor on p processes."""
    n = rows * cols
    g = rows  # the groups are the rows in every case here
    a, b = net["alpha"], net["beta"]
    logp = math.ceil(math.log2(p)) if p > 1 else 0
    small = 10 * 2 * logp * a
    if case == 0:
        coll = (p - 1) * a + (p - 1) / p * 8 * g * b
    else:
        coll = 2 * logp * (a + 8 * g * b)
    return c * n / p + s * g + coll + small, c * n / p, s * g, coll + small


def fmt_ms(t):
    return f"{1e3 * t:.3g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "shard_bench.md"))
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--features", "mpi", "--example", "shard_mpi"],
                   cwd=ROOT, check=True)
    rows, cols, repeat = (1024, 1024, 3) if args.quick else (4096, 4096, 9)
    procs = (1, 2) if args.quick else (1, 2, 4)
    load_start = os.getloadavg()
    runs = []
    for i, (title, spec, axis) in enumerate(CASES):
        for p in procs:
            (r,) = mpirun(p, ["bench", spec, str(rows), str(cols), str(axis), str(repeat)])
            r["case"] = i
            runs.append(r)
            print(title, p, r, file=sys.stderr)
    coll = {p: mpirun(p, ["collectives"]) for p in procs if p > 1}
    load_end = os.getloadavg()

    # This machine's α, β from the all-reduces on 2 processes (a reduce and a broadcast: two
    # messages of the buffer in sequence).
    pts = [(8 * c["doubles"], c["all_reduce_sum"] / 2) for c in coll[min(coll)]]
    alpha, beta = fit(pts)
    local = {"alpha": alpha, "beta": beta}

    out = []
    w = out.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(f"Recorded {now}, `bench/shard_bench.py{' --quick' if args.quick else ''}`: "
      f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Open MPI "
      f"(`mpirun --oversubscribe`, one rayon thread per process), a {rows}×{cols} f64 tensor "
      f"({rows * cols * 8 / 2**20:.0f} MiB) of uniform(−1, 1) values split evenly, radius 0.1 × "
      f"its norm, medians of {repeat} runs. Load average {load_start[0]:.2f} at the start, "
      f"{load_end[0]:.2f} at the end. With P > 2 the processes share 2 cores: times per "
      "process then measure the machine, not the method; the bytes do not depend on it.\n")
    w("### What is communicated\n")
    w("| case | P | collectives | bytes sent / process | bytes received / process | "
      "tensor bytes | received / tensor |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        if r["processes"] == 1:
            continue
        w(f"| {CASES[r['case']][0]} | {r['processes']} | {r['collectives']} | "
          f"{r['bytes_sent_max']:,.0f} | {r['bytes_received_max']:,.0f} | "
          f"{r['tensor_bytes']:,} | {r['bytes_received_max'] / r['tensor_bytes']:.1e} |")
    w("")
    w("### Time per phase (ms; rank 0's phases, the slowest process's total)\n")
    w("| case | P | reduce | combine + solve | threshold | apply | total | inside collectives |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        st = r["stages_rank0"]
        w(f"| {CASES[r['case']][0]} | {r['processes']} | {fmt_ms(st.get('reduce', 0))} | "
          f"{fmt_ms(st.get('solve', 0))} | {fmt_ms(st.get('threshold', 0))} | "
          f"{fmt_ms(st.get('apply', 0))} | {fmt_ms(r['total'])} | {fmt_ms(r['comm'])} |")
    w("")
    w("The time inside collectives includes waiting for the slowest process at each of them "
      "(with 2 cores for P = 4, that is most of it).\n")
    w("### This machine's collectives\n")
    w("| P | doubles | all-reduce (sum) µs | all-gather µs |")
    w("|---:|---:|---:|---:|")
    for p, cs in coll.items():
        for c in cs:
            w(f"| {p} | {c['doubles']:,} | {1e6 * c['all_reduce_sum']:.3g} | "
              f"{1e6 * c['all_gather']:.3g} |")
    w("")
    w(f"Fitted on the 2-process all-reduces (a reduce and a broadcast, so half of each time per "
      f"message): α = {1e6 * alpha:.2g} µs, β = {beta * 1e9:.3g} ns/byte "
      f"({1 / beta / 1e9:.2g} GB/s) — shared memory.\n")

    # The model's constants from P = 1: local passes per element, solve per group.
    w("### The model, extrapolated to P = 1,024\n")
    one = {r["case"]: r for r in runs if r["processes"] == 1}
    consts = {}
    for i in one:
        st = one[i]["stages_rank0"]
        passes = st.get("reduce", 0) + st.get("threshold", 0) + st.get("apply", 0)
        consts[i] = (passes / (rows * cols), st.get("solve", 0) / rows)
    w("Constants measured at P = 1 (4096² here): local passes c (ns per element) and the solve "
      "s (ns per group):\n")
    for i, (c, s) in consts.items():
        w(f"- {CASES[i][0]}: c = {1e9 * c:.3g} ns, s = {1e9 * s:.3g} ns")
    w("")
    w(f"Network: the cluster assumption (α = {1e6 * CLUSTER['alpha']:.0f} µs, 1/β = "
      f"{1 / CLUSTER['beta'] / 1e9:.0f} GB/s).\n")
    for title, shape_of in [
        ("Weak scaling: 4096 × 4096 f64 (128 MiB) per process; the rows (groups) grow with P",
         lambda p: (4096 * p, 4096)),
        ("Strong scaling: 65,536 × 65,536 f64 (32 GiB) in all", lambda p: (65536, 65536)),
    ]:
        w(f"**{title}** — predicted ms per projection (local passes / solve / collectives):\n")
        w("| P | " + " | ".join(CASES[i][0] for i in consts) + " |")
        w("|---:|" + "---:|" * len(consts))
        for p in (1, 4, 16, 64, 256, 1024):
            rr, cc = shape_of(p)
            cells = []
            for i, (c, s) in consts.items():
                t, tl, ts, tc = model(0 if i == 0 else 1, c, s, rr, cc, p, CLUSTER)
                cells.append(f"{fmt_ms(t)} ({fmt_ms(tl)} / {fmt_ms(ts)} / {fmt_ms(tc)})")
            w(f"| {p} | " + " | ".join(cells) + " |")
        w("")
    w("**Where it breaks down.** Weak scaling: the local passes stay constant, but every process "
      "receives and solves all G = 4096·P group norms — at P = 1,024, 4 M norms: 32 MiB "
      "gathered and an O(G) solve per projection, the same order as the 128 MiB of local "
      "passes; beyond that the replicated solve and the all-gather dominate (a distributed "
      "solve — a threshold search over all-reduces, as for split l1 groups — would keep it "
      "O(log P)). Strong scaling: the local passes shrink as 1/P while the solve and the "
      "collectives stay O(G) = O(65,536) per process: from about P = 256 the projection is "
      "bound by them, and past that adding processes no longer helps. Split groups pay a "
      "reduce and a broadcast of all G norms (2⌈log2 P⌉ messages of 8G bytes in this tree "
      "model; a pipelined or ring all-reduce would be about 2 · 8G bytes, independent of P). "
      "Not modelled: load imbalance, network contention, and the Newton steps of split l1 "
      "groups (one all-reduce of 2 numbers per shrinking group each, about 5–20 steps).")
    w("")
    w("**A gap.** The threshold of split l1 groups is the slow phase: its local passes (a "
      "filtered copy of each shrinking group's magnitudes above Michelot's first threshold, "
      "then one branch-free pass per Newton step over the candidates left) cost about 10 ns "
      "per element, against about 0.65 ns for the JIT-compiled reduce and apply — they are "
      "plain Rust over generic views, not compiled kernels, and the first copy is most of it. "
      "Groups whole on each process, and linf or l2 groups split across processes, do not have "
      "this phase.")
    w("")
    with open(args.out, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

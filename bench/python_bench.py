#!/usr/bin/env python3
"""The Python package's costs, measured against the Rust library and against PyTorch.

    python bench/python_bench.py [--multiproj target/release/multiproj] [--quick] [--out FILE]

Run it with the Python that has the package installed (`scripts/test-all.sh` builds one in
target/py-venv). It measures, as medians of many timed calls after a warm-up:

1. Call overhead on a 64x64 f64 array: `P.project_(w, radius=r)` from Python against the Rust
   library's own projection of the same data (`multiproj bench --input ... --in-place`, which
   times `Executor::project_in_place` alone), in alternating rounds. Target: at most 5 µs above
   the Rust call.
2. 8192x8192 f64 in place from Python against the Rust library on the same data and radius
   (`multiproj bench --input` on a file holding the same array, in alternating rounds).
   Target: within 5 %.
3. The bi-level l1,∞ projection of the same tensors three ways: multiproj, a vectorized torch
   implementation written the obvious way (row maxima, a sort-based l1 projection of them,
   `torch.clamp` with per-row bounds), and the same with a Python loop over the rows (how the
   paper authors' PyTorch helper is written). Skipped without torch.

Every comparison is a ratio from one run of this script on one machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import multiproj as mp

ROWS = "l1 over dim0 of linf over dim1"


def median_time(f, repeat, setup=None):
    """Median seconds of `repeat` calls of f() (setup() before each, untimed)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def alternate(args, P, w, base, r, calls):
    """Median seconds of `calls` in-place projections of `w` (restored from `base`, untimed)
    from Python, and of the Rust library on the same data and radius — `multiproj bench
    --input`, which reads the array into memory once and times `Executor::project_in_place` on
    a fresh copy per run — in alternating rounds, so that both see the same state of a shared
    machine. Returns the per-round medians of each side."""
    path = os.path.join(tempfile.mkdtemp(prefix="multiproj-bench-"), "w.npy")
    np.save(path, base)
    pys, rss = [], []
    for _ in range(args.rounds):
        pys.append(median_time(lambda: P.project_(w, radius=r), calls, lambda: np.copyto(w, base)))
        out = subprocess.run(
            [args.multiproj, "bench", ROWS, "--input", path, "--radius", repr(r), "--in-place",
             "--repeat", str(calls), "--warmup", "3", "--json"],
            check=True, capture_output=True, text=True).stdout
        rss.append(json.loads(out)["median_ms"] / 1e3)
    os.remove(path)
    return pys, rss


def torch_vectorized(torch, w, radius):
    """Bi-level l1,inf, the obvious torch way: row maxima, their l1 projection, clamp."""
    v = w.abs().amax(dim=1)
    if v.sum() <= radius:
        return w.clone()
    s, _ = torch.sort(v, descending=True)
    cs = torch.cumsum(s, 0)
    k = torch.arange(1, len(s) + 1, dtype=w.dtype)
    tau_all = (cs - radius) / k
    rho = int(torch.nonzero(s > tau_all).max())
    tau = tau_all[rho]
    u = torch.clamp(v - tau, min=0.0)
    return torch.maximum(torch.minimum(w, u[:, None]), -u[:, None])


def torch_loop(torch, w, radius):
    """The same with a Python loop over the rows for the clipping (one row at a time)."""
    v = torch.stack([row.abs().max() for row in w])
    if v.sum() <= radius:
        return w.clone()
    s, _ = torch.sort(v, descending=True)
    cs = torch.cumsum(s, 0)
    k = torch.arange(1, len(s) + 1, dtype=w.dtype)
    tau_all = (cs - radius) / k
    rho = int(torch.nonzero(s > tau_all).max())
    tau = tau_all[rho]
    out = torch.empty_like(w)
    for i in range(w.shape[0]):
        u = max(float(v[i] - tau), 0.0)
        out[i] = torch.clamp(w[i], -u, u)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--multiproj", default="target/release/multiproj")
    ap.add_argument("--quick", action="store_true", help="2048x2048 instead of 8192x8192")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds of the large case")
    ap.add_argument("--out", help="also write the results (Markdown) to this file")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    lines = []

    def say(line):
        print(line, flush=True)
        lines.append(line)

    P = mp.Projection(ROWS)

    # 1. Call overhead, 64x64.
    w = rng.uniform(-1, 1, (64, 64))
    r = 0.3 * P.norm(w)
    base = w.copy()
    # Alternating rounds (the time of one small call varies from process to process on these
    # machines): the difference is the median of the per-round differences.
    pys, rss = alternate(args, P, w, base, r, calls=2001)
    diffs = sorted(p - q for p, q in zip(pys, rss))
    say("| measure | Python | Rust library | difference |")
    say("|---|---:|---:|---:|")
    say(f"| 64x64 f64 in place, per call | {statistics.median(pys) * 1e6:.2f} µs | "
        f"{statistics.median(rss) * 1e6:.2f} µs | {statistics.median(diffs) * 1e6:+.2f} µs "
        f"(rounds: {diffs[0] * 1e6:+.2f} to {diffs[-1] * 1e6:+.2f}) |")

    # 2. A large tensor in place.
    n = 2048 if args.quick else 8192
    w = rng.uniform(-1, 1, (n, n))
    r = 0.3 * P.norm(w)
    base = w.copy()
    # The difference is the median of the per-round ratios (see `alternate`).
    pys, rss = alternate(args, P, w, base, r, calls=5)
    ratios = sorted(p / q for p, q in zip(pys, rss))
    py, rs = statistics.median(pys), statistics.median(rss)
    say(f"| {n}x{n} f64 in place | {py * 1e3:.2f} ms | {rs * 1e3:.2f} ms | "
        f"{(statistics.median(ratios) - 1) * 100:+.1f} % (rounds: "
        f"{(ratios[0] - 1) * 100:+.1f} to {(ratios[-1] - 1) * 100:+.1f} %) |")

    # 3. Against torch.
    try:
        import torch
    except ImportError:
        say("\n(torch is not installed: the torch comparison is skipped)")
        torch = None
    if torch is not None:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        say("")
        say("| bi-level l1,∞ rows, f64, radius 0.3 × norm | time | vs multiproj |")
        say("|---|---:|---:|")
        for m in ([1024, 4096] if not args.quick else [1024]):
            w = rng.uniform(-1, 1, (m, m))
            r = 0.3 * P.norm(w)
            t = torch.from_numpy(w.copy())
            ours = median_time(lambda: P.project(w, radius=r), 7)
            expected = P.project(w, radius=r)
            got = torch_vectorized(torch, t, r).numpy()
            assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), "torch_vectorized differs"
            vec = median_time(lambda: torch_vectorized(torch, t, r), 7)
            loop = median_time(lambda: torch_loop(torch, t, r), 3)
            say(f"| {m}x{m} multiproj `P.project` | {ours * 1e3:.2f} ms | 1.0 |")
            say(f"| {m}x{m} torch, vectorized | {vec * 1e3:.2f} ms | {vec / ours:.1f}× |")
            say(f"| {m}x{m} torch, loop over rows | {loop * 1e3:.2f} ms | {loop / ours:.1f}× |")

    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Vectorized NumPy implementations of the projections `bench/compare.sh` times, written the way
a user would write them by hand, timed the way `multiproj bench` times itself.

Only the specs the benchmark uses are implemented (see SPECS). The top level is always l1: the
vector of group norms is projected onto the l1 ball by sorting (the textbook method, what users
write in NumPy), then every group is clipped (linf), scaled (l2) or soft-thresholded (l1, one
sort per shrunk group, vectorized over the groups) with its radius.

Data: NumPy generates its own tensor of the same shape and the same distribution as
`multiproj bench` (uniform(-1, 1) times a per-group scale uniform in (0, 1]) with its own
generator (numpy.random.default_rng(seed)), so the numbers differ but the statistics match; the
radius is the same fraction of the data's norm as in the multiproj run.

    numpy_ref.py run --spec SPEC --shape 4096x4096 [--dtype f64|f32] --radius-frac F
                     [--repeat 5] [--warmup 1] [--seed 1] [--in-place]   # one JSON object
    numpy_ref.py check --multiproj target/release/multiproj [--backend interp ...]

`check` projects small tensors with NumPy and with `multiproj project` (read back with NumPy) and
fails unless they agree to a relative difference below 1e-9, so that both sides of the comparison
compute the same projection.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def proj_l1_sorted(v, r):
    """Euclidean projection of the non-negative vector v onto the l1 ball of radius r, by
    sorting. Identity inside the ball, zeros for r = 0."""
    if v.sum() <= r:
        return v.copy()
    if r <= 0:
        return np.zeros_like(v)
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, u.size + 1)
    rho = np.nonzero(u * k > css - r)[0][-1]
    tau = (css[rho] - r) / (rho + 1)
    return np.maximum(v - tau, 0.0)


def shrink_rows_l1(a, radii):
    """Soft-thresholds every row of `a` onto the l1 ball of its radius (all radii > 0 and below
    the row's l1 norm): one sort per row, vectorized over the rows."""
    m, n = a.shape
    mag = np.abs(a)
    s = -np.sort(-mag, axis=1)
    css = np.cumsum(s, axis=1, dtype=np.float64)
    k = np.arange(1, n + 1)
    cond = s * k > css - radii[:, None]
    rho = n - 1 - np.argmax(cond[:, ::-1], axis=1)
    tau = (css[np.arange(m), rho] - radii) / (rho + 1)
    return np.sign(a) * np.maximum(mag - tau[:, None].astype(a.dtype), 0)


# Aggregate axes (the innermost level's axes) and broadcast shape of per-group values, by spec.
def _rows_linf(x):
    return np.maximum(x.max(axis=1), -x.min(axis=1)).astype(np.float64)


def l1inf_rows(x, r, out):
    v = _rows_linf(x)
    u = proj_l1_sorted(v, r)
    uu = u.astype(x.dtype)[:, None]
    np.clip(x, -uu, uu, out=out)
    return v, u


def l1inf_cols(x, r, out):
    v = np.maximum(x.max(axis=0), -x.min(axis=0)).astype(np.float64)
    u = proj_l1_sorted(v, r)
    uu = u.astype(x.dtype)[None, :]
    np.clip(x, -uu, uu, out=out)
    return v, u


def l1inf_3d(x, r, out):
    v = np.maximum(x.max(axis=(1, 2)), -x.min(axis=(1, 2))).astype(np.float64)
    u = proj_l1_sorted(v, r)
    uu = u.astype(x.dtype)[:, None, None]
    np.clip(x, -uu, uu, out=out)
    return v, u


def l1l2_rows(x, r, out):
    v = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    u = proj_l1_sorted(v, r)
    f = np.where(v > u, u / np.where(v > 0, v, 1.0), 1.0).astype(x.dtype)
    np.multiply(x, f[:, None], out=out)
    return v, u


def l1l1_rows(x, r, out):
    v = np.abs(x).sum(axis=1, dtype=np.float64)
    u = proj_l1_sorted(v, r)
    out[...] = x
    out[u == 0] = 0
    shrink = np.nonzero((u > 0) & (u < v))[0]
    if shrink.size:
        out[shrink] = shrink_rows_l1(x[shrink], u[shrink])
    return v, u


# spec (canonical spelling) -> (implementation, rank, axis the group scales run along)
SPECS = {
    "l1 over dim0 of linf over dim1": (l1inf_rows, 2, 0),
    "l1 over dim1 of linf over dim0": (l1inf_cols, 2, 1),
    "l1 over dim0 of linf over dim1 of linf over dim2": (l1inf_3d, 3, 0),
    "l1 over dim0 of l2 over dim1": (l1l2_rows, 2, 0),
    "l1 over dim0 of l1 over dim1": (l1l1_rows, 2, 0),
}


def canonical(spec):
    return " ".join(spec.split())


def lookup(spec):
    key = canonical(spec)
    if key not in SPECS:
        sys.exit(
            f"numpy_ref.py: no NumPy implementation of '{spec}'; implemented: "
            + "; ".join(SPECS)
        )
    return SPECS[key]


def make_data(shape, dtype, group_axis, seed):
    """uniform(-1, 1) times a per-group scale uniform in (0, 1], the groups running along
    `group_axis`."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=shape)
    scales = 1.0 - rng.uniform(0.0, 1.0, size=shape[group_axis])
    bshape = [1] * len(shape)
    bshape[group_axis] = shape[group_axis]
    x *= scales.reshape(bshape)
    return x.astype(dtype, copy=False) if dtype != np.float64 else x


def parse_shape(text):
    return tuple(int(p) for p in text.lower().split("x"))


def cmd_run(args):
    impl, rank, group_axis = lookup(args.spec)
    shape = parse_shape(args.shape)
    if len(shape) != rank:
        sys.exit(f"numpy_ref.py: '{args.spec}' needs a rank-{rank} shape, not {args.shape}")
    dtype = np.float32 if args.dtype == "f32" else np.float64
    x = make_data(shape, dtype, group_axis, args.seed)
    out = np.empty_like(x)
    out[...] = 0  # touch the pages before timing
    # The norm, once: the implementation's aggregates at radius ∞ (nothing is projected).
    v, _ = impl(x, np.inf, out)
    norm = float(v.sum())
    radius = args.radius_frac * norm
    times = []
    for i in range(args.warmup + args.repeat):
        if args.in_place:
            # A fresh copy each run (untimed), projected onto itself.
            np.copyto(out, x)
            t0 = time.perf_counter()
            v, u = impl(out, radius, out)
        else:
            t0 = time.perf_counter()
            v, u = impl(x, radius, out)
        t = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(t * 1e3)
    zero = int((u == 0).sum())
    result = {
        "spec": canonical(args.spec),
        "shape": list(shape),
        "dtype": args.dtype,
        "backend": "numpy",
        "numpy": np.__version__,
        "threads": 1,
        "in_place": args.in_place,
        "seed": args.seed,
        "data": "uniform(-1,1) × per-group scale uniform(0,1], numpy.random.default_rng",
        "radius": radius,
        "norm": norm,
        "radius_frac": args.radius_frac,
        "groups": int(v.size),
        "zero_groups": zero,
        "untouched": int((u >= v).sum()),
        "repeat": args.repeat,
        "times_ms": times,
        "median_ms": float(np.median(times)),
        "min_ms": min(times),
        "max_ms": max(times),
        "ns_per_element": float(np.median(times)) * 1e6 / x.size,
    }
    print(json.dumps(result))


CHECK_SHAPES = {
    "l1 over dim0 of linf over dim1": (64, 48),
    "l1 over dim1 of linf over dim0": (48, 64),
    "l1 over dim0 of linf over dim1 of linf over dim2": (16, 12, 10),
    "l1 over dim0 of l2 over dim1": (64, 48),
    "l1 over dim0 of l1 over dim1": (64, 48),
}


def cmd_check(args):
    worst = 0.0
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for spec, shape in CHECK_SHAPES.items():
            impl, _, group_axis = SPECS[spec]
            for order in ("C", "F"):
                x = make_data(shape, np.float64, group_axis, 7)
                if order == "F":
                    x = np.asfortranarray(x)
                out = np.empty_like(x)
                v, _ = impl(x, np.inf, out)
                for frac in (0.05, 0.3, 1.5):
                    radius = frac * float(v.sum())
                    expected = np.empty_like(x)
                    impl(x, radius, expected)
                    src = os.path.join(tmp, "in.npy")
                    np.save(src, x)
                    for backend in args.backend:
                        dst = os.path.join(tmp, f"out-{backend}.npy")
                        cmd = [args.multiproj, "project", spec, src, "--radius", repr(radius),
                               "--output", dst, "--backend", backend]
                        proc = subprocess.run(cmd, capture_output=True, text=True)
                        if proc.returncode != 0:
                            print(f"check FAILED: {' '.join(cmd)}\n{proc.stderr}")
                            failed = True
                            continue
                        got = np.load(dst)
                        scale = max(float(np.abs(expected).max()), 1e-300)
                        rel = float(np.abs(got - expected).max()) / scale
                        worst = max(worst, rel)
                        ok = rel < 1e-9 and got.shape == expected.shape
                        failed |= not ok
                        print(f"check {'ok  ' if ok else 'FAIL'} {backend:6} {spec:50} "
                              f"{'x'.join(map(str, shape)):9} {order} radius {frac:4}×norm: "
                              f"max relative difference {rel:.1e}")
    print(f"numpy_ref.py check: {'FAILED' if failed else 'all agree'} "
          f"(largest relative difference {worst:.1e}, limit 1e-9)")
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="time one projection; prints one JSON object")
    r.add_argument("--spec", required=True)
    r.add_argument("--shape", required=True)
    r.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    r.add_argument("--radius-frac", type=float, required=True)
    r.add_argument("--repeat", type=int, default=5)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--in-place", action="store_true",
                   help="project a fresh copy onto itself each run (copy untimed)")
    c = sub.add_parser("check", help="compare with `multiproj project` on small tensors")
    c.add_argument("--multiproj", required=True, help="path of the multiproj binary")
    c.add_argument("--backend", action="append", default=None,
                   help="backend(s) to check (repeatable; default interp)")
    args = p.parse_args()
    if args.command == "run":
        cmd_run(args)
        return 0
    if args.backend is None:
        args.backend = ["interp"]
    return cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())

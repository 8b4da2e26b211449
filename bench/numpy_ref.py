#!/usr/bin/env python3
"""Vectorized NumPy implementations of the projections `bench/compare.sh` times, in two styles,
timed the way `multiproj bench` times itself.

Only the specs the benchmark uses are implemented (see SPECS). The top level is always l1: the
vector of group norms is projected onto the l1 ball by sorting (the textbook method, what users
write in NumPy), then every group is clipped (linf), scaled (l2) or soft-thresholded (l1) with
its radius. Both styles are single-threaded and vectorized over the groups (no Python loop over
groups); they differ in how the group norms and the apply are written:

  tuned     what a careful NumPy programmer writes: no |x| temporary (max and -min for the linf
            norms, `np.clip(x, -u, u, out=out)` for the apply, an einsum for the l2 norms), and
            the l1,1 soft threshold (one sort per group) only on the groups the projection
            shrinks: zeroed groups are filled with zeros and untouched ones copied. Within a
            small factor of the memory-bandwidth floor itself on large tensors.
  textbook  the formulas of the paper authors' published code (Perez & Barlaud), vectorized:
            norms as `abs(x).max()` per group (l2: `sqrt((x * x).sum())`, l1: `abs(x).sum()`),
            the apply as `minimum(abs(x), u) * sign(x)` (l2: `x * (u / n)` where n > u; l1: the
            sort-based soft threshold of every group, zeroed and untouched groups included, the
            formulas giving zeros at radius 0 and the identity at radius >= norm). Full-size
            temporaries for |x|, sign(x) and the clipped magnitudes (l2: x * x; l1: the sorted
            magnitudes and their cumulative sums).

Data: NumPy generates its own tensor of the same shape and the same distribution as
`multiproj bench` (uniform(-1, 1) times a per-group scale uniform in (0, 1]) with its own
generator (numpy.random.default_rng(seed)), so the numbers differ but the statistics match; the
radius is the same fraction of the data's norm as in the multiproj run.

    numpy_ref.py run --spec SPEC --shape 4096x4096 [--dtype f64|f32] --radius-frac F
                     [--style tuned|textbook] [--repeat 5] [--warmup 1] [--seed 1] [--in-place]
                     # prints one JSON object
    numpy_ref.py check --multiproj target/release/multiproj [--backend interp ...]

`check` projects small tensors with both styles and with `multiproj project` (read back with
NumPy) and fails unless every style agrees with every backend to a relative difference below
1e-9, so that both sides of the comparison compute the same projection.
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


# The tuned style. Aggregate axes (the innermost level's axes) and broadcast shape of per-group
# values, by spec.
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


# The textbook style: the paper's formulas, vectorized over the groups. The group norms go to
# the l1 projection in f64 (as in the tuned style), the radii come back in the tensor's dtype.
def textbook_l1inf_rows(x, r, out):
    a = np.abs(x)
    v = a.max(axis=1).astype(np.float64)
    u = proj_l1_sorted(v, r)
    np.multiply(np.minimum(a, u.astype(x.dtype)[:, None]), np.sign(x), out=out)
    return v, u


def textbook_l1inf_cols(x, r, out):
    a = np.abs(x)
    v = a.max(axis=0).astype(np.float64)
    u = proj_l1_sorted(v, r)
    np.multiply(np.minimum(a, u.astype(x.dtype)[None, :]), np.sign(x), out=out)
    return v, u


def textbook_l1inf_3d(x, r, out):
    a = np.abs(x)
    v = a.max(axis=(1, 2)).astype(np.float64)
    u = proj_l1_sorted(v, r)
    np.multiply(np.minimum(a, u.astype(x.dtype)[:, None, None]), np.sign(x), out=out)
    return v, u


def textbook_l1l2_rows(x, r, out):
    v = np.sqrt((x * x).sum(axis=1)).astype(np.float64)
    u = proj_l1_sorted(v, r)
    # u / n where n > u, 1 elsewhere (n > u > 0 or n > u = 0: never a division by zero).
    f = np.divide(u, v, out=np.ones_like(v), where=v > u)
    np.multiply(x, f.astype(x.dtype)[:, None], out=out)
    return v, u


def textbook_l1l1_rows(x, r, out):
    a = np.abs(x)
    v = a.sum(axis=1).astype(np.float64)
    u = proj_l1_sorted(v, r)
    # The sort-based l1-ball projection of every row onto its radius, all rows at once.
    n = x.shape[1]
    s = -np.sort(-a, axis=1)
    css = np.cumsum(s, axis=1)
    k = np.arange(1, n + 1)
    cond = s * k > css - u[:, None]
    # The largest entry always counts (true by itself when u > 0; at u = 0 it makes tau the
    # row's max |x|, so the row goes to zero).
    cond[:, 0] = True
    rho = n - 1 - np.argmax(cond[:, ::-1], axis=1)
    # A row inside its ball keeps tau = 0, the identity (the textbook's early return, here a
    # mask: the cumulative sum of the sorted row can exceed its norm v by an ulp).
    tau = np.where(u >= v, 0.0, (css[np.arange(x.shape[0]), rho] - u) / (rho + 1))
    np.multiply(np.maximum(a - tau.astype(x.dtype)[:, None], 0), np.sign(x), out=out)
    return v, u


STYLES = ("tuned", "textbook")

# spec (canonical spelling) -> ({style: implementation}, rank, axis the group scales run along)
SPECS = {
    "l1 over dim0 of linf over dim1": (
        {"tuned": l1inf_rows, "textbook": textbook_l1inf_rows}, 2, 0),
    "l1 over dim1 of linf over dim0": (
        {"tuned": l1inf_cols, "textbook": textbook_l1inf_cols}, 2, 1),
    "l1 over dim0 of linf over dim1 of linf over dim2": (
        {"tuned": l1inf_3d, "textbook": textbook_l1inf_3d}, 3, 0),
    "l1 over dim0 of l2 over dim1": (
        {"tuned": l1l2_rows, "textbook": textbook_l1l2_rows}, 2, 0),
    "l1 over dim0 of l1 over dim1": (
        {"tuned": l1l1_rows, "textbook": textbook_l1l1_rows}, 2, 0),
}


def canonical(spec):
    return " ".join(spec.split())


def lookup(spec, style):
    """(implementation, rank, group axis) of `spec` in `style`."""
    key = canonical(spec)
    if key not in SPECS:
        sys.exit(
            f"numpy_ref.py: no NumPy implementation of '{spec}'; implemented: "
            + "; ".join(SPECS)
        )
    impls, rank, group_axis = SPECS[key]
    return impls[style], rank, group_axis


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
    impl, rank, group_axis = lookup(args.spec, args.style)
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
        "style": args.style,
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
    worst = {style: 0.0 for style in STYLES}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for spec, shape in CHECK_SHAPES.items():
            impls, _, group_axis = SPECS[spec]
            for order in ("C", "F"):
                x = make_data(shape, np.float64, group_axis, 7)
                if order == "F":
                    x = np.asfortranarray(x)
                out = np.empty_like(x)
                v, _ = impls["tuned"](x, np.inf, out)
                for frac in (0.05, 0.3, 1.5):
                    radius = frac * float(v.sum())
                    expected = {}
                    for style in STYLES:
                        expected[style] = np.empty_like(x)
                        impls[style](x, radius, expected[style])
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
                        for style in STYLES:
                            want = expected[style]
                            ok = got.shape == want.shape
                            rel = float("inf")
                            if ok:
                                scale = max(float(np.abs(want).max()), 1e-300)
                                rel = float(np.abs(got - want).max()) / scale
                            worst[style] = max(worst[style], rel)
                            ok = ok and rel < 1e-9
                            failed |= not ok
                            print(f"check {'ok  ' if ok else 'FAIL'} {style:8} {backend:6} "
                                  f"{spec:50} {'x'.join(map(str, shape)):9} {order} radius "
                                  f"{frac:4}×norm: max relative difference {rel:.1e}")
    print(f"numpy_ref.py check: {'FAILED' if failed else 'all agree'}, styles "
          + " and ".join(STYLES) + " (largest relative difference "
          + ", ".join(f"{style} {worst[style]:.1e}" for style in STYLES) + "; limit 1e-9)")
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="time one projection; prints one JSON object")
    r.add_argument("--spec", required=True)
    r.add_argument("--shape", required=True)
    r.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    r.add_argument("--radius-frac", type=float, required=True)
    r.add_argument("--style", choices=STYLES, default="tuned",
                   help="tuned (default) or textbook (the paper's formulas, vectorized)")
    r.add_argument("--repeat", type=int, default=5)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--in-place", action="store_true",
                   help="project a fresh copy onto itself each run (copy untimed)")
    c = sub.add_parser("check", help="compare both styles with `multiproj project` on small "
                       "tensors")
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

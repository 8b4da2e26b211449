#!/usr/bin/env python
"""Tri-level vs bi-level projections of a small CNN's first convolution on 3-channel images
(issue 14, the seed's third experiment).

A small convolutional classifier (conv 3 -> 16, 5x5 -> ReLU -> max-pool -> conv 16 -> 32, 3x3 ->
ReLU -> global max-pool -> linear) is trained on a generated RGB image set. After every
optimizer step the first convolution's kernels (torch shape (out, in, kh, kw)) are projected
onto a ball; a filter (out channel) that the projection sets entirely to zero is removed, and
so is a (filter, input-channel) kernel. Then the network is retrained with the zeroed weights
held at zero (the "double descent" schedule), through ``multiproj.torch.ProjectedOptimizer``
and ``freeze_zeros()``.

Methods, at a sweep of radii eta (fractions of the norm of the densely trained first-layer
kernels, each measured in the method's own norm):

    none               no projection (dense baseline)
    bilevel l1,inf     l1 over dim0 of linf over dims1..              (removes filters)
    trilevel l1,inf,inf  l1 over dim0 of linf over dim1 of linf over dims2..3: the same as the
                       bi-level one (linf of linf is linf; multiproj merges the two levels),
                       kept as a row that shows it
    trilevel l1,1,inf  l1 over dim0 of l1 over dim1 of linf over dims2..3 (removes filters and,
                       inside the surviving ones, single (filter, channel) kernels)
    trilevel l1,2,inf  l1 over dim0 of l2 over dim1 of linf over dims2..3
    kernels l1,inf     l1 over dims0..1 of linf over dims2..3: the bi-level projection with the
                       (filter, channel) kernels as groups; the same norm as l1,1,inf, another
                       projection onto the same ball

Run from the repository root::

    python examples/sae/cnn.py            # the full experiment, writes docs/sae/
    python examples/sae/cnn.py --fast     # a smoke run on tiny data, writes to a temp dir

Outputs: DIR/cnn.md (tables), DIR/cnn.json (every run's numbers) and
DIR/cnn_accuracy_vs_sparsity.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import multiproj
import multiproj.torch as mpt
import numpy as np
import torch
from torch import nn

# The image classes: a bar of one orientation in one colour channel. Class c is a horizontal
# (c even) or vertical (c odd) bar in channel CLASS_CHANNELS[c // 2]; the blue channel holds a
# bar of random orientation that says nothing about the class (a distractor), so its kernels
# are unnecessary, and so are most of the 16 filters.
CLASS_CHANNELS = (0, 1)
CLASSES = 2 * len(CLASS_CHANNELS)
BAR = 7  # bar length in pixels

BILEVEL = "l1 over dim0 of linf over dims1.."
# name -> spec; None: no projection.
SPECS: dict[str, str | None] = {
    "none": None,
    "bilevel l1,inf": BILEVEL,
    "trilevel l1,inf,inf": "l1 over dim0 of linf over dim1 of linf over dims2..3",
    "trilevel l1,1,inf": "l1 over dim0 of l1 over dim1 of linf over dims2..3",
    "trilevel l1,2,inf": "l1 over dim0 of l2 over dim1 of linf over dims2..3",
    "kernels l1,inf": "l1 over dims0..1 of linf over dims2..3",
}
METHODS = list(SPECS)
# Short names for the command line (--methods bilevel,tri11,tri12).
ALIASES = {
    "none": "none",
    "bilevel": "bilevel l1,inf",
    "triinf": "trilevel l1,inf,inf",
    "tri11": "trilevel l1,1,inf",
    "tri12": "trilevel l1,2,inf",
    "kernels": "kernels l1,inf",
}
TOL = 1e-6  # the constraint holds if norm(w) <= radius * (1 + TOL)


@dataclasses.dataclass
class Config:
    train: int = 1500  # training images per repeat
    test: int = 1000  # test images per repeat
    size: int = 16  # images are size x size, 3 channels
    noise: float = 0.5  # sd of the Gaussian pixel noise (the bars have amplitude ~1)
    filters: int = 16  # out channels of the first convolution (the projected one)
    filters2: int = 32  # out channels of the second convolution
    repeats: int = 4  # independent repeats: data, initial weights and batch order
    epochs: int = 12  # per phase: E epochs with the projection, then E epochs of retraining
    batch: int = 32
    lr: float = 2e-3
    step_size: int = 6  # StepLR: the learning rate is multiplied by gamma every step_size epochs
    gamma: float = 0.5
    etas: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4)
    methods: tuple[str, ...] = tuple(METHODS)
    seed: int = 0
    fast: bool = False
    notes: tuple[str, ...] = ()


def fast_config() -> Config:
    """Tiny data for a smoke run (and the test): seconds on one core."""
    return Config(
        train=400, test=200, repeats=2, epochs=3, step_size=2, lr=5e-3, etas=(0.05, 0.2), fast=True
    )


# --- data --------------------------------------------------------------------------------------


def make_dataset(cfg: Config, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 3, size, size) and their classes: Gaussian noise, a class bar (horizontal
    or vertical, in the red or the green channel, at a random place, amplitude 0.7 to 1.3) and
    a distractor bar of random orientation in the blue channel."""
    rng = np.random.default_rng(seed)
    s = cfg.size
    y = rng.integers(0, CLASSES, n)
    x = rng.normal(0.0, cfg.noise, (n, 3, s, s)).astype(np.float32)

    def bars(channel: np.ndarray, horizontal: np.ndarray, amp: np.ndarray) -> None:
        line = rng.integers(2, s - 2, n)  # the row (horizontal) or column (vertical)
        start = rng.integers(0, s - BAR + 1, n)
        for i in range(n):
            run = slice(start[i], start[i] + BAR)
            if horizontal[i]:
                x[i, channel[i], line[i], run] += amp[i]
            else:
                x[i, channel[i], run, line[i]] += amp[i]

    bars(np.asarray(CLASS_CHANNELS)[y // 2], y % 2 == 0, rng.uniform(0.7, 1.3, n))
    bars(np.full(n, 2), rng.random(n) < 0.5, rng.uniform(0.7, 1.3, n))
    return x, y.astype(np.int64)


# --- the network -------------------------------------------------------------------------------


class CNN(nn.Module):
    """conv1 3 -> f1 (5x5, padding 2), ReLU, 2x2 max-pool, conv2 f1 -> f2 (3x3, padding 1),
    ReLU, global max-pool, linear f2 -> classes."""

    def __init__(self, filters: int, filters2: int, k: int = CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, filters, 5, padding=2)
        self.conv2 = nn.Conv2d(filters, filters2, 3, padding=1)
        self.fc = nn.Linear(filters2, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.relu(self.conv2(x))
        return self.fc(x.amax(dim=(2, 3)))


_CE = nn.CrossEntropyLoss()


class TimedProjectedOptimizer(mpt.ProjectedOptimizer):
    """ProjectedOptimizer that records the wall-clock time of every projection call (and the
    native time the Report measured), and checks every result against its constraint: the
    spec's norm of the projected weight <= radius * (1 + TOL). The check is timed apart (and
    left out of the training time)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.wall = 0.0
        self.native = 0.0
        self.max_ratio = 0.0  # the largest norm / radius over all projection results
        self.check_seconds = 0.0

    def project(self):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        reports = super().project()
        t1 = time.perf_counter()
        self.wall += t1 - t
        self.calls += 1
        self.native += sum(r.total_seconds for r in reports.values())
        for _, p in self.params:
            self.max_ratio = max(self.max_ratio, self.projection.norm(p) / self.radius)
        self.check_seconds += time.perf_counter() - t1
        return reports


def run_epochs(
    model: CNN,
    opt: Any,
    adam: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: Config,
    gen: torch.Generator,
) -> None:
    """One phase: cfg.epochs epochs of minibatch training, the learning rate reset to cfg.lr
    and decayed by a StepLR (step_size epochs, gamma)."""
    for g in adam.param_groups:
        g["lr"] = cfg.lr
        g["initial_lr"] = cfg.lr
    sched = torch.optim.lr_scheduler.StepLR(adam, step_size=cfg.step_size, gamma=cfg.gamma)
    n = x.shape[0]
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch):
            idx = perm[i : i + cfg.batch]
            opt.zero_grad()
            _CE(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()


@torch.no_grad()
def accuracy(model: CNN, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean())


def zero_filters(w: torch.Tensor) -> np.ndarray:
    """(out,) bool: the filters (out channels of conv1) that are entirely zero."""
    return (w.detach() == 0).flatten(1).all(dim=1).numpy()


def zero_kernels(w: torch.Tensor) -> np.ndarray:
    """(out, in) bool: the (filter, input channel) kh x kw kernels that are entirely zero."""
    return (w.detach() == 0).flatten(2).all(dim=2).numpy()


# --- one repeat --------------------------------------------------------------------------------


def _record(
    method: str,
    eta: float | None,
    radius: float | None,
    model: CNN,
    xte: torch.Tensor,
    yte: torch.Tensor,
    seconds: float,
    **extra: Any,
) -> dict[str, Any]:
    w = model.conv1.weight
    zk = zero_kernels(w)
    rec = {
        "method": method,
        "eta": eta,
        "radius": radius,
        "accuracy": accuracy(model, xte, yte),
        "filters_removed": float(zero_filters(w).mean()),
        "kernels_removed": float(zk.mean()),
        # per input channel: the share of the filters whose kernel on that channel is zero
        "kernels_removed_by_channel": [float(v) for v in zk.mean(axis=0)],
        "train_seconds": seconds,
        "proj_calls": 0,
        "proj_wall": 0.0,
        "proj_native": 0.0,
    }
    rec.update(extra)
    return rec


def run_repeat(cfg: Config, repeat: int, log=print) -> tuple[list[dict[str, Any]], np.ndarray]:
    """All methods at all radii on one draw of the data. Every model starts from the same
    initial weights and sees the same batches. Returns the records and the dense model's
    first-layer kernels after its first phase (the reference of the radii)."""
    seed = cfg.seed + 1000 * repeat
    xtr, ytr = make_dataset(cfg, cfg.train, seed)
    xte, yte = make_dataset(cfg, cfg.test, seed + 1)
    Xtr, Ytr = torch.from_numpy(xtr), torch.from_numpy(ytr)
    Xte, Yte = torch.from_numpy(xte), torch.from_numpy(yte)
    torch.manual_seed(seed + 2)
    init = CNN(cfg.filters, cfg.filters2).state_dict()
    records: list[dict[str, Any]] = []

    def fresh() -> CNN:
        m = CNN(cfg.filters, cfg.filters2)
        m.load_state_dict(init)
        return m

    def batches() -> torch.Generator:
        return torch.Generator().manual_seed(seed + 3)

    # Dense baseline: E epochs (whose conv1 kernels set the radii), then E more.
    model = fresh()
    adam = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = batches()
    t = time.perf_counter()
    run_epochs(model, adam, adam, Xtr, Ytr, cfg, gen)
    w_dense = model.conv1.weight.detach().clone()
    acc_half = accuracy(model, Xte, Yte)
    run_epochs(model, adam, adam, Xtr, Ytr, cfg, gen)
    records.append(
        _record(
            "none",
            None,
            None,
            model,
            Xte,
            Yte,
            time.perf_counter() - t,
            accuracy_after_projection=acc_half,
        )
    )
    log(f"    none: accuracy {records[-1]['accuracy']:.3f}")

    norms = {m: multiproj.Projection(s).norm(w_dense) for m, s in SPECS.items() if s}
    for eta in cfg.etas:
        for method, spec in SPECS.items():
            if spec is None or method not in cfg.methods:
                continue
            radius = eta * norms[method]
            model = fresh()
            adam = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            gen = batches()
            opt = TimedProjectedOptimizer(
                adam, {"conv1.weight": model.conv1.weight}, spec, radius=radius
            )
            t = time.perf_counter()
            run_epochs(model, opt, adam, Xtr, Ytr, cfg, gen)  # projects after every step
            w = model.conv1.weight.detach()
            # The constraint at the end of the projection phase (and over every call before).
            norm_end = opt.projection.norm(w)
            holds = norm_end <= radius * (1 + TOL) and opt.max_ratio <= 1 + TOL
            zf, zk = zero_filters(w), zero_kernels(w)
            acc_proj = accuracy(model, Xte, Yte)
            zeros = (w == 0).clone()
            opt.freeze_zeros()
            run_epochs(model, opt, adam, Xtr, Ytr, cfg, gen)
            seconds = time.perf_counter() - t - opt.check_seconds
            w = model.conv1.weight.detach()
            rec = _record(
                method,
                eta,
                radius,
                model,
                Xte,
                Yte,
                seconds,
                proj_calls=opt.calls,
                proj_wall=opt.wall,
                proj_native=opt.native,
                accuracy_after_projection=acc_proj,
                filters_removed_after_projection=float(zf.mean()),
                kernels_removed_after_projection=float(zk.mean()),
                norm_after_projection=norm_end,
                max_norm_ratio=opt.max_ratio,
                constraint_holds=bool(holds),
                norm_after_retraining=opt.projection.norm(w),
                zeros_held=bool((w[zeros] == 0).all()),
            )
            records.append(rec)
            log(
                f"    eta {eta:g} {method}: accuracy {rec['accuracy']:.3f}, "
                f"{100 * rec['filters_removed']:.0f}% filters and "
                f"{100 * rec['kernels_removed']:.0f}% kernels removed, "
                f"norm/radius {rec['max_norm_ratio']:.7f}"
            )
    return records, w_dense.numpy()


# --- the spec identities -----------------------------------------------------------------------


def _normalized(spec: str, shape: Sequence[int]) -> list[str]:
    """The 'normalized levels' lines of Projection.explain: the levels multiproj runs, and the
    rewriting rules that produced them."""
    text = multiproj.Projection(spec).explain(shape)
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("normalized levels:"):
            out.append(line.strip())
            for more in lines[i + 1 :]:
                if not more.strip() or more.startswith("=="):
                    break
                out.append(more.strip())
    return out


def spec_findings(cfg: Config, w_dense: np.ndarray) -> dict[str, Any]:
    """What multiproj makes of the tri-level specs: the normalized levels (from explain), and
    projections of a random tensor and of the dense kernels both ways."""
    shape = (cfg.filters, 3, 5, 5)
    rng = np.random.default_rng(cfg.seed)
    tensors = {
        "random N(0,1)": rng.normal(size=shape),
        "dense conv1 kernels": w_dense.astype(np.float64),
    }
    pairs = [("trilevel l1,inf,inf", "bilevel l1,inf"), ("trilevel l1,1,inf", "kernels l1,inf")]
    out: dict[str, Any] = {"normalized": {}, "pairs": []}
    for m, s in SPECS.items():
        if s:
            out["normalized"][m] = {"spec": s, "explain": _normalized(s, shape)}
    for a, b in pairs:
        pa = multiproj.Projection(SPECS[a])  # type: ignore[arg-type]
        pb = multiproj.Projection(SPECS[b])  # type: ignore[arg-type]
        for tname, x in tensors.items():
            for frac in (0.05, 0.2, 0.5):
                r = frac * pb.norm(x)
                ya, yb = pa.project(x, radius=r), pb.project(x, radius=r)
                out["pairs"].append(
                    {
                        "a": a,
                        "b": b,
                        "tensor": tname,
                        "eta": frac,
                        "norm_a": pa.norm(x),
                        "norm_b": pb.norm(x),
                        "max_abs_diff": float(np.abs(ya - yb).max()),
                        "bitwise_equal": bool(np.array_equal(ya, yb)),
                        "filters_removed": [
                            float(zero_filters(torch.from_numpy(v)).mean()) for v in (ya, yb)
                        ],
                        "kernels_removed": [
                            float(zero_kernels(torch.from_numpy(v)).mean()) for v in (ya, yb)
                        ],
                        "dist_to_x": [float(np.linalg.norm(v - x)) for v in (ya, yb)],
                    }
                )
    return out


# --- the experiment ----------------------------------------------------------------------------


def run(cfg: Config, log=print) -> dict[str, Any]:
    """Every repeat, method and radius. Returns {"config", "records", "findings", "seconds"};
    each record is one (method, eta, repeat)."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    records = []
    w_first: np.ndarray | None = None  # the first repeat's dense conv1 kernels
    for repeat in range(cfg.repeats):
        log(f"repeat {repeat + 1}/{cfg.repeats}")
        recs, w_dense = run_repeat(cfg, repeat, log)
        for rec in recs:
            rec["repeat"] = repeat
            records.append(rec)
        if w_first is None:
            w_first = w_dense
    assert w_first is not None, "at least one repeat"
    findings = spec_findings(cfg, w_first)
    findings["identical_runs"] = identical_runs(records, "trilevel l1,inf,inf", "bilevel l1,inf")
    return {
        "config": dataclasses.asdict(cfg),
        "records": records,
        "findings": findings,
        "seconds": time.perf_counter() - t0,
    }


_COMPARED = (
    "accuracy",
    "filters_removed",
    "kernels_removed",
    "norm_after_projection",
    "norm_after_retraining",
    "accuracy_after_projection",
)


def identical_runs(records: list[dict[str, Any]], a: str, b: str) -> bool | None:
    """Whether every run of method a gave exactly the numbers of the same run of method b
    (None if either did not run)."""
    ra = {(r["eta"], r["repeat"]): r for r in records if r["method"] == a}
    rb = {(r["eta"], r["repeat"]): r for r in records if r["method"] == b}
    if not ra or not rb:
        return None
    return all(k in rb and all(ra[k][f] == rb[k][f] for f in _COMPARED) for k in ra)


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, eta): means (and sd of accuracy) over repeats."""
    rows = []
    keys = []
    for r in records:
        key = (r["method"], r["eta"])
        if key not in keys:
            keys.append(key)
    order = {m: i for i, m in enumerate(METHODS)}
    keys.sort(key=lambda k: (-1 if k[1] is None else k[1], order[k[0]]))
    for method, eta in keys:
        rs = [r for r in records if r["method"] == method and r["eta"] == eta]
        acc, acc_sd = _mean_sd([r["accuracy"] for r in rs])
        calls = sum(r["proj_calls"] for r in rs)
        by_channel = np.mean([r["kernels_removed_by_channel"] for r in rs], axis=0)
        rows.append(
            {
                "method": method,
                "eta": eta,
                "radius": _mean_sd([r["radius"] for r in rs])[0]
                if rs[0]["radius"] is not None
                else None,
                "accuracy": acc,
                "accuracy_sd": acc_sd,
                "accuracy_after_projection": _mean_sd([r["accuracy_after_projection"] for r in rs])[
                    0
                ],
                "filters_removed": _mean_sd([r["filters_removed"] for r in rs])[0],
                "kernels_removed": _mean_sd([r["kernels_removed"] for r in rs])[0],
                "kernels_removed_by_channel": [float(v) for v in by_channel],
                "proj_ms": 1e3 * sum(r["proj_wall"] for r in rs) / calls if calls else None,
                "native_ms": 1e3 * sum(r["proj_native"] for r in rs) / calls if calls else None,
                "proj_share": sum(r["proj_wall"] for r in rs) / sum(r["train_seconds"] for r in rs),
                "train_seconds": _mean_sd([r["train_seconds"] for r in rs])[0],
                "max_norm_ratio": max((r.get("max_norm_ratio", 0.0) for r in rs), default=0.0),
                "constraint_holds": all(r.get("constraint_holds", True) for r in rs),
                "zeros_held": all(r.get("zeros_held", True) for r in rs),
            }
        )
    return rows


def _fmt(v: float | None, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def _findings_lines(result: dict[str, Any]) -> list[str]:
    f = result["findings"]
    lines = ["", "## What multiproj makes of the tri-level specs", ""]
    shape = (result["config"]["filters"], 3, 5, 5)
    lines.append(f"The normalized levels `Projection(spec).explain({shape})` reports:")
    lines.append("")
    for m, d in f["normalized"].items():
        lines.append(f"- {m}: `{d['spec']}` → " + "; ".join(f"`{s}`" for s in d["explain"]))
    lines.append("")
    lines.append(
        "So `linf over dim1 of linf over dims2..3` is `linf over dims1..3` (a max of maxes) and "
        "multiproj runs the tri-level l1,inf,inf spec as the bi-level one (rule merge-linf-linf): "
        "the projections are identical, not just close. The l1,1,inf spec is *not* merged into "
        "`l1 over dims0..1 of linf over dims2..3` although its norm is the same (a sum of sums): "
        "the multi-level projection first splits the radius among the filters, then each "
        "filter's share among its kernels, which is another point of the same ball (only the "
        "exact projection, which depends on the ball alone, merges them). Projections of the "
        "same tensor at the same radius (radius = η × its norm):"
    )
    lines += [
        "",
        "| spec a | spec b | tensor | η | norm a = norm b | max abs difference | bitwise equal "
        "| filters removed a / b | kernels removed a / b | distance to x a / b |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in f["pairs"]:
        lines.append(
            f"| {p['a']} | {p['b']} | {p['tensor']} | {p['eta']:g} "
            f"| {'yes' if math.isclose(p['norm_a'], p['norm_b'], rel_tol=1e-12) else 'NO'} "
            f"| {p['max_abs_diff']:.3g} | {'yes' if p['bitwise_equal'] else 'no'} "
            f"| {100 * p['filters_removed'][0]:.0f}% / {100 * p['filters_removed'][1]:.0f}% "
            f"| {100 * p['kernels_removed'][0]:.0f}% / {100 * p['kernels_removed'][1]:.0f}% "
            f"| {p['dist_to_x'][0]:.3f} / {p['dist_to_x'][1]:.3f} |"
        )
    same = f.get("identical_runs")
    if same is not None:
        lines += [
            "",
            "In training, every run of `trilevel l1,inf,inf` gave exactly the numbers of the same "
            "run of `bilevel l1,inf` (accuracy, removed filters and kernels, norms): "
            + ("**yes**." if same else "**no** (unexpected: see cnn.json)."),
        ]
    return lines


def write_markdown(result: dict[str, Any], path: str, extra_notes: Sequence[str] = ()) -> None:
    cfg = result["config"]
    records = result["records"]
    projected = [r for r in records if r["method"] != "none"]
    checks = sum(r["proj_calls"] for r in projected)
    all_hold = all(r["constraint_holds"] for r in projected)
    worst = max((r["max_norm_ratio"] for r in projected), default=float("nan"))
    lines = [
        "# Tri-level vs bi-level projection of a CNN's first convolution",
        "",
        "Generated by `python examples/sae/cnn.py"
        + (" --fast" if cfg["fast"] else "")
        + "` (issue 14: the tri-level case); "
        f"multiproj {multiproj.__version__}, torch {torch.__version__}, "
        f"{platform.machine()}, 1 torch thread. Total run time {result['seconds'] / 60:.1f} min.",
        "",
        f"- Data (generated, numpy, seeded): {cfg['size']}x{cfg['size']} RGB images, {CLASSES} "
        f"classes = a horizontal or vertical bar ({BAR} px, amplitude U(0.7, 1.3), random place) "
        "in the red or in the green channel; the blue channel holds a bar of random orientation "
        f"unrelated to the class (a distractor); Gaussian noise sd {cfg['noise']:g} on every "
        f"pixel. {cfg['train']} training and {cfg['test']} test images per repeat.",
        f"- {cfg['repeats']} repeats (seed {cfg['seed']}): each draws its own data, initial "
        "weights and batch order; within a repeat every method starts from the same weights and "
        "sees the same batches. The numbers are means over repeats (accuracy: mean ± sd).",
        f"- CNN: Conv2d(3, {cfg['filters']}, 5, padding 2) → ReLU → 2x2 max-pool → "
        f"Conv2d({cfg['filters']}, {cfg['filters2']}, 3, padding 1) → ReLU → global max-pool "
        f"→ Linear({cfg['filters2']}, {CLASSES}); cross-entropy; Adam lr {cfg['lr']:g}, batch "
        f"{cfg['batch']}, StepLR(step {cfg['step_size']} epochs, gamma {cfg['gamma']:g}) restarted "
        "for each phase.",
        f"- {cfg['epochs']} epochs with the projection of `conv1.weight` ({cfg['filters']}, 3, 5, "
        f"5) after every step, then {cfg['epochs']} epochs of retraining with the zeroed weights "
        f"held at zero (`ProjectedOptimizer.freeze_zeros()`). The baseline trains "
        f"{2 * cfg['epochs']} epochs densely. The conv1 bias is not projected (a removed filter "
        "outputs a constant).",
        "- η is a fraction of the norm of the densely trained conv1 kernels (the baseline after "
        "its first phase), each method in its own norm; `radius` is the mean absolute radius over "
        "repeats.",
        "- filters removed = share of conv1's out channels whose 3x5x5 weights are all zero; "
        "kernels removed = share of the (filter, input channel) 5x5 kernels that are all zero; "
        "the r/g/b column splits the latter by input channel (the blue one carries no class "
        "information). Accuracy after proj. = test accuracy at the end of the projection phase, "
        "before retraining.",
        "- Projection time: wall clock per call of `ProjectedOptimizer.project()` and, in "
        "parentheses, the native time the `Report` measured (`total_seconds`); share = projection "
        "wall time / training wall time (both phases).",
        f"- Constraint: after every projection call, and again at the end of the projection "
        f"phase, `Projection(spec).norm(conv1.weight)` ≤ radius·(1 + {TOL:g}). Checked on "
        f"{checks} projection results: "
        + ("**all hold**" if all_hold else "**SOME FAIL**")
        + f" (largest norm/radius {worst:.9f}). Retraining then leaves the ball (only the zeros "
        "are held): after it, norm/radius is "
        + (
            f"{min(r['norm_after_retraining'] / r['radius'] for r in projected):.2f} to "
            f"{max(r['norm_after_retraining'] / r['radius'] for r in projected):.2f}."
            if projected
            else "–."
        ),
    ]
    for note in list(cfg.get("notes", ())) + list(extra_notes):
        lines.append(f"- {note}")
    lines += [
        "",
        "## Results",
        "",
        f"Chance accuracy: {1 / CLASSES:.3f}.",
        "",
        "| method | η | radius | accuracy | accuracy after proj. | filters removed "
        "| kernels removed | kernels removed r/g/b | projection ms/call (native) "
        "| share of training time | constraint holds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summarize(records):
        proj = f"{r['proj_ms']:.4f} ({r['native_ms']:.4f})" if r["proj_ms"] is not None else "–"
        held = "" if r["zeros_held"] else " (zeros NOT held!)"
        holds = "–" if r["method"] == "none" else ("yes" if r["constraint_holds"] else "**NO**")
        by_ch = " / ".join(f"{100 * v:.0f}" for v in r["kernels_removed_by_channel"])
        lines.append(
            f"| {r['method']}{held} | {_fmt(r['eta'], 'g')} | {_fmt(r['radius'], '.4g')} "
            f"| {r['accuracy']:.3f} ± {r['accuracy_sd']:.3f} "
            f"| {r['accuracy_after_projection']:.3f} "
            f"| {100 * r['filters_removed']:.1f}% | {100 * r['kernels_removed']:.1f}% | {by_ch} "
            f"| {proj} | {100 * r['proj_share']:.2f}% | {holds} |"
        )
    lines += _findings_lines(result)
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize(result["records"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
    markers = {
        "bilevel l1,inf": "o",
        "trilevel l1,inf,inf": "x",
        "trilevel l1,1,inf": "^",
        "trilevel l1,2,inf": "v",
        "kernels l1,inf": "s",
    }
    # l1,inf,inf lands exactly on the bi-level points: crosses only (no line, no error bars)
    # over the bi-level circles.
    styles = {"trilevel l1,inf,inf": {"ls": "none", "ms": 7, "mew": 1.5, "color": "k", "zorder": 5}}
    labels = {"trilevel l1,inf,inf": "trilevel l1,inf,inf (= bilevel)"}
    for ax, key, label in (
        (axes[0][0], "filters_removed", "filters removed (% of conv1's out channels)"),
        (axes[0][1], "kernels_removed", "kernels removed (% of conv1's (filter, channel) kernels)"),
    ):
        for r in rows:
            if r["method"] == "none":
                ax.axhline(r["accuracy"], color="gray", ls="--", lw=1, label="none (dense)")
        for method in METHODS[1:]:
            rs = sorted(
                (r for r in rows if r["method"] == method), key=lambda r: (r[key], -r["eta"])
            )
            if not rs:
                continue
            ax.errorbar(
                [100 * r[key] for r in rs],
                [r["accuracy"] for r in rs],
                yerr=None if method in styles else [r["accuracy_sd"] for r in rs],
                marker=markers[method],
                capsize=3,
                label=labels.get(method, method),
                **styles.get(method, {}),
            )
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (after retraining)")
        ax.set_xlim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"CNN on {CLASSES}-class RGB bars: projecting conv1 {result['config']['filters']}x3x5x5, "
        f"{result['config']['repeats']} repeats",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out: str) -> None:
    os.makedirs(out, exist_ok=True)
    write_markdown(result, os.path.join(out, "cnn.md"))
    with open(os.path.join(out, "cnn.json"), "w") as f:
        json.dump(result, f, indent=1, default=float)
    plot(result, os.path.join(out, "cnn_accuracy_vs_sparsity.png"))


def _floats(s: str) -> tuple[float, ...]:
    return tuple(float(v) for v in s.split(",") if v)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, str]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true", help="tiny data, 2 repeats, 3+3 epochs, 2 radii")
    p.add_argument("--out", help="output directory (default docs/sae, or a temp dir with --fast)")
    p.add_argument("--epochs", type=int, help="epochs per phase (projection, then retraining)")
    p.add_argument("--batch", type=int, help="minibatch size")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--step-size", type=int, help="StepLR step (epochs)")
    p.add_argument("--gamma", type=float, help="StepLR factor")
    p.add_argument(
        "--etas", type=_floats, help="radii as fractions of the dense kernels' norm, e.g. 0.05,0.2"
    )
    p.add_argument("--train", type=int, help="training images per repeat")
    p.add_argument("--test", type=int, help="test images per repeat")
    p.add_argument("--noise", type=float, help="sd of the pixel noise")
    p.add_argument("--filters", type=int, help="out channels of the first convolution")
    p.add_argument("--repeats", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--methods", help="a subset of " + ",".join(ALIASES) + " (the dense baseline always runs)"
    )
    p.add_argument("--note", action="append", default=[], help="a line added to cnn.md")
    a = p.parse_args(argv)
    cfg = fast_config() if a.fast else Config()
    if a.methods is not None:
        unknown = set(a.methods.split(",")) - set(ALIASES)
        if unknown:
            p.error(f"unknown methods {sorted(unknown)}; choose from {','.join(ALIASES)}")
        a.methods = tuple(ALIASES[m] for m in a.methods.split(","))
    for field in (
        "epochs",
        "batch",
        "lr",
        "step_size",
        "gamma",
        "etas",
        "train",
        "test",
        "noise",
        "filters",
        "repeats",
        "seed",
        "methods",
    ):
        v = getattr(a, field)
        if v is not None:
            setattr(cfg, field, v)
    cfg.notes = tuple(a.note)
    out = a.out or (tempfile.mkdtemp(prefix="cnn-") if a.fast else os.path.join("docs", "sae"))
    return cfg, out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    torch.set_num_threads(1)
    cfg, out = parse_args(argv)
    result = run(cfg)
    write_outputs(result, out)
    print(
        f"wrote {out}/cnn.md, cnn.json, cnn_accuracy_vs_sparsity.png in {result['seconds']:.0f} s"
    )
    result["out"] = out
    return result


if __name__ == "__main__":
    main()

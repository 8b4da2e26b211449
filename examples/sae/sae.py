#!/usr/bin/env python
"""Sparse supervised autoencoders (SAE) with multi-level projections: feature selection on
synthetic data, after Perez & Barlaud (arXiv 2405.02086, 2407.16293).

A supervised autoencoder (encoder d -> 100 -> k whose code is the class logits, decoder
k -> 100 -> d) is trained with cross-entropy + lambda * Huber reconstruction. After every
optimizer step the first layer's weight (torch shape (100, d): input features are its
COLUMNS) is projected onto a ball; a column that the projection sets to zero removes an input
feature. Then the network is retrained with the zeroed weights held at zero (the "double
descent" schedule), through ``multiproj.torch.ProjectedOptimizer`` and ``freeze_zeros()``.

Methods, at a sweep of radii eta (fractions of the norm of the densely trained first-layer
weight, each measured in the method's own norm):

    none            no projection (dense baseline)
    bilevel l1,inf  l1 over dim1 of linf over dim0
    exact l1,inf    exact l1 over dim1 of linf over dim0
    l1,1            l1 over dim1 of l1 over dim0
    l1,2            l1 over dim1 of l2 over dim0
    prune           magnitude pruning of the dense model's columns (l2 norm), keeping as many
                    features as the bi-level projection kept at that eta, then retraining

Run from the repository root::

    python examples/sae/sae.py            # the full experiment, writes docs/sae/
    python examples/sae/sae.py --fast     # a smoke run on tiny data, writes to a temp dir

Outputs: DIR/results.md (tables), DIR/results.json (every fold's numbers) and
DIR/accuracy_vs_sparsity.png.
"""

from __future__ import annotations

import argparse
import copy
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
import torch.nn.utils.prune as torch_prune
from torch import nn

HIDDEN = 100

# name -> spec; None: no projection. "prune" is handled apart.
SPECS: dict[str, str | None] = {
    "none": None,
    "bilevel l1,inf": "l1 over dim1 of linf over dim0",
    "exact l1,inf": "exact l1 over dim1 of linf over dim0",
    "l1,1": "l1 over dim1 of l1 over dim0",
    "l1,2": "l1 over dim1 of l2 over dim0",
}
METHODS = list(SPECS) + ["prune"]
# Short names for the command line (--methods bilevel,exact,prune).
ALIASES = {"none": "none", "bilevel": "bilevel l1,inf", "exact": "exact l1,inf", "l11": "l1,1",
           "l12": "l1,2", "prune": "prune"}


@dataclasses.dataclass
class Config:
    samples: int = 1000
    features: int = 1000
    informative: tuple[int, ...] = (64, 16)
    # Real data sets that ship with scikit-learn (no download): see load_real.
    real: tuple[str, ...] = ("breast_cancer",)
    classes: int = 2
    # make_classification's n_clusters_per_class. With 1 the classes are (nearly) linearly
    # separable in the informative features alone and not in all of them (logistic regression:
    # about 0.92 on the informative features, 0.72 / 0.81 on all 1000 for 16 / 64 informative);
    # with scikit-learn's default of 2 the problem is XOR-like and no linear read-out of any
    # feature subset goes much above 0.63 / 0.78.
    clusters: int = 1
    folds: int = 4
    epochs: int = 30  # per phase: E epochs with the projection, then E epochs of retraining
    batch: int = 4
    lr: float = 5e-4
    lam: float = 5e-5
    step_size: int = 10  # StepLR: the learning rate is multiplied by gamma every step_size epochs
    gamma: float = 0.5
    etas: tuple[float, ...] = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
    methods: tuple[str, ...] = tuple(METHODS)
    seed: int = 0
    # "step": project after every optimizer step of the first phase (projected gradient);
    # "last": train the first phase densely and project once at its end (as the authors'
    # published SAE scripts do, run_model="ProjectionLastEpoch").
    schedule: str = "last"
    fast: bool = False
    notes: tuple[str, ...] = ()


def fast_config() -> Config:
    """Tiny data for a smoke run (and the test): seconds on one core."""
    return Config(
        samples=300, features=100, informative=(8,), real=(), folds=2, epochs=4, etas=(0.01, 0.05),
        fast=True,
    )


# --- data --------------------------------------------------------------------------------------


def make_dataset(cfg: Config, informative: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """make_classification with shuffle=False and no redundant or repeated features: the
    informative features are exactly the first `informative` columns, the rest is noise."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=cfg.samples,
        n_features=cfg.features,
        n_informative=informative,
        n_redundant=0,
        n_repeated=0,
        n_classes=cfg.classes,
        n_clusters_per_class=cfg.clusters,
        shuffle=False,
        random_state=seed,
    )
    return x.astype(np.float32), y.astype(np.int64)


# name -> (loader, description of the preprocessing). Every loader returns (x, y) before the
# per-fold centring and scaling (which run_fold does on the training fold).
REAL = ("breast_cancer",)


def load_real(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """A real data set that ships with scikit-learn, preprocessed as Perez & Barlaud do for
    omics data where that makes sense. Returns (x, y, what was done)."""
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
        # 30 positive, right-skewed measurements (radius, area, concavity ... of cell nuclei):
        # the authors' log(|x + 1|) evens out their scales; centring and per-feature scaling
        # follow on each training fold.
        return (
            np.log(np.abs(x + 1.0)).astype(np.float32),
            y.astype(np.int64),
            "Wisconsin breast cancer (scikit-learn `load_breast_cancer`: 569 samples x 30 "
            "features, 2 classes); log(|x + 1|), then centred and scaled per feature on each "
            "training fold",
        )
    raise ValueError(f"unknown real data set {name!r}; choose from {', '.join(REAL)}")


# --- the network -------------------------------------------------------------------------------


class SAE(nn.Module):
    """Encoder d -> 100 -> k (the code is the class logits), decoder k -> 100 -> d."""

    def __init__(self, d: int, k: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, k))
        self.decoder = nn.Sequential(nn.Linear(k, hidden), nn.SiLU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)

    @property
    def first(self) -> nn.Linear:
        return self.encoder[0]  # type: ignore[return-value]


_CE = nn.CrossEntropyLoss(reduction="sum")
_HUBER = nn.SmoothL1Loss(reduction="sum")


def loss_fn(model: SAE, x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    z, xr = model(x)
    return _CE(z, y) + lam * _HUBER(xr, x)


class TimedProjectedOptimizer(mpt.ProjectedOptimizer):
    """ProjectedOptimizer that records the wall-clock time of every projection call (and the
    native time the Report measured)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.wall = 0.0
        self.native = 0.0

    def project(self):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        reports = super().project()
        self.wall += time.perf_counter() - t
        self.calls += 1
        self.native += sum(r.total_seconds for r in reports.values())
        return reports


def run_epochs(
    model: SAE,
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
            loss_fn(model, x[idx], y[idx], cfg.lam).backward()
            opt.step()
        sched.step()


@torch.no_grad()
def accuracy(model: SAE, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    z, _ = model(x)
    return float((z.argmax(dim=1) == y).float().mean())


def live_columns(w: torch.Tensor) -> np.ndarray:
    """The input features (columns of the first weight) that are not entirely zero."""
    return np.flatnonzero((w.detach() != 0).any(dim=0).numpy())


# --- one fold ----------------------------------------------------------------------------------


def _record(
    method: str,
    eta: float | None,
    radius: float | None,
    model: SAE,
    xte: torch.Tensor,
    yte: torch.Tensor,
    informative: int | None,
    seconds: float,
    **extra: Any,
) -> dict[str, Any]:
    d = model.first.weight.shape[1]
    kept = live_columns(model.first.weight)
    hits = int((kept < informative).sum()) if informative is not None else 0
    nan = float("nan")
    rec = {
        "method": method,
        "eta": eta,
        "radius": radius,
        "accuracy": accuracy(model, xte, yte),
        "kept": int(kept.size),
        "sparsity": 1.0 - kept.size / d,
        "precision": hits / kept.size if kept.size and informative is not None else nan,
        "recall": hits / informative if informative is not None else nan,
        "chance_recall": kept.size / d,  # expected recall of kept.size features drawn at random
        "train_seconds": seconds,
        "proj_calls": 0,
        "proj_wall": 0.0,
        "proj_native": 0.0,
    }
    rec.update(extra)
    return rec


def run_fold(
    cfg: Config,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    informative: int | None,
    seed: int,
    log=print,
) -> list[dict[str, Any]]:
    """All methods at all radii on one train/test split. Every model starts from the same
    initial weights and sees the same batches."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(xtr)
    Xtr = torch.from_numpy(scaler.transform(xtr).astype(np.float32))
    Xte = torch.from_numpy(scaler.transform(xte).astype(np.float32))
    Ytr, Yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    d, k = Xtr.shape[1], int(max(ytr.max(), yte.max())) + 1
    torch.manual_seed(seed)
    init = SAE(d, k).state_dict()
    records: list[dict[str, Any]] = []

    def fresh() -> SAE:
        m = SAE(d, k)
        m.load_state_dict(init)
        return m

    def batches() -> torch.Generator:
        return torch.Generator().manual_seed(seed + 1)

    # Dense baseline: E epochs (the model magnitude pruning starts from), then E more.
    model = fresh()
    adam = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = batches()
    t = time.perf_counter()
    run_epochs(model, adam, adam, Xtr, Ytr, cfg, gen)
    dense_seconds = time.perf_counter() - t
    dense_state = ({n: v.clone() for n, v in model.state_dict().items()}, copy.deepcopy(adam.state_dict()), gen.get_state())
    w_dense = model.first.weight.detach().clone()
    t = time.perf_counter()
    run_epochs(model, adam, adam, Xtr, Ytr, cfg, gen)
    records.append(
        _record("none", None, None, model, Xte, Yte, informative, dense_seconds + time.perf_counter() - t)
    )
    log(f"    none: accuracy {records[-1]['accuracy']:.3f}")

    def from_dense() -> tuple[SAE, torch.optim.Optimizer, torch.Generator]:
        """The dense model, its optimizer and its batch order after the first phase."""
        m = fresh()
        m.load_state_dict(dense_state[0])
        opt = torch.optim.Adam(m.parameters(), lr=cfg.lr)
        opt.load_state_dict(copy.deepcopy(dense_state[1]))  # Adam updates its state in place
        g = batches()
        g.set_state(dense_state[2])
        return m, opt, g

    norms = {m: multiproj.Projection(s).norm(w_dense.numpy()) for m, s in SPECS.items() if s}
    for eta in cfg.etas:
        bilevel_kept: int | None = None
        for method, spec in SPECS.items():
            if spec is None or method not in cfg.methods:
                continue
            radius = eta * norms[method]
            if cfg.schedule == "step":
                model = fresh()
                adam = torch.optim.Adam(model.parameters(), lr=cfg.lr)
                gen = batches()
            else:  # "last": phase 1 is the dense baseline's first phase; start from it
                model, adam, gen = from_dense()
            opt = TimedProjectedOptimizer(adam, {"encoder.0.weight": model.first.weight}, spec, radius=radius)
            t = time.perf_counter()
            if cfg.schedule == "step":
                run_epochs(model, opt, adam, Xtr, Ytr, cfg, gen)  # projects after every step
            else:
                opt.project()  # once, at the end of the (dense) first phase
            w = model.first.weight.detach()
            # The constraint, checked on the projected weight (in its own norm, by multiproj's
            # norm function, which is independent of the projection code).
            norm_after_projection = float(opt.projection.norm(w.numpy()))
            zero_cols = np.setdiff1d(np.arange(d), live_columns(w))
            kept_after_projection = d - zero_cols.size
            opt.freeze_zeros()
            run_epochs(model, opt, adam, Xtr, Ytr, cfg, gen)
            seconds = time.perf_counter() - t
            w = model.first.weight.detach()
            rec = _record(
                method, eta, radius, model, Xte, Yte, informative, seconds,
                proj_calls=opt.calls, proj_wall=opt.wall, proj_native=opt.native,
                kept_after_projection=kept_after_projection,
                norm_after_projection=norm_after_projection,
                in_ball=norm_after_projection <= radius * (1 + 1e-6),
                zeros_held=bool((w[:, zero_cols] == 0).all()),
            )
            records.append(rec)
            if method == "bilevel l1,inf":
                bilevel_kept = rec["kept"]
            log(
                f"    eta {eta:g} {method}: accuracy {rec['accuracy']:.3f}, "
                f"{rec['kept']} features kept, recall {rec['recall']:.2f}"
            )

        if "prune" in cfg.methods and bilevel_kept is not None:
            # Magnitude pruning from the dense model after its first E epochs: keep the
            # bilevel_kept columns of largest l2 norm, then retrain E epochs with the mask.
            model, adam, gen = from_dense()
            t = time.perf_counter()
            torch_prune.ln_structured(
                model.first, name="weight", amount=d - bilevel_kept, n=2, dim=1
            )
            run_epochs(model, adam, adam, Xtr, Ytr, cfg, gen)
            torch_prune.remove(model.first, "weight")
            seconds = dense_seconds + time.perf_counter() - t
            rec = _record("prune", eta, None, model, Xte, Yte, informative, seconds, zeros_held=True)
            records.append(rec)
            log(f"    eta {eta:g} prune: accuracy {rec['accuracy']:.3f}, {rec['kept']} features kept")
    return records


# --- the experiment ----------------------------------------------------------------------------


def _datasets(cfg: Config) -> list[dict[str, Any]]:
    """The synthetic sets, then the real ones: {"name", "x", "y", "informative", "about"}."""
    out = []
    for i, n_inf in enumerate(cfg.informative):
        x, y = make_dataset(cfg, n_inf, cfg.seed + i)
        out.append(
            {
                "name": f"synthetic {cfg.samples}x{cfg.features}, {n_inf} informative",
                "x": x,
                "y": y,
                "informative": n_inf,
                "about": f"scikit-learn `make_classification` ({cfg.samples} samples x "
                f"{cfg.features} features, {cfg.classes} classes, {cfg.clusters} cluster(s) per "
                f"class, seed {cfg.seed + i}); the "
                f"informative features are the first {n_inf} columns (no redundant or repeated "
                "ones); centred and scaled per feature on each training fold",
            }
        )
    for name in cfg.real:
        x, y, about = load_real(name)
        out.append({"name": name, "x": x, "y": y, "informative": None, "about": about})
    return out


def _fold_task(args: tuple[Config, dict[str, Any], int, np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    cfg, ds, fold, tr, te = args
    torch.set_num_threads(1)

    def log(msg: str) -> None:
        print(f"[{ds['name']}, fold {fold + 1}/{cfg.folds}] {msg.strip()}", flush=True)

    x, y = ds["x"], ds["y"]
    records = run_fold(cfg, x[tr], y[tr], x[te], y[te], ds["informative"], cfg.seed + 100 * fold, log)
    for rec in records:
        rec["fold"] = fold
    return records


def run(cfg: Config, jobs: int = 1) -> dict[str, Any]:
    """Every dataset, fold, method and radius, the folds on `jobs` processes (each with one
    torch thread; the results do not depend on `jobs`). Returns {"config", "datasets":
    [{"name", "informative", "about", "records"}], "seconds"}; each record is one (method,
    eta, fold)."""
    from sklearn.model_selection import StratifiedKFold

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    datasets = _datasets(cfg)
    tasks = []
    for di, ds in enumerate(datasets):
        skf = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
        for fold, (tr, te) in enumerate(skf.split(ds["x"], ds["y"])):
            tasks.append((di, (cfg, ds, fold, tr, te)))
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = pool.map(_fold_task, [t for _, t in tasks], chunksize=1)
    else:
        results = [_fold_task(t) for _, t in tasks]
    out = [
        {"name": ds["name"], "informative": ds["informative"], "about": ds["about"], "records": []}
        for ds in datasets
    ]
    for (di, _), records in zip(tasks, results):
        out[di]["records"].extend(records)
    return {"config": dataclasses.asdict(cfg), "datasets": out, "seconds": time.perf_counter() - t0}


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, eta): means (and sd of accuracy) over folds."""
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
        rows.append(
            {
                "method": method,
                "eta": eta,
                "radius": _mean_sd([r["radius"] for r in rs])[0] if rs[0]["radius"] is not None else None,
                "accuracy": acc,
                "accuracy_sd": acc_sd,
                "kept": _mean_sd([r["kept"] for r in rs])[0],
                "sparsity": _mean_sd([r["sparsity"] for r in rs])[0],
                "precision": _mean_sd([r["precision"] for r in rs])[0],
                "recall": _mean_sd([r["recall"] for r in rs])[0],
                "proj_ms": 1e3 * sum(r["proj_wall"] for r in rs) / calls if calls else None,
                "native_ms": 1e3 * sum(r["proj_native"] for r in rs) / calls if calls else None,
                "proj_share": sum(r["proj_wall"] for r in rs) / sum(r["train_seconds"] for r in rs),
                "train_seconds": _mean_sd([r["train_seconds"] for r in rs])[0],
                "zeros_held": all(r.get("zeros_held", True) for r in rs),
            }
        )
    return rows


def _fmt(v: float | None, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def write_markdown(result: dict[str, Any], path: str, extra_notes: Sequence[str] = ()) -> None:
    cfg = result["config"]
    lines = [
        "# Sparse supervised autoencoder: feature selection by projection",
        "",
        "Generated by `python examples/sae/sae.py"
        + (" --fast" if cfg["fast"] else "")
        + "` (see [examples/sae/README.md](../../examples/sae/README.md)); "
        f"multiproj {multiproj.__version__}, torch {torch.__version__}, "
        f"{platform.machine()}, 1 torch thread. Total run time {result['seconds'] / 60:.1f} min.",
        "",
        f"- {cfg['folds']}-fold stratified cross-validation (seed {cfg['seed']}); the numbers are "
        "means over folds (accuracy: mean ± sd).",
        f"- SAE d-{HIDDEN}-k / k-{HIDDEN}-d with SiLU; loss = cross-entropy + {cfg['lam']:g} x SmoothL1 "
        f"(both summed); Adam lr {cfg['lr']:g}, batch {cfg['batch']}, StepLR(step {cfg['step_size']} "
        f"epochs, gamma {cfg['gamma']:g}) restarted for each phase.",
        f"- {cfg['epochs']} epochs "
        + (
            "with the projection after every optimizer step"
            if cfg["schedule"] == "step"
            else "of dense training (the baseline's first phase) and one projection at their end"
        )
        + f", then {cfg['epochs']} epochs of "
        "retraining with the zeroed weights held at zero (`ProjectedOptimizer.freeze_zeros()`). "
        f"The baseline trains {2 * cfg['epochs']} epochs densely; `prune` starts from the baseline "
        f"after {cfg['epochs']} epochs, keeps the columns with the largest l2 norms (as many as the "
        f"bi-level projection kept at that η, fold by fold), and retrains {cfg['epochs']} epochs.",
        "- η is a fraction of the norm of the densely trained first-layer weight "
        "(the baseline after its first phase), each method in its own norm; `radius` is the "
        "mean absolute radius over folds.",
        "- sparsity = share of input-feature columns of the first layer that are entirely zero; "
        "precision/recall = kept features vs the truly informative ones. Projection time: wall "
        "clock per call of `ProjectedOptimizer.project()` and the native time the `Report` "
        "measured; share = projection wall time / training wall time (both phases).",
    ]
    for note in list(cfg.get("notes", ())) + list(extra_notes):
        lines.append(f"- {note}")
    for ds in result["datasets"]:
        n_inf = ds["informative"]
        lines += ["", f"## {ds['name']}", "", f"Data: {ds['about']}."]
        if n_inf is not None:
            lines.append(
                f"Chance precision (a random feature is informative): {n_inf / cfg['features']:.3f}."
            )
        lines += [
            "",
            "| method | η | radius | accuracy | features kept | sparsity | precision | recall "
            "| projection ms/call (native) | share of training time |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in summarize(ds["records"]):
            proj = (
                f"{r['proj_ms']:.3f} ({r['native_ms']:.3f})" if r["proj_ms"] is not None else "–"
            )
            held = "" if r["zeros_held"] else " (zeros NOT held!)"
            lines.append(
                f"| {r['method']}{held} | {_fmt(r['eta'], 'g')} | {_fmt(r['radius'], '.4g')} "
                f"| {r['accuracy']:.3f} ± {r['accuracy_sd']:.3f} | {r['kept']:.1f} "
                f"| {100 * r['sparsity']:.1f}% | {_fmt(r['precision'], '.2f')} "
                f"| {_fmt(r['recall'], '.2f')} | {proj} | {100 * r['proj_share']:.2g}% |"
            )
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = result["datasets"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    markers = {"bilevel l1,inf": "o", "exact l1,inf": "s", "l1,1": "^", "l1,2": "v", "prune": "x"}
    for ax, ds in zip(axes[0], datasets):
        rows = summarize(ds["records"])
        for r in rows:
            if r["method"] == "none":
                ax.axhline(r["accuracy"], color="gray", ls="--", lw=1, label="none (dense)")
        for method in METHODS[1:]:
            rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["sparsity"])
            if not rs:
                continue
            ax.errorbar(
                [100 * (1 - r["sparsity"]) for r in rs],
                [r["accuracy"] for r in rs],
                yerr=[r["accuracy_sd"] for r in rs],
                marker=markers[method],
                capsize=3,
                label=method,
            )
        if ds["informative"] is not None:
            inf = 100 * ds["informative"] / result["config"]["features"]
            ax.axvline(inf, color="k", ls=":", lw=1, label="informative features")
        ax.set_title(ds["name"])
        ax.set_xscale("log")
        ax.set_xlabel("features kept (% of the input features, log scale; sparsity = 100 − this)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out: str) -> None:
    os.makedirs(out, exist_ok=True)
    write_markdown(result, os.path.join(out, "results.md"))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1, default=float)
    plot(result, os.path.join(out, "accuracy_vs_sparsity.png"))


def _floats(s: str) -> tuple[float, ...]:
    return tuple(float(v) for v in s.split(",") if v)


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in s.split(",") if v)


def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, str, int, str | None]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true", help="tiny data, 2 folds, 3+3 epochs, 2 radii")
    p.add_argument("--out", help="output directory (default docs/sae, or a temp dir with --fast)")
    p.add_argument("--epochs", type=int, help="epochs per phase (projection, then retraining)")
    p.add_argument("--batch", type=int, help="minibatch size")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--lam", type=float, help="weight of the Huber reconstruction loss")
    p.add_argument("--step-size", type=int, help="StepLR step (epochs)")
    p.add_argument("--gamma", type=float, help="StepLR factor")
    p.add_argument("--etas", type=_floats, help="radii as fractions of the dense weight's norm, e.g. 0.05,0.2")
    p.add_argument("--informative", type=_ints, help="informative features per dataset, e.g. 64,16")
    p.add_argument("--real", type=lambda s: tuple(v for v in s.split(",") if v),
                   help="real data sets, comma-separated, from " + ",".join(REAL) + " (empty: none)")
    p.add_argument("--jobs", type=int, default=1, help="processes running folds in parallel")
    p.add_argument("--clusters", type=int, help="make_classification's n_clusters_per_class")
    p.add_argument("--samples", type=int)
    p.add_argument("--features", type=int)
    p.add_argument("--folds", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--schedule", choices=("step", "last"),
                   help="project after every step of the first phase (step, the default) or once at its end (last)")
    p.add_argument("--methods", help="a subset of " + ",".join(ALIASES) + " (the dense baseline always runs)")
    p.add_argument("--note", action="append", default=[], help="a line added to results.md")
    p.add_argument("--render", metavar="RESULTS_JSON",
                   help="no training: write the tables and the plot again from a run's results.json")
    a = p.parse_args(argv)
    cfg = fast_config() if a.fast else Config()
    if a.methods is not None:
        unknown = set(a.methods.split(",")) - set(ALIASES)
        if unknown:
            p.error(f"unknown methods {sorted(unknown)}; choose from {','.join(ALIASES)}")
        a.methods = tuple(ALIASES[m] for m in a.methods.split(","))
    for field in ("epochs", "batch", "lr", "lam", "step_size", "gamma", "etas", "informative", "real", "clusters",
                  "samples", "features", "folds", "seed", "methods", "schedule"):
        v = getattr(a, field)
        if v is not None:
            setattr(cfg, field, v)
    if "prune" in cfg.methods and "bilevel l1,inf" not in cfg.methods:
        p.error("prune keeps as many features as the bi-level projection: include bilevel")
    cfg.notes = tuple(a.note)
    out = a.out or (tempfile.mkdtemp(prefix="sae-") if a.fast else os.path.join("docs", "sae"))
    return cfg, out, a.jobs, a.render


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    torch.set_num_threads(1)
    cfg, out, jobs, render = parse_args(argv)
    if render is not None:
        with open(render) as f:
            result = json.load(f)
    else:
        result = run(cfg, jobs)
    write_outputs(result, out)
    print(f"wrote {out}/results.md, results.json, accuracy_vs_sparsity.png in {result['seconds']:.0f} s")
    result["out"] = out
    return result


if __name__ == "__main__":
    main()

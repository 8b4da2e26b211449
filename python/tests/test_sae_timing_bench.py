"""The torch reference implementations of bench/sae_timing.py against multiproj.

The benchmark times multiproj against torch implementations written the obvious way (bi-level
l1,∞, l1,1, l1,2 and the exact l1,∞ projection, rows as the groups); it checks them on its own
data before timing, and these tests guard them on small matrices of several shapes, signed and
non-negative data, radii inside and outside the ball, so that a change to either side that
makes them disagree fails here and not in the middle of a benchmark run.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import multiproj as mp

torch = pytest.importorskip("torch")

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "sae_timing.py"


def _load():
    spec = importlib.util.spec_from_file_location("sae_timing", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sae = _load()

SHAPES = [(1, 1), (1, 7), (7, 1), (5, 3), (16, 16), (40, 9), (9, 40), (100, 250)]
# Radii as fractions of the data's norm in each method's own norm: far inside the ball's
# boundary (most groups zeroed), on the way, near it, and outside (the data is already in).
FRACS = [1e-3, 0.05, 0.3, 0.9, 1.0, 1.5]
METHODS = [pytest.param(m, id=m[0]) for m in sae.METHODS]


def _data(shape, signed, seed):
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    return 2 * x - 1 if signed else x


def _check(method, x, radius):
    name, title, spec, fn_name, tol = method
    P = mp.Projection(spec)
    fn = getattr(sae, fn_name)
    t = torch.from_numpy(x.copy())
    got = fn(t, radius)
    assert torch.equal(t, torch.from_numpy(x)), f"{fn_name} wrote into its argument"
    expected = P.project(x, radius=radius)
    diff = np.max(np.abs(got.numpy() - expected)) / max(np.max(np.abs(x)), 1e-300)
    assert diff <= tol, f"{title} {x.shape} radius {radius!r}: torch differs by {diff:.3g}"
    # Both are in the ball (up to rounding), measured by multiproj's norm.
    assert P.norm(got.numpy()) <= radius * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("signed", [False, True], ids=["nonneg", "signed"])
def test_torch_matches_multiproj(method, shape, signed):
    x = _data(shape, signed, seed=shape[0] * 1000 + shape[1] + signed)
    norm = mp.Projection(method[2]).norm(x)
    for frac in FRACS:
        _check(method, x, frac * norm)


@pytest.mark.parametrize("method", METHODS)
def test_the_authors_protocol_data(method):
    """The benchmark's own case, small: 1000 rows of uniform(0, 1), radius 1."""
    _check(method, sae.data(50), sae.RADIUS)


@pytest.mark.parametrize("method", METHODS)
def test_ties_and_zero_rows(method):
    """Equal magnitudes across and within rows, and rows of zeros."""
    x = np.array([[1.0, -1.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, -1.0, 1.0],
                  [0.25, 0.0, -0.25, 0.0], [0.0, 0.0, 0.0, 0.0]])
    norm = mp.Projection(method[2]).norm(x)
    for frac in (0.1, 0.4, 0.75, 1.0):
        _check(method, x, frac * norm)


def test_exact_levels_satisfy_the_optimality_conditions():
    """θ and μ of the torch exact l1,∞ solve: Σ μ_g = R; every kept row gives up θ of its l1
    mass; every zeroed row has ‖y_g‖₁ ≤ θ."""
    x = _data((60, 30), True, seed=3) * np.linspace(0.05, 1.0, 60)[:, None]  # rows of all sizes
    a = np.abs(x)
    radius = 0.05 * a.max(axis=1).sum()
    theta, mu = sae.exact_l1inf_levels(torch.from_numpy(x), radius)
    mu = mu.numpy()
    assert abs(mu.sum() - radius) <= 1e-9 * radius
    kept = mu > 0
    lost = np.clip(a - mu[:, None], 0, None).sum(axis=1)
    np.testing.assert_allclose(lost[kept], theta, rtol=1e-9)
    assert (a[~kept].sum(axis=1) <= theta * (1 + 1e-12)).all()
    assert kept.any() and (~kept).any()


def test_l1_threshold_is_the_sort_based_projection():
    v = torch.tensor([3.0, 1.0, 2.0, 0.0], dtype=torch.float64)
    tau = float(sae.l1_threshold(v, 3.0))
    assert tau == pytest.approx(1.0)  # (3 − 1) + (2 − 1) = 3
    radii = torch.tensor([3.0, 0.0, 100.0], dtype=torch.float64)
    taus = sae.row_l1_thresholds(torch.stack([v, v, v]), radii)
    assert taus.tolist() == pytest.approx([1.0, 3.0, 0.0])

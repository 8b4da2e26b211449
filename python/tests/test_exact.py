"""Exact projections from Python: ``exact`` specs, ``Projection.exact``, ``Report.multiplier``
and ``Projection.compare``. The exact fixtures themselves run in test_fixtures.py, in every
layout; here, the properties that only exact projections have."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multiproj as mp

SPEC = "l1 over dim0 of linf over dim1"


def l1inf(x):
    return float(np.abs(x).max(axis=1).sum())


def test_exact_flag_and_multiplier():
    w = np.random.default_rng(3).normal(size=(40, 30))
    E = mp.Projection("exact " + SPEC)
    M = mp.Projection(SPEC)
    assert E.exact and not M.exact
    x, report = E.project_with_report(w, radius_frac=0.3)
    theta = report.multiplier
    assert theta is not None and theta > 0
    # Every surviving row has sum(max(|y| - clip, 0)) = theta; every zeroed row has l1 <= theta.
    clips = np.abs(x).max(axis=1)
    for y, c in zip(w, clips):
        if c > 0:
            assert np.maximum(np.abs(y) - c, 0).sum() == pytest.approx(theta, rel=1e-9)
        else:
            assert np.abs(y).sum() <= theta * (1 + 1e-12)
    assert M.project_with_report(w, radius_frac=0.3)[1].multiplier is None


def test_exact_is_nearer_than_multi_level():
    w = np.random.default_rng(4).normal(size=(64, 48))
    c = mp.Projection(SPEC).compare(w, radius_frac=0.5)
    assert c["radius"] == pytest.approx(0.5 * l1inf(w))
    assert c["exact"]["distance_to_input"] < c["multi_level"]["distance_to_input"]
    assert c["distance"] > 0
    for side in ("exact", "multi_level"):
        assert c[side]["report"].radius == c["radius"]
        assert c[side]["nonzeros"] <= w.size
    # The same comparison from the exact spec.
    c2 = mp.Projection("exact " + SPEC).compare(w, radius_frac=0.5)
    assert c2["distance"] == c["distance"]


def test_compare_keep_chooses_the_multi_level_radius():
    w = np.random.default_rng(5).normal(size=(50, 20))
    c = mp.Projection(SPEC).compare(w, keep=7)
    assert len(c["multi_level"]["report"].survivors) == 7
    assert c["exact"]["report"].radius == c["radius"]


def test_exact_keep():
    """keep=K with the exact projection: exactly K rows survive, at the largest radius that
    keeps K; the same radius given explicitly gives the same result."""
    w = np.random.default_rng(6).normal(size=(40, 12))
    E = mp.Projection("exact " + SPEC)
    x, report = E.project_with_report(w, keep=7)
    assert len(report.survivors) == 7
    assert int((np.abs(x).max(axis=1) > 0).sum()) == 7
    y = E.project(w, radius=report.radius)
    np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    bigger = E.project(w, radius=report.radius * (1 + 1e-9))
    assert int((np.abs(bigger).max(axis=1) > 0).sum()) > 7


def test_no_exact_projection_is_a_spec_error():
    with pytest.raises(mp.SpecError, match="no exact projection"):
        mp.Projection("exact l1 over dim0 of linf over dim1 of l1 over dim2")


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    frac=st.floats(0.0, 1.2),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    order=st.sampled_from(["C", "F"]),
)
def test_exact_l1inf_is_optimal(rows, cols, frac, seed, dtype, order):
    """The optimality certificate of a Euclidean projection: <y - x, x> = R * ||y - x||_*
    (the dual of l1-of-linf is linf-of-l1), on the sphere when y is outside."""
    y = np.random.default_rng(seed).normal(size=(rows, cols)).astype(dtype)
    y = np.asarray(y, order=order)
    norm = l1inf(y.astype(np.float64))
    r = frac * norm
    x = mp.Projection("exact " + SPEC).project(y, radius=r)
    assert x.dtype == dtype
    y64, x64 = y.astype(np.float64), x.astype(np.float64)
    tol = (1e-5 if dtype == np.float32 else 1e-10) * (1 + norm)
    assert l1inf(x64) <= r + tol
    if norm <= r:
        assert np.array_equal(x, y)
        return
    assert l1inf(x64) == pytest.approx(r, abs=tol)
    d = y64 - x64
    support = r * float(np.abs(d).sum(axis=1).max())
    assert float((d * x64).sum()) == pytest.approx(support, abs=tol * (1 + support))

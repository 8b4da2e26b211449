"""Radius selection from Python: keep=K keeps exactly K top-level groups, sparsity=F zeroes a
fraction of them, radius_frac=F is a fraction of the norm; the report says which groups survive
and what happened at every level; targets that cannot be met are errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multiproj as mp

ROWS = "l1 over dim0 of linf over dim1"
COLS = "l1 over dim1 of linf over dim0"


def nonzero_rows(x: np.ndarray) -> list:
    return [i for i in range(x.shape[0]) if np.any(x[i] != 0)]


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(2, 40),
    cols=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(0, 40),
    inner=st.sampled_from(["linf", "l1", "l2"]),
)
def test_keep_keeps_exactly_k(rows, cols, seed, k, inner):
    spec = f"l1 over dim0 of {inner} over dim1"
    w = np.random.default_rng(seed).normal(size=(rows, cols))
    P = mp.Projection(spec)
    k = min(k, rows)
    x, report = P.project_with_report(w, keep=k)
    assert nonzero_rows(x) == list(report.survivors)
    assert len(report.survivors) == k
    assert report.levels[0].zeroed == rows - k
    # The largest such radius: a little more keeps more.
    if k < rows:
        more = P.project(w, radius=report.radius * (1 + 1e-9) + 1e-12)
        assert len(nonzero_rows(more)) > k
    # In place gives the same, and the same report.
    w2 = w.copy()
    r2 = P.project_(w2, keep=k)
    np.testing.assert_array_equal(w2, x)
    assert r2.radius == report.radius
    assert report.norm_after <= report.radius * (1 + 1e-12)


def test_keep_on_columns_and_torch_layout():
    # A torch nn.Linear weight is (out, in): input features are the columns.
    w = np.random.default_rng(1).normal(size=(16, 64)).astype(np.float32)
    x, report = mp.Projection(COLS).project_with_report(w, keep=10)
    kept = [j for j in range(64) if np.any(x[:, j] != 0)]
    assert kept == list(report.survivors)
    assert len(kept) == 10
    assert report.survivors.dtype == np.int64


def test_sparsity_and_radius_frac():
    w = np.random.default_rng(2).normal(size=(50, 5))
    P = mp.Projection(ROWS)
    x, report = P.project_with_report(w, sparsity=0.9)
    assert len(nonzero_rows(x)) == 5
    _, report = P.project_with_report(w, radius_frac=0.25)
    assert report.radius == pytest.approx(0.25 * P.norm(w), rel=1e-15)
    x = mp.project(ROWS, w, keep=3)
    assert len(nonzero_rows(x)) == 3


def test_report_levels_and_thresholds():
    w = np.random.default_rng(3).normal(size=(4, 5, 6))
    report = mp.Projection("l1 over dim0 of l1 over dim1 of l1 over dim2").project_(
        w, keep=2
    )
    assert [lv.axes for lv in report.levels] == [(0,), (0, 1)]
    assert [lv.norm for lv in report.levels] == ["l1", "l1"]
    top, inner = report.levels
    assert (top.groups, top.zeroed) == (4, 2)
    assert len(top.thresholds) == 1 and top.thresholds[0] > 0
    assert (inner.kept, inner.zeroed, inner.shrunk) == (
        report.untouched,
        report.zeroed,
        report.projected,
    )
    assert len(report.inner_thresholds) == 20
    assert int(np.count_nonzero(report.inner_thresholds)) == report.projected


def test_targets_that_cannot_be_met():
    w = np.ones((4, 3))
    with pytest.raises(ValueError, match="give one of radius=, keep="):
        mp.Projection(ROWS).project(w, radius=1.0, keep=2)
    with pytest.raises(mp.DataError, match="only an l1 top level removes groups"):
        mp.Projection("linf over dim0 of l1 over dim1").project(w, keep=2)
    # Every row has the same norm: 0 or 4 rows can be kept, not 2.
    with pytest.raises(mp.DataError, match="0 or 4 can be kept"):
        mp.Projection(ROWS).project(w, keep=2)
    with pytest.raises(mp.DataError, match="between 0 and 1"):
        mp.Projection(ROWS).project(w, sparsity=1.5)
    with pytest.raises(mp.DataError, match="cannot be chosen per call"):
        mp.Projection(ROWS + " <= 1").project(w, keep=2)
    with pytest.raises(mp.SpecError):
        mp.Projection(ROWS + " <= 1").project(w, radius=2.0)

"""16-bit floats: NumPy float16, ml_dtypes.bfloat16 (when installed) and torch float16/bfloat16
tensors are projected where they lie (in place: the same memory; out of place: a new array of
the same dtype), with sums and radii in float64 and each result rounded once to the dtype.

What is checked: the result is inside the ball exactly, as multiproj measures it; the JIT and
the interpreter give the same bits; a linf-clipped entry is the float64 projection's clip
level rounded toward zero to the dtype (so at most one ulp of it away); a float64 reference
(NumPy, independent of multiproj: the sort-based l1 projection of the row maxima) agrees to an
ulp of the dtype; the data is never copied on the way in."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multiproj as mp

BILEVEL = "l1 over dim0 of linf over dim1"

try:
    import torch
except (ImportError, OSError):
    torch = None
try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
needs_ml_dtypes = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not installed")


def l1_ball(v: np.ndarray, r: float) -> np.ndarray:
    """The Euclidean projection of v >= 0 onto the l1 ball of radius r (sorting)."""
    if v.sum() <= r:
        return v.copy()
    u = np.sort(v)[::-1]
    c = np.cumsum(u)
    k = np.nonzero(u * np.arange(1, len(u) + 1) > c - r)[0][-1]
    tau = (c[k] - r) / (k + 1)
    return np.maximum(v - tau, 0.0)


def bilevel_reference(x: np.ndarray, r: float) -> np.ndarray:
    """Rows clipped to the l1 projection of their maxima: the bi-level projection, in float64."""
    m = np.abs(x).max(axis=1)
    mu = l1_ball(m, r)
    return np.clip(x, -mu[:, None], mu[:, None])


def ulp(x: np.ndarray, dtype) -> np.ndarray:
    """The spacing of dtype's values at |x| (float16 through NumPy, bfloat16 from its 8 bits)."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    if dtype == "bfloat16":
        e = np.floor(np.log2(np.maximum(a, 2.0**-126)))
        return 2.0 ** (e - 7)
    return np.spacing(np.asarray(a, dtype=np.float16)).astype(np.float64)


def check_bilevel(x16, y16, radius, dtype):
    """y16 (the projection of x16 at `radius`) against the float64 reference."""
    x = np.asarray(x16, dtype=np.float64)
    y = np.asarray(y16, dtype=np.float64)
    ref = bilevel_reference(x, radius)
    # Clip levels are rounded toward zero: |y| <= |ref|, less by under one ulp (plus the
    # reference's own rounding of tau, far below an ulp of these values).
    assert np.all(np.abs(y) <= np.abs(ref) + 1e-12 * radius)
    assert np.all(np.abs(ref) - np.abs(y) <= ulp(ref, dtype) + 1e-12 * radius)
    P = mp.Projection(BILEVEL)
    assert P.norm(y16) <= radius


@pytest.mark.parametrize("order", ["C", "F"])
def test_numpy_float16(order):
    rng = np.random.default_rng(1)
    x = np.asarray(rng.standard_normal((40, 33)), order=order).astype(np.float16)
    P = mp.Projection(BILEVEL)
    r = 0.3 * P.norm(x)
    y = P.project(x, radius=r)
    assert y.dtype == np.float16
    assert y.flags.f_contiguous == (order == "F")
    check_bilevel(x, y, r, "float16")
    z = x.copy(order="K")
    P.project_(z, radius=r)
    assert np.array_equal(z.view(np.uint16), y.view(np.uint16))
    interp = mp.Projection(BILEVEL, backend="interp").project(x, radius=r)
    assert np.array_equal(interp.view(np.uint16), y.view(np.uint16))


@needs_ml_dtypes
def test_ml_dtypes_bfloat16():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 33)).astype(ml_dtypes.bfloat16)
    P = mp.Projection(BILEVEL)
    r = 0.3 * P.norm(x)
    y = P.project(x, radius=r)
    assert y.dtype == x.dtype
    check_bilevel(x, y, r, "bfloat16")
    z = x.copy()
    P.project_(z, radius=r)
    assert np.array_equal(z.view(np.uint16), y.view(np.uint16))
    assert P.norm(x) == P.norm(x.astype(np.float32))  # exact widening


@needs_torch
@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("transposed", [False, True])
def test_torch_half_tensors_in_place_and_out(dtype_name, transposed):
    dtype = getattr(torch, dtype_name)
    g = torch.Generator().manual_seed(3)
    w = torch.randn(33, 40, generator=g).to(dtype)
    if transposed:
        w = w.t()  # a strided view: read and written where it lies
    P = mp.Projection(BILEVEL)
    r = 0.3 * P.norm(w)
    y = P.project(w, radius=r)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.shape == w.shape
    check_bilevel(w.float().numpy(), y.float().numpy(), r, dtype_name)
    before = w.clone()
    ptr = w.data_ptr()
    report = P.project_(w, radius=r)
    assert w.data_ptr() == ptr
    assert torch.equal(w, y)
    assert not torch.equal(w, before)
    assert report.radius == r
    # Inside the ball, projecting in place changes no bit.
    again = w.clone()
    P.project_(again, radius=P.norm(again))
    assert torch.equal(again.view(torch.int16), w.view(torch.int16))


@needs_torch
def test_torch_bfloat16_matches_ml_dtypes_and_float32_norms():
    w = torch.randn(20, 17, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    P = mp.Projection(BILEVEL)
    assert P.norm(w) == P.norm(w.float())  # bfloat16 widens exactly
    if ml_dtypes is not None:
        a = w.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        r = 0.2 * P.norm(w)
        assert np.array_equal(
            P.project(a, radius=r).view(np.int16), P.project(w, radius=r).view(torch.int16).numpy()
        )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "spec",
    [
        "l1 over dim0 of l2 over dim1",
        "l1 over dim1 of l1 over dim0",
        "l2 over dim0 of linf over dim1",
        "linf over dim1 of l1 over dim0",
        "exact l1 over dim0 of linf over dim1",
    ],
)
@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 9),
    cols=st.integers(1, 9),
    frac=st.floats(0.0, 1.2),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-6, 1.0, 300.0]),
)
def test_every_ball_is_respected_in_half_precision(dtype, spec, rows, cols, frac, seed, scale):
    if dtype == "bfloat16" and ml_dtypes is None:
        pytest.skip("ml_dtypes is not installed")
    np_dtype = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    x = (np.random.default_rng(seed).standard_normal((rows, cols)) * scale).astype(np_dtype)
    P = mp.Projection(spec)
    r = frac * P.norm(x)
    y = P.project(x, radius=r)
    assert y.dtype == x.dtype
    assert P.norm(y) <= r
    if frac >= 1.0:
        assert np.array_equal(y.view(np.uint16), x.view(np.uint16))
    if not spec.startswith("exact"):
        interp = mp.Projection(spec, backend="interp").project(x, radius=r)
        assert np.array_equal(interp.view(np.uint16), y.view(np.uint16))


def test_uint16_is_not_taken_for_bfloat16():
    x = np.ones((2, 2), dtype=np.uint16)
    with pytest.raises(TypeError, match="float16, bfloat16, float32 and float64"):
        mp.Projection(BILEVEL).project(x, radius=1.0)


def test_explain_names_the_half_dtypes():
    P = mp.Projection(BILEVEL)
    assert "f16" in P.explain((4, 3), dtype=np.float16)
    assert "bf16" in P.explain((4, 3), dtype="bfloat16")

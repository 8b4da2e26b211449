"""Properties of the projection through the Python package, on random specs, shapes, data,
radii, dtypes and layouts (hypothesis): the result lies in the ball (exactly, in the stored
precision), is the input itself when the input is inside, is a fixed point, is the same in
place and out of place, and does not depend on how the input is laid out in memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import multiproj as mp

from conftest import LAYOUTS, assert_bits_equal, assert_close, axis_order

# (spec, ranks it fits)
SPECS = [
    ("l1 over dim0 of linf over dim1", (2,)),
    ("l1 over dim1 of linf over dim0", (2,)),
    ("l1 over dim0 of l2 over dim1", (2,)),
    ("l1 over dim0 of l1 over dim1", (2,)),
    ("linf over dim0 of l2 over dim1", (2,)),
    ("l2 over dims0..1", (2,)),
    ("l1 over dims0..", (1, 2, 3)),
    ("linf over dims0..", (1, 2, 3)),
    ("l1 over dim0 of linf over dims1..", (2, 3)),
    ("l1 over dim0 of linf over dim1 of linf over dim2", (3,)),
    ("l1 over dim2 of l1 over dim0 of linf over dim1", (3,)),
    ("l1 over dim0 of l2 over dim1 of linf over dim2", (3,)),
]

PROJECTIONS = {spec: mp.Projection(spec) for spec, _ in SPECS}
INTERP = {spec: mp.Projection(spec, backend="interp") for spec, _ in SPECS}

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def problems(draw):
    """A spec, an array it fits (f32 or f64, in some layout) and a radius."""
    spec, ranks = draw(st.sampled_from(SPECS))
    rank = draw(st.sampled_from(ranks))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    # Values with ties, zeros and a wide range of magnitudes.
    elements = st.one_of(
        st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0]),
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32),
    )
    values = draw(hnp.arrays(np.float64, shape, elements=elements)).astype(dtype)
    layout = draw(st.sampled_from(list(LAYOUTS)))
    x = LAYOUTS[layout](values)
    norm = PROJECTIONS[spec].norm(x)
    fraction = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.5), st.just(1.0)))
    radius = float(np.float64(fraction) * norm)
    return spec, x, radius, layout


@SETTINGS
@given(problems())
def test_lands_in_the_ball(problem):
    spec, x, radius, _ = problem
    P = PROJECTIONS[spec]
    out = P.project(x, radius=radius)
    assert P.norm(out) <= radius
    assert out.dtype == x.dtype and out.shape == x.shape
    assert axis_order(out) == axis_order(x)


@SETTINGS
@given(problems())
def test_identity_inside_the_ball(problem):
    spec, x, _, _ = problem
    P = PROJECTIONS[spec]
    norm = P.norm(x)
    for radius in (norm, norm * 2 + 1):
        assert_bits_equal(P.project(x, radius=radius), x, f"{spec}: radius {radius} >= norm {norm}")


@SETTINGS
@given(problems())
def test_idempotent(problem):
    spec, x, radius, _ = problem
    P = PROJECTIONS[spec]
    once = P.project(x, radius=radius)
    assert_bits_equal(P.project(once, radius=radius), once, f"{spec}: projecting twice")


@SETTINGS
@given(problems())
def test_in_place_equals_out_of_place(problem):
    spec, x, radius, layout = problem
    P = PROJECTIONS[spec]
    out, report = P.project_with_report(x, radius=radius)
    y = LAYOUTS[layout](x)
    assert y.strides == x.strides
    in_place = P.project_(y, radius=radius)
    assert_bits_equal(y, out, f"{spec} ({layout})")
    assert in_place == report


@SETTINGS
@given(problems())
def test_a_view_equals_its_dense_copy(problem):
    """The layout changes only the order of summation inside the norms: equal up to rounding
    (the linf-only specs, whose norms are maxima, bit for bit)."""
    spec, x, radius, layout = problem
    P = PROJECTIONS[spec]
    dense = np.ascontiguousarray(x)
    got, expected = P.project(x, radius=radius), P.project(dense, radius=radius)
    if "l1" not in spec and "l2" not in spec:
        assert_bits_equal(got, expected, f"{spec} ({layout})")
    else:
        eps = float(np.finfo(x.dtype).eps)
        scale = float(np.abs(x).max()) if x.size else 1.0
        assert_close(got, expected, rtol=64 * eps, atol=64 * eps * scale, what=f"{spec} ({layout})")
        assert np.isclose(P.norm(x), P.norm(dense), rtol=64 * eps, atol=0)


@SETTINGS
@given(problems())
def test_backends_agree(problem):
    """The JIT and the interpreter give the same bits (docs/SEMANTICS.md), except that a
    tolerance remains for views with reversed axes (the strided layout reverses axis 0)."""
    spec, x, radius, layout = problem
    jit, interp = (
        PROJECTIONS[spec].project(x, radius=radius),
        INTERP[spec].project(x, radius=radius),
    )
    if layout != "strided":
        assert_bits_equal(jit, interp, f"{spec} ({layout})")
    else:
        eps = float(np.finfo(x.dtype).eps)
        scale = float(np.abs(x).max())
        assert_close(jit, interp, rtol=64 * eps, atol=64 * eps * scale, what=f"{spec} ({layout})")


def test_radius_zero_gives_zeros():
    x = np.random.default_rng(1).normal(size=(7, 5))
    out = mp.project("l1 over dim0 of linf over dim1", x, radius=0.0)
    assert not out.any()


@pytest.mark.parametrize("spec,ranks", SPECS, ids=[s for s, _ in SPECS])
def test_radius_in_the_spec_is_the_same_as_given(spec, ranks):
    x = np.random.default_rng(2).normal(size=(4,) * ranks[-1])
    radius = 0.3 * mp.norm(spec, x)
    fixed = mp.Projection(f"{spec} <= {radius!r}")
    assert fixed.radius == radius
    assert_bits_equal(fixed.project(x), mp.project(spec, x, radius=radius))

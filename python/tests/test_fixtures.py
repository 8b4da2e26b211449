"""The shared fixtures (tests/fixtures/manifest.json: inputs and expected outputs from an
independent NumPy implementation) through the Python package: out of place and in place, in
every layout (as stored, C, F, a strided view with a reversed axis, a permuted view), in
float32 and float64, on both backends — with the tolerances of the Rust fixture test
(cli/tests/fixtures.rs): `|got - expected| <= atol + rtol*|expected|`, bit for bit for the
`bitwise_identity` cases."""

from __future__ import annotations

import numpy as np
import pytest

import multiproj as mp

from conftest import CASES, LAYOUTS, assert_bits_equal, assert_close, axis_order, is_dense, load

# The manifest's f32 tolerances, for a case computed in the other dtype than it is stored in.
F32_TOL = next((c["rtol"], c["atol"]) for c in CASES if c["dtype"] == "f32")
DTYPES = {"f32": np.float32, "f64": np.float64}


def tolerances(case, dtype):
    """The case's tolerance in its own dtype; the manifest's float32 tolerance for a case
    computed in the other dtype (a float64 case in float32 starts from rounded inputs; a
    float32 case in float64 is compared with values rounded to float32)."""
    if DTYPES[case["dtype"]] == dtype:
        return case["rtol"], case["atol"]
    return F32_TOL


# The JIT in every layout; the interpreter (the reference the Rust tests hold the JIT to) as
# stored and strided.
RUNS = [("jit", layout) for layout in LAYOUTS] + [("interp", "stored"), ("interp", "strided")]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend,layout", RUNS, ids=[f"{b}-{lay}" for b, lay in RUNS])
def test_fixture(case, backend, layout, dtype):
    name = case["name"]
    stored_dtype = DTYPES[case["dtype"]]
    x = LAYOUTS[layout](load(case, "input").astype(dtype, copy=False))
    expected = load(case, "expected").astype(dtype)
    before = x.copy(order="K")
    rtol, atol = tolerances(case, dtype)
    radius = case["radius"]
    P = mp.Projection(case["spec"], backend=backend)

    # The norm of the input.
    got_norm = P.norm(x)
    assert abs(got_norm - case["norm_before"]) <= rtol * abs(case["norm_before"]) + atol, name

    # Out of place: a new array, same shape, dtype and memory order of axes; the input untouched.
    out, report = P.project_with_report(x, radius=radius)
    assert isinstance(out, np.ndarray)
    assert out.shape == x.shape and out.dtype == dtype
    assert axis_order(out) == axis_order(x), f"{name}: memory order {out.strides} vs {x.strides}"
    assert is_dense(out), f"{name}: the result is not dense: strides {out.strides}"
    assert not np.shares_memory(out, x)
    assert_bits_equal(x, before, f"{name}: project modified its input")
    if case["bitwise_identity"] and dtype == stored_dtype:
        assert_bits_equal(out, expected, f"{name} ({layout}, out of place)")
    else:
        assert_close(out, expected, rtol, atol, f"{name} ({layout}, out of place)")

    # The report.
    assert report.backend == backend
    assert report.radius == radius
    assert abs(report.norm_before - got_norm) <= 1e-12 * max(1.0, got_norm)
    assert report.untouched + report.zeroed + report.projected == report.groups
    assert all(isinstance(t, float) and t >= 0 for t in report.stages.values())
    assert "apply" in report.stages or report.untouched == report.groups

    # In place: the same bits as out of place, the same report, in the caller's array.
    y = x.copy(order="K") if layout in ("stored", "C", "F") else LAYOUTS[layout](x)
    assert y.strides == x.strides or layout in ("strided", "permuted")
    address = y.__array_interface__["data"][0]
    in_place_report = P.project_(y, radius=radius)
    assert y.__array_interface__["data"][0] == address
    assert_bits_equal(y, out, f"{name} ({layout}): in place and out of place disagree")
    assert in_place_report == report

    # The result lies in the ball (exactly, in the stored precision).
    assert P.norm(out) <= radius, name


def test_every_case_runs_on_the_expected_layout(case):
    """The inputs load in the order the manifest says (as the Rust test checks)."""
    x = load(case, "input")
    assert list(x.shape) == case["shape"]
    assert x.dtype == DTYPES[case["dtype"]]
    if x.ndim > 1:
        assert x.flags["C_CONTIGUOUS" if case["order"] == "C" else "F_CONTIGUOUS"]


def test_one_shot_forms_match(case):
    x = load(case, "input")
    P = mp.Projection(case["spec"])
    assert_bits_equal(
        mp.project(case["spec"], x, radius=case["radius"]), P.project(x, radius=case["radius"])
    )
    assert mp.norm(case["spec"], x) == P.norm(x)
    y = x.copy(order="K")
    report = mp.project_(case["spec"], y, radius=case["radius"])
    assert_bits_equal(y, P.project(x, radius=case["radius"]))
    assert report.groups > 0

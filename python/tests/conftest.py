"""Shared helpers: the fixture manifest, layouts of the same logical array, comparisons."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import multiproj

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def pytest_report_header(config):
    return f"multiproj {multiproj.__version__} from {pathlib.Path(multiproj.__file__).parent}"


def manifest():
    """The cases of tests/fixtures/manifest.json and of tests/fixtures/exact/manifest.json (the
    exact projections), with file names relative to tests/fixtures/."""
    with open(FIXTURES / "manifest.json") as f:
        cases = json.load(f)["cases"]
    with open(FIXTURES / "exact" / "manifest.json") as f:
        for c in json.load(f)["cases"]:
            c["input"] = f"exact/{c['input']}"
            c["expected"] = f"exact/{c['expected']}"
            cases.append(c)
    return cases


CASES = manifest()


@pytest.fixture(params=CASES, ids=[c["name"] for c in CASES])
def case(request):
    return request.param


def load(case, name):
    return np.load(FIXTURES / case[name])


# --- layouts ------------------------------------------------------------------------------------
# Each returns an array equal to `a` (same shape, same values) laid out differently in memory.


def as_stored(a):
    return a.copy(order="K")


def c_order(a):
    return np.ascontiguousarray(a)


def f_order(a):
    return np.asfortranarray(a)


def strided(a):
    """Every other element of a buffer twice as large along each axis, with the first axis
    reversed: positive, negative and non-unit strides at once."""
    big = np.full(tuple(2 * n for n in a.shape), np.nan, dtype=a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view = view[::-1] if a.ndim else view
    view[...] = a
    assert not view.flags.c_contiguous or a.size <= 1
    return view


def permuted(a):
    """A transposed view of a dense array whose axes lie in memory in rotated order (axis 1
    outermost, axis 0 innermost): neither C nor F order from rank 3 on."""
    perm = list(range(1, a.ndim)) + [0] if a.ndim > 1 else list(range(a.ndim))
    dense = np.ascontiguousarray(np.transpose(a, perm))
    return np.transpose(dense, np.argsort(perm))


LAYOUTS = {
    "stored": as_stored,
    "C": c_order,
    "F": f_order,
    "strided": strided,
    "permuted": permuted,
}


def axis_order(a):
    """The axes (with more than one element) from the largest stride to the smallest: the
    memory order of axes."""
    axes = [i for i in range(a.ndim) if a.shape[i] > 1]
    return sorted(axes, key=lambda i: -abs(a.strides[i]))


def is_dense(a):
    """The elements fill a block of memory without gaps, in some order of axes."""
    step = a.itemsize
    for i in sorted(range(a.ndim), key=lambda i: abs(a.strides[i])):
        if a.shape[i] > 1:
            if abs(a.strides[i]) != step:
                return False
            step *= a.shape[i]
    return True


def assert_bits_equal(got, expected, what=""):
    assert got.shape == expected.shape, what
    assert got.dtype == expected.dtype, what
    g = np.ascontiguousarray(got).view(np.uint64 if got.dtype == np.float64 else np.uint32)
    e = np.ascontiguousarray(expected).view(np.uint64 if got.dtype == np.float64 else np.uint32)
    bad = np.flatnonzero(g != e)
    assert bad.size == 0, (
        f"{what}: {bad.size} of {got.size} elements differ in their bits; first at "
        f"{np.unravel_index(bad[0], got.shape)}: {got.flat[bad[0]]!r} vs {expected.flat[bad[0]]!r}"
    )


def assert_close(got, expected, rtol, atol, what=""):
    """`|got - expected| <= atol + rtol*|expected|` everywhere, as the Rust fixture test."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, what
    diff = np.abs(got - expected)
    tol = atol + rtol * np.abs(expected)
    bad = ~(diff <= tol)
    if bad.any():
        ratio = np.where(bad, diff / tol, 0)
        ratio = np.where(np.isnan(ratio), np.inf, ratio)  # a NaN fails and ranks worst
        worst = np.unravel_index(np.argmax(ratio), got.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {got.size} elements differ by more than {atol:g} + "
            f"{rtol:g}*|expected|; worst at {worst}: got {got[worst]!r}, "
            f"expected {expected[worst]!r}"
        )

"""How arrays go in and out: no copies, the memory order kept, in place writing only the
caller's elements, array-likes, memory maps; the report, explain, and the class's manners."""

from __future__ import annotations

import os
import pathlib
import pickle
import pydoc
import subprocess
import threading

import numpy as np
import pytest

import multiproj as mp

from conftest import LAYOUTS, assert_bits_equal, axis_order

BILEVEL = "l1 over dim0 of linf over dim1"
ROOT = pathlib.Path(__file__).resolve().parents[2]


def weights(shape=(12, 9), dtype=np.float64, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


# --- out of place -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_result_keeps_dtype_shape_and_memory_order(dtype, layout):
    x = LAYOUTS[layout](weights((5, 6, 7), dtype))
    out = mp.project("l1 over dim0 of linf over dims1..", x, radius=1.0)
    assert out.dtype == dtype and out.shape == x.shape
    assert axis_order(out) == axis_order(x)
    assert out.flags.writeable and out.flags.aligned


def test_result_buffer_is_handed_over_without_a_copy():
    """The array NumPy gets is a view of the buffer Rust filled: its base is the Rust-side
    container, not another ndarray (a copy would own its data, base None)."""
    out = mp.project(BILEVEL, weights(), radius=1.0)
    assert out.base is not None and not isinstance(out.base, np.ndarray)
    assert not out.flags.owndata


def test_fortran_in_fortran_out():
    x = np.asfortranarray(weights())
    out = mp.project(BILEVEL, x, radius=1.0)
    assert out.flags.f_contiguous and not out.flags.c_contiguous


def test_input_is_not_modified():
    x = weights()
    before = x.copy()
    mp.project(BILEVEL, x, radius=0.1)
    assert_bits_equal(x, before)


@pytest.mark.parametrize("radius", [1, np.float32(1.0), np.float64(1.0), 1.0])
def test_radius_may_be_any_real_number(radius):
    x = weights()
    assert_bits_equal(mp.project(BILEVEL, x, radius=radius), mp.project(BILEVEL, x, radius=1.0))


def test_array_likes_are_converted():
    rows = weights().tolist()
    out = mp.project(BILEVEL, rows, radius=1.0)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert_bits_equal(out, mp.project(BILEVEL, np.array(rows), radius=1.0))
    assert mp.norm(BILEVEL, rows) == mp.norm(BILEVEL, np.array(rows))


class ArrayInterface:
    """An object that only has __array__."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


class DLPackOnly:
    """An object that only speaks DLPack."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


@pytest.mark.parametrize("wrap", [ArrayInterface, DLPackOnly])
def test_array_protocols(wrap):
    x = weights()
    assert_bits_equal(mp.project(BILEVEL, wrap(x), radius=1.0), mp.project(BILEVEL, x, radius=1.0))


def test_memory_maps(tmp_path):
    x = weights((40, 30))
    path = tmp_path / "w.npy"
    np.save(path, x)
    expected = mp.project(BILEVEL, x, radius=2.0)
    read_only = np.load(path, mmap_mode="r")
    assert_bits_equal(mp.project(BILEVEL, read_only, radius=2.0), expected)
    with pytest.raises(ValueError, match="read-only"):
        mp.project_(BILEVEL, read_only, radius=2.0)
    writable = np.load(path, mmap_mode="r+")
    mp.project_(BILEVEL, writable, radius=2.0)
    writable.flush()
    del writable
    assert_bits_equal(np.load(path), expected)


# --- in place -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_writes_only_the_views_elements(dtype):
    big = np.full((9, 13), 7.0, dtype=dtype)
    view = big[1:8:2, 12:0:-3]  # strided, with a reversed axis
    view[...] = weights(view.shape, dtype)
    outside = big.copy()
    outside[1:8:2, 12:0:-3] = 0
    expected = mp.project(BILEVEL, view, radius=0.5)
    report = mp.project_(BILEVEL, view, radius=0.5)
    assert_bits_equal(view, expected)
    rest = big.copy()
    rest[1:8:2, 12:0:-3] = 0
    assert_bits_equal(rest, outside, "elements outside the view were written")
    assert report.zeroed + report.projected > 0


def test_in_place_of_a_transposed_view_changes_the_base():
    base = weights((8, 5))
    expected = mp.project(BILEVEL, base.T, radius=0.5)
    mp.project_(BILEVEL, base.T, radius=0.5)
    assert_bits_equal(base.T, expected)


def test_in_place_inside_the_ball_writes_nothing():
    x = weights()
    x.setflags(write=True)
    report = mp.project_(BILEVEL, x, radius=mp.norm(BILEVEL, x))
    assert report.untouched == report.groups and report.zeroed == report.projected == 0


# --- the report ---------------------------------------------------------------------------------


def test_report_fields():
    x = weights((12, 9))
    out, report = mp.Projection(BILEVEL).project_with_report(x, radius=1.0)
    assert isinstance(report, mp.Report)
    assert report.backend == "jit"
    assert report.radius == 1.0
    assert report.norm_before == mp.norm(BILEVEL, x)
    assert report.groups == 12
    assert report.untouched + report.zeroed + report.projected == 12
    assert report.zeroed == int((~out.any(axis=1)).sum())
    assert list(report.stages)[-1] == "apply"
    assert set(report.stages) <= {
        "compile",
        "reduce",
        "upper-reduce",
        "solve",
        "threshold",
        "apply",
    }
    assert report.total_seconds == pytest.approx(sum(report.stages.values()))
    with pytest.raises(AttributeError):
        report.zeroed = 0  # frozen
    assert "zeroed=" in repr(report)


def test_report_of_the_interpreter():
    report = mp.Projection(BILEVEL, backend="interp").project_(weights(), radius=1.0)
    assert report.backend == "interp"
    assert "compile" not in report.stages


# --- explain ------------------------------------------------------------------------------------


def test_explain_prints_every_stage():
    P = mp.Projection(BILEVEL)
    text = P.explain((64, 48), dtype=np.float32)
    for heading in ("== syntax tree ==", "== IR ==", "== normalized levels ==", "== plan =="):
        assert heading in text
    assert "plan for f32 tensor [64x48] order C" in text
    assert "order F" in P.explain((64, 48), order="F")
    assert (
        P.explain((64, 48))
        == P.explain([64, 48], dtype="float64")
        == P.explain((64, 48), dtype=np.float64)
    )


def test_explain_an_array_uses_its_layout():
    P = mp.Projection(BILEVEL)
    w = np.asfortranarray(weights((6, 4), np.float32))
    assert P.explain(w) == P.explain(w.shape, dtype=w.dtype, order="F")
    view = weights((6, 8))[:, ::2]
    assert "strides [8, 2]" in P.explain(view)


def cli_binary():
    """The `multiproj` command most recently built from this tree (or MULTIPROJ_BIN)."""
    if os.environ.get("MULTIPROJ_BIN"):
        return os.environ["MULTIPROJ_BIN"]
    built = [ROOT / "target/release/multiproj", ROOT / "target/debug/multiproj"]
    built = [p for p in built if os.access(str(p), os.X_OK)]
    return str(max(built, key=lambda p: p.stat().st_mtime)) if built else None


@pytest.mark.skipif(cli_binary() is None, reason="the multiproj command is not built")
@pytest.mark.parametrize(
    "spec,shape,dtype,order",
    [
        (BILEVEL, (64, 48), "f64", "c"),
        ("l1 over dim0 of linf over dims1..", (8, 3, 3), "f32", "f"),
        ("l1 over dim2 of l1 over dim0 of linf over dim1", (6, 7, 9), "f64", "c"),
    ],
)
def test_explain_is_the_commands(spec, shape, dtype, order):
    shape_arg = "x".join(map(str, shape))
    cli = subprocess.run(
        [cli_binary(), "explain", spec, "--shape", shape_arg, "--dtype", dtype, "--order", order],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = mp.Projection(spec).explain(
        shape, dtype={"f32": np.float32, "f64": np.float64}[dtype], order=order.upper()
    )
    assert ours.strip() == cli.strip()


# --- the class ----------------------------------------------------------------------------------


def test_properties_and_repr():
    P = mp.Projection(f"{BILEVEL} <= 3", backend="interp")
    assert P.spec == f"{BILEVEL} <= 3"
    assert P.radius == 3.0
    assert P.backend == "interp"
    assert repr(P) == f"Projection('{BILEVEL} <= 3', backend='interp')"
    assert mp.Projection(BILEVEL).radius is None
    assert mp.Projection(BILEVEL).backend == "jit"


def test_pickles():
    P = mp.Projection(BILEVEL, backend="interp")
    Q = pickle.loads(pickle.dumps(P))
    assert (Q.spec, Q.backend) == (P.spec, P.backend)
    x = weights()
    assert_bits_equal(Q.project(x, radius=1.0), P.project(x, radius=1.0))


def test_help_is_useful():
    text = pydoc.render_doc(mp.Projection, renderer=pydoc.plaintext)
    for phrase in ("project_(", "radius", "backend", "thread-safe", "explain(", "SpecError"):
        assert phrase in text, phrase
    for name in mp.__all__:
        assert getattr(mp, name).__doc__ or name == "__version__", name
    assert mp.__doc__ and "nn.Linear.weight" in mp.__doc__


def test_version():
    assert mp.__version__.count(".") == 2


def test_one_projection_shared_by_threads():
    P = mp.Projection(BILEVEL)
    inputs = [weights((200, 50), seed=s) for s in range(8)]
    expected = [P.project(x, radius=3.0) for x in inputs]
    results = [None] * len(inputs)

    def work(i):
        for _ in range(5):
            results[i] = P.project(inputs[i], radius=3.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert_bits_equal(got, want)


def test_docstring_examples_run():
    import doctest

    failures, tried = doctest.testmod(mp, optionflags=doctest.ELLIPSIS)
    assert tried >= 10 and failures == 0

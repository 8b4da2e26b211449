"""Every error the package raises: its class, its message (the miette drawing, the spec
underlined), its attributes — and that nothing is written when a projection is refused."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import multiproj as mp

BILEVEL = "l1 over dim0 of linf over dim1"


def raised(cls, f, *args, **kwargs):
    with pytest.raises(cls) as info:
        f(*args, **kwargs)
    return info.value


# --- the hierarchy ------------------------------------------------------------------------------


def test_hierarchy():
    assert issubclass(mp.Error, Exception)
    for cls in (mp.SpecError, mp.ShapeError, mp.DataError):
        assert issubclass(cls, mp.Error)
        assert issubclass(cls, ValueError)
    assert not issubclass(mp.Error, ValueError)


def test_errors_pickle_with_their_attributes():
    e = raised(mp.SpecError, mp.Projection, "l1 over dims 0,1 of linf over dim1")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is mp.SpecError
    assert str(back) == str(e) and back.span == e.span and back.labels == e.labels


# --- SpecError ----------------------------------------------------------------------------------


def test_parse_error_draws_the_spec_underlined():
    e = raised(mp.SpecError, mp.Projection, "l1 over dim0 of")
    text = str(e)
    assert text.splitlines()[0] == "expected a norm: l1, l2 or linf"
    assert e.message == "expected a norm: l1, l2 or linf"
    assert "1 │ l1 over dim0 of" in text
    assert "╰── unexpected end of the spec after this" in text
    assert "help: `of` must be followed by another level" in text
    assert e.code == "multiproj::parse"
    assert e.help.startswith("`of` must be followed")
    assert e.spec == "l1 over dim0 of"
    assert e.span == (13, 15)
    assert e.spec[slice(*e.span)] == "of"
    assert e.labels == [(13, 15, "unexpected end of the spec after this")]
    # No colours: plain text for logs and doctests.
    assert "\x1b[" not in text


def test_spans_count_characters_not_bytes():
    e = raised(mp.SpecError, mp.Projection, "l1 over dïm0")
    assert e.spec[slice(*e.span)] == "dïm0"


@pytest.mark.parametrize(
    "spec,culprit,code",
    [
        ("l3 over dim0", "l3", "multiproj::parse"),
        ("l1 over dim0 <= nan", "nan", "multiproj::parse"),
        ("l1 over dim99999999999999999999999", "99999999999999999999999", "multiproj::parse"),
        ("l1 over dim0 <= -1", "-1", "multiproj::check::invalid_radius"),
        ("l1 over dims 3..1", "dims 3..1", "multiproj::check::empty_level"),
        ("l1 over dims 0,0", "0", "multiproj::check::axis_repeated"),
    ],
)
def test_spec_errors_point_at_the_culprit(spec, culprit, code):
    e = raised(mp.SpecError, mp.Projection, spec)
    assert e.spec[slice(*e.span)] == culprit
    assert e.code == code
    assert f"1 │ {spec}" in str(e)


def test_axis_used_twice_has_two_labels():
    e = raised(mp.SpecError, mp.Projection, "l1 over dims 0,1 of linf over dim1")
    assert e.message == "axis 1 is used twice"
    assert [label for *_, label in e.labels] == ["first use", "used again here"]
    assert e.span == e.labels[0][:2]
    assert "help: the levels' axis sets must be disjoint" in str(e)


def test_empty_spec():
    e = raised(mp.SpecError, mp.Projection, "  ")
    assert e.message == "the spec is empty"


def test_missing_radius_says_how_to_give_one():
    e = raised(mp.SpecError, mp.Projection(BILEVEL).project, np.ones((2, 2)))
    assert e.message == "no radius: the spec has no `<= R` and none was given"
    assert "pass radius=R" in str(e)
    assert e.span is None


def test_radius_given_twice():
    P = mp.Projection(f"{BILEVEL} <= 2")
    assert P.radius == 2.0
    e = raised(mp.SpecError, P.project, np.ones((2, 2)), radius=3.0)
    assert e.message == "the radius is given twice: `<= 2` in the spec and 3 at run time"
    assert e.spec[slice(*e.span)] == "2"
    # The spec's radius alone is fine.
    assert P.norm(P.project(np.ones((2, 2)))) <= 2.0


@pytest.mark.parametrize(
    "radius,reason",
    [
        (-1.0, "a radius must be non-negative"),
        (float("nan"), "a radius must be a number"),
        (float("inf"), "a radius must be finite"),
    ],
)
def test_invalid_radius(radius, reason):
    x = np.ones((2, 2))
    for f in (mp.Projection(BILEVEL).project, mp.Projection(BILEVEL).project_):
        e = raised(mp.SpecError, f, x, radius=radius)
        assert reason in e.message
        assert e.span is None
    assert (x == 1).all()


def test_radius_is_keyword_only():
    with pytest.raises(TypeError):
        mp.Projection(BILEVEL).project(np.ones((2, 2)), 1.0)


def test_unknown_backend():
    e = raised(ValueError, mp.Projection, BILEVEL, backend="gpu")
    assert "unknown backend" in str(e) and "interp" in str(e)


# --- ShapeError ---------------------------------------------------------------------------------


def test_axis_out_of_range():
    e = raised(mp.ShapeError, mp.Projection(BILEVEL).project, np.ones(3), radius=1.0)
    assert e.message == (
        "the spec does not fit a float64 array of shape (3,): axis 1 is out of range for a "
        "rank-1 tensor"
    )
    assert e.spec[slice(*e.span)] == "1"
    assert e.shape == (3,)
    assert "help: the tensor has one axis: 0" in str(e)
    assert e.code == "multiproj::check::axis_out_of_range"


def test_axis_not_covered():
    e = raised(mp.ShapeError, mp.Projection(BILEVEL).norm, np.ones((2, 2, 2), dtype=np.float32))
    assert e.message.startswith("the spec does not fit a float32 array of shape (2, 2, 2)")
    assert "axis 2 of a rank-3 tensor is not covered" in e.message
    assert e.spec[slice(*e.span)] == BILEVEL


def test_open_range_past_the_last_axis():
    P = mp.Projection("l1 over dim0 of linf over dims1..")
    e = raised(mp.ShapeError, P.project_, np.ones(3), radius=1.0)
    assert e.spec[slice(*e.span)] == "dims1.."


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_empty_arrays(shape):
    P = mp.Projection(BILEVEL)
    for f in (P.project, P.project_):
        e = raised(mp.ShapeError, f, np.ones(shape), radius=1.0)
        assert "no elements" in e.message
    e = raised(mp.ShapeError, P.norm, np.ones(shape)[::-1])
    assert e.shape == shape


def test_scalar():
    e = raised(mp.ShapeError, mp.Projection("l1 over dim0").project, 3.0, radius=1.0)
    assert "rank-0" in e.message


# --- DataError ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_data(dtype, value):
    x = np.arange(12, dtype=dtype).reshape(3, 4)
    x[2, 1] = value
    before = x.copy()
    P = mp.Projection(BILEVEL)
    for f in (P.project, P.project_):
        e = raised(mp.DataError, f, x, radius=1.0)
        assert e.index == (2, 1)
        assert e.value == value or (np.isnan(e.value) and np.isnan(value))
        assert e.message.startswith("the input holds ")
        assert "np.nan_to_num" in str(e)
        np.testing.assert_array_equal(x, before)  # nothing written, in place or not
    e = raised(mp.DataError, P.norm, x)
    assert e.index == (2, 1)


def test_data_error_index_is_the_logical_index_of_a_view():
    x = np.zeros((4, 6))
    x[1, 4] = np.nan
    view = x.T[::-1]  # shape (6, 4); x[1, 4] is view[1, 1]
    e = raised(mp.DataError, mp.Projection(BILEVEL).project, view, radius=1.0)
    assert e.index == (1, 1)
    assert np.isnan(view[e.index])


# --- what cannot be viewed: TypeError and ValueError ---------------------------------------------


@pytest.mark.parametrize(
    "dtype,hint",
    [
        (np.int64, "x.astype(np.float32) or x.astype(np.float64)"),
        (np.int8, "x.astype"),
        (np.complex128, "x.astype"),
        (np.bool_, "x.astype"),
        (np.longdouble, "x.astype"),
    ],
)
def test_unsupported_dtypes_are_type_errors(dtype, hint):
    x = np.ones((2, 2), dtype=dtype)
    P = mp.Projection(BILEVEL)
    for f in (P.project, P.project_):
        e = raised(TypeError, f, x, radius=1.0)
        assert np.dtype(dtype).name in str(e)
        assert "multiproj computes on float16, bfloat16, float32 and float64" in str(e)
        assert hint in str(e)
    raised(TypeError, P.norm, x)


def test_object_arrays_are_type_errors():
    raised(TypeError, mp.Projection(BILEVEL).project, np.array([[1.0, None]]), radius=1.0)


@pytest.mark.parametrize("dtype", [">f8", ">f4"])
def test_byteswapped_data_is_refused(dtype):
    x = np.ones((2, 2), dtype=dtype)
    e = raised(TypeError, mp.Projection(BILEVEL).project, x, radius=1.0)
    assert dtype in str(e) and "byte order" in str(e) and "newbyteorder" in str(e)


def unaligned(shape, dtype=np.float64):
    """A float array whose data starts one byte past an aligned address."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = np.zeros(n + 1, dtype=np.uint8)
    x = buf[1:].view(dtype).reshape(shape)
    assert not x.flags.aligned
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_data_is_refused(dtype):
    x = unaligned((3, 4), dtype)
    x[...] = 1.0
    P = mp.Projection(BILEVEL)
    e = raised(ValueError, P.project, x, radius=1.0)
    assert "not aligned" in str(e) and "x.copy()" in str(e)
    e = raised(ValueError, P.project_, x, radius=1.0)
    assert "cannot be projected in place" in str(e)
    # The aligned copy works.
    assert P.norm(x.copy()) == 3.0


def test_strides_that_are_not_whole_elements_are_refused():
    record = np.zeros(6, dtype=[("tag", "u1"), ("value", "<f8")])  # packed: a stride of 9 bytes
    values = record["value"]
    assert values.strides == (9,)
    raised(ValueError, mp.Projection("l1 over dim0").project, values, radius=1.0)


def test_read_only_arrays_cannot_be_projected_in_place():
    x = np.ones((3, 4))
    x.setflags(write=False)
    P = mp.Projection(BILEVEL)
    e = raised(ValueError, P.project_, x, radius=1.0)
    assert "read-only" in str(e) and "P.project(x)" in str(e)
    # Out of place reads it happily.
    assert P.project(x, radius=1.0).flags.writeable


def test_overlapping_views_cannot_be_projected_in_place():
    base = np.ones(8)
    x = np.lib.stride_tricks.as_strided(base, shape=(4, 4), strides=(8, 8), writeable=True)
    e = raised(ValueError, mp.Projection(BILEVEL).project_, x, radius=1.0)
    assert "overlap" in str(e)
    assert (base == 1).all()
    # A broadcast is read-only, and fine out of place.
    b = np.broadcast_to(np.arange(4.0), (3, 4))
    out = mp.Projection(BILEVEL).project(b, radius=1.0)
    np.testing.assert_allclose(out, mp.Projection(BILEVEL).project(b.copy(), radius=1.0))


def test_in_place_needs_an_array_to_write_into():
    P = mp.Projection(BILEVEL)
    for x in ([[1.0, 2.0]], ((1.0, 2.0),), memoryview(np.ones((2, 2)))):
        e = raised(TypeError, P.project_, x, radius=1.0)
        assert "needs a numpy.ndarray or a CPU torch tensor" in str(e)


def test_too_many_dimensions():
    try:
        x = np.ones((1,) * 33)
    except ValueError:
        pytest.skip("this NumPy has at most 32 dimensions (NumPy 2 allows 64)")
    e = raised(ValueError, mp.Projection("l1 over dims0..").project, x, radius=1.0)
    assert "33 dimensions" in str(e)


def test_explain_errors():
    P = mp.Projection(BILEVEL)
    e = raised(mp.ShapeError, P.explain, (3,))
    assert e.message.startswith("the spec does not fit a float64 array of shape (3,)")
    raised(TypeError, P.explain, (3, 4), dtype=np.int32)
    raised(ValueError, P.explain, (3, 4), order="K")
    raised(ValueError, P.explain, (2**62, 2**62))

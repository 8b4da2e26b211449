"""The exceptions multiproj raises (the native module raises these classes too)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

__all__ = ["Error", "SpecError", "ShapeError", "DataError"]


class Error(Exception):
    """Base class of multiproj's errors.

    Raised as itself only for a bug in multiproj (an internal error); the subclasses say what
    is wrong with the spec, the array's shape or the data. ``str(e)`` is the whole rendered
    diagnostic: the message on the first line, then the spec with the culprit underlined and
    a ``help:`` line where there is one.

    Attributes:
        code: the diagnostic's code, e.g. ``"multiproj::parse"`` (None if it has none).
        help: what to do about it, or None.
    """

    def __init__(self, message: str, *, code: Optional[str] = None, help: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.help = help

    @property
    def message(self) -> str:
        """The first line of the message: the error in words."""
        return str(self.args[0]).split("\n", 1)[0] if self.args else ""


class _Located(Error):
    """An error about a place in the spec."""

    def __init__(
        self,
        message: str,
        *,
        spec: Optional[str] = None,
        span: Optional[Tuple[int, int]] = None,
        labels: Sequence[Tuple[int, int, str]] = (),
        **kwargs: Any,
    ):
        super().__init__(message, **kwargs)
        self.spec = spec
        self.span = None if span is None else tuple(span)
        self.labels = [tuple(label) for label in labels]


class SpecError(_Located, ValueError):
    """The spec does not parse or is wrong for any array, or the radius is missing, given
    twice (in the spec and as ``radius=``) or invalid.

    Attributes:
        spec: the spec's text.
        span: ``(start, end)`` of the primary culprit in ``spec`` (``spec[start:end]``), or
            None when the error is about no place in the spec (a missing radius).
        labels: every underlined part, as ``(start, end, label)``.
    """


class ShapeError(_Located, ValueError):
    """The spec does not fit the array it is applied to: an axis the array does not have, an
    axis no level covers, an array without elements.

    Attributes:
        spec, span, labels: as for :class:`SpecError`.
        shape: the array's shape.
    """

    def __init__(self, message: str, *, shape: Optional[Tuple[int, ...]] = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.shape = None if shape is None else tuple(shape)


class DataError(Error, ValueError):
    """The data cannot be projected: it holds a NaN or an infinity.

    Nothing is written when this is raised, in place or not.

    Attributes:
        index: the index of the first offending element (in C order), a tuple, or None.
        value: that element's value (nan, inf or -inf), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        index: Optional[Tuple[int, ...]] = None,
        value: Optional[float] = None,
        **kwargs: Any,
    ):
        super().__init__(message, **kwargs)
        self.index = None if index is None else tuple(index)
        self.value = value

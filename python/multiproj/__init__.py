"""multiproj: multi-level norm-ball projections of tensors.

A spec such as ``"l1 over dim0 of linf over dim1"`` names one norm per level of a tree of
aggregates; projecting onto the ball of that multi-level norm zeroes whole rows, columns or
channels of a tensor (structured sparsity) in linear time. The spec is parsed and checked once,
planned per array layout, and run by a Cranelift JIT (or an interpreter) with the GIL released.

    >>> import numpy as np, multiproj as mp
    >>> P = mp.Projection("l1 over dim0 of linf over dim1")   # rows are the groups
    >>> w = np.array([[3.0, -1.0, 0.5], [0.1, 0.2, -0.1], [-2.0, 2.5, 1.0]])
    >>> x = P.project(w, radius=1.0)          # a new array: same shape, dtype, memory order
    >>> bool(P.norm(x) <= 1.0), bool((x[1] == 0).all())
    (True, True)
    >>> report = P.project_(w, radius=1.0)    # in place; returns what happened
    >>> report.zeroed
    1

Arrays: NumPy float16, float32 and float64 arrays (and ``ml_dtypes.bfloat16`` ones) of any
strides and memory order (slices, transposes, reversed views) are read where they lie, without
a copy; ``project_`` writes into the caller's array. Other array-likes are accepted by the
out-of-place forms through ``np.asarray`` (a copy for lists and the like). CPU torch tensors
(float16, bfloat16, float32, float64) are accepted everywhere and
``project`` returns a torch tensor for a torch tensor; ``project_`` works on an
``nn.Parameter`` inside ``torch.no_grad()``. A torch ``nn.Linear.weight`` is (out, in), so the
input features are its columns: ``"l1 over dim1 of linf over dim0"`` selects features.

Errors: :class:`SpecError` (the spec does not parse, or the radius is missing or given twice),
:class:`ShapeError` (the spec does not fit the array), :class:`DataError` (NaN or infinity),
all subclasses of :class:`Error` and ``ValueError``; an unsupported dtype or device is a
``TypeError``.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import DataError, Error, ShapeError, SpecError
from ._multiproj import Projection as _Native
from ._multiproj import __version__
from ._report import Level, Report

__all__ = [
    "Projection",
    "Level",
    "Report",
    "project",
    "project_",
    "norm",
    "Error",
    "SpecError",
    "ShapeError",
    "DataError",
    "__version__",
]


class Projection:
    """A compiled multi-level norm-ball projection: parse and check a spec once, then project
    any number of arrays (of any shape the spec fits, float16, bfloat16, float32 or float64, any
    memory layout).

    ``Projection(spec, *, backend="jit")``

    Args:
        spec: e.g. ``"l1 over dim0 of linf over dim1"`` (levels outermost first), optionally
            with a radius: ``"l2 over dims0..1 <= 10"``.
        backend: ``"jit"`` (the default: Cranelift-compiled, vectorized, parallel kernels) or
            ``"interp"`` (the plain reference implementation).

    Raises:
        SpecError: the spec does not parse, or is wrong for any array (an axis used twice).

    The radius comes from the spec (``<= R``) or from each call: ``radius=``, or a target it is
    chosen for from the data — ``keep=K`` (exactly K top-level groups survive), ``sparsity=F``
    (a fraction of them is zeroed), ``radius_frac=F`` (F times the data's norm). Both the spec
    and a call, or neither, is an error.

    A leading ``exact`` (``"exact l1 over dim0 of linf over dim1"``) asks for the exact
    Euclidean projection onto the same ball instead of the multi-level one: the point of the
    ball nearest to the data. It exists for one level and for every two-level spec (and specs
    that normalize to them); :meth:`compare` shows both side by side.

    A ``Projection`` is immutable and thread-safe: share it between threads. Plans are cached
    per array layout, and projections release the GIL, so threads project in parallel.

    Methods:
        project(x, *, radius=None, keep=None, sparsity=None, radius_frac=None): a new array (or
            tensor), same shape, dtype and memory order.
        project_with_report(x, ...): ``(array, Report)``.
        project_(x, ...): in place; returns a :class:`Report`.
        norm(x): the multi-level norm of ``x``.
        compare(x, ...): the multi-level and the exact projection of ``x``, and how they differ.
        explain(shape, *, dtype=..., order="C"): the plan, as ``multiproj explain`` prints it.

    Example:
        >>> import numpy as np, multiproj as mp
        >>> P = mp.Projection("l1 over dim1 of linf over dim0")   # columns are the groups
        >>> w = np.random.default_rng(0).normal(size=(64, 32))
        >>> x = P.project(w, radius=2.0)
        >>> bool(P.norm(x) <= 2.0)
        True
    """

    __slots__ = ("_native",)

    def __init__(self, spec: str, *, backend: str = "jit") -> None:
        self._native = _Native(spec, backend=backend)

    @property
    def spec(self) -> str:
        """The spec, as written."""
        return self._native.spec

    @property
    def radius(self) -> Optional[float]:
        """The radius the spec fixes (``... <= R``), or None if it leaves it to each call."""
        return self._native.radius

    @property
    def backend(self) -> str:
        """``"jit"`` or ``"interp"``."""
        return self._native.backend

    def project(
        self,
        x: Any,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Any:
        """The projection of ``x`` onto the ball, as a new array.

        Args:
            x: a NumPy array (float16, float32 or float64, or ``ml_dtypes.bfloat16``; any
                strides: read where it lies), a CPU torch tensor (float16, bfloat16, float32,
                float64), or any array-like (converted with ``np.asarray``, a copy for lists).
                Sums and radii are computed in float64 whatever the dtype; the results are
                rounded once to it, and lie inside the ball in that precision.
            radius: the radius of the ball, if the spec has no ``<= R``.
            keep: instead of a radius, keep exactly this many *top-level groups* (the rows,
                columns or channels the outermost norm sums over; it must be l1) and set the
                others to zero: the largest radius that does so is chosen from the data.
            sparsity: instead of a radius, set this fraction (0 to 1) of the top-level groups
                to zero (``keep`` of the rest, rounded).
            radius_frac: instead of a radius, this fraction of ``x``'s norm.
            At most one of ``radius``, ``keep``, ``sparsity``, ``radius_frac``.

        Returns:
            An array of the same shape, dtype and memory order of axes as ``x`` (a torch tensor
            for a torch tensor; it does not require grad). ``x`` is not modified.

        Raises:
            SpecError: no radius, or a radius both in the spec and here, or an invalid one.
            DataError: a target the data cannot meet (``keep`` with ties across the K-th
                group: the message names the counts that can be kept), or one the spec cannot
                (``keep`` with a linf or l2 top level, which never zeroes a group).
            ValueError: several of ``radius``, ``keep``, ``sparsity``, ``radius_frac``.
            ShapeError: the spec does not fit ``x``'s shape.
            DataError: ``x`` holds a NaN or an infinity.
            TypeError: ``x`` is not float16, bfloat16, float32 or float64 (e.g. an integer
                array: ``x.astype(np.float32)``), or is a torch tensor on a GPU (``x.cpu()``).
        """
        array, back = _readable(x)
        out = self._native.project(array, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac)
        return back(out)

    def project_with_report(
        self,
        x: Any,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Tuple[Any, Report]:
        """Like :meth:`project`, also returning what happened: ``(array, report)``."""
        array, back = _readable(x)
        out, report = self._native.project_with_report(array, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac)
        return back(out), report

    def project_(
        self,
        x: Any,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Report:
        """Projects ``x`` in place (the trailing underscore is torch's ``clamp_`` convention).

        Groups already inside their ball are not written. If ``x`` holds a NaN or an
        infinity, nothing is written and :class:`DataError` is raised.

        Args:
            x: a writable NumPy array (float16, float32, float64 or ``ml_dtypes.bfloat16``, any
                strides whose elements do not overlap), or a CPU torch tensor of those dtypes
                (an ``nn.Parameter`` inside ``torch.no_grad()``).
            radius, keep, sparsity, radius_frac: the radius, or the target it is chosen for,
                as for :meth:`project`.

        Returns:
            The :class:`Report`: which top-level groups survive (``report.survivors``), what
            happened at every level (``report.levels``), the radius chosen.

        Raises:
            ValueError: ``x`` is read-only, unaligned, or a view whose elements overlap.
            TypeError: ``x`` is not a NumPy array or torch tensor (lists cannot be written
                into), or has another dtype, or lives on a GPU.
            RuntimeError: ``x`` is a torch tensor that requires grad while grad mode is on
                (as for any in-place update of a parameter: use ``torch.no_grad()``).
            SpecError, ShapeError, DataError: as for :meth:`project`.
        """
        array, torch = _writable(x)
        report = self._native.project_(array, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac)
        if torch is not None:
            _bump_version(torch, x)
        return report

    def project_shard_(
        self,
        x: Any,
        axis: int,
        comm: Any,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Report:
        """Projects this process's shard ``x`` of a tensor split along ``axis`` across the
        processes of ``comm``, in place, together with them.

        Every process calls this with its own shard (the shards in rank order along ``axis``;
        any extents, empty ones included; the other extents equal). Only O(groups) numbers are
        communicated: the group norms, and for an innermost l1 norm split across processes a
        sum and a count per shrinking group per Newton step. The result equals the
        single-process projection of the whole tensor (bit for bit when the innermost norm is
        linf, to rounding otherwise).

        Args:
            x: a writable NumPy array or CPU torch tensor, as for :meth:`project_`.
            axis: the axis along which the tensor is split.
            comm: the collectives: ``rank()``, ``size()``, ``all_gather(a)`` (every process's
                float64 array, in rank order) and ``all_reduce(a, op)`` (``op`` ``"sum"`` or
                ``"max"``; the same bits on every process) — for torch.distributed,
                :class:`multiproj.distributed.TorchCommunicator`.
            radius, keep, sparsity, radius_frac: the whole tensor's radius, or the target it
                is chosen for.

        Returns:
            The whole tensor's :class:`Report` (global norms and counts), the same on every
            process.
        """
        array, torch = _writable(x)
        report = self._native.project_shard_(
            array, axis, comm, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac
        )
        if torch is not None:
            _bump_version(torch, x)
        return report

    @property
    def exact(self) -> bool:
        """True when the spec asks for the exact Euclidean projection (``exact l1 over ...``)
        rather than the multi-level one."""
        return self._native.exact

    def compare(
        self,
        x: Any,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Projects ``x`` both ways — the multi-level projection and the exact Euclidean
        projection onto the same ball, whether or not the spec says ``exact`` — and says how
        they differ.

        ``radius``, ``keep``, ``sparsity``, ``radius_frac`` are as for :meth:`project`;
        ``keep`` and ``sparsity`` choose the radius for the multi-level projection, and the
        exact one runs at that radius.

        Returns:
            A dict: ``"radius"``; ``"distance"``, ``‖X_multi − X_exact‖₂``; and under
            ``"multi_level"`` and ``"exact"`` each a dict with ``"report"`` (a :class:`Report`),
            ``"distance_to_input"`` (``‖x − X‖₂``: the exact projection's is the least of any
            point of the ball), ``"nonzeros"`` and ``"seconds"``.

        Raises:
            SpecError: the spec has no exact projection (three levels that do not normalize to
                two), or the radius is missing or given twice.
            ShapeError, DataError, TypeError, ValueError: as for :meth:`project`.
        """
        array, _ = _readable(x)
        return self._native.compare(
            array, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac
        )

    def norm(self, x: Any) -> float:
        """The multi-level norm of ``x`` (no radius needed): a float.

        ``x`` is anything :meth:`project` accepts; NaN or infinity raise :class:`DataError`.
        """
        array, _ = _readable(x)
        return self._native.norm(array)

    def explain(
        self,
        shape: Union[Sequence[int], Any],
        *,
        dtype: Any = None,
        order: str = "C",
    ) -> str:
        """The compiler's stages for an array of this shape, as ``multiproj explain --shape``
        prints them: the syntax tree, the IR, the normalized levels and the plan (loop order,
        groups, steps, schedule).

        Args:
            shape: a shape (``w.shape``), or an array or tensor, whose own shape, dtype and
                strides are then used.
            dtype: ``np.float16``/``np.float32``/``np.float64``, ``"bfloat16"`` (or
                ``"float32"``, a torch dtype, ...);
                default float64, or the array's.
            order: ``"C"`` (row-major) or ``"F"`` (column-major) for a shape.

        Raises:
            ShapeError: the spec does not fit the shape.
        """
        strides = None
        if hasattr(shape, "shape") and hasattr(shape, "dtype"):
            array: Any = shape
            if dtype is None:
                dtype = array.dtype
            if isinstance(array, np.ndarray):
                itemsize = array.dtype.itemsize
                strides = [s // itemsize for s in array.strides]
            elif callable(getattr(array, "stride", None)):
                strides = list(array.stride())
            shape = array.shape
        return self._native.explain(
            [int(n) for n in shape], dtype=_dtype_name(dtype), order=order, strides=strides
        )

    def __repr__(self) -> str:
        return f"Projection({self.spec!r}, backend={self.backend!r})"

    def __reduce__(self) -> Tuple[Any, Tuple[str, str]]:
        return (_rebuild, (self.spec, self.backend))


def _rebuild(spec: str, backend: str) -> Projection:
    return Projection(spec, backend=backend)


@functools.lru_cache(maxsize=64)
def _compiled(spec: str, backend: str) -> Projection:
    return Projection(spec, backend=backend)


def project(
    spec: str,
    x: Any,
    *,
    radius: Optional[float] = None,
    keep: Optional[int] = None,
    sparsity: Optional[float] = None,
    radius_frac: Optional[float] = None,
    backend: str = "jit",
) -> Any:
    """One-shot :meth:`Projection.project`: ``mp.project("l1 over dim0 of l2 over dim1", w,
    radius_frac=0.1)``. The compiled spec is cached, so calling this in a loop compiles it once."""
    return _compiled(spec, backend).project(
        x, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac
    )


def project_(
    spec: str,
    x: Any,
    *,
    radius: Optional[float] = None,
    keep: Optional[int] = None,
    sparsity: Optional[float] = None,
    radius_frac: Optional[float] = None,
    backend: str = "jit",
) -> Report:
    """One-shot :meth:`Projection.project_` (in place; returns the :class:`Report`)."""
    return _compiled(spec, backend).project_(
        x, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac
    )


def norm(spec: str, x: Any, *, backend: str = "jit") -> float:
    """One-shot :meth:`Projection.norm`: the multi-level norm of ``x``."""
    return _compiled(spec, backend).norm(x)


# --- arrays and tensors -------------------------------------------------------------------------

_SUPPORTED = "multiproj computes on float16, bfloat16, float32 and float64"

# NumPy has no bfloat16: a torch bfloat16 tensor or an ml_dtypes.bfloat16 array reaches the
# native module as a uint16 view of the same memory whose dtype carries this metadata (the
# native module reads the marker; the values are never converted or copied).
_BF16_BITS = np.dtype(np.uint16, metadata={"multiproj.dtype": "bfloat16"})


def _same(out: Any) -> Any:
    return out


def _is_tensor(x: Any) -> bool:
    """A torch tensor (or something shaped like one), told by its attributes so that torch is
    never imported here."""
    return (
        not isinstance(x, np.ndarray)
        and hasattr(x, "device")
        and hasattr(x, "dtype")
        and callable(getattr(x, "detach", None))
        and callable(getattr(x, "numpy", None))
    )


def _is_bf16_array(x: np.ndarray) -> bool:
    """An ``ml_dtypes.bfloat16`` array (told by its dtype's name and size, so that ml_dtypes
    is never imported here)."""
    return x.dtype.name == "bfloat16" and x.dtype.itemsize == 2 and x.dtype.fields is None


def _ndarray(x: np.ndarray) -> Tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """What the native module gets for an ndarray, and how its result comes back."""
    if _is_bf16_array(x):
        dtype = x.dtype
        return x.view(_BF16_BITS), lambda out: out.view(dtype)
    return x, _same


def _tensor_array(x: Any, *, writing: bool) -> Tuple[np.ndarray, Any, Callable[[np.ndarray], Any]]:
    """The NumPy array sharing ``x``'s memory (never a copy), the torch module, and how a
    result array becomes a tensor."""
    device = getattr(x.device, "type", str(x.device))
    if device != "cpu":
        raise TypeError(
            f"the tensor is on the {x.device} device; multiproj projects tensors in CPU memory: "
            f"move it with x.cpu()"
            + (" and copy the result back (x.copy_(y))" if writing else "")
            + " — it is never copied silently"
        )
    dtype = str(x.dtype).replace("torch.", "")
    if dtype not in ("float16", "bfloat16", "float32", "float64"):
        raise TypeError(
            f"the tensor has dtype torch.{dtype}; {_SUPPORTED}: convert it with x.float() or "
            f"x.double()"
            + (" and copy the result back (x.copy_(y))" if writing else "")
        )
    layout = str(getattr(x, "layout", "torch.strided"))
    if layout != "torch.strided":
        raise TypeError(f"the tensor has layout {layout}; multiproj projects dense tensors")
    torch = sys.modules.get(type(x).__module__.split(".")[0])
    if writing and getattr(x, "requires_grad", False) and torch is not None:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "the tensor requires grad and grad mode is on: projecting it in place would "
                "change it behind autograd's back; wrap the call in `with torch.no_grad():` "
                "as for any in-place update of a parameter"
            )
    # .detach() shares the storage (and lets .numpy() accept an nn.Parameter); .numpy() of a
    # CPU tensor shares its memory, strides included. bfloat16 has no NumPy dtype: its bits
    # are viewed as int16 (torch) and then as marked uint16 (NumPy), the same memory.
    t = x.detach()
    if dtype == "bfloat16":
        bf16 = t.dtype
        array = t.view(torch.int16).numpy().view(_BF16_BITS)
        return array, torch, lambda out: torch.from_numpy(out.view(np.int16)).view(bf16)
    return t.numpy(), torch, torch.from_numpy


def _readable(x: Any) -> Tuple[Any, Callable[[np.ndarray], Any]]:
    """What the native module reads (an ndarray as is, a tensor's memory, or
    ``np.asarray(x)``) and how a result array comes back as the caller's kind (a tensor for
    a tensor, a bfloat16 array for one)."""
    if isinstance(x, np.ndarray):
        return _ndarray(x)
    if _is_tensor(x):
        array, _, back = _tensor_array(x, writing=False)
        return array, back
    if not hasattr(x, "__array__") and hasattr(x, "__dlpack__"):
        return _ndarray(np.from_dlpack(x))
    return _ndarray(np.asarray(x))


def _writable(x: Any) -> Tuple[np.ndarray, Any]:
    if isinstance(x, np.ndarray):
        return _ndarray(x)[0], None
    if _is_tensor(x):
        array, torch, _ = _tensor_array(x, writing=True)
        return array, torch
    raise TypeError(
        f"project_ writes into its argument, so it needs a numpy.ndarray or a CPU torch tensor, "
        f"not {type(x).__module__}.{type(x).__qualname__}; use project() for a new array"
    )


def _bump_version(torch: Any, x: Any) -> None:
    """Tells autograd that ``x`` changed, as torch's own in-place operations do, so that a
    graph that saved the old values refuses to run backward instead of using the new ones."""
    increment = getattr(
        getattr(getattr(torch, "autograd", None), "graph", None), "increment_version", None
    )
    if increment is not None:
        increment(x)


def _dtype_name(dtype: Any) -> str:
    """``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"`` for a NumPy or torch
    dtype, a type or a name."""
    if dtype is None:
        return "float64"
    names = ("float16", "bfloat16", "float32", "float64")
    name = str(dtype).replace("torch.", "")
    if name == "half":
        name = "float16"
    try:
        name = np.dtype(name if name in names else dtype).name
    except TypeError:
        pass
    if name in names:
        return name
    raise TypeError(f"{_SUPPORTED}, not {dtype}")

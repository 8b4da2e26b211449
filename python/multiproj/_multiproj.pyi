"""Stubs of the native module multiproj._multiproj (import ``multiproj`` instead)."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt


__version__: str

_Float = npt.NDArray[np.floating]

class Level:
    """What one level of groups became (an entry of ``Report.levels``)."""

    @property
    def axes(self) -> Tuple[int, ...]: ...
    @property
    def norm(self) -> str: ...
    @property
    def groups(self) -> int: ...
    @property
    def kept(self) -> int: ...
    @property
    def shrunk(self) -> int: ...
    @property
    def zeroed(self) -> int: ...
    @property
    def thresholds(self) -> npt.NDArray[np.float64]: ...

class Report:
    """What a projection did."""

    @property
    def backend(self) -> str: ...
    @property
    def radius(self) -> float: ...
    @property
    def norm_before(self) -> float: ...
    @property
    def norm_after(self) -> float: ...
    @property
    def groups(self) -> int: ...
    @property
    def untouched(self) -> int: ...
    @property
    def zeroed(self) -> int: ...
    @property
    def projected(self) -> int: ...
    @property
    def survivors(self) -> npt.NDArray[np.int64]: ...
    @property
    def levels(self) -> Tuple[Level, ...]: ...
    @property
    def inner_thresholds(self) -> npt.NDArray[np.float64]: ...
    @property
    def stages(self) -> Dict[str, float]: ...
    @property
    def total_seconds(self) -> float: ...
    @property
    def multiplier(self) -> Optional[float]: ...

class Projection:
    """The native half of ``multiproj.Projection``: NumPy arrays only."""

    def __new__(cls, spec: str, *, backend: str = "jit") -> "Projection": ...
    @property
    def spec(self) -> str: ...
    @property
    def radius(self) -> Optional[float]: ...
    @property
    def backend(self) -> str: ...
    def project(
        self,
        x: np.ndarray,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> _Float: ...
    def project_with_report(
        self,
        x: np.ndarray,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Tuple[_Float, Report]: ...
    def project_(
        self,
        x: np.ndarray,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Report: ...
    def project_shard_(
        self,
        x: np.ndarray,
        axis: int,
        comm: Any,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Report: ...
    @property
    def exact(self) -> bool: ...
    def compare(
        self,
        x: np.ndarray,
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> Dict[str, Any]: ...
    def norm(self, x: np.ndarray) -> float: ...
    def explain(
        self,
        shape: Sequence[int],
        *,
        dtype: str = "float64",
        order: str = "C",
        strides: Optional[List[int]] = None,
    ) -> str: ...

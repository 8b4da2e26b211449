"""Stubs of the native module multiproj._multiproj (import ``multiproj`` instead)."""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

from ._report import Report

__version__: str

_Float = npt.NDArray[np.floating]

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
    def norm(self, x: np.ndarray) -> float: ...
    def explain(
        self,
        shape: Sequence[int],
        *,
        dtype: str = "float64",
        order: str = "C",
        strides: Optional[List[int]] = None,
    ) -> str: ...

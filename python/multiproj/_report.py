"""What a projection did: :class:`Report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

__all__ = ["Level", "Report"]


@dataclass(frozen=True)
class Level:
    """What one level of groups became (an entry of ``Report.levels``).

    Attributes:
        axes: the axes these groups are indexed by (this level's and those above).
        norm: the norm whose projection set their radii (``"l1"``, ``"l2"``, ``"linf"``).
        groups: how many groups there are.
        kept: groups left as they were.
        shrunk: groups clipped, scaled or shrunk.
        zeroed: groups set to zero.
        thresholds: for an l1 level, the soft threshold of each projection made at this level,
            one per group of the level above (0 where nothing was shrunk); empty otherwise.
    """

    axes: Tuple[int, ...]
    norm: str
    groups: int
    kept: int
    shrunk: int
    zeroed: int
    thresholds: np.ndarray = field(compare=False, repr=False)


@dataclass(frozen=True)
class Report:
    """What a projection did, as returned by ``Projection.project_`` and
    ``Projection.project_with_report`` (the fields of the Rust library's ``Report``).

    Attributes:
        backend: ``"jit"`` or ``"interp"``.
        radius: the radius projected onto.
        norm_before: the multi-level norm of the input.
        groups: the number of innermost groups (e.g. rows for ``l1 over dim0 of linf over dim1``).
        untouched: groups left as they were (inside their ball).
        zeroed: groups set to zero.
        projected: groups clipped, scaled or shrunk.
        stages: seconds per stage, in execution order (``"compile"``, ``"reduce"``,
            ``"upper-reduce"``, ``"solve"``, ``"threshold"``, ``"apply"``); stages with nothing
            to do are left out.
        norm_after: the result's norm as the solve set it (the measured one to rounding, and
            never above the radius).
        survivors: the indices of the top-level groups that come out non-zero — which rows,
            columns or features were kept (an int64 array; empty for a single-level spec).
        levels: what happened at every level of groups, outermost first (:class:`Level`); the
            last are the innermost groups, whose counts are ``untouched``, ``projected``,
            ``zeroed``.
        inner_thresholds: for an l1 innermost level, the soft threshold of each innermost group
            (0 where it was kept or zeroed); empty otherwise.
    """

    backend: str
    radius: float
    norm_before: float
    groups: int
    untouched: int
    zeroed: int
    projected: int
    stages: Dict[str, float] = field(default_factory=dict, compare=False)
    norm_after: float = 0.0
    survivors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), compare=False)
    levels: Tuple[Level, ...] = ()
    inner_thresholds: np.ndarray = field(
        default_factory=lambda: np.zeros(0), compare=False, repr=False
    )

    @property
    def total_seconds(self) -> float:
        """The time of all stages together."""
        return sum(self.stages.values())

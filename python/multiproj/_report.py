"""What a projection did: :class:`Report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

__all__ = ["Report"]


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
    """

    backend: str
    radius: float
    norm_before: float
    groups: int
    untouched: int
    zeroed: int
    projected: int
    stages: Dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def total_seconds(self) -> float:
        """The time of all stages together."""
        return sum(self.stages.values())

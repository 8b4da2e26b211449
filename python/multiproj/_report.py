"""What a projection did: :class:`Report` and :class:`Level` (native objects: a report builds
the Python values of its fields only when they are read, so it costs next to nothing to return
from a small projection)."""

from ._multiproj import Level, Report

__all__ = ["Level", "Report"]

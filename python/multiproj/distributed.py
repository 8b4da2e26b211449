"""Sharded tensors with torch.distributed: project a tensor that is split across the processes
of a process group — each holding a slice along one axis, as tensor parallelism and FSDP shard
weights — without gathering it. Only O(groups) numbers travel (see
:meth:`multiproj.Projection.project_shard_`).

Example, in every process of an initialized process group (gloo works on CPU)::

    import torch.distributed as dist
    import multiproj.distributed as mpd

    # This process's rows of a weight sharded by rows (dim 0) across the group:
    report = mpd.project_shard_(local_rows, "l1 over dim1 of linf over dim0", axis=0, radius=5.0)
    report.norm_before        # the whole weight's norm, the same on every process

A ``DTensor`` sharded on a one-dimensional device mesh is projected through its local shard.
Tensors must be on the CPU (float32 or float64).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
import torch
import torch.distributed as dist

from . import Projection, Report

__all__ = ["TorchCommunicator", "project_shard_"]


class TorchCommunicator:
    """The collectives a sharded projection needs, over a torch.distributed process group
    (the default group when ``group`` is None). All-reduced sums are reduced onto the group's
    first process and broadcast from it, so that every process receives the same bits (an
    all-reduce may add in a different order on different processes); maxima do not depend on
    the order and are all-reduced directly."""

    def __init__(self, group: Optional[Any] = None) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "torch.distributed is not initialized: call dist.init_process_group first"
            )
        self.group = group
        self._rank = dist.get_rank(group)
        self._size = dist.get_world_size(group)
        self._root = dist.get_global_rank(group, 0) if group is not None else 0

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size

    def all_gather(self, local: np.ndarray) -> list:
        n = torch.tensor([local.size], dtype=torch.int64)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self._size)]
        dist.all_gather(sizes, n, group=self.group)
        longest = int(max(int(s) for s in sizes))
        buf = torch.zeros(max(longest, 1), dtype=torch.float64)
        buf[: local.size] = torch.from_numpy(np.ascontiguousarray(local, dtype=np.float64))
        parts = [torch.empty_like(buf) for _ in range(self._size)]
        dist.all_gather(parts, buf, group=self.group)
        return [p[: int(s)].numpy() for p, s in zip(parts, sizes)]

    def all_reduce(self, buf: np.ndarray, op: str) -> np.ndarray:
        t = torch.from_numpy(np.array(buf, dtype=np.float64))
        if t.numel() == 0:
            return t.numpy()
        if op == "max":
            dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        elif op == "sum":
            dist.reduce(t, dst=self._root, op=dist.ReduceOp.SUM, group=self.group)
            dist.broadcast(t, src=self._root, group=self.group)
        else:
            raise ValueError(f"unknown reduction {op!r}: expected 'sum' or 'max'")
        return t.numpy()


def project_shard_(
    tensor: Any,
    spec: Union[str, Projection],
    axis: Optional[int] = None,
    *,
    group: Optional[Any] = None,
    radius: Optional[float] = None,
    keep: Optional[int] = None,
    sparsity: Optional[float] = None,
    radius_frac: Optional[float] = None,
) -> Report:
    """Projects, in place and together with the other processes of ``group``, this process's
    shard of a tensor split along ``axis``: a local tensor (an ``nn.Parameter``'s data, any CPU
    float32/float64 tensor; ``axis`` required) or a ``DTensor`` on a one-dimensional device mesh
    (its placement gives the axis and its mesh the group; a replicated DTensor is projected
    whole on every process). The radius or target is the whole tensor's; returns the whole
    tensor's report, the same on every process."""
    proj = spec if isinstance(spec, Projection) else Projection(spec)
    local = tensor
    try:
        from torch.distributed.tensor import DTensor  # torch >= 2.4
    except ImportError:  # pragma: no cover - older torch
        DTensor = ()  # type: ignore[assignment]
    if DTensor and isinstance(tensor, DTensor):
        mesh = tensor.device_mesh
        if mesh.ndim != 1:
            raise ValueError(
                f"a DTensor on a {mesh.ndim}-dimensional device mesh: multiproj projects "
                "DTensors sharded on a one-dimensional mesh"
            )
        (placement,) = tensor.placements
        local = tensor.to_local()
        if placement.is_replicate():
            with torch.no_grad():
                return proj.project_(local, radius=radius, keep=keep, sparsity=sparsity,
                                     radius_frac=radius_frac)
        if not placement.is_shard():
            raise ValueError(f"a DTensor placed as {placement}: expected Shard or Replicate")
        axis = placement.dim
        group = mesh.get_group()
    if axis is None:
        raise TypeError("project_shard_ needs the shard axis (axis=) for a local tensor")
    comm = TorchCommunicator(group)
    with torch.no_grad():
        return proj.project_shard_(
            local, axis, comm, radius=radius, keep=keep, sparsity=sparsity,
            radius_frac=radius_frac,
        )

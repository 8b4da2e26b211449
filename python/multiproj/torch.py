"""multiproj for PyTorch training loops: project parameters after every optimizer step, and
keep the groups a projection zeroed at zero while retraining (the "double descent" schedule of
Perez & Barlaud's sparse supervised autoencoders: train with the projection, then retrain the
surviving weights with the zeroed groups masked).

Mind the layout: an ``nn.Linear(in_features, out_features).weight`` has shape
``(out_features, in_features)``, so its *input features* are the **columns**. To select input
features, the groups are columns: ``"l1 over dim1 of linf over dim0"``.

Example::

    import torch, multiproj.torch as mpt

    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = mpt.ProjectedOptimizer(
        torch.optim.Adam(model.parameters(), lr=1e-2),
        {"0.weight": model[0].weight},              # the layer whose input features we select
        "l1 over dim1 of linf over dim0",           # columns = input features
        keep=8,                                     # exactly 8 features survive
    )
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()                                  # the optimizer's step, then the projection
    print(opt.reports["0.weight"].survivors)        # which input features were kept

    opt.freeze_zeros()                              # retrain: zeroed features stay zero
    for x, y in batches:
        ...

Only CPU tensors of float32 or float64 are projected (a GPU tensor is an error naming it).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch

from . import Projection, Report

__all__ = ["ProjectedOptimizer", "project_parameters"]

Params = Union[torch.Tensor, Iterable[torch.Tensor], Mapping[str, torch.Tensor]]


def _named(params: Params) -> List[Tuple[str, torch.Tensor]]:
    """Parameters with names: a mapping keeps its keys, others are numbered."""
    if isinstance(params, torch.Tensor):
        return [("0", params)]
    if isinstance(params, Mapping):
        return list(params.items())
    return [(str(i), p) for i, p in enumerate(params)]


def project_parameters(
    params: Params,
    spec: Union[str, Projection],
    *,
    radius: Optional[float] = None,
    keep: Optional[int] = None,
    sparsity: Optional[float] = None,
    radius_frac: Optional[float] = None,
) -> Dict[str, Report]:
    """Projects every parameter in place (under ``torch.no_grad()``), each onto its own ball.

    Args:
        params: a parameter, an iterable of parameters, or a mapping name -> parameter (e.g.
            ``dict(model.named_parameters())`` filtered to the layers to sparsify).
        spec: a spec string or a compiled :class:`multiproj.Projection`.
        radius, keep, sparsity, radius_frac: the radius, or the target it is chosen for (see
            :meth:`multiproj.Projection.project`).

    Returns:
        The :class:`multiproj.Report` of each parameter, by name.
    """
    proj = spec if isinstance(spec, Projection) else Projection(spec)
    reports = {}
    with torch.no_grad():
        for name, p in _named(params):
            reports[name] = proj.project_(
                p, radius=radius, keep=keep, sparsity=sparsity, radius_frac=radius_frac
            )
    return reports


def _masking(mask: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A gradient hook that zeroes the gradient where ``mask`` is 0."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad * mask

    return hook


class ProjectedOptimizer:
    """Wraps a torch optimizer: every :meth:`step` runs the optimizer's step, then projects the
    given parameters in place onto the ball (in the style of torchao's prune optimizer, which
    applies a proximal step after the base optimizer's).

    After :meth:`freeze_zeros`, steps no longer project; instead the entries that are zero then
    stay zero: their gradients are masked, and they are reset to zero after every step (so
    momentum or weight decay cannot revive them either). :meth:`unfreeze` ends that.

    Args:
        optimizer: any ``torch.optim.Optimizer`` over (at least) these parameters.
        params: the parameters to project (see :func:`project_parameters`).
        spec: a spec string or a compiled :class:`multiproj.Projection`.
        radius, keep, sparsity, radius_frac: the radius or the target (one of them; or the
            spec's ``<= R``).

    Attributes:
        reports: the :class:`multiproj.Report` of each parameter's last projection, by name.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        params: Params,
        spec: Union[str, Projection],
        *,
        radius: Optional[float] = None,
        keep: Optional[int] = None,
        sparsity: Optional[float] = None,
        radius_frac: Optional[float] = None,
    ) -> None:
        self.optimizer = optimizer
        self.params = _named(params)
        self.projection = spec if isinstance(spec, Projection) else Projection(spec)
        self.radius, self.keep, self.sparsity, self.radius_frac = radius, keep, sparsity, radius_frac
        self.reports: Dict[str, Report] = {}
        self._masks: Optional[Dict[str, torch.Tensor]] = None
        self._hooks: List[Any] = []

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        """The wrapped optimizer's parameter groups (for learning-rate schedulers)."""
        return self.optimizer.param_groups

    @property
    def frozen(self) -> bool:
        """Whether zeroed entries are held at zero instead of projecting."""
        return self._masks is not None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """The optimizer's step, then the projection (or, frozen, the zero mask)."""
        loss = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        if self._masks is None:
            self.project()
        else:
            with torch.no_grad():
                for name, p in self.params:
                    p.mul_(self._masks[name])
        return loss

    def project(self) -> Dict[str, Report]:
        """Projects the parameters now (``step`` does this after every optimizer step)."""
        self.reports = project_parameters(
            dict(self.params),
            self.projection,
            radius=self.radius,
            keep=self.keep,
            sparsity=self.sparsity,
            radius_frac=self.radius_frac,
        )
        return self.reports

    def freeze_zeros(self) -> int:
        """Holds at zero every entry that is zero now, and stops projecting: the retraining
        phase. Returns how many entries are held."""
        self.unfreeze()
        masks = {}
        held = 0
        for name, p in self.params:
            mask = (p.detach() != 0).to(p.dtype)
            masks[name] = mask
            held += int((mask == 0).sum())
            self._hooks.append(p.register_hook(_masking(mask)))  # type: ignore[no-untyped-call]
        self._masks = masks
        return held

    def unfreeze(self) -> None:
        """Back to projecting after every step."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._masks = None

    def state_dict(self) -> Dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

"""multiproj.torch in a small training loop: project after every optimizer step, keep exactly K
input features, then retrain with the zeroed features held at zero (the double-descent
schedule)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mpt = pytest.importorskip("multiproj.torch")

COLS = "l1 over dim1 of linf over dim0"  # nn.Linear.weight is (out, in): features are columns


def data(n=256, features=32, informative=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g, dtype=torch.float64)
    y = (x[:, :informative].sum(dim=1) > 0).long()
    return x, y


def model(features=32, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(features, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    ).double()


def live_features(w):
    return [j for j in range(w.shape[1]) if bool((w[:, j] != 0).any())]


def test_training_with_projection_then_frozen_zeros():
    x, y = data()
    net = model()
    opt = mpt.ProjectedOptimizer(
        torch.optim.Adam(net.parameters(), lr=0.05),
        {"0.weight": net[0].weight},
        COLS,
        keep=4,
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    w = net[0].weight.detach()
    kept = live_features(w)
    assert len(kept) == 4
    assert kept == list(opt.reports["0.weight"].survivors)

    held = opt.freeze_zeros()
    assert held == int((w == 0).sum())
    before = w.clone()
    for _ in range(20):
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
    after = net[0].weight.detach()
    assert live_features(after) == kept  # the zeroed features stayed zero
    assert not torch.equal(after[:, kept], before[:, kept])  # the others were retrained
    assert bool((after[before == 0] == 0).all())

    opt.unfreeze()
    assert not opt.frozen


def test_project_parameters_by_name_and_radius():
    net = model()
    reports = mpt.project_parameters(
        dict(net.named_parameters()), "l2 over dims0..", radius=0.5
    )
    assert set(reports) == {name for name, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        assert float(p.detach().norm()) <= 0.5 * (1 + 1e-12), name


def test_float32_parameters_and_sparsity():
    torch.manual_seed(1)
    lin = torch.nn.Linear(40, 10)
    reports = mpt.project_parameters(lin.weight, COLS, sparsity=0.75)
    assert len(live_features(lin.weight.detach())) == 10
    assert reports["0"].levels[0].zeroed == 30
    np.testing.assert_array_equal(
        np.asarray(reports["0"].survivors), live_features(lin.weight.detach())
    )

"""PyTorch tensors, without a build-time dependency on torch: CPU float32/float64 tensors are
read and written through the memory they share with NumPy (float16 and bfloat16 ones too: see
test_halves.py); a GPU tensor or an integer one is a TypeError that says what to do, never a
silent copy. The error paths are also tested with stand-in objects, so they run without torch;
the rest skips when torch is not installed."""

from __future__ import annotations

import numpy as np
import pytest

import multiproj as mp

from conftest import assert_bits_equal

BILEVEL = "l1 over dim0 of linf over dim1"
FEATURES = "l1 over dim1 of linf over dim0"  # nn.Linear.weight is (out, in): columns are inputs


class FakeDevice:
    def __init__(self, name):
        self.name = name
        self.type = name.split(":")[0]

    def __str__(self):
        return self.name


class FakeTensor:
    """Just enough of a torch tensor for the checks made before any memory is touched."""

    def __init__(self, device="cuda:0", dtype="torch.float32"):
        self.device = FakeDevice(device)
        self.dtype = dtype
        self.requires_grad = False

    def detach(self):
        raise AssertionError("a refused tensor must not be read")

    def numpy(self):
        raise AssertionError("a refused tensor must not be read")


@pytest.mark.parametrize("method", ["project", "project_", "norm"])
def test_gpu_tensors_are_refused_without_torch(method):
    P = mp.Projection(BILEVEL)
    kwargs = {} if method == "norm" else {"radius": 1.0}
    with pytest.raises(TypeError, match=r"on the cuda:0 device.*x\.cpu\(\).*never copied silently"):
        getattr(P, method)(FakeTensor("cuda:0"), **kwargs)


@pytest.mark.parametrize("dtype", ["torch.int64", "torch.int8", "torch.complex64"])
def test_unsupported_tensor_dtypes_are_refused_without_torch(dtype):
    with pytest.raises(TypeError, match=rf"{dtype}.*x\.float\(\)"):
        mp.Projection(BILEVEL).project(FakeTensor("cpu", dtype), radius=1.0)
    with pytest.raises(TypeError, match=r"copy the result back"):
        mp.Projection(BILEVEL).project_(FakeTensor("cpu", dtype), radius=1.0)


try:
    import torch
except (ImportError, OSError):  # the tests below need it; the ones above do not
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


@needs_torch
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_tensor_in_tensor_out(dtype_name):
    dtype = getattr(torch, dtype_name)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 12, generator=g, dtype=dtype)
    out = mp.project(BILEVEL, w, radius=1.0)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype and out.shape == w.shape and out.device.type == "cpu"
    assert not out.requires_grad
    assert_bits_equal(out.numpy(), mp.project(BILEVEL, w.numpy(), radius=1.0))
    assert mp.norm(BILEVEL, out) <= 1.0
    assert_bits_equal(
        w.numpy(),
        torch.randn(16, 12, generator=torch.Generator().manual_seed(0), dtype=dtype).numpy(),
    )


@needs_torch
def test_non_contiguous_tensors_are_read_and_written_where_they_lie():
    w = torch.randn(10, 7, dtype=torch.float64)
    t = w.t()  # a transposed view
    assert not t.is_contiguous()
    expected = mp.project(BILEVEL, t.contiguous(), radius=0.5)
    out = mp.project(BILEVEL, t, radius=0.5)
    assert out.stride() == (1, 7)  # the input's memory order of axes
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-12, atol=1e-15)
    mp.project_(BILEVEL, t, radius=0.5)
    np.testing.assert_allclose(w.t().numpy(), expected.numpy(), rtol=1e-12, atol=1e-15)


@needs_torch
def test_in_place_on_a_parameter_in_a_training_loop():
    torch.manual_seed(0)
    n_in, n_hidden, informative = 32, 8, 4
    x = torch.randn(256, n_in)
    y = x[:, :informative].sum(dim=1, keepdim=True)
    model = torch.nn.Sequential(
        torch.nn.Linear(n_in, n_hidden), torch.nn.ReLU(), torch.nn.Linear(n_hidden, 1)
    )
    layer = model[0]
    storage = layer.weight.data_ptr()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    P = mp.Projection(FEATURES)
    radius = 2.0
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        with torch.no_grad():
            report = P.project_(layer.weight, radius=radius)
        assert report.groups == n_in  # one group per input feature (column)
        assert P.norm(layer.weight) <= radius
    assert layer.weight.data_ptr() == storage  # written where it lies
    assert isinstance(layer.weight, torch.nn.Parameter) and layer.weight.requires_grad
    zero_columns = (layer.weight.detach() == 0).all(dim=0)
    assert zero_columns.sum() > 0  # whole input features were removed
    # The optimizer keeps training the projected parameter.
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    assert layer.weight.grad is not None


@needs_torch
def test_in_place_with_grad_enabled_is_refused():
    layer = torch.nn.Linear(6, 4)
    before = layer.weight.detach().clone()
    with pytest.raises(RuntimeError, match="torch.no_grad"):
        mp.project_(FEATURES, layer.weight, radius=0.1)
    assert torch.equal(layer.weight.detach(), before)


@needs_torch
def test_in_place_tells_autograd():
    """A graph that saved the old values refuses backward after the projection, as it would
    after any in-place operation."""
    w = torch.randn(5, 4, requires_grad=True)
    v = w * 1.0
    loss = (v * v).sum()  # saves v
    with torch.no_grad():
        mp.project_(BILEVEL, v, radius=0.1)
    if not hasattr(torch.autograd.graph, "increment_version"):
        pytest.skip("this torch has no torch.autograd.graph.increment_version")
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_get_a_clear_error():
    w = torch.randn(4, 3, device="cuda")
    with pytest.raises(TypeError, match=r"x\.cpu\(\)"):
        mp.project(BILEVEL, w, radius=1.0)


@needs_torch
def test_explain_a_tensor():
    w = torch.randn(6, 4).t()
    P = mp.Projection(BILEVEL)
    assert P.explain(w) == P.explain((4, 6), dtype=torch.float32, order="F")


@needs_torch
def test_errors_from_tensors():
    w = torch.zeros(3, 4)
    w[1, 2] = float("nan")
    with pytest.raises(mp.DataError) as info:
        mp.project(BILEVEL, w, radius=1.0)
    assert info.value.index == (1, 2)
    with pytest.raises(mp.ShapeError):
        mp.project(BILEVEL, torch.zeros(3), radius=1.0)

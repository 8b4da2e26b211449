"""Sharded projections over torch.distributed (gloo, 2 processes on 127.0.0.1): every process
projects its shard of a tensor in place, with `multiproj.distributed.project_shard_`, and the
shards put together must be the single-process projection of the whole tensor — for groups
whole on each process, split across them, and an outer level's axis; uneven and empty shards;
float32 and float64; an nn.Parameter, a keep= target, a DTensor; and mismatched shards are the
same error on both processes."""

from __future__ import annotations

import json
import os
import socket
import traceback

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import multiproj as mp

WORLD = 2

# (spec, shape, axis, extents per rank)
CASES = [
    ("l1 over dim0 of linf over dim1", (7, 5), 0, (3, 4)),
    ("l1 over dim0 of linf over dim1", (7, 5), 1, (5, 0)),
    ("l1 over dim0 of l1 over dim1", (6, 9), 1, (4, 5)),
    ("l1 over dim0 of l1 over dim1", (6, 9), 0, (1, 5)),
    ("l1 over dim1 of linf over dim0", (8, 6), 0, (5, 3)),
    ("l1 over dim1 of linf over dim0", (8, 6), 1, (2, 4)),
    ("l1 over dim0 of l2 over dim1", (5, 7), 1, (3, 4)),
    ("l2 over dim0 of l1 over dim1", (4, 11), 1, (6, 5)),
    ("l1 over dim0 of l2 over dim1 of l1 over dim2", (3, 4, 5), 1, (1, 3)),
    ("l1 over dim0 of l2 over dim1 of l1 over dim2", (3, 4, 5), 2, (2, 3)),
]
FRACS = (0.0, 0.05, 0.4, 1.5)


def data(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * rng.uniform(0.1, 3, size=shape[:1] + (1,) * (len(shape) - 1))).astype(dtype)


def shard(x, axis, extents, rank):
    start = sum(extents[:rank])
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(start, start + extents[rank])
    return x[tuple(idx)].copy()  # a copy: the projection writes into it


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, out_dir):
    import torch.distributed as dist

    import multiproj.distributed as mpd

    results = {}
    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
        )
        for c, (spec, shape, axis, extents) in enumerate(CASES):
            for dtype in ("float64", "float32"):
                x = data(shape, c, dtype)
                norm = mp.Projection(spec).norm(x)
                for f, frac in enumerate(FRACS):
                    local = torch.nn.Parameter(torch.from_numpy(shard(x, axis, extents, rank)))
                    report = mpd.project_shard_(local, spec, axis, radius=frac * norm)
                    key = f"{c}-{dtype}-{f}"
                    np.save(os.path.join(out_dir, f"{key}-{rank}.npy"), local.detach().numpy())
                    results[key] = [report.norm_before, report.zeroed, report.groups, report.radius]
        # keep= is the whole tensor's: the 3 strongest rows of 9, sharded by rows 4 | 5.
        x = data((9, 4), 99, "float64") * np.arange(1, 10)[:, None]
        local = torch.from_numpy(shard(x, 0, (4, 5), rank))
        report = mpd.project_shard_(local, "l1 over dim0 of linf over dim1", 0, keep=3)
        np.save(os.path.join(out_dir, f"keep-{rank}.npy"), local.numpy())
        results["keep"] = [[int(s) for s in report.survivors], report.radius]
        # Shards that do not fit: the same error on both processes.
        bad = torch.zeros((3, 4) if rank == 0 else (3, 5), dtype=torch.float64)
        try:
            mpd.project_shard_(bad, "l1 over dim0 of linf over dim1", 0, radius=1.0)
            results["mismatch"] = "no error"
        except mp.DataError as e:
            results["mismatch"] = str(e)
        # A DTensor sharded by rows on a 1-D mesh.
        try:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.tensor import Shard, distribute_tensor

            mesh = init_device_mesh("cpu", (WORLD,))
            full = torch.from_numpy(data((6, 5), 7, "float64"))
            dt = distribute_tensor(full, mesh, [Shard(0)])
            report = mpd.project_shard_(dt, "l1 over dim0 of linf over dim1", radius=2.0)
            np.save(os.path.join(out_dir, f"dtensor-{rank}.npy"), dt.to_local().numpy())
            results["dtensor"] = [report.norm_before]
        except ImportError:
            results["dtensor"] = None
        dist.destroy_process_group()
    except Exception:  # reported to the parent through the file
        results["error"] = traceback.format_exc()
    with open(os.path.join(out_dir, f"results-{rank}.json"), "w") as f:
        json.dump(results, f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import torch.multiprocessing as tmp

    out = tmp_path_factory.mktemp("dist")
    tmp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    results = []
    for r in range(WORLD):
        with open(out / f"results-{r}.json") as f:
            res = json.load(f)
        assert "error" not in res, res["error"]
        results.append(res)
    return out, results


def _gathered(out, key, axis):
    parts = [np.load(out / f"{key}-{r}.npy") for r in range(WORLD)]
    return np.concatenate(parts, axis=axis)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_sharded_equals_single_process(runs, case):
    out, results = runs
    spec, shape, axis, extents = CASES[case]
    P = mp.Projection(spec)
    for dtype in ("float64", "float32"):
        x = data(shape, case, dtype)
        norm = P.norm(x)
        for f, frac in enumerate(FRACS):
            key = f"{case}-{dtype}-{f}"
            got = _gathered(out, key, axis)
            want, report = P.project_with_report(x, radius=frac * norm)
            tol = (1e-12 if dtype == "float64" else 1e-6) * float(np.abs(x).max())
            np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=f"{spec} {key}")
            if spec.endswith("linf over dim1") or spec.endswith("linf over dim0"):
                assert np.array_equal(got, want), f"{spec} {key}: not bit for bit"
            # Both processes report the whole tensor, alike.
            r0, r1 = results[0][key], results[1][key]
            assert r0 == r1, key
            assert r0[1] == report.zeroed and r0[2] == report.groups, (key, r0, report)
            assert abs(r0[0] - report.norm_before) <= 1e-9 * (1 + report.norm_before)


def test_keep_is_the_whole_tensors(runs):
    out, results = runs
    x = data((9, 4), 99, "float64") * np.arange(1, 10)[:, None]
    want, report = mp.Projection("l1 over dim0 of linf over dim1").project_with_report(x, keep=3)
    assert np.array_equal(_gathered(out, "keep", 0), want)
    for res in results:
        assert res["keep"][0] == [int(s) for s in report.survivors]
        assert res["keep"][1] == report.radius


def test_mismatched_shards_are_one_error_everywhere(runs):
    _, results = runs
    assert results[0]["mismatch"] == results[1]["mismatch"]
    assert "do not fit together" in results[0]["mismatch"]
    assert "rank 1: (3, 5) f64" in results[0]["mismatch"]


def test_dtensor(runs):
    out, results = runs
    if results[0]["dtensor"] is None:
        pytest.skip("this torch has no DTensor")
    full = data((6, 5), 7, "float64")
    want = mp.Projection("l1 over dim0 of linf over dim1").project(full, radius=2.0)
    assert np.array_equal(_gathered(out, "dtensor", 0), want)

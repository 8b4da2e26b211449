"""examples/sae/cnn.py (tri-level vs bi-level projections of a CNN's first convolution) in its
fast mode: every projection result satisfies its constraint, the tri-level projection removes
filters or kernels, the zeros it made survive retraining, the dense baseline learns, and the
outputs are written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "sae" / "cnn.py"


def load_cnn():
    spec = importlib.util.spec_from_file_location("multiproj_example_cnn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building a class
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    cnn = load_cnn()
    out = tmp_path_factory.mktemp("cnn")
    result = cnn.main(["--fast", "--out", str(out)])
    return cnn, result, out


def test_outputs_written(fast_run):
    _, result, out = fast_run
    assert result["out"] == str(out)
    for name in ("cnn.md", "cnn.json", "cnn_accuracy_vs_sparsity.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    stored = json.loads((out / "cnn.json").read_text())
    assert len(stored["records"]) == len(result["records"])
    md = (out / "cnn.md").read_text()
    assert "| trilevel l1,1,inf |" in md and "| bilevel l1,inf |" in md
    assert "SOME FAIL" not in md and "NOT held" not in md


def test_every_projection_satisfies_its_constraint(fast_run):
    cnn, result, _ = fast_run
    projected = [r for r in result["records"] if r["method"] != "none"]
    cfg = result["config"]
    # every method at every radius in every repeat
    assert len(projected) == cfg["repeats"] * len(cfg["etas"]) * (len(cnn.SPECS) - 1)
    for r in projected:
        what = f"{r['method']} eta {r['eta']} repeat {r['repeat']}"
        assert r["proj_calls"] > 0, what
        assert r["constraint_holds"], what
        assert r["max_norm_ratio"] <= 1 + cnn.TOL, what
        assert r["norm_after_projection"] <= r["radius"] * (1 + cnn.TOL), what


def test_trilevel_removes_filters_or_kernels_at_the_smallest_eta(fast_run):
    _, result, _ = fast_run
    eta = min(result["config"]["etas"])
    for r in result["records"]:
        if r["eta"] == eta and r["method"].startswith("trilevel"):
            removed = r["filters_removed_after_projection"] + r["kernels_removed_after_projection"]
            assert removed > 0, f"{r['method']} repeat {r['repeat']} removed nothing at eta {eta}"
            assert r["kernels_removed"] >= r["filters_removed"]  # a removed filter's kernels are


def test_zeroed_weights_stay_zero_through_retraining(fast_run):
    _, result, _ = fast_run
    for r in result["records"]:
        if r["method"] != "none":
            assert r["zeros_held"], f"{r['method']} eta {r['eta']} repeat {r['repeat']}"
            assert r["filters_removed"] == r["filters_removed_after_projection"]
            assert r["kernels_removed"] == r["kernels_removed_after_projection"]


def test_dense_baseline_learns(fast_run):
    cnn, result, _ = fast_run
    for r in result["records"]:
        if r["method"] == "none":
            assert r["accuracy"] >= 2 / cnn.CLASSES, f"repeat {r['repeat']}: {r['accuracy']}"


def test_trilevel_linf_linf_is_the_bilevel_projection(fast_run):
    _, result, _ = fast_run
    findings = result["findings"]
    assert findings["identical_runs"] is True
    same = [p for p in findings["pairs"] if p["a"] == "trilevel l1,inf,inf"]
    assert same and all(p["bitwise_equal"] for p in same)
    assert (
        findings["normalized"]["trilevel l1,inf,inf"]["explain"][0]
        == (findings["normalized"]["bilevel l1,inf"]["explain"][0])
    )

"""The sparse supervised autoencoder example (examples/sae/sae.py) in its fast mode: what the
experiment is about must hold even on tiny data — the bi-level projection keeps the informative
features far above chance, the projection really ran (the weight is inside the ball, zeroed
columns stay zero through retraining) and accuracy is well above chance."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

SAE_PY = pathlib.Path(__file__).resolve().parents[2] / "examples" / "sae" / "sae.py"


@pytest.fixture(scope="module")
def sae():
    spec = importlib.util.spec_from_file_location("sae_example", SAE_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fast_run(sae, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae")
    result = sae.main(["--fast", "--out", str(out)])
    return result, out


def records(result, method, eta=None):
    (ds,) = result["datasets"]
    return [r for r in ds["records"] if r["method"] == method and (eta is None or r["eta"] == eta)]


def test_every_method_ran_on_every_fold(sae, fast_run):
    result, _ = fast_run
    cfg = result["config"]
    for method in sae.METHODS:
        etas = [None] if method == "none" else cfg["etas"]
        for eta in etas:
            rs = records(result, method, eta)
            assert sorted(r["fold"] for r in rs) == list(range(cfg["folds"])), (method, eta)


def test_projected_weights_are_in_the_ball(fast_run):
    result, _ = fast_run
    projected = [r for r in result["datasets"][0]["records"] if r["radius"] is not None]
    assert projected
    for r in projected:
        assert r["in_ball"], r
        assert r["norm_after_projection"] <= r["radius"] * (1 + 1e-6)


def test_zeroed_columns_stay_zero_through_retraining(fast_run):
    result, _ = fast_run
    for r in result["datasets"][0]["records"]:
        if r["method"] in ("none", "prune"):
            continue
        assert r["zeros_held"], r
        # Retraining cannot revive a removed feature: the columns alive at the end are the
        # ones the projection left.
        assert r["kept"] <= r["kept_after_projection"], r


def test_bilevel_projection_selects_informative_features(fast_run):
    result, _ = fast_run
    cfg = result["config"]
    (ds,) = result["datasets"]
    chance = ds["informative"] / cfg["features"]
    rs = records(result, "bilevel l1,inf", min(cfg["etas"]))
    kept = sum(r["kept"] for r in rs) / len(rs)
    precision = sum(r["precision"] for r in rs) / len(rs)
    # The projection removed most features, and what it kept is mostly informative.
    assert kept <= 0.5 * cfg["features"], kept
    assert precision >= 4 * chance, (precision, chance)


def test_accuracy_well_above_chance(fast_run):
    result, _ = fast_run
    chance = 1 / result["config"]["classes"]
    for method in ("none", "bilevel l1,inf", "exact l1,inf"):
        rs = records(result, method)
        acc = sum(r["accuracy"] for r in rs) / len(rs)
        assert acc >= chance + 0.15, (method, acc)


def test_outputs_written(sae, fast_run):
    result, out = fast_run
    md = (out / "results.md").read_text()
    for method in sae.METHODS:
        assert f"| {method} |" in md
    assert "(zeros NOT held!)" not in md
    assert (out / "results.json").stat().st_size > 0
    png = (out / "accuracy_vs_sparsity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_real_data_set_preprocessing(sae):
    np = pytest.importorskip("numpy")
    x, y, about = sae.load_real("breast_cancer")
    assert x.shape == (569, 30) and y.shape == (569,)
    assert set(np.unique(y)) == {0, 1}
    assert np.isfinite(x).all() and (x >= 0).all()  # log(|x + 1|) of non-negative data
    assert "log(|x + 1|)" in about
    with pytest.raises(ValueError, match="unknown real data set"):
        sae.load_real("nope")

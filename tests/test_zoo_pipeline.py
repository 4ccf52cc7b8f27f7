"""model_zoo data access, registry, report helpers and a tiny end-to-end build on TPC-H SF 0.01."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from mlskip.errors import ModelInputError  # noqa: E402
from mlskip.model_zoo import report  # noqa: E402
from mlskip.model_zoo.data import block_boxes, sample_table  # noqa: E402
from mlskip.model_zoo.specs import REGISTRY, SPECS, get_spec  # noqa: E402


def test_registry_covers_the_issue():
    names = set(REGISTRY)
    for t in ("store_sales", "catalog_sales", "web_sales"):
        assert {f"{t}_net_profit", f"{t}_net_paid"} <= names
    assert {
        "lineitem_disc_price",
        "lineitem_charge",
        "store_returns_net_loss",
        "store_returns_return_amt",
    } <= names
    assert sum(s.task == "classification" for s in SPECS) >= 3
    assert all(2 <= len(s.inputs) <= 8 for s in SPECS)
    with pytest.raises(ModelInputError):
        get_spec("nope")


def test_sample_table_encodes_dates_and_is_deterministic():
    a = sample_table(
        "tpch", "lineitem", ["l_shipdate", "l_quantity", "l_returnflag"], 200, seed=3, sf=0.01
    )
    b = sample_table(
        "tpch", "lineitem", ["l_shipdate", "l_quantity", "l_returnflag"], 200, seed=3, sf=0.01
    )
    assert np.array_equal(a["l_shipdate"], b["l_shipdate"])
    days = a["l_shipdate"]
    assert days.dtype == np.float64 and 8000 < days.min() and days.max() < 10600  # 1992..1998
    assert set(a["l_returnflag"]) <= {"A", "N", "R"}


def test_block_boxes_contain_every_row():
    x = np.random.default_rng(0).normal(size=(2500, 3))
    boxes = block_boxes(x, 1000)
    assert boxes.shape == (3, 3, 2)
    for i in range(3):
        rows = x[i * 1000 : (i + 1) * 1000]
        assert (boxes[i, :, 0] <= rows.min(0)).all() and (boxes[i, :, 1] >= rows.max(0)).all()


def test_qualifying_maps_thresholds_to_selectivity():
    y = np.random.default_rng(0).normal(size=(100000, 1))
    mask, t = report.qualifying(y, "gt", 0.001)
    assert mask.mean() == pytest.approx(0.001, abs=2e-4) and t > 2.5
    mask, t = report.qualifying(y, "lt", 0.01)
    assert mask.mean() == pytest.approx(0.01, abs=1e-3) and t < -2.0


def test_best_tradeoffs_applies_all_three_conditions():
    def rec(variant, score, speedup, skip):
        return {
            "spec": "s", "variant": variant, "base": "dense", "score": score, "base_score": 0.9,
            "speedup": speedup, "skipping": {"natural/p": {"layout": "natural", "data_skip": skip}},
        }  # fmt: skip

    recs = [rec("dense", 0.9, 1.0, 0.3), rec("fast", 0.895, 2.5, 0.3), rec("slow", 0.9, 1.5, 0.4),
            rec("bad", 0.8, 3.0, 0.5), rec("blind", 0.9, 3.0, 0.1)]  # fmt: skip
    assert [r["variant"] for r in report.best_tradeoffs(recs)] == ["fast"]


def test_build_and_report_tiny(tmp_path, monkeypatch):
    """build_spec + measure on one TPC-H spec at SF 0.01 with a stripped-down variant list."""
    from mlskip.model_zoo import build

    full = build.variants

    def few(dense, deep, x_cal, task, quick=False):
        keep = {"dense", "l2_r50", "lump_e0", "moe_top1_e4"}
        return [v for v in full(dense, None, x_cal, task, quick=True) if v[0] in keep]

    monkeypatch.setattr(build, "variants", few)
    recs = build.build_spec(
        get_spec("lineitem_linestatus"), tmp_path, quick=True, sf=0.01, trees=False
    )
    assert {r["variant"] for r in recs} == {"dense", "l2_r50", "lump_e0", "moe_top1_e4"}
    lump = next(r for r in recs if r["variant"] == "lump_e0")
    dense = next(r for r in recs if r["variant"] == "dense")
    assert lump["score"] == pytest.approx(dense["score"], abs=1e-3)  # eps = 0 lumping is exact
    monkeypatch.setattr(report, "rows_per_second", lambda *a, **k: 1e6)
    measured = report.measure(tmp_path, recs, sf=0.01, progress=False)
    moe = next(r for r in measured if r["variant"] == "moe_top1_e4")
    assert all("verifier_skip" in e or "verifier_missing" in e for e in moe["skipping"].values())
    assert all(0.0 <= e["data_skip"] <= 1.0 for r in measured for e in r["skipping"].values())
    report.write_markdown(tmp_path / "zoo.md", measured)
    report.write_figure(tmp_path / "zoo.png", measured)
    json.dumps(measured)
    assert (tmp_path / "zoo.png").stat().st_size > 0 and "## lumping" in (
        tmp_path / "zoo.md"
    ).read_text()


def test_tree_zoo_variants_and_report(tmp_path, monkeypatch):
    """The zoo's tree family on a regressor and a classifier: each variant is what its
    method says, scores near its dense ensemble, and is measured like the networks."""
    pytest.importorskip("xgboost")
    from mlskip.model_zoo import build
    from mlskip.model_zoo import trees as tree_zoo
    from mlskip.verifier import load_model

    only_dense = lambda dense, *a, **k: [("dense", "dense", "dense", lambda: dense)]  # noqa: E731
    monkeypatch.setattr(build, "variants", only_dense)  # networks: the dense reference only
    recs = []
    for name in ("lineitem_disc_price", "lineitem_linestatus"):
        recs += build.build_spec(get_spec(name), tmp_path, quick=True, sf=0.01)
    by = {(r["spec"], r["variant"]): r for r in recs}
    dense = by[("lineitem_disc_price", "xgb_t50_d4")]
    assert dense["method"] == "trees" and dense["trees"] == 50 and dense["score"] > 0.9
    assert by[("lineitem_disc_price", "xgb_t50_d4_drop50")]["trees"] == 25
    cut = load_model(str(tmp_path / by[("lineitem_disc_price", "xgb_t50_d4_depth2")]["onnx"]))
    assert len(cut.levels) <= 2
    merged = load_model(str(tmp_path / by[("lineitem_disc_price", "xgb_t50_d4_merge8")]["onnx"]))
    inner = merged.feature >= 0
    for f in range(merged.num_inputs):
        assert len(np.unique(merged.threshold[inner & (merged.feature == f)])) <= 8
    assert by[("lineitem_linestatus", "xgb_t50_d4")]["score"] > 0.9  # accuracy
    monkeypatch.setattr(report, "rows_per_second", lambda *a, **k: 1e6)
    measured = report.measure(tmp_path, recs, sf=0.01, progress=False)
    for r in measured:
        if r.get("kind") != "trees":
            continue
        for entry in r["skipping"].values():
            assert "verifier_skip" in entry, entry.get("verifier_missing")
            # sound: the verifier never prunes more blocks than hold no qualifying row
            assert entry["verifier_skip"] <= entry["data_skip"] + 1e-12
    assert tree_zoo.available()

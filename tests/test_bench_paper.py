"""`mlskip bench paper --quick`: runs end to end and its report keeps the invariants.

One run (module fixture, SF 0.1, few filters, < 3 min) checked for:
effectiveness in [0, 1]; zero lost rows (no pruned row group holds a
qualifying row, no all-match row group a non-qualifying one); hulls prune at
least what min-max prunes on every filter (exact limit, and the cascade's);
the report and plots exist and results.json recomputes the report's figures.
"""

from __future__ import annotations

import json

import pytest

from mlskip.tpch import summary as S
from mlskip.tpch.paper import PaperConfig, run_paper

PAIRS = (("minmax", "hull"), ("layout-minmax", "layout-hull"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_paper")
    report = run_paper(PaperConfig.quick_preset(), out, command="mlskip bench paper --quick")
    data = json.loads((out / "results.json").read_text())
    return out, report, data


def _pairs(records):
    by: dict[tuple, dict[str, dict]] = {}
    for r in records:
        key = (r["model_key"], r["block_rows"], r["filter"]["fid"])
        by.setdefault(key, {})[r["setting"]] = r
    for key, d in by.items():
        for a, b in PAIRS:
            if a in d and b in d:
                yield key, d[a], d[b]


def test_outputs_exist(results):
    out, report, data = results
    assert report.exists() and (out / "effectiveness.png").exists()
    assert (out / "row_groups.png").exists()
    assert data["records"] and data["e2e"]
    text = report.read_text()
    assert "## Goals" in text and "mlskip bench paper --quick" in text


def test_effectiveness_in_unit_interval(results):
    recs = S.usable(results[2]["records"])
    assert recs
    for r in recs:
        assert 0.0 <= S.eff(r) <= 1.0
        assert 0.0 <= S.eff_exact(r) <= 1.0
        assert S.eff(r) <= S.eff_exact(r) + 1e-12  # the cascade never beats the exact limit


def test_zero_lost_rows(results):
    sound = S.soundness(results[2]["records"])
    assert sound["lost_row_groups"] == 0
    assert sound["wrong_all_match"] == 0
    assert all(e["same_result"] for e in results[2]["e2e"])


def test_hull_at_least_minmax_exact(results):
    # blocks proven prunable on the box are prunable on the hull (which lies inside the box):
    # what is proven on the box can never exceed what is not ruled out on the hull
    for key, box, hull in _pairs(results[2]["records"]):
        assert hull["skippable"] == box["skippable"], key
        proven_box = box["cascade_pruned_skippable"] + box["exact_milp_pruned"]
        possible_hull = hull["skippable"] - hull["exact_witnessed"] - hull["exact_milp_mixed"]
        assert proven_box <= possible_hull, key


def test_hull_at_least_minmax_cascade(results):
    # the quick preset's cascade has work budgets only (deterministic), and verifies each
    # region's bare box before its polygons: hulls can only add pruned row groups
    assert results[2]["config"]["work_budgets"]
    for key, box, hull in _pairs(results[2]["records"]):
        assert hull["cascade_pruned_skippable"] >= box["cascade_pruned_skippable"], key

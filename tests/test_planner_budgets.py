"""The planner's verification budget is work, not time: the same query on the same files
gives the same plan on an idle machine, a loaded one, or in a fresh process still
compiling its kernels (issue 17). The wall clock is only a safety cap, reported when hit."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

import mlskip
from mlskip.skipper.planner import LP_MIN_ROWS, PIECES_PER_REGION, Planner, work_budget
from mlskip.verifier import Network, ReLU


def test_work_budget_follows_the_rows_at_stake():
    low, high = PIECES_PER_REGION
    assert work_budget(10, 10 * 1_000) == low  # small row groups: little to save
    assert work_budget(10, 10 * 1_000_000) == high  # large ones: capped per row group
    sizes = [work_budget(4, 4 * rows) for rows in (1_000, 10_000, 50_000, 200_000)]
    assert sizes == sorted(sizes)


def test_planning_budget_can_be_set_per_row_group():
    """``Planner(pieces_per_row_group=)`` replaces the cost model's budget, for the
    verifier and for variants planned through another model's summary alike."""
    assert Planner().verifier_for(100, 100_000).bab_pieces_per_region == 64
    assert (
        Planner(pieces_per_row_group=1024).verifier_for(100, 100_000).bab_pieces_per_region == 1024
    )


def test_overlap_lp_only_where_it_pays():
    """The certified overlap LP costs about what reading 1,000 rows costs per row group:
    the planner runs it on large row groups only."""
    planner = Planner()
    small = planner.verifier_for(100, 100 * 1_000)
    assert "lp" not in small.methods and not small.overlap_lp and "bab" in small.methods
    large = planner.verifier_for(10, 10 * 122_880)
    assert "lp" in large.methods and large.overlap_lp and large.bab_pieces_per_region == 1024
    assert planner.verifier_for(1, LP_MIN_ROWS).overlap_lp
    assert not planner.verifier_for(1, LP_MIN_ROWS - 1).overlap_lp


@pytest.fixture(scope="module")
def curvy(tmp_path_factory):
    """A ReLU network over two clustered columns, and a file of 40 row groups."""
    rng = np.random.default_rng(11)
    net = Network.mlp(
        [
            (rng.normal(0, 1, (16, 2)), rng.normal(0, 1, 16)),
            (rng.normal(0, 1, (16, 16)) / 4, rng.normal(0, 1, 16)),
            (rng.normal(0, 1, (1, 16)), np.zeros(1)),
        ],
        ReLU(),
    )
    a = np.sort(rng.uniform(-3, 3, 40_000))
    b = a + rng.normal(0, 0.5, a.size)
    path = tmp_path_factory.mktemp("budgets") / "t.parquet"
    mlskip.write_parquet(pa.table({"a": a, "b": b}), path, row_group_size=1_000)
    y = net.evaluate(np.stack([a, b], 1))[:, 0]
    return net, path, float(np.quantile(y, 0.8))  # some row groups need branch and bound


def _plan(net, path, threshold):
    con = mlskip.connect()
    con.register_model("m", net, inputs=["a", "b"])
    report = con.explain_skipping(f"SELECT count(*) FROM '{path}' WHERE m(a, b) > {threshold!r}")
    (file,) = report.files
    return file.pruned_groups, file.all_match_groups, report


def test_same_plan_however_slow_the_clock(curvy, monkeypatch):
    net, path, threshold = curvy
    pruned, all_match, report = _plan(net, path, threshold)
    assert 0 < len(pruned) < 40 and dict(report.files[0].methods).get("bab", 0) > 0
    # a clock that runs 20 ms per reading: a time budget of tens of ms would stop the
    # cascade after a few steps; a work budget does not notice
    ticks = itertools.count()
    fake = lambda: next(ticks) * 0.02  # noqa: E731
    monkeypatch.setattr("mlskip.verifier.deadline.time.thread_time", fake)
    monkeypatch.setattr("mlskip.verifier.deadline.time.perf_counter", fake)
    slow_pruned, slow_all, _ = _plan(net, path, threshold)
    assert (slow_pruned, slow_all) == (pruned, all_match)


def test_safety_cap_is_reported_when_hit(curvy, monkeypatch):
    net, path, threshold = curvy
    ticks = itertools.count()
    monkeypatch.setattr("mlskip.verifier.deadline.time.thread_time", lambda: next(ticks) * 1000.0)
    _, _, report = _plan(net, path, threshold)
    (file,) = report.files
    assert "safety-cap" in dict(file.methods)


def test_explain_reports_the_cost_model_budget(tmp_path):
    """The planner's choice of verification work is reported: pieces per row group
    follow the rows a row group holds (what pruning it saves)."""
    rng = np.random.default_rng(2)
    n = 40_000
    table = pa.table({"a": rng.uniform(0, 1, n), "b": rng.uniform(0, 1, n)})
    mlskip.write_parquet(table, tmp_path / "t.parquet", row_group_size=8_000, cluster_by=["a"])
    net = Network.mlp([(np.array([[1.0, 1.0]]), np.zeros(1))])
    con = mlskip.connect()
    con.register_model("m", net)
    report = con.explain_skipping(
        f"SELECT count(*) FROM '{tmp_path}/t.parquet' WHERE m(a, b) > 1.9"
    )
    budgets = {f.budget for f in report.files}
    assert budgets == {work_budget(5, n)} == {500}
    text = str(report).replace("\n", " ")
    assert "verifier budget: 500 branch-and-bound pieces per row group" in text
    assert "overlap LP only on row groups of 16,384 rows or more" in " ".join(text.split())

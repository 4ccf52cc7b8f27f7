"""The planner's verification budget is work, not time: the same query on the same files
gives the same plan on an idle machine, a loaded one, or in a fresh process still
compiling its kernels (issue 17). The wall clock is only a safety cap, reported when hit."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

import mlskip
from mlskip.planner import (
    CHEAP_METHODS,
    EXPENSIVE_MIN_ROWS,
    MAX_PIECES_PER_REGION,
    Planner,
    work_budget,
)
from mlskip.verifier import Network, ReLU


def test_work_budget_follows_the_rows_at_stake():
    # small row groups: the expensive stage would cost more than reading them saves
    assert work_budget(10, 10 * 1_000) == work_budget(10, 10 * (EXPENSIVE_MIN_ROWS - 1)) == 0
    assert work_budget(10, 10 * EXPENSIVE_MIN_ROWS) > 0
    assert work_budget(10, 10 * 1_000_000) == MAX_PIECES_PER_REGION  # capped per row group
    sizes = [work_budget(4, 4 * rows) for rows in (1_000, 10_000, 50_000, 200_000)]
    assert sizes == sorted(sizes)


def test_small_row_groups_get_the_cheap_methods_only():
    """Witness search, branch and bound and the overlap LP cost about as much per row
    group as reading 1,000 rows: on small row groups the planner does not run them."""
    planner = Planner()
    cheap = planner.verifier_for(100, 100 * 1_000)
    assert tuple(cheap.methods) == CHEAP_METHODS and not cheap.overlap_lp
    full = planner.verifier_for(10, 10 * 122_880)
    assert "bab" in full.methods and full.overlap_lp and full.bab_pieces_per_region == 960


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


@pytest.fixture
def expensive_everywhere(monkeypatch):
    """Branch and bound on the fixture's small row groups too (the work budget's
    mechanics, not the cost model's threshold, are under test)."""
    monkeypatch.setattr("mlskip.planner.EXPENSIVE_MIN_ROWS", 0)


def _plan(net, path, threshold):
    con = mlskip.connect()
    con.register_model("m", net, inputs=["a", "b"])
    report = con.explain_skipping(f"SELECT count(*) FROM '{path}' WHERE m(a, b) > {threshold!r}")
    (file,) = report.files
    return file.pruned_groups, file.all_match_groups, report


def test_same_plan_however_slow_the_clock(curvy, monkeypatch, expensive_everywhere):
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


def test_safety_cap_is_reported_when_hit(curvy, monkeypatch, expensive_everywhere):
    net, path, threshold = curvy
    ticks = itertools.count()
    monkeypatch.setattr("mlskip.verifier.deadline.time.thread_time", lambda: next(ticks) * 1000.0)
    _, _, report = _plan(net, path, threshold)
    (file,) = report.files
    assert "safety-cap" in dict(file.methods)


def test_explain_reports_the_cost_model_budget(tmp_path):
    """The planner's choice of verification work is reported: pieces per row group
    follow the rows a row group holds (what pruning it saves); small row groups get
    IBP and CROWN only."""
    rng = np.random.default_rng(2)
    net = Network.mlp([(np.array([[1.0, 1.0]]), np.zeros(1))])
    con = mlskip.connect()
    con.register_model("m", net)
    for rows, expect, text in (
        (8_000, 0, "verifier: IBP and CROWN only on row groups under 16,384 rows"),
        (20_000, 156, "verifier budget: 156 branch-and-bound pieces per row group"),
    ):
        n = 5 * rows
        table = pa.table({"a": rng.uniform(0, 1, n), "b": rng.uniform(0, 1, n)})
        path = tmp_path / f"t{rows}.parquet"
        mlskip.write_parquet(table, path, row_group_size=rows, cluster_by=["a"])
        report = con.explain_skipping(f"SELECT count(*) FROM '{path}' WHERE m(a, b) > 1.9")
        assert {f.budget for f in report.files} == {work_budget(5, n)} == {expect}
        assert text in str(report)
        methods = {m for f in report.files for m, _ in f.methods}
        assert expect or not methods & {"bab", "lp", "sampling"}

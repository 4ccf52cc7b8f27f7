"""Unit tests of the paper benchmark's pure parts: filter sweep, ground truth, witnesses, summaries."""

from __future__ import annotations

import numpy as np

from mlskip.tpch import filters
from mlskip.tpch import summary as S
from mlskip.tpch.effectiveness import witnessed
from mlskip.tpch.report import _verdict


def test_sweep_filters_selectivity_and_bins():
    y = np.random.default_rng(0).normal(size=100_000)
    fs = filters.sweep_filters(y, (0.001, 0.5, 0.999), (1e-3, 1e-2))
    assert fs and len({(f.lo, f.hi) for f in fs}) == len(fs)
    for f in fs:
        assert f.lo <= f.hi
        assert np.isclose(f.selectivity, np.mean((y >= f.lo) & (y <= f.hi)))
        assert f.bin in {b[0] for b in filters.BINS}
    assert filters.selectivity_bin(0.0005) == "<=0.1%"
    assert filters.selectivity_bin(0.001) == "<=0.1%"
    assert filters.selectivity_bin(0.5) == ">10%"


def test_block_truth_skippable_and_all_match():
    q = np.array([0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    t = filters.block_truth(q, 3)
    assert t.skippable.tolist() == [True, False, False, True]
    assert t.all_match.tolist() == [False, True, False, False]
    assert t.qualifying_rows == 4


def test_qualifying_nulls_never_qualify():
    y = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    valid = np.array([True, False, True])
    assert filters.qualifying(y, valid, 0.0, 10.0).tolist() == [True, False, True]


class _Regions:
    def __init__(self, lower, upper, pairs=(), halfspaces=()):
        self.lower, self.upper, self.pairs, self.halfspaces = lower, upper, pairs, halfspaces


def test_witnessed_box_and_halfspaces():
    lower = np.array([[0.0, 0.0], [0.0, 0.0]])
    upper = np.array([[1.0, 1.0], [1.0, 1.0]])
    # region 1 is cut by x + y <= 0.5
    A = np.array([[[0.0, 0.0]], [[1.0, 1.0]]])
    b = np.array([[0.0], [0.5]])
    regions = _Regions(lower, upper, ((0, 1),), ((A, b),))
    w = np.array([[0.9, 0.9]])
    assert witnessed(regions, np.array([0, 1]), w).tolist() == [True, False]
    assert witnessed(regions, np.array([0, 1]), np.zeros((0, 2))).tolist() == [False, False]


def test_summary_effectiveness_and_timing():
    recs = [
        {"skippable": 4, "cascade_pruned_skippable": 2, "exact_pruned_estimate": 3.0,
         "cascade_seconds": 0.01, "row_groups": 10, "decided_by": {"crown": 6}},
        {"skippable": 0, "cascade_pruned_skippable": 0, "exact_pruned_estimate": 0.0,
         "cascade_seconds": 0.03, "row_groups": 10, "decided_by": {"ibp": 10}},
    ]  # fmt: skip
    assert S.mean_of(recs, S.eff) == 0.5
    assert S.mean_of(recs, S.eff_exact) == 0.75
    t = S.timing(recs)
    assert np.isclose(t["mean"], 0.002) and np.isclose(t["total"], 0.04)
    assert S.decided_shares(recs) == {"ibp": 0.5, "crown": 0.3}


def test_goal_verdicts():
    assert _verdict(0.7, 0.6) == "reached"
    assert _verdict(0.5, 0.6).startswith("missed by 10.0")
    assert _verdict(2.0, 5.0, ratio=True).startswith("missed: 40%")
    assert _verdict(float("nan"), 0.6) == "not measured"

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


def test_exact_hull_witnesses_match_shapely(tmp_path):
    """Exact pair hulls (no byte budget) against shapely's, on row groups the writer summarised:
    a witness counts where it lies in the box and every pair's exact hull, and exact hulls,
    being inside the stored 45-byte polygons, never see more witnesses than they do."""
    import itertools

    import pyarrow as pa
    import shapely

    import mlskip
    from mlskip.metadata import read_skip_metadata
    from mlskip.skipper.row_group_regions import build_regions
    from mlskip.tpch.effectiveness import exact_hull_witnessed, exact_pair_hulls, plain_args

    rng = np.random.default_rng(3)
    # 12 blocks far apart, so a witness can only fall in its own block's region
    blocks = rng.normal(size=(12, 200, 3)) @ rng.normal(size=(3, 3))
    blocks += 100.0 * np.arange(12)[:, None, None]
    blocks[4, :, 1] = 2.0 * blocks[4, :, 0]  # collinear in pair (0, 1): degenerate hull
    cols = ["a", "b", "c"]
    path = tmp_path / "h.parquet"
    table = pa.table({c: blocks.reshape(-1, 3)[:, k] for k, c in enumerate(cols)})
    mlskip.write_parquet(
        table, path, row_group_size=200, hulls=[("a", "b"), ("a", "c"), ("b", "c")]
    )
    groups = read_skip_metadata(path).row_groups
    regions_abc = build_regions(groups, plain_args(cols), {})

    # witnesses: in odd blocks, points of the box outside an exact pair hull (shapely's), so
    # only a looser summary can see them; in even blocks, the centre as well
    def in_exact(r, pts):
        return np.all(
            [shapely.covers(shapely.MultiPoint(blocks[r][:, p]).convex_hull, shapely.points(pts[:, p]))
             for p in ([0, 1], [0, 2], [1, 2])],
            axis=0,
        )  # fmt: skip

    witnesses = []
    for r in range(12):
        pts = rng.uniform(blocks[r].min(0), blocks[r].max(0), size=(5000, 3))
        witnesses.append(pts[~in_exact(r, pts)])
        if r % 2 == 0:
            witnesses.append(blocks[r].mean(0, keepdims=True))
    witnesses = np.vstack(witnesses)
    idx = np.arange(len(groups))
    got = exact_hull_witnessed(exact_pair_hulls(blocks), regions_abc, idx, witnesses)
    stored = witnessed(regions_abc, idx, witnesses)
    assert not (got & ~stored).any()
    assert (stored & ~got).any() and got.any()  # the data leaves room between the two
    for r in idx:
        box = (witnesses >= regions_abc.lower[r]) & (witnesses <= regions_abc.upper[r])
        inside = box.all(1)
        for i, j in itertools.combinations(range(3), 2):
            hull = shapely.MultiPoint(blocks[r][:, [i, j]]).convex_hull.buffer(1e-9)
            inside &= shapely.covers(hull, shapely.points(witnesses[:, [i, j]]))
        # block 4's pair (0, 1) is a segment: the stored polygon stands in, which may
        # count a witness the segment misses, never the other way round
        assert got[r] == inside.any() if r != 4 else got[r] >= inside.any(), r
    # model inputs in another column order: the same answer (stored pairs map either way)
    order = [2, 0, 1]
    regions_cab = build_regions(groups, plain_args([cols[k] for k in order]), {})
    perm = exact_hull_witnessed(
        exact_pair_hulls(blocks[:, :, order]), regions_cab, idx, witnesses[:, order]
    )
    assert (perm == got).all()


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


def test_value_sweep_filters_start_in_value_not_quantile():
    # a skewed output: most rows near 0, a sparse tail up to 100
    rng = np.random.default_rng(1)
    y = np.concatenate([rng.exponential(1.0, 99_000), rng.uniform(10.0, 100.0, 1_000)])
    fs = filters.value_sweep_filters(y, (0.0, 0.5, 0.9), (1e-3, 1e-2), max_selectivity=1.0)
    assert fs
    span = y.max() - y.min()
    for f in fs:
        assert np.isclose(f.lo, y.min() + f.start_quantile * span)
        assert np.isclose(f.hi, f.lo + f.width_fraction * span)
        assert np.isclose(f.selectivity, np.mean((y >= f.lo) & (y <= f.hi)))
    # a start at half the value range lies in the sparse tail: rare, unlike the median
    mid = [f for f in fs if f.start_quantile == 0.5]
    assert mid and all(f.selectivity <= 0.001 for f in mid)
    assert all(f.lo > np.quantile(y, 0.99) for f in mid)


def test_value_sweep_filters_drops_empty_duplicate_and_common():
    y = np.array([0.0] * 500 + [1.0] * 500 + [10.0])
    fs = filters.value_sweep_filters(y, (0.0, 0.05, 0.5, 0.95), (1e-3, 1e-2), max_selectivity=0.6)
    # [0, 0.01] and [0, 0.1] select the same 500 rows (one kept); 0.5*10 = 5 selects none;
    # 9.5..9.6 selects none; nothing above 60% is kept
    assert [(f.lo, f.selectivity) for f in fs] == [(0.0, 500 / 1001)]
    assert filters.value_sweep_filters(y, (0.0,), (1e-3,), max_selectivity=0.1) == []
    assert filters.value_sweep_filters(np.array([np.nan]), (0.0,), (1e-3,)) == []
    ids = [f.fid for f in filters.value_sweep_filters(y, (0.0, 0.9), (0.2,), max_selectivity=1.0)]
    assert ids == list(range(len(ids)))


def test_reference_preset_follows_the_protocol():
    from mlskip.tpch import bench_models
    from mlskip.tpch.paper import PaperConfig, layout_of

    cfg = PaperConfig.reference_preset()
    assert cfg.protocol == "reference" and cfg.block_sizes == (1000,) and cfg.max_blocks == 100
    assert cfg.starts == filters.REFERENCE_STARTS and cfg.hidden == ((32,),)
    specs = bench_models.regressor_specs(cfg.models)
    assert {len(s.inputs) for s in specs} == {2, 3, 4}
    assert [layout_of(s) for s in ("minmax", "hull+sql", "layout-hull", "pred-minmax")] == [
        "natural",
        "natural",
        "layout",
        "pred",
    ]


def test_prediction_order_sorts_by_output_nulls_last():
    from mlskip.tpch.bench_data import prediction_order

    y = np.array([3.0, 1.0, 2.0, 0.0], dtype=np.float32)
    valid = np.array([True, True, True, False])
    assert prediction_order(y, valid).tolist() == [1, 2, 0, 3]


def test_e2e_stages_of_other_row_group_sizes_are_kept():
    from mlskip.tpch.paper import merge_e2e

    results = {"e2e": []}
    merge_e2e(
        results, [{"q": 1, "row_group_rows": 122_880}], {"command": "a", "row_group": 122_880}
    )
    merge_e2e(results, [{"q": 2, "row_group_rows": 16_384}], {"command": "b", "row_group": 16_384})
    merge_e2e(
        results, [{"q": 3, "row_group_rows": 122_880}], {"command": "c", "row_group": 122_880}
    )
    assert [e["q"] for e in results["e2e"]] == [2, 3]
    assert [st["command"] for st in results["e2e_stages"]] == ["b", "c"]


def test_e2e_only_options_apply_to_their_stage_only(tmp_path, monkeypatch):
    """An ``--e2e-only`` stage on 16,384-row files must not make the next stage (no
    ``--e2e-row-group``) run on them too: options come from the run's own config."""
    import json
    from dataclasses import asdict

    from mlskip.tpch import e2e as e2e_mod
    from mlskip.tpch import paper, report

    seen = []
    monkeypatch.setattr(e2e_mod, "run_e2e", lambda cfg, *a: seen.append(cfg) or [])
    monkeypatch.setattr(report, "write_report", lambda out, results: out / "REPORT.md")
    cfg = paper.PaperConfig()
    (tmp_path / "results.json").write_text(json.dumps({"config": asdict(cfg), "records": []}))
    paper.run_e2e_only(tmp_path, "first", row_group=16_384, repeats=5)
    paper.run_e2e_only(tmp_path, "second")
    assert [c.e2e_row_group for c in seen] == [16_384, cfg.e2e_row_group]
    assert [c.e2e_repeats for c in seen] == [5, cfg.e2e_repeats]
    stages = json.loads((tmp_path / "results.json").read_text())["e2e_stages"]
    assert [(s["command"], s["row_group"], s["repeats"]) for s in stages] == [
        ("first", 16_384, 5),
        ("second", cfg.e2e_row_group, cfg.e2e_repeats),
    ]

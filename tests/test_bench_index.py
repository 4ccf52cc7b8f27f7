"""``mlskip bench index`` at a tiny size: the planning part runs and its figures agree
(the index prunes at least what footers prune; counts add up), also on a synthetic lake
(copied files, re-pathed index entries, which must be used, not found stale). Times are
not checked."""

from __future__ import annotations

from mlskip.tpch.bench_index import PlanningConfig
from mlskip.tpch.bench_index_planning import run_planning


def test_planning_figures_are_consistent(tmp_path):
    cfg = PlanningConfig(
        row_groups=(200, 400), models=("4-32-1",), real_row_groups=200, dask=False,
        s3_files=0, repeats=1,
    )  # fmt: skip
    figures = run_planning(cfg, tmp_path, say=lambda _: None)
    assert [x["synthetic"] for x in figures["lakes"]] == [False, True]
    for size in (200, 400):
        records = {r["method"]: r for r in figures["records"] if r["lake_row_groups"] == size}
        assert set(records) == {"footers", "index", "index boxes"}
        for r in records.values():
            assert r["files"] == size // 10 and r["row_groups"] == size
            assert r["pruned"] + r["all_match"] + r["evaluated"] == r["row_groups"]
            assert r["row_groups_left"] == 10 * r["files_left"] <= r["row_groups"]
            assert r["cold_s"] > 0 and r["warm_s"] > 0
        footers = records["footers"]
        assert footers["files_left"] == footers["files"]  # no file-level summaries
        for method in ("index", "index boxes"):
            assert records[method]["files_left"] < footers["files"]  # whole files pruned
            assert records[method]["pruned"] >= footers["pruned"] > 0
    small, large = ({r["method"]: r["pruned"] for r in figures["records"]
                     if r["lake_row_groups"] == size} for size in (200, 400))  # fmt: skip
    assert large == {m: 2 * n for m, n in small.items()}  # two copies of the same files

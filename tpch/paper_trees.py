"""Tree ensembles in ``mlskip bench paper`` (``--trees FAMILY``): their own records, end
to end runs and report section, kept apart from the networks' figures.

Records are those of every model (paper_model.py: each filter and setting, the cascade
against the exact limit, which for trees is the MILP over leaf indicators). End to end,
the baseline is the one a user of these libraries writes: DuckDB calling the library's
own ``predict`` as a Python (Arrow) UDF on every row; next to it mlskip's ONNX function
without skipping, and mlskip with skipping. Interleaved repetitions, medians.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import bench_data


def library_udf(name: str, estimator: Any, d: int):
    """A plain DuckDB connection with ``name(x1..xd)`` calling ``estimator.predict``."""
    import duckdb
    import pyarrow as pa

    def predict(*columns):
        if not len(columns[0]):  # DuckDB may call with an empty chunk; predict refuses it
            return pa.array(np.zeros(0))
        x = np.column_stack([c.to_numpy(zero_copy_only=False) for c in columns])
        return pa.array(
            np.asarray(estimator.predict(x.astype(np.float64)), dtype=np.float64).ravel()
        )

    import inspect

    predict.__signature__ = inspect.Signature(  # DuckDB checks the callable's arity
        [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(d)]
    )
    con = duckdb.connect()
    con.create_function(
        name, predict, [duckdb.sqltype("DOUBLE")] * d, duckdb.sqltype("DOUBLE"), type="arrow"
    )
    return con


def _pick(records: list[dict[str, Any]], per_table: int) -> list[dict[str, Any]]:
    """Per table and tree model: up to ``per_table`` filters of <= 0.1% (hull setting,
    smallest block size)."""
    chosen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    smallest = min((r["block_rows"] for r in records), default=0)
    for r in records:
        if r["setting"] != "hull" or r["bin"] != "<=0.1%" or r["block_rows"] != smallest:
            continue
        lst = chosen.setdefault((r["table"], r["model_key"]), [])
        if all(x["filter"]["fid"] != r["filter"]["fid"] for x in lst) and len(lst) < per_table:
            lst.append(r)
    return [r for lst in chosen.values() for r in lst]


def run_tree_e2e(cfg, records: list[dict[str, Any]], work: Path, progress) -> list[dict[str, Any]]:
    """One record per (query, layout): library UDF, mlskip without and with skipping."""
    import mlskip
    from mlskip.tpch.e2e import E2E_ROW_GROUP, _layouts, _write_full, measure_query

    picks = _pick(records, cfg.e2e_queries_per_table)
    kinds = tuple(cfg.e2e_layouts)
    row_group = int(getattr(cfg, "e2e_row_group", E2E_ROW_GROUP))
    task = progress.add_task("trees end to end", total=len(kinds) * len(picks))
    out: list[dict[str, Any]] = []
    for r in picks:
        data = bench_data.load_inputs(r["suite"], r["table"], tuple(r["inputs"]), cfg.sf)
        name = r["sql_name"]
        onnx = work / f"{name}.onnx"
        estimator = pickle.loads(onnx.with_suffix(".pkl").read_bytes())
        call = f"{name}({', '.join(r['inputs'])})"
        lo, hi = r["filter"]["lo"], r["filter"]["hi"]
        for tag, cluster_by, order, summarize in _layouts(r, data, onnx, kinds):
            progress.update(task, description=f"trees e2e {name} f{r['filter']['fid']} {tag}")
            file_tag = f"{tag}-{name}" if order is not None or summarize else tag
            path = _write_full(
                data, work / f"{r['table']}-{'-'.join(r['inputs'])}-full-{file_tag}.parquet",
                cluster_by, order, row_group,
                {name: (str(onnx), list(r["inputs"]))} if summarize else None,
            )  # fmt: skip
            sql = f"SELECT count(*) FROM '{path}' WHERE {call} BETWEEN {lo!r} AND {hi!r}"
            cons = {
                "udf": library_udf(name, estimator, len(r["inputs"])),
                "onnx": mlskip.connect(skipping=False),
                "mlskip": mlskip.connect(),
            }
            cons["onnx"].register_model(name, onnx)
            cons["mlskip"].register_model(name, onnx)
            m = measure_query(cons, sql, cfg.e2e_repeats)
            report, counts, med = m["report"], m["counts"], m["seconds"]
            out.append({
                "table": r["table"], "model": name, "family": r["hidden"][0],
                "fid": r["filter"]["fid"], "lo": lo, "hi": hi,
                "selectivity": r["filter"]["selectivity"], "layout": tag, "sql": sql,
                "rows": int(data.table.num_rows), "row_groups": report.row_groups,
                "pruned": report.pruned, "all_match": report.all_match,
                "udf_s": med["udf"], "onnx_s": med["onnx"], "mlskip_s": med["mlskip"],
                "udf_over_mlskip": med["udf"] / med["mlskip"],
                "onnx_over_mlskip": med["onnx"] / med["mlskip"],
                "planning_cold_s": m["planning_cold_s"], "planning_warm_s": m["planning_warm_s"],
                "counts": counts,
                "same_result": counts["mlskip"] == counts["onnx"],
                "udf_same": counts["udf"] == counts["onnx"], "repeats": cfg.e2e_repeats,
            })  # fmt: skip
            progress.advance(task)
    return out


def tree_section(results: dict[str, Any]) -> str:
    """The report section of the tree ensembles (empty when the run had none)."""
    records = results.get("tree_records") or []
    e2e = results.get("tree_e2e") or []
    if not records:
        return ""
    lines = [
        "## Tree ensembles",
        "",
        "Tree models (`--trees`) on the same filters and settings as the networks. "
        "`pruned` is the cascade's share of skippable row groups (leaf intervals, then "
        "branch and bound on split thresholds, the planner's work budget); `exact` the "
        "MILP's limit over leaf indicators (estimated as for networks: the cascade plus "
        "what the MILP prunes among the open row groups without a qualifying witness); "
        "`ms/RG` the cascade's CPU time per row group verified.",
        "",
        "| model | setting | filters | skippable | pruned | exact | gap (points) | ms/RG | lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["model_key"], r["setting"]), []).append(r)
    for (key, setting), rs in sorted(groups.items()):
        sk = sum(r["skippable"] for r in rs)
        pr = sum(r["cascade_pruned_skippable"] for r in rs)
        ex = sum(r["exact_pruned_estimate"] for r in rs)
        rgs = sum(r["row_groups"] for r in rs)
        ms = 1000 * sum(r["cascade_cpu_seconds"] for r in rs) / max(rgs, 1)
        lost = sum(r["lost_row_groups"] + r["wrong_all_match"] for r in rs)
        share = 100 * pr / sk if sk else float("nan")
        exact = 100 * ex / sk if sk else float("nan")
        lines.append(
            f"| {key} | {setting} | {len(rs)} | {sk} | {share:.1f}% | {exact:.1f}% | "
            f"{exact - share:.2f} | {ms:.3f} | {lost} |"
        )
    if e2e:
        lines += [
            "",
            "End to end (DuckDB; `library UDF`: the library's own `predict` as a Python "
            "UDF on every row; `ONNX`: mlskip's SQL function without skipping):",
            "",
            "| model | layout | selectivity | pruned / RGs | library UDF s | ONNX s | "
            "mlskip s | x UDF | same rows |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in e2e:
            lines.append(
                f"| {e['model']} | {e['layout']} | {100 * e['selectivity']:.3f}% | "
                f"{e['pruned']} / {e['row_groups']} | {e['udf_s']:.3f} | {e['onnx_s']:.3f} | "
                f"{e['mlskip_s']:.3f} | {e['udf_over_mlskip']:.1f}x | "
                f"{'yes' if e['same_result'] else '**NO**'}"
                f"{'' if e['udf_same'] else ' (library UDF differs)'} |"
            )
    return "\n".join(lines) + "\n"

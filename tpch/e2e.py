"""End-to-end wall time of selective queries in DuckDB: PyTorch UDF, ONNX UDF, mlskip.

For each table of the run, the deepest model of its first spec and its
most selective-bin filters are queried on the table written (122,880-row row
groups, 45-byte hulls) in natural order, sorted by the model's most
output-correlated input, Hilbert-clustered on its most influential inputs,
and sorted by the model's own prediction (a writer that knows the model). (a) PyTorch UDF on every row (the paper's
baseline), (b) the default ONNX UDF on every row, (c) mlskip with skipping;
interleaved repetitions, medians (``mlskip.tpch.bench_udf._interleaved``, the
helper ``mlskip bench sql`` uses), plus planning time cold and warm.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlskip.tpch import bench_data

E2E_ROW_GROUP = 122_880


def _write_full(
    data: bench_data.TableInputs,
    path: Path,
    cluster_by: list[str] | None,
    order=None,
    row_group: int = E2E_ROW_GROUP,
    models: dict[str, Any] | None = None,
) -> Path:
    """The whole table as one file, clustered by ``cluster_by`` (the writer's own option) or
    taken in ``order`` (rows sorted by the model's prediction); ``models``: summarize
    their outputs (``write_parquet(models=...)``)."""
    import itertools

    import pyarrow as pa

    import mlskip

    if not path.exists():
        pairs = list(itertools.combinations(data.table.column_names, 2))
        table = data.table if order is None else data.table.take(pa.array(order))
        tmp = path.with_suffix(".tmp")
        mlskip.write_parquet(
            table, tmp, row_group_size=row_group, hulls=pairs,
            cluster_by=cluster_by or None, curve="hilbert", models=models,
        )  # fmt: skip
        tmp.replace(path)
    return path


def _layouts(
    r: dict[str, Any], data, onnx: Path, kinds=("natural", "layout", "hilbert", "pred")
) -> list[tuple[str, list[str] | None, Any, bool]]:
    """(tag, cluster_by, order, with the model's output summaries) of each layout kind an
    e2e query runs on."""
    from mlskip.tpch import bench_models

    out = []
    for kind in kinds:
        if kind == "natural":
            out.append(("natural", None, None, False))
        elif kind == "summary":
            out.append(("natural-summary", None, None, True))
        elif kind == "layout":
            out.append((f"by-{r['cluster_by']}", [r["cluster_by"]], None, False))
        elif kind == "hilbert":
            out.append(("hilbert-" + "-".join(r["hilbert_by"]), list(r["hilbert_by"]), None, False))
        elif kind == "pred":
            y = bench_models.evaluate_rows(onnx, data.x)
            out.append(("by-prediction", None, bench_data.prediction_order(y, data.valid), False))
    return out


def _pick(records: list[dict[str, Any]], per_table: int) -> list[dict[str, Any]]:
    """Per table: the deepest model of its first spec and up to ``per_table`` filters of <= 0.1%."""
    chosen: dict[str, list[dict[str, Any]]] = {}
    depth = {}
    for r in records:
        depth[r["table"]] = max(depth.get(r["table"], 0), len(r["hidden"]))
    for r in records:
        if r["setting"] != "hull" or len(r["hidden"]) != depth[r["table"]] or r["bin"] != "<=0.1%":
            continue
        if r["block_rows"] != min(x["block_rows"] for x in records):
            continue
        lst = chosen.setdefault(r["table"], [])
        if lst and lst[0]["model"] != r["model"]:
            continue
        if all(x["filter"]["fid"] != r["filter"]["fid"] for x in lst) and len(lst) < per_table:
            lst.append(r)
    return [r for lst in chosen.values() for r in lst]


def compared_connections(name: str, model) -> dict[str, Any]:
    """The connections an end-to-end query is timed on, ``model`` registered as ``name``
    on each: the PyTorch UDF and the ONNX UDF on every row, and mlskip."""
    import mlskip

    cons = {
        "torch": mlskip.connect(skipping=False, backend="torch"),
        "onnx": mlskip.connect(skipping=False),
        "mlskip": mlskip.connect(),
    }
    for con in cons.values():
        con.register_model(name, model)
    return cons


def measure_query(cons: dict[str, Any], sql: str, repeats: int) -> dict[str, Any]:
    """One query on each connection: the skipping report of ``cons["mlskip"]`` with its
    cold and warm planning time, each connection's count, and medians of interleaved
    timed runs."""
    from mlskip.tpch.bench_udf import _interleaved

    start = time.perf_counter()
    report = cons["mlskip"].explain_skipping(sql)
    planning_cold = time.perf_counter() - start
    start = time.perf_counter()
    cons["mlskip"].explain_skipping(sql)
    planning_warm = time.perf_counter() - start
    counts = {k: c.sql(sql).fetchall()[0][0] for k, c in cons.items()}
    runs = {k: (lambda c=c: c.sql(sql).fetchall()) for k, c in cons.items()}
    return {
        "report": report, "planning_cold_s": planning_cold, "planning_warm_s": planning_warm,
        "counts": counts, "seconds": _interleaved(runs, repeats),
    }  # fmt: skip


def run_e2e(cfg, records: list[dict[str, Any]], work: Path, progress) -> list[dict[str, Any]]:
    """Measure every chosen query; one record per (query, layout)."""

    picks = _pick(records, cfg.e2e_queries_per_table)
    kinds = tuple(getattr(cfg, "e2e_layouts", ("natural", "layout", "hilbert", "pred")))
    row_group = int(getattr(cfg, "e2e_row_group", E2E_ROW_GROUP))
    size_tag = "" if row_group == E2E_ROW_GROUP else f"-rg{row_group}"
    task = progress.add_task("end to end", total=len(kinds) * len(picks))
    out: list[dict[str, Any]] = []
    for r in picks:
        data = bench_data.load_inputs(r["suite"], r["table"], tuple(r["inputs"]), cfg.sf)
        name = f"{r['model']}_h{len(r['hidden'])}"
        onnx = work / f"{name}.onnx"
        call = f"{name}({', '.join(r['inputs'])})"
        lo, hi = r["filter"]["lo"], r["filter"]["hi"]
        for tag, cluster_by, order, summarize in _layouts(r, data, onnx, kinds):
            progress.update(task, description=f"e2e {name} f{r['filter']['fid']} {tag}")
            file_tag = f"{tag}-{name}" if order is not None or summarize else tag
            path = _write_full(
                data,
                work / f"{r['table']}-{'-'.join(r['inputs'])}-full-{file_tag}{size_tag}.parquet",
                cluster_by,
                order,
                row_group,
                {name: (str(onnx), list(r["inputs"]))} if summarize else None,
            )
            sql = f"SELECT count(*) FROM '{path}' WHERE {call} BETWEEN {lo!r} AND {hi!r}"
            m = measure_query(compared_connections(name, onnx), sql, cfg.e2e_repeats)
            report, counts, med = m["report"], m["counts"], m["seconds"]
            out.append({
                "table": r["table"], "model": name, "fid": r["filter"]["fid"], "lo": lo, "hi": hi,
                "selectivity": r["filter"]["selectivity"], "layout": tag, "sql": sql,
                "rows": int(data.table.num_rows), "row_groups": report.row_groups,
                "pruned": report.pruned, "all_match": report.all_match,
                "torch_s": med["torch"], "onnx_s": med["onnx"], "mlskip_s": med["mlskip"],
                "torch_over_mlskip": med["torch"] / med["mlskip"],
                "onnx_over_mlskip": med["onnx"] / med["mlskip"],
                "planning_cold_s": m["planning_cold_s"], "planning_warm_s": m["planning_warm_s"],
                "counts": counts, "same_result": counts["mlskip"] == counts["onnx"],
                "torch_same": counts["torch"] == counts["onnx"],
                "repeats": cfg.e2e_repeats, "row_group_rows": row_group,
            })  # fmt: skip
            progress.advance(task)
    return out

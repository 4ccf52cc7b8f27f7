"""Small files: is a query with skipping ever slower than without? (issue 17's goal)

On MLSkip's own file size (100 row groups of 1,000 rows, the reference protocol of
``mlskip bench paper``), a query does little work, so planning can cost more than it
saves. For each model of a reference run (its natural-order file, 45-byte hulls on every
pair) and a few of its filters spread over selectivity, this times
``SELECT count(*) FROM file WHERE m(...) BETWEEN lo AND hi``:

- cold: the first query on a new connection (model registered, nothing planned, nothing
  cached), with skipping and without, interleaved;
- warm: the same query again on that connection (plan and footers cached).

Medians over the repetitions; the ratio is mlskip's time over DuckDB + ONNX Runtime
without skipping (goal: at most 1.05). Results equal with and without skipping are
checked on every query. Run: ``mlskip bench small-files --run DIR`` on the output folder
of ``mlskip bench paper --protocol reference --out DIR``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any


def pick(records: list[dict[str, Any]], per_model: int) -> list[dict[str, Any]]:
    """Per model: up to ``per_model`` filters of the natural-order hull records at the
    smallest block size, spread from the most to the least selective."""
    smallest = min(r["block_rows"] for r in records)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["setting"] == "hull" and r["layout"] == "natural" and r["block_rows"] == smallest:
            by_model.setdefault(r["model_key"], []).append(r)
    out = []
    for recs in by_model.values():
        recs.sort(key=lambda r: (r["filter"]["selectivity"], r["filter"]["fid"]))
        k = min(per_model, len(recs))
        idx = sorted({round(i * (len(recs) - 1) / max(1, k - 1)) for i in range(k)})
        out.extend(recs[i] for i in idx)
    return out


def _file(work: Path, r: dict[str, Any]) -> Path:
    pattern = f"reference-{r['table']}-{'-'.join(r['inputs'])}-natural-b{r['block_rows']}-*.parquet"
    found = sorted(work.glob(pattern))
    if not found:
        raise FileNotFoundError(f"no file {pattern} in {work}: run the reference protocol first")
    return found[0]


def _time_query(skipping: bool, name: str, onnx: Path, sql: str) -> tuple[float, float, Any]:
    """(cold, warm) seconds and the result of ``sql`` on a new connection."""
    import mlskip

    con = mlskip.connect(skipping=skipping)
    try:
        con.register_model(name, onnx)
        start = time.perf_counter()
        rows = con.sql(sql).fetchall()
        cold = time.perf_counter() - start
        start = time.perf_counter()
        con.sql(sql).fetchall()
        warm = time.perf_counter() - start
    finally:
        con.close()
    return cold, warm, rows


def run(run_dir: Path, per_model: int = 3, repeats: int = 7) -> dict[str, Any]:
    """Measure, print a table, write ``run_dir/small_files.json``; returns the figures."""
    from rich.table import Table

    import mlskip
    from mlskip.tpch.bench_verifier import wide_console

    results = json.loads((run_dir / "results.json").read_text())
    work = run_dir / "work"
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()
    for r in pick(results["records"], per_model):
        name = f"{r['model']}_h{len(r['hidden'])}"
        onnx = work / f"{name}.onnx"
        path = _file(work, r)
        call = f"{name}({', '.join(r['inputs'])})"
        lo, hi = r["filter"]["lo"], r["filter"]["hi"]
        sql = f"SELECT count(*) FROM '{path}' WHERE {call} BETWEEN {lo!r} AND {hi!r}"
        times: dict[str, dict[str, list[float]]] = {
            k: {"cold": [], "warm": []} for k in ("mlskip", "plain")
        }
        answers = set()
        _time_query(True, name, onnx, sql)  # the process's first use of each piece
        _time_query(False, name, onnx, sql)
        for _ in range(repeats):
            for kind in ("mlskip", "plain"):
                cold, warm, got = _time_query(kind == "mlskip", name, onnx, sql)
                times[kind]["cold"].append(cold)
                times[kind]["warm"].append(warm)
                answers.add((kind, got[0][0]))
        con = mlskip.connect()
        con.register_model(name, onnx)
        report = con.explain_skipping(sql)
        con.close()
        med = {k: {w: statistics.median(v) for w, v in d.items()} for k, d in times.items()}
        rows.append({
            "model": r["model_key"], "fid": r["filter"]["fid"],
            "selectivity": r["filter"]["selectivity"], "sql": sql,
            "row_groups": report.row_groups, "pruned": report.pruned,
            "all_match": report.all_match,
            "mlskip_cold_s": med["mlskip"]["cold"], "plain_cold_s": med["plain"]["cold"],
            "mlskip_warm_s": med["mlskip"]["warm"], "plain_warm_s": med["plain"]["warm"],
            "cold_ratio": med["mlskip"]["cold"] / med["plain"]["cold"],
            "warm_ratio": med["mlskip"]["warm"] / med["plain"]["warm"],
            "same_result": len({v for _, v in answers}) == 1,
        })  # fmt: skip
    load1 = os.getloadavg()
    t = Table(
        title=f"small files: {repeats} interleaved runs, medians; load {load0[0]:.1f} -> "
        f"{load1[0]:.1f} on {os.cpu_count()} cores",
        caption="ratio: mlskip / DuckDB + ONNX Runtime without skipping (goal <= 1.05); "
        "cold: first query on a new connection; warm: the same query again",
    )
    for col in ("model", "filter", "sel.", "pruned / all / RGs", "cold ms", "cold ratio",
                "warm ms", "warm ratio", "same"):  # fmt: skip
        t.add_column(col, justify="left" if col == "model" else "right")
    for x in rows:
        t.add_row(
            x["model"], str(x["fid"]), f"{x['selectivity']:.2%}",
            f"{x['pruned']} / {x['all_match']} / {x['row_groups']}",
            f"{1e3 * x['mlskip_cold_s']:.1f} vs {1e3 * x['plain_cold_s']:.1f}",
            f"{x['cold_ratio']:.2f}",
            f"{1e3 * x['mlskip_warm_s']:.1f} vs {1e3 * x['plain_warm_s']:.1f}",
            f"{x['warm_ratio']:.2f}", "yes" if x["same_result"] else "NO",
        )  # fmt: skip
    wide_console().print(t)
    summary = {
        "queries": len(rows),
        "max_cold_ratio": max((x["cold_ratio"] for x in rows), default=float("nan")),
        "max_warm_ratio": max((x["warm_ratio"] for x in rows), default=float("nan")),
        "median_cold_ratio": statistics.median(x["cold_ratio"] for x in rows) if rows else None,
        "all_same": all(x["same_result"] for x in rows),
        "load_start": load0,
        "load_end": load1,
        "repeats": repeats,
    }
    print(
        f"cold ratio: median {summary['median_cold_ratio']:.3f}, max "
        f"{summary['max_cold_ratio']:.3f}; warm ratio max {summary['max_warm_ratio']:.3f}; "
        f"results equal: {summary['all_same']}"
    )
    (run_dir / "small_files.json").write_text(json.dumps({"summary": summary, "queries": rows}))
    return summary

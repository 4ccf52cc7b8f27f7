"""The end-to-end part of ``mlskip bench index`` (the module docstring of
``mlskip.tpch.bench_index`` says what it measures): TPC tables split into plain files,
mlskip.dask vs Dask + the model vs mlskip.connect."""

from __future__ import annotations

import math
import os
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlskip.tpch.bench_index import (
    _COPIES,
    E2E_SELECTIVITY,
    E2E_TABLES,
    MODEL_SEED,
    MODELS,
    E2eConfig,
    _timed,
    dask_client,
    model_outputs,
    onnx_model,
    random_mlp,
    threshold,
)

# ---------------------------------------------------------------- e2e


def split_files(table: pa.Table, folder: Path, files: int, row_group_size: int) -> list[str]:
    """``table`` in ``files`` consecutive slices, written by plain pyarrow."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = math.ceil(table.num_rows / files)
    paths = []
    for i in range(files):
        path = str(folder / f"part{i:05d}.parquet")
        pq.write_table(table.slice(i * rows, rows), path, row_group_size=row_group_size)
        paths.append(path)
    return paths


def input_matrix(table: pa.Table, inputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The model's float32 inputs (each column cast to float64 by Arrow first, as mlskip
    reads it) and which rows have no NULL input."""
    from mlskip.udf.inputs import model_rows

    return model_rows([table.column(c) for c in inputs])


def e2e_model(
    table: pa.Table, inputs: Sequence[str], sizes: Sequence[int]
) -> tuple[bytes, float, float]:
    """A random MLP reading standardized inputs, its threshold of ``E2E_SELECTIVITY``
    and the selectivity it has on ``table``."""
    x, valid = input_matrix(table, inputs)
    x = x[valid]
    net = random_mlp(sizes, MODEL_SEED, inputs, x.mean(axis=0), x.std(axis=0) + 1e-9)
    onnx = onnx_model(net)
    y = model_outputs(onnx, x)
    t = threshold(y, E2E_SELECTIVITY)
    return onnx, t, float(np.sum(y > t)) / table.num_rows


def baseline_filter(frame: Any, onnx: bytes, inputs: Sequence[str], t: float) -> Any:
    """A partition's rows where ``model(inputs) > t`` (what a Dask user writes: ONNX
    Runtime on the float32 inputs; a row with a NULL input never qualifies)."""
    columns = [frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in inputs]
    x = np.column_stack(columns).astype(np.float32) if len(frame) else np.zeros((0, len(inputs)))
    valid = ~np.isnan(x).any(axis=1)
    y = model_outputs(onnx, x) if len(frame) else np.zeros(0, np.float32)
    return frame[valid & (y > t)]


@dataclass
class E2eCase:
    """One table in one layout, ready to run."""

    suite: str
    table: str
    layout: str
    files: list[str]
    index: str
    inputs: tuple[str, ...]
    onnx: bytes
    threshold: float


def _runs(run: Callable[[], int], repeats: int) -> dict[str, Any]:
    """Cold: the first run; warm: the median of ``repeats`` runs after it."""
    cold, count = _timed(run)
    warm = [_timed(run)[0] for _ in range(repeats)]
    return {"cold_s": cold, "warm_s": statistics.median(warm) if warm else cold, "count": count}


def dask_runs(case: E2eCase, files: Sequence[str], index: str) -> dict[str, Callable[[], int]]:
    """The two Dask reads of ``files``, each returning its row count: mlskip.dask with
    ``index``, and Dask's own read with the model applied to every partition."""
    import dask.dataframe as dd

    import mlskip.dask

    def mlskip_dask() -> int:
        frame = mlskip.dask.read_parquet(
            list(files), case.onnx, f"> {case.threshold!r}", index=index,
            inputs=list(case.inputs),
        )  # fmt: skip
        return len(frame.compute())

    def plain_dask() -> int:
        frame = dd.read_parquet(list(files))
        return len(frame.map_partitions(
            baseline_filter, case.onnx, case.inputs, case.threshold, meta=frame._meta
        ).compute())  # fmt: skip

    return {"mlskip_dask": mlskip_dask, "dask": plain_dask}


def warm_up_dask(case: E2eCase) -> None:
    """Both Dask reads once on two files (workers import and load the model), planned
    from a copy of the index (the timed runs start with a planner that is cold)."""
    copy = f"{case.index}.warm-up{next(_COPIES)}"
    shutil.copyfile(case.index, copy)
    for run in dask_runs(case, case.files[:2], copy).values():
        run()
    os.remove(copy)


def run_case(case: E2eCase, repeats: int) -> dict[str, Any]:
    """mlskip.dask, Dask's own read with the model, and mlskip SQL on one case."""
    import mlskip

    folder = os.path.dirname(case.files[0])
    call = f"m({', '.join(case.inputs)})"
    sql = (
        f"SELECT count(*) FROM read_parquet('{folder}/*.parquet') WHERE {call} > {case.threshold!r}"
    )
    con = mlskip.connect(index=case.index)
    con.register_model("m", case.onnx)
    figures = {
        **{k: _runs(run, repeats) for k, run in dask_runs(case, case.files, case.index).items()},
        "mlskip_sql": _runs(lambda: con.sql(sql).fetchall()[0][0], repeats),
    }
    report = con.explain_skipping(sql)
    con.close()
    counts = {k: v["count"] for k, v in figures.items()}
    return {
        "suite": case.suite, "table": case.table, "layout": case.layout, **figures,
        "counts_equal": len(set(counts.values())) == 1, "rows": counts["dask"],
        "row_groups": report.row_groups, "pruned": report.pruned,
        "all_match": report.all_match, "sql": sql,
        "speedup_dask": figures["dask"]["warm_s"] / figures["mlskip_dask"]["warm_s"],
        "speedup_dask_cold": figures["dask"]["cold_s"] / figures["mlskip_dask"]["cold_s"],
        "speedup_sql": figures["dask"]["warm_s"] / figures["mlskip_sql"]["warm_s"],
    }  # fmt: skip


def prepare_cases(
    suite: str, cfg: E2eConfig, work: Path, say: Callable[[str], None]
) -> tuple[list[E2eCase], list[dict[str, Any]]]:
    """The two layouts of one TPC table, indexed; and the index builds' figures."""
    import mlskip
    from mlskip.skipper.skip_index import build_index

    name, inputs = E2E_TABLES[suite]
    say(f"{suite} {name} sf={cfg.sf:g}: generating, splitting into {cfg.files} files")
    table = pq.read_table(mlskip.generate_tpc(suite, cfg.sf, tables=[name])[name])
    onnx, t, selectivity = e2e_model(table, inputs, MODELS[cfg.model])
    layouts = {"natural": table, "clustered": table.sort_by(inputs[0])}
    cases, builds = [], []
    for layout, rows in layouts.items():
        files = split_files(rows, work / f"{suite}-{layout}", cfg.files, cfg.row_group_size)
        index = str(work / f"{suite}-{layout}.idx")
        say(f"{suite} {name} {layout}: building the index")
        report = build_index(files, index)
        builds.append({
            "suite": suite, "table": name, "layout": layout, "files": report.files,
            "row_groups": report.row_groups, "rows": table.num_rows, "index_s": report.seconds,
            "index_bytes": report.index_bytes,
            "index_bytes_per_row_group": report.index_bytes / max(report.row_groups, 1),
            "threshold": t, "selectivity": selectivity,
        })  # fmt: skip
        cases.append(E2eCase(suite, name, layout, files, index, inputs, onnx, t))
    return cases, builds


def _check_counts(result: dict[str, Any]) -> None:
    if not result["counts_equal"]:
        counts = {k: result[k]["count"] for k in ("mlskip_dask", "dask", "mlskip_sql")}
        raise AssertionError(f"{result['table']} {result['layout']}: row counts differ: {counts}")


def run_e2e(cfg: E2eConfig, work: Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Prepare every case, then time them on one two-worker cluster."""
    cases, builds = [], []
    for suite in cfg.suites:
        got, built = prepare_cases(suite, cfg, work, say)
        cases += got
        builds += built
    results = []
    with dask_client():
        warm_up_dask(cases[0])
        for case in cases:
            say(f"{case.table} {case.layout}: timing")
            results.append(run_case(case, cfg.repeats))
            _check_counts(results[-1])
    return {"builds": builds, "results": results}


def print_e2e(figures: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    builds = Table(title="e2e: files written by plain pyarrow, indexed by build_index")
    for col in ("table", "layout", "files", "row groups", "rows", "index build s",
                "index bytes / RG", "selectivity"):  # fmt: skip
        builds.add_column(col, justify="left" if col in ("table", "layout") else "right")
    for b in figures["builds"]:
        builds.add_row(
            b["table"], b["layout"], f"{b['files']:,}", f"{b['row_groups']:,}",
            f"{b['rows']:,}", f"{b['index_s']:.1f}", f"{b['index_bytes_per_row_group']:.0f}",
            f"{b['selectivity']:.2%}",
        )  # fmt: skip
    console.print(builds)
    t = Table(
        title="e2e: qualifying rows of model(...) > t on a 2-worker LocalCluster; SQL: one process",
        caption="seconds cold (first run) / warm (median after it); x: Dask's own read "
        "with the model over mlskip's, warm (cold in brackets)",
    )
    for col in ("table", "layout", "rows", "pruned / RGs", "mlskip.dask s", "dask s",
                "mlskip SQL s", "x dask", "x SQL"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("table", "layout") else "right")
    for r in figures["results"]:
        t.add_row(
            r["table"], r["layout"], f"{r['rows']:,}",
            f"{r['pruned']:,} / {r['row_groups']:,}",
            *(f"{r[k]['cold_s']:.2f} / {r[k]['warm_s']:.2f}"
              for k in ("mlskip_dask", "dask", "mlskip_sql")),
            f"{r['speedup_dask']:.1f} ({r['speedup_dask_cold']:.1f})",
            f"{r['speedup_sql']:.1f}",
        )  # fmt: skip
    console.print(t)


# ---------------------------------------------------------------- entry point

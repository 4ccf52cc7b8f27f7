"""``mlskip bench sql``: model evaluation speed inside DuckDB and end-to-end skipping gains.

All figures come from one run, measured side by side with interleaved
repetitions (medians), on TPC-H lineitem: rows/s of the model in a query for
the PyTorch per-batch UDF (the MLSkip paper's baseline), the ONNX Runtime
Arrow UDF, and mlskip's batch evaluation of planned scans (every row of the
file evaluated), then end-to-end time of a selective query over lineitem written
clustered with mlskip, with and without skipping, and of a query where
nothing can be pruned.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

INPUTS = ("l_quantity", "l_extendedprice", "l_discount", "l_tax")


def _interleaved(runs: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run in turn ``repeats`` times."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def run_sql_bench(
    sf: float = 1.0,
    row_group_size: int = 122_880,
    repeats: int = 3,
    out_dir: str | Path | None = None,
    quick: bool = False,
) -> dict[str, float]:
    """Measure and print; returns the figures."""
    from rich.console import Console

    from mlskip.progress import stage
    from mlskip.tpch.e2e import compared_connections

    console = Console()
    if quick:
        sf, repeats = min(sf, 0.1), min(repeats, 2)
    with stage(console, f"lineitem sf={sf:g}, the model and a clustered copy"):
        source, clustered, model_path, rows = _bench_files(sf, row_group_size, out_dir)
    cons = compared_connections("disc_price", model_path)
    y = _sample_outputs(cons["mlskip"], source)
    selective = float(np.quantile(y, 0.9995))
    median = float(np.quantile(y, 0.5))  # every natural-order row group holds rows on both sides
    never = float(y.max() + 1e9)  # a filter no row passes: every row evaluated

    def sql(path, threshold) -> str:
        return f"SELECT count(*) FROM '{path}' WHERE {CALL} > {threshold!r}"

    def query(con, path, threshold):
        return lambda: con.sql(sql(path, threshold)).fetchall()

    runs = {k: query(cons[k], source, never) for k in ("torch", "onnx")}
    runs["batch"] = _batch_evaluation(cons["onnx"], source, never)
    with stage(console, f"model rows/s: torch UDF, ONNX UDF, batch evaluation (x{repeats})"):
        eval_times = _interleaved(runs, repeats)
    cons["mlskip"].sql(f"SELECT 1 FROM '{clustered}' WHERE {CALL} > {selective!r}")  # plan cache
    with stage(console, f"selective query, end to end (x{repeats})"):
        e2e = _interleaved(
            {k: query(con, clustered, selective) for k, con in cons.items()}, repeats
        )
    report = cons["mlskip"].explain_skipping(sql(clustered, selective))
    planning_cold, planning_warm = _planning_times(model_path, sql(clustered, selective))
    # nothing prunable: in natural order every row group holds rows above and below the median
    with stage(console, f"a query nothing can be pruned for (x{repeats})"):
        nothing = _interleaved(
            {k: query(cons[k], source, median) for k in ("onnx", "mlskip")}, repeats
        )
    unprunable = cons["mlskip"].explain_skipping(sql(source, median))
    figures = {
        "rows": rows,
        "torch_udf_rows_per_s": rows / eval_times["torch"],
        "onnx_udf_rows_per_s": rows / eval_times["onnx"],
        "selective_torch_s": e2e["torch"],
        "selective_onnx_s": e2e["onnx"],
        "selective_mlskip_s": e2e["mlskip"],
        "speedup_vs_torch": e2e["torch"] / e2e["mlskip"],
        "speedup_vs_onnx": e2e["onnx"] / e2e["mlskip"],
        "row_groups": report.row_groups,
        "pruned": report.pruned,
        "planning_cold_s": planning_cold,
        "planning_warm_s": planning_warm,
        "unprunable_onnx_s": nothing["onnx"],
        "unprunable_mlskip_s": nothing["mlskip"],
        "unprunable_overhead": nothing["mlskip"] / nothing["onnx"] - 1.0,
        "batch_eval_rows_per_s": rows / eval_times["batch"],
        "unprunable_pruned": unprunable.pruned + unprunable.all_match,
    }
    _print_figures(figures, f"SQL speed: TPC-H lineitem sf={sf:g} ({rows:,} rows), "
                            f"RG {row_group_size:,}, median of {repeats}")  # fmt: skip
    return figures


CALL = f"disc_price({', '.join(INPUTS)})"


def _bench_files(
    sf: float, row_group_size: int, out_dir: str | Path | None
) -> tuple[str, Path, Path, int]:
    """lineitem as generated, written clustered by mlskip, and the trained model (ONNX)."""
    import tempfile

    import pyarrow.parquet as pq

    import mlskip
    from mlskip.model_zoo.export import to_onnx
    from mlskip.model_zoo.specs import get_spec
    from mlskip.model_zoo.train import train_dense
    from mlskip.tpch.generate import generate_tpc

    out = Path(out_dir or tempfile.mkdtemp(prefix="mlskip-bench-sql-"))
    out.mkdir(parents=True, exist_ok=True)
    tables = generate_tpc("tpch", sf, tables=["lineitem"], row_group_size=row_group_size)
    source = tables["lineitem"]
    trained = train_dense(get_spec("lineitem_disc_price"), hidden=(32, 32), sf=min(sf, 0.1))
    model_path = out / "disc_price.onnx"
    model_path.write_bytes(to_onnx(trained.model, input_columns=list(INPUTS)).SerializeToString())
    clustered = out / "lineitem_clustered.parquet"
    if not clustered.exists():
        mlskip.write_parquet(pq.read_table(source), clustered, row_group_size=row_group_size,
                             cluster_by=["l_extendedprice"])  # fmt: skip
    return source, clustered, model_path, pq.ParquetFile(source).metadata.num_rows


def _sample_outputs(con: Any, source: str) -> np.ndarray:
    """The model's output on the first 200,000 rows (where the thresholds come from)."""
    import pyarrow.parquet as pq

    net = con.models["disc_price"].network
    sample = pq.read_table(source, columns=list(INPUTS)).slice(0, 200_000)
    x = np.column_stack([sample.column(c).to_numpy().astype(float) for c in INPUTS])
    return net.evaluate(x)[:, 0]


def _batch_evaluation(con: Any, source: str, threshold: float):
    """mlskip's batch evaluation of every row of ``source`` (a planned scan, nothing pruned)."""
    from mlskip.skipper.models import EvaluationTask
    from mlskip.udf.batch_eval import BatchEvaluator
    from mlskip.udf.runtime import make_runner

    model = con.models["disc_price"]
    runner = make_runner(model)
    evaluator = BatchEvaluator(con.duckdb, lambda _name: (model, runner))
    every_row = EvaluationTask(
        f"read_parquet('{source}', file_row_number = TRUE)", None, (), "disc_price",
        INPUTS, "gt", (threshold,),
    )  # fmt: skip
    return lambda: evaluator(every_row)


def _planning_times(model_path: Path, sql: str) -> tuple[float, float]:
    """Seconds to plan ``sql`` on a new connection, then again (plan cache warm)."""
    import mlskip

    cold = mlskip.connect()
    cold.register_model("disc_price", model_path)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        cold.explain_skipping(sql)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def _print_figures(figures: dict[str, float], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    counts = ("row_groups", "pruned", "unprunable_pruned")
    for key, value in figures.items():
        if "rows" in key or key in counts:
            text = f"{value:,.0f}"
        else:
            text = f"{value:.1%}" if key == "unprunable_overhead" else f"{value:.3f}"
        table.add_row(key, text)
    Console().print(table)

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
    import tempfile

    import pyarrow.parquet as pq
    from rich.console import Console
    from rich.table import Table

    import mlskip
    from mlskip.model_zoo.export import to_onnx
    from mlskip.model_zoo.specs import get_spec
    from mlskip.model_zoo.train import train_dense
    from mlskip.tpch.generate import generate_tpc
    from mlskip.udf.runtime import make_runner

    console = Console()
    if quick:
        sf, repeats = min(sf, 0.1), min(repeats, 2)
    out = Path(out_dir or tempfile.mkdtemp(prefix="mlskip-bench-sql-"))
    out.mkdir(parents=True, exist_ok=True)
    source = generate_tpc("tpch", sf, tables=["lineitem"], row_group_size=row_group_size)[
        "lineitem"
    ]
    trained = train_dense(get_spec("lineitem_disc_price"), hidden=(32, 32), sf=min(sf, 0.1))
    model_path = out / "disc_price.onnx"
    model_path.write_bytes(to_onnx(trained.model, input_columns=list(INPUTS)).SerializeToString())
    clustered = out / "lineitem_clustered.parquet"
    if not clustered.exists():
        mlskip.write_parquet(pq.read_table(source), clustered, row_group_size=row_group_size,
                             cluster_by=["l_extendedprice"])  # fmt: skip
    rows = pq.ParquetFile(source).metadata.num_rows

    cons = {
        "torch": mlskip.connect(skipping=False, backend="torch"),
        "onnx": mlskip.connect(skipping=False),
        "mlskip": mlskip.connect(),
    }
    for con in cons.values():
        con.register_model("disc_price", model_path)
    call = f"disc_price({', '.join(INPUTS)})"
    net = cons["mlskip"].models["disc_price"].network
    sample = pq.read_table(source, columns=list(INPUTS)).slice(0, 200_000)
    y = net.evaluate(np.column_stack([sample.column(c).to_numpy().astype(float) for c in INPUTS]))[
        :, 0
    ]
    selective = float(np.quantile(y, 0.9995))
    median = float(np.quantile(y, 0.5))  # every natural-order row group holds rows on both sides

    def query(con, path, threshold):
        return lambda: con.sql(
            f"SELECT count(*) FROM '{path}' WHERE {call} > {threshold!r}"
        ).fetchall()

    # model evaluation rows/s: a filter no row passes, on the original (unclustered) file
    never = float(y.max() + 1e9)
    from mlskip.skipper.models import EvaluationTask
    from mlskip.udf.batch_eval import BatchEvaluator

    model = cons["onnx"].models["disc_price"]
    runner = make_runner(model)
    evaluator = BatchEvaluator(cons["onnx"].duckdb, lambda _name: (model, runner))
    every_row = EvaluationTask(
        f"read_parquet('{source}', file_row_number = TRUE)", None, (), "disc_price",
        INPUTS, "gt", (never,),
    )  # fmt: skip
    runs = {k: query(cons[k], source, never) for k in ("torch", "onnx")}
    runs["batch"] = lambda: evaluator(every_row)
    eval_times = _interleaved(runs, repeats)
    cons["mlskip"].sql(
        f"SELECT 1 FROM '{clustered}' WHERE {call} > {selective!r}"
    )  # warm plan cache
    e2e = _interleaved(
        {
            "torch": query(cons["torch"], clustered, selective),
            "onnx": query(cons["onnx"], clustered, selective),
            "mlskip": query(cons["mlskip"], clustered, selective),
        },
        repeats,
    )
    report = cons["mlskip"].explain_skipping(
        f"SELECT count(*) FROM '{clustered}' WHERE {call} > {selective!r}"
    )
    cold = mlskip.connect()
    cold.register_model("disc_price", model_path)
    start = time.perf_counter()
    cold.explain_skipping(f"SELECT count(*) FROM '{clustered}' WHERE {call} > {selective!r}")
    planning_cold = time.perf_counter() - start
    start = time.perf_counter()
    cold.explain_skipping(f"SELECT count(*) FROM '{clustered}' WHERE {call} > {selective!r}")
    planning_warm = time.perf_counter() - start
    # nothing prunable: in natural order every row group holds rows above and below the median
    nothing = _interleaved(
        {
            "onnx": query(cons["onnx"], source, median),
            "mlskip": query(cons["mlskip"], source, median),
        },
        repeats,
    )
    unprunable = cons["mlskip"].explain_skipping(
        f"SELECT count(*) FROM '{source}' WHERE {call} > {median!r}"
    )

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
    table = Table(title=f"SQL speed: TPC-H lineitem sf={sf:g} ({rows:,} rows), RG {row_group_size:,}, "
                        f"median of {repeats}")  # fmt: skip
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        text = f"{value:,.0f}" if "rows" in key or key in ("row_groups", "pruned", "unprunable_pruned") else (
            f"{value:.1%}" if key == "unprunable_overhead" else f"{value:.3f}")  # fmt: skip
        table.add_row(key, text)
    console.print(table)
    return figures

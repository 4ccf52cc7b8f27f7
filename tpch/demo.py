"""``mlskip demo``: skipping on TPC-H lineitem, end to end, in about a minute.

Generates lineitem (cached), trains a small ReLU regressor of the discounted
price, writes the table through the mlskip hook clustered by price, and runs
three ML-predicate queries with and without skipping: results must be
identical, and the table shows what was skipped and the time saved.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console

INPUTS = ("l_quantity", "l_extendedprice", "l_discount", "l_tax")


@dataclass(frozen=True)
class DemoRow:
    name: str
    sql: str
    rows: int
    row_groups: int
    pruned: int
    all_match: int
    evaluated: int
    seconds_with: float
    seconds_without: float
    identical: bool


def _median_time(run, repeats: int) -> tuple[float, list]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def run_demo(
    sf: float = 0.1,
    row_group_size: int = 10_000,
    out_dir: str | Path | None = None,
    repeats: int = 3,
    console: Console | None = None,
) -> list[DemoRow]:
    """Run the demo and print its table; returns one row per query."""
    import mlskip
    from mlskip.model_zoo.export import to_onnx
    from mlskip.model_zoo.specs import get_spec
    from mlskip.model_zoo.train import train_dense
    from mlskip.progress import stage
    from mlskip.tables import fitted_table
    from mlskip.tpch.generate import generate_tpc

    console = console or Console()
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="mlskip-demo-"))
    out.mkdir(parents=True, exist_ok=True)

    with stage(console, "generating TPC-H lineitem"):
        source = generate_tpc("tpch", sf, tables=["lineitem"])["lineitem"]
    with stage(console, "training the filter model (4-32-32-1 ReLU, discounted price)"):
        trained = train_dense(get_spec("lineitem_disc_price"), hidden=(32, 32), sf=sf)
        model_path = out / "disc_price.onnx"
        model_path.write_bytes(
            to_onnx(trained.model, input_columns=list(INPUTS)).SerializeToString()
        )
    target = out / "lineitem.parquet"
    with stage(console, "writing lineitem through the mlskip hook (clustered by price)"):
        table = pq.read_table(source)
        mlskip.write_parquet(
            table, target, row_group_size=row_group_size, cluster_by=["l_extendedprice"]
        )

    x = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in INPUTS])
    con_on = mlskip.connect()
    con_off = mlskip.connect(skipping=False)
    for con in (con_on, con_off):
        con.register_model("disc_price", model_path)
    y = con_on.models["disc_price"].network.evaluate(x[::50])[:, 0]
    q = {p: float(np.quantile(y, p)) for p in (0.0005, 0.5, 0.9995)}
    call = f"disc_price({', '.join(INPUTS)})"
    queries = [
        ("top 0.05%", f"SELECT count(*), sum(l_quantity) FROM '{target}' WHERE {call} > {q[0.9995]!r}"),
        ("narrow band", f"SELECT count(*) FROM '{target}' WHERE {call} BETWEEN {q[0.5]!r} AND {q[0.5] + 5!r}"),
        ("cheapest", f"SELECT l_returnflag, count(*) FROM '{target}' WHERE {call} < {q[0.0005]!r} "
                           "AND l_quantity < 30 GROUP BY 1 ORDER BY 1"),
    ]  # fmt: skip
    rows: list[DemoRow] = []
    for name, sql in queries:
        report = con_on.explain_skipping(sql)
        t_on, got = _median_time(lambda s=sql: con_on.sql(s).fetchall(), repeats)
        t_off, want = _median_time(lambda s=sql: con_off.sql(s).fetchall(), repeats)
        rows.append(
            DemoRow(name, sql, table.num_rows, report.row_groups, report.pruned,
                    report.all_match, report.evaluated, t_on, t_off, got == want)
        )  # fmt: skip

    title = (f"mlskip demo: TPC-H lineitem sf={sf:g}, {table.num_rows:,} rows, "
             f"row groups of {row_group_size:,}")  # fmt: skip
    headers = ("query", "RGs", "pruned", "all-match", "evaluated", "skipping", "without",
               "speedup", "same")  # fmt: skip
    cells = [
        (
            r.name,
            str(r.row_groups),
            str(r.pruned),
            str(r.all_match),
            str(r.evaluated),
            f"{r.seconds_with * 1e3:.0f} ms",
            f"{r.seconds_without * 1e3:.0f} ms",
            f"{r.seconds_without / r.seconds_with:.1f}x",
            "yes" if r.identical else "NO",
        )  # fmt: skip
        for r in rows
    ]
    console.print(fitted_table(headers, cells, console.width, title=title, left=("query",)))
    console.print("RGs: row groups; pruned: never read; all-match: read without the model; "
                  "evaluated: read and filtered by the model. Times are medians of "
                  f"{repeats} runs.")  # fmt: skip
    console.print(f"model R2 on held-out rows: {trained.score:.4f}; files in {out}")
    return rows

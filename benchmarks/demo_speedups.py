"""The speed-ups `mlskip demo` reports (without / with skipping, warm), over many runs.

Run with the Python of the version under test, on that version's own demo files
(`mlskip demo --out DIR`). Prints one JSON line: for each of the demo's three queries,
the speed-up and the with-skipping time (ms) of each round. `demo_ab.sh` alternates two
versions and compares their medians: the demo's own figure (a median of 3 runs) moves by
20% from run to run on a shared machine, more than the differences it is used to judge.
"""

import json
import statistics
import sys
import time

import numpy as np
import pyarrow.parquet as pq

import mlskip

INPUTS = ("l_quantity", "l_extendedprice", "l_discount", "l_tax")


def queries(folder: str, con) -> list[tuple[str, str]]:
    """The demo's three queries, with thresholds at the same output quantiles."""
    target = f"{folder}/lineitem.parquet"
    table = pq.read_table(target, columns=list(INPUTS))
    x = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in INPUTS])
    y = con.models["disc_price"].network.evaluate(x[::50])[:, 0]
    q = {p: float(np.quantile(y, p)) for p in (0.0005, 0.5, 0.9995)}
    call = f"disc_price({', '.join(INPUTS)})"
    return [
        ("top", f"SELECT count(*), sum(l_quantity) FROM '{target}' WHERE {call} > {q[0.9995]!r}"),
        ("band", f"SELECT count(*) FROM '{target}' WHERE {call} BETWEEN {q[0.5]!r} AND {q[0.5] + 5!r}"),
        ("cheap", f"SELECT l_returnflag, count(*) FROM '{target}' WHERE {call} < {q[0.0005]!r} "
                  "AND l_quantity < 30 GROUP BY 1 ORDER BY 1"),
    ]  # fmt: skip


def median_seconds(con, sql: str, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        con.sql(sql).fetchall()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(folder: str, rounds: int) -> None:
    on, off = mlskip.connect(), mlskip.connect(skipping=False)
    for con in (on, off):
        con.register_model("disc_price", f"{folder}/disc_price.onnx")
    todo = queries(folder, on)
    for _, sql in todo:  # warm both paths
        for _ in range(3):
            on.sql(sql).fetchall()
            off.sql(sql).fetchall()
    speedup: dict[str, list[float]] = {name: [] for name, _ in todo}
    ms: dict[str, list[float]] = {name: [] for name, _ in todo}
    for _ in range(rounds):
        for name, sql in todo:
            with_skipping = median_seconds(on, sql, 21)
            without = median_seconds(off, sql, 5)
            speedup[name].append(without / with_skipping)
            ms[name].append(with_skipping * 1e3)
    print(json.dumps({"speedup": speedup, "ms": ms}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)

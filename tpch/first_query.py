"""``mlskip bench first-query``: the first query of a fresh process, side by side.

A user's script starts, connects, registers a model and runs one query. This
times exactly that in fresh processes, interleaved: plain DuckDB with an ONNX
Runtime Arrow UDF (what a user writes without mlskip), and mlskip with its
prepared-model cache cold (first run after install or a model change) and warm.
The data are the demo's (TPC-H lineitem sf 0.1, clustered by price, a 4-32-32-1
model of the discounted price), once as the writer picks pairs (none is the model's, so
the plan uses boxes) and once with polygons on the model's columns (so their
verification runs as well); results must be equal.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

INPUTS = ("l_quantity", "l_extendedprice", "l_discount", "l_tax")

PLAIN = """
import time; start = time.perf_counter()
import json, sys
import duckdb, numpy as np, onnxruntime as ort, pyarrow as pa
folder, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
options = ort.SessionOptions(); options.intra_op_num_threads = 1
session = ort.InferenceSession(folder + "/model.onnx", options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
def model(a, b, c, d):
    x = np.column_stack([v.to_numpy(zero_copy_only=False) for v in (a, b, c, d)]).astype(np.float32)
    return pa.array(session.run(None, {name: x})[0][:, 0].astype(np.float64))
double = duckdb.sqltype("DOUBLE")
con.create_function("price", model, [double] * 4, double, type="arrow")
rows = con.sql(sql).fetchall()
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows}))
"""

MLSKIP = """
import time; start = time.perf_counter()
import json, sys
import mlskip
folder, sql = sys.argv[1], sys.argv[2]
con = mlskip.connect()
con.register_model("price", folder + "/model.onnx")
rows = con.sql(sql).fetchall()
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows}))
"""


def _run(script: str, folder: Path, sql: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(folder), sql], env=env,
                         check=True, capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _prepare(folder: Path) -> dict[str, str]:
    """Demo data and model in ``folder``; returns the query over the file written with the
    writer's automatic pairs (none of them the model's: boxes only) and the same query over
    a file with polygons on the model's columns (their verification runs too)."""
    import numpy as np
    import pyarrow.parquet as pq

    import mlskip
    from mlskip.model_zoo.export import to_onnx
    from mlskip.model_zoo.specs import get_spec
    from mlskip.model_zoo.train import train_dense
    from mlskip.tpch.generate import generate_tpc

    table = pq.read_table(generate_tpc("tpch", 0.1, tables=["lineitem"])["lineitem"])
    trained = train_dense(get_spec("lineitem_disc_price"), hidden=(32, 32), sf=0.1)
    model = folder / "model.onnx"
    model.write_bytes(to_onnx(trained.model, input_columns=list(INPUTS)).SerializeToString())
    data = folder / "lineitem.parquet"
    mlskip.write_parquet(table, data, row_group_size=10_000, cluster_by=["l_extendedprice"])
    x = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in INPUTS])
    network = mlskip.load_model(model.read_bytes())
    threshold = float(np.quantile(network.evaluate(x[::50])[:, 0], 0.9995))
    hulls = folder / "lineitem_hulls.parquet"
    mlskip.write_parquet(table, hulls, row_group_size=10_000, cluster_by=["l_extendedprice"],
                         hulls=[("l_quantity", "l_extendedprice"), ("l_discount", "l_tax")])  # fmt: skip
    where = f"WHERE price({', '.join(INPUTS)}) > {threshold!r}"
    return {
        "boxes": f"SELECT count(*) FROM '{data}' {where}",
        "polygons": f"SELECT count(*) FROM '{hulls}' {where}",
    }


def _byte_compile() -> str:
    """Compile mlskip's modules to bytecode where they have none (a wheel install has it;
    the plain side's packages do): what is left to say about it in the output."""
    import compileall

    import mlskip

    root = Path(mlskip.__file__).resolve().parent.parent
    folders = [Path(m.__file__).resolve().parent for m in _packages()]
    for folder in folders:
        compileall.compile_dir(folder, quiet=1, legacy=False)
    written = all(any(folder.glob("__pycache__/*.pyc")) for folder in folders)
    return "byte-compiled first" if written else f"not byte-compiled (cannot write in {root})"


def _packages() -> list:
    import mlskip
    import mlskip.metadata
    import mlskip.skipper
    import mlskip.udf
    import mlskip.verifier

    return [mlskip, mlskip.metadata, mlskip.skipper, mlskip.udf, mlskip.verifier]


def run(repeats: int = 5, byte_compile: bool = True) -> dict[str, list[float]]:
    """Seconds of each kind of fresh process (``repeats`` each, interleaved); prints a
    table and returns the samples. ``byte_compile``: compile mlskip's modules first (as
    pip does when it installs a package); without it, an editable install under
    PYTHONDONTWRITEBYTECODE compiles them from source in every process."""
    compiled = _byte_compile() if byte_compile else "not byte-compiled"
    with tempfile.TemporaryDirectory(prefix="mlskip-first-query-") as tmp:
        folder = Path(tmp)
        queries = _prepare(folder)
        cache = folder / "cache"
        env = dict(os.environ, MLSKIP_CACHE_DIR=str(cache), MLSKIP_MODEL_CACHE="1")
        kinds = [  # (label, script, query, clear the model cache first)
            ("duckdb + onnxruntime", PLAIN, "boxes", False),
            ("mlskip, cold cache", MLSKIP, "boxes", True),
            ("mlskip, warm cache", MLSKIP, "boxes", False),
            ("duckdb + onnxruntime, hull file", PLAIN, "polygons", False),
            ("mlskip, warm cache, hull file", MLSKIP, "polygons", False),
        ]
        samples: dict[str, list[float]] = {label: [] for label, *_ in kinds}
        results: dict[str, set[str]] = {name: set() for name in queries}
        for _ in range(repeats):
            for label, script, name, clear in kinds:
                for entry in cache.glob("models/*.pkl") if clear else ():
                    entry.unlink()
                got = _run(script, folder, queries[name], env)
                samples[label].append(got["seconds"])
                results[name].add(json.dumps(got["rows"]))
    if any(len(rows) != 1 for rows in results.values()):
        raise AssertionError(f"first-query results differ: {results}")
    print(f"first query in a fresh process (median of {repeats}; import, connect, register, "
          f"query, fetch; mlskip {compiled}):")  # fmt: skip
    for label, _, name, _ in kinds:
        plain = "duckdb + onnxruntime" + (", hull file" if name == "polygons" else "")
        base, median = statistics.median(samples[plain]), statistics.median(samples[label])
        values = samples[label]
        print(f"  {label:32s} {median:6.3f} s  ({median / base:4.2f}x plain; "
              f"min {min(values):.3f} s, max {max(values):.3f} s)")  # fmt: skip
    return samples

"""A new user's first hour (issue 19), walked step by step with the outputs printed.

Run it as ``python benchmarks/first_hour_walk.py DIR``: every step prints the command or
the few lines of Python a user would type, then what came back (output shortened to a
few lines, errors as their one-line message). It uses only the public API and the
``mlskip`` command, so the same script shows any version of mlskip side by side with
another. ``tests/test_first_hour.py`` checks the same steps; this prints them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

LINES = 8  # output lines shown per step
INPUTS = ["l_quantity", "l_extendedprice", "l_discount", "l_tax"]


def show(title: str, what: str, output: str) -> None:
    lines = output.rstrip().splitlines() or ["(no output)"]
    if len(lines) > LINES:
        lines = lines[: LINES - 1] + [f"... ({len(lines) - LINES + 1} more lines)"]
    print(f"\n### {title}\n$ {what}")
    print(textwrap.indent("\n".join(lines), "  "))


def cli(title: str, *args: str, cwd: Path) -> None:
    """Run ``mlskip ARGS`` in a shell-like environment: piped output, 80 columns."""
    env = dict(os.environ, COLUMNS="80")
    done = subprocess.run(["mlskip", *args], capture_output=True, text=True, env=env, cwd=cwd)
    out = done.stdout + done.stderr
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    show(title, f"mlskip {shown}", f"{out.rstrip()}\n[exit code {done.returncode}]")


def python(title: str, code: str, cwd: Path) -> None:
    """Run ``code`` in a fresh interpreter, as a user's script."""
    env = dict(os.environ, COLUMNS="80")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd)  # fmt: skip
    out = done.stdout
    if done.returncode:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()]
        tb = len([line for line in done.stderr.splitlines() if line.startswith("  File")])
        out += (
            f"{last[-1] if last else ''}\n[exit code {done.returncode}; traceback of {tb} frames]"
        )
    show(title, code.strip().replace("\n", "\n  "), out)


def prepare(root: Path) -> str:
    """lineitem (sf 0.01) as plain Parquet from DuckDB's COPY with an empty file beside it,
    the same rows written by mlskip, a price model as ONNX; returns the price threshold."""
    import duckdb
    import numpy as np

    import mlskip
    from mlskip.tpch.generate import generate_tpc
    from mlskip.verifier import Network
    from mlskip.verifier.onnx_loader import to_onnx

    source = generate_tpc("tpch", 0.01, tables=["lineitem"])["lineitem"]
    (root / "plain").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM '{source}') TO '{root}/plain/part0.parquet'")
    con.execute(f"COPY (SELECT * FROM '{source}' LIMIT 0) TO '{root}/plain/empty.parquet'")
    con.execute(f"COPY (SELECT * FROM '{source}') TO '{root}/lineitem.csv'")
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    mlskip.write_parquet(table, root / "lineitem.parquet", row_group_size=5_000,
                         cluster_by=["l_extendedprice"])  # fmt: skip
    net = Network.mlp([(np.array([[0.0, 1.0, -20_000.0, 0.0]]), np.zeros(1))])
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "price.v1.onnx").write_bytes(to_onnx(net))
    (root / "price.onnx").write_bytes(to_onnx(net))
    (root / "notes.parquet").write_text("a,b\n1,2\n")  # a CSV named .parquet
    return "90000"


def main(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    t = prepare(root)
    call = f"price({', '.join(INPUTS)})"
    model = ["-m", "price=price.onnx"]
    q = f"SELECT count(*) AS n FROM 'lineitem.parquet' WHERE {call} > {t}"
    glob = f"SELECT count(*) AS n FROM 'plain/*.parquet' WHERE {call} > {t}"
    print(f"# first-hour walk, {time.strftime('%Y-%m-%d %H:%M')}, in {root}")
    python("version", "import mlskip, sys; print(mlskip.__file__)", root)

    # data that users have
    cli("an empty Parquet file in a glob", "query", glob, *model, cwd=root)
    cli("explain over it", "explain", glob, *model, cwd=root)
    python("an empty write over an existing file", """
import os, mlskip, pyarrow.parquet as pq
t = pq.read_table('lineitem.parquet')
mlskip.write_parquet(t, 'copy.parquet')
before = os.path.getsize('copy.parquet')
try:
    mlskip.write_parquet(t.slice(0, 0), 'copy.parquet')
    print('empty write ok:', pq.ParquetFile('copy.parquet').metadata.num_rows, 'rows')
except Exception as e:
    print('error:', type(e).__name__, e)
print('target bytes before', before, 'after', os.path.getsize('copy.parquet'))
""", root)  # fmt: skip
    python("a failed write keeps the target", """
import os, mlskip, pyarrow as pa
mlskip.write_parquet(pa.table({'a': [1.0, 2.0]}), 'keep.parquet')
before = os.path.getsize('keep.parquet')
try:
    mlskip.write_parquet(pa.table({'a': [1.0]}), 'keep.parquet', hulls=[('a', 'zz')])
except Exception as e:
    print('error:', type(e).__name__, str(e)[:120])
print('target bytes before', before, 'after', os.path.getsize('keep.parquet'))
""", root)  # fmt: skip
    python("dates as model inputs", """
import mlskip, numpy as np
from mlskip.verifier import Network
con = mlskip.connect()
con.register_model('late', Network.mlp([(np.array([[1.0, 0.0]]), np.array([-10000.0]))]),
                   input_types=['DATE', 'DOUBLE'])
sql = "SELECT count(*) FROM 'lineitem.parquet' WHERE late(l_shipdate, l_tax) > 100"
print(con.sql(sql).fetchall(), 'planned:', bool(con.explain_skipping(sql).predicates))
""", root)  # fmt: skip
    python("date arithmetic as a numeric input", """
import mlskip, numpy as np
from mlskip.verifier import Network
con = mlskip.connect()
con.register_model('late', Network.mlp([(np.array([[1.0, 0.0]]), np.array([-10000.0]))]))
sql = ("SELECT count(*) FROM 'lineitem.parquet' "
       "WHERE late(l_shipdate - DATE '1970-01-01', l_tax) > 100")
print(con.sql(sql).fetchall())
r = con.explain_skipping(sql)
print('planned:', bool(r.predicates), '| reasons:', r.reasons)
""", root)  # fmt: skip
    python("a model from plain torch.onnx.export, no inputs=", """
import mlskip
try:
    print(mlskip.scan('lineitem.parquet', 'price.onnx', '> 90000').num_rows)
except Exception as e:
    print('error:', type(e).__name__, e)
print(mlskip.scan('lineitem.parquet', 'price.onnx', '> 90000',
                  inputs=['l_quantity', 'l_extendedprice', 'l_discount', 'l_tax']).num_rows)
""", root)  # fmt: skip
    cli("--models-dir with a dotted file name", "query", q.replace("price(", "price_v1("),
        "--models-dir", "models", cwd=root)  # fmt: skip

    # errors and explanations
    cli("write: a missing file", "write", "missing.csv", "out.parquet", cwd=root)
    cli("verify: a CSV named .parquet", "verify", "notes.parquet", cwd=root)
    cli("explain: a typo", "explain", "SELEC 1", *model, cwd=root)
    cli("explain: plain Parquet (what limits skipping)", "explain",
        q.replace("lineitem.parquet", "plain/part0.parquet"), *model, cwd=root)  # fmt: skip
    cli("verify: plain Parquet", "verify", "plain/part0.parquet", cwd=root)
    python("a model named like a builtin", """
import mlskip
from mlskip.verifier import Network
import numpy as np
con = mlskip.connect()
for name in ('abs', 'sum', 'read_parquet', 'select'):
    try:
        con.register_model(name, Network.mlp([(np.ones((1, 2)), np.zeros(1))]))
        print(name, 'registered')
    except Exception as e:
        print(name, 'refused:', type(e).__name__, str(e)[:90])
""", root)  # fmt: skip

    # output a person reads
    cli("explain at 80 columns, piped", "explain", q, *model, cwd=root)
    cli("query at 80 columns", "query", f"SELECT * FROM 'lineitem.parquet' WHERE {call} > {t}",
        *model, "--limit", "4", cwd=root)  # fmt: skip
    cli("query --json", "query", q, *model, "--json", cwd=root)
    cli("query --csv", "query", q, *model, "--csv", cwd=root)
    cli("write: the report", "write", "lineitem.csv", "from_csv.parquet", cwd=root)
    done = subprocess.run([sys.executable, "-m", "mlskip", "--help"], capture_output=True,
                          text=True, cwd=root)  # fmt: skip
    show("python -m mlskip", "python -m mlskip --help",
         f"{(done.stdout or done.stderr).strip().splitlines()[:3]}\n[exit {done.returncode}]")  # fmt: skip

    # fit with the tools users know
    python("scan_dataset: counts agree with rows", """
import mlskip
ds = mlskip.scan_dataset('lineitem.parquet', 'price.onnx', '> 90000',
                         inputs=['l_quantity', 'l_extendedprice', 'l_discount', 'l_tax'])
print('count_rows', ds.count_rows(), 'to_table', ds.to_table().num_rows)
""", root)  # fmt: skip
    python("scan_polars: lazy until collect", """
import time, mlskip
start = time.perf_counter()
lf = mlskip.scan_polars('lineitem.parquet', 'price.onnx', '> 90000',
                        inputs=['l_quantity', 'l_extendedprice', 'l_discount', 'l_tax'])
made = time.perf_counter() - start
n = lf.select('l_orderkey').collect().height
print(f'scan_polars returned in {made * 1e3:.0f} ms; collect gave {n} rows')
""", root)  # fmt: skip
    python("con.sql leaves no tables behind; EXPLAIN shows the query that runs", f"""
import mlskip
con = mlskip.connect()
con.register_model('price', 'price.onnx')
for _ in range(8):
    con.sql("SELECT * FROM 'lineitem.parquet' WHERE {call} > {t}").fetchall()
print('tables left:', con.duckdb.sql("SELECT count(*) FROM duckdb_tables() "
      "WHERE table_name LIKE '__mlskip_result%'").fetchone()[0])
plan = con.sql("EXPLAIN SELECT count(*) FROM 'lineitem.parquet' WHERE {call} > {t}").fetchall()[0][1]
print('EXPLAIN reads row-group ranges:', 'file_row_number' in plan)
""", root)  # fmt: skip
    python("connect() takes DuckDB's own options", """
import mlskip
con = mlskip.connect(config={'threads': 1})
print(con.sql("SELECT current_setting('threads')").fetchall())
""", root)  # fmt: skip
    python("write_parquet(partition_by=...)", """
import mlskip, pyarrow.parquet as pq, duckdb
t = pq.read_table('lineitem.parquet')
try:
    r = mlskip.write_parquet(t, 'by_flag', partition_by=['l_returnflag'])
    print(len(r.files), 'files;', duckdb.sql("SELECT count(*) FROM 'by_flag/**/*.parquet'").fetchall())
except Exception as e:
    print('error:', type(e).__name__, e)
""", root)  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("first_hour_walk"))

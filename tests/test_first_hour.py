"""A new user's first hour, walked as a user walks it: the `mlskip` command in a fresh
process (piped, 80 columns) and the Python API, on generated TPC-H data.

Each step checks what a DuckDB, Polars or PyArrow user expects. The detailed tests of
each behaviour live beside the code: empty files (test_query_equivalence), CLI errors
(test_package), model names and `--models-dir` (test_skipping_e2e), output widths
(test_output_widths), progress (test_progress), scans (test_arrow_scan), partitioned
writes (test_partitioned_write), dates (test_date_inputs), README (test_readme).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

import mlskip
from mlskip.verifier import Network

INPUTS = ["l_quantity", "l_extendedprice", "l_discount", "l_tax"]


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``python -m mlskip ARGS`` as a user's shell runs it, output piped, 80 columns."""
    env = dict(os.environ, COLUMNS="80", MLSKIP_MODEL_CACHE="0")
    return subprocess.run([sys.executable, "-m", "mlskip", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """lineitem (sf 0.01) written by DuckDB's COPY (plain Parquet), an empty file beside
    it, the same rows through mlskip, and a price model exported as ONNX."""
    from mlskip.verifier.onnx_loader import to_onnx

    root = tmp_path_factory.mktemp("lake")
    source = mlskip.generate_tpc("tpch", 0.01, tables=["lineitem"])["lineitem"]
    (root / "plain").mkdir()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM '{source}') TO '{root}/plain/part0.parquet'")
    con.execute(f"COPY (SELECT * FROM '{source}' LIMIT 0) TO '{root}/plain/empty.parquet'")
    table = pq.read_table(source)
    mlskip.write_parquet(table, root / "lineitem.parquet", row_group_size=5_000,
                         cluster_by=["l_extendedprice"])  # fmt: skip
    # price = l_extendedprice * (1 - 0.5 l_discount), roughly: linear in the columns
    net = Network.mlp([(np.array([[0.0, 1.0, -20_000.0, 0.0]]), np.zeros(1))])
    (root / "price.v1.onnx").write_bytes(to_onnx(net))
    return root, table, net


def test_cli_walk(lake):
    root, table, _ = lake
    model = f"price={root}/price.v1.onnx"

    query = (f"SELECT count(*) AS n FROM '{root}/lineitem.parquet' "
             f"WHERE price({', '.join(INPUTS)}) > 90000")  # fmt: skip
    # explain: whole file names and numbers at 80 columns, the cost model, exit 0
    explained = cli("explain", query, "-m", model)
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in explained.stdout
    assert f"{root}/lineitem.parquet" in "".join(line.rstrip() for line in lines)
    assert "verifier budget:" in explained.stdout
    # query: the same count as DuckDB without mlskip; JSON for scripts
    off = mlskip.connect(skipping=False)
    off.register_model("price", root / "price.v1.onnx")
    want = off.sql(query).fetchone()[0]
    assert 0 < want < table.num_rows
    rows = cli("query", query, "-m", model, "--json")
    assert rows.returncode == 0 and json.loads(rows.stdout) == {"n": want}
    # a glob over plain Parquet with an empty file: planned from min-max, no crash
    glob = query.replace(f"'{root}/lineitem.parquet'", f"'{root}/plain/*.parquet'")
    plain = cli("query", glob, "-m", model, "--json")
    assert plain.returncode == 0 and json.loads(plain.stdout) == {"n": want}
    limited = cli("explain", glob, "-m", model)
    assert "no mlskip summaries" in " ".join(limited.stdout.split())
    # --models-dir maps price.v1.onnx to the SQL name price_v1
    by_dir = cli("query", query.replace("price(", "price_v1("), "--models-dir", str(root), "--json")
    assert json.loads(by_dir.stdout) == {"n": want}
    # verify: mlskip's file checks, plain Parquet has nothing to check; JSON too
    checked = cli("verify", f"{root}/lineitem.parquet", f"{root}/plain/part0.parquet", "--json")
    assert checked.returncode == 0
    assert [json.loads(x)["passed"] for x in checked.stdout.splitlines()] == [True, True]
    table_out = cli("verify", f"{root}/lineitem.parquet", f"{root}/plain/part0.parquet", "--csv")
    lines = table_out.stdout.splitlines()
    assert lines[0].startswith("path,passed,status") and [x.split(",")[1] for x in lines[1:]] == [
        "True",
        "True",
    ]
    # CSV for scripts: the rows, and one line per file of the plan
    as_csv = cli("query", query, "-m", model, "--csv")
    assert as_csv.stdout.splitlines() == ["n", str(want)]
    plan = cli("explain", query, "-m", model, "--csv").stdout.splitlines()
    assert plan[0].startswith("path,row_groups,pruned") and len(plan) == 2
    # write: one readable line (rows, row groups, polygons), or JSON
    written = cli("write", f"{root}/plain/part0.parquet", f"{root}/rewritten.parquet",
                  "--row-group-size", "20000")  # fmt: skip
    assert written.returncode == 0 and written.stdout.startswith(f"wrote {root}/rewritten.parquet")
    assert f"{table.num_rows:,} rows" in " ".join(written.stdout.split())
    # a typo is one error line and exit code 2, never a traceback
    typo = cli("explain", "SELEC 1", "-m", model)
    assert (
        typo.returncode == 2 and typo.stderr.startswith("error:") and "Traceback" not in typo.stderr
    )


def test_python_walk(lake, tmp_path):
    root, table, net = lake
    path = root / "lineitem.parquet"
    # Arrow: the dataset's counts agree with its rows; the table holds what SQL selects
    kept = mlskip.scan_dataset(path, net, "> 90000", inputs=INPUTS)
    assert kept.count_rows() == kept.to_table().num_rows < table.num_rows
    got = mlskip.scan(path, net, "> 90000", inputs=INPUTS)
    # Polars: lazy until collect, then the same rows
    lazy = mlskip.scan_polars(path, net, "> 90000", inputs=INPUTS)
    assert (
        lazy.select("l_orderkey").collect()["l_orderkey"].to_list() == got["l_orderkey"].to_pylist()
    )
    # a hive-partitioned copy, summaries in every file, read back by DuckDB
    report = mlskip.write_parquet(table, tmp_path / "by_flag", partition_by=["l_returnflag"],
                                  row_group_size=5_000)  # fmt: skip
    assert report.num_rows == table.num_rows and len(report.files) == 3
    back = duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/by_flag/**/*.parquet'").fetchone()[0]
    assert back == table.num_rows
    # dates as model inputs: days since 1970 for the model, planned like numbers
    con = mlskip.connect()
    late = Network.mlp([(np.array([[1.0, 0.0]]), np.array([-10_000.0]))])  # days after 1997-05-19
    con.register_model("late", late, input_types=["DATE", "DOUBLE"])
    sql = f"SELECT count(*) FROM '{path}' WHERE late(l_shipdate, l_tax) > 100"
    want = duckdb.sql(f"SELECT count(*) FROM '{path}' "
                      "WHERE l_shipdate > DATE '1997-05-19' + 100").fetchone()[0]  # fmt: skip
    assert con.sql(sql).fetchone()[0] == want > 0
    assert con.explain_skipping(sql).predicates  # planned (every row group spans the dates)
    # a name DuckDB already has is refused with the reason
    with pytest.raises(mlskip.ModelInputError, match="already has a function"):
        con.register_model("round", net)


def test_bench_json_keeps_stdout_for_the_figures(capsys):
    """``mlskip bench ... --json``: the human tables go to stderr, stdout holds one JSON
    document of the figures (so ``| jq`` works)."""
    import numpy as np

    from mlskip.cli import _scripted

    def bench():
        from rich.console import Console

        Console().print("a table a person reads")
        print("a progress line")
        return {"rows_per_s": np.float64(2.5e6), "counts": np.array([1, 2])}

    _scripted(bench, as_json=True)
    out, err = capsys.readouterr()
    assert json.loads(out) == {"rows_per_s": 2.5e6, "counts": [1, 2]}
    assert "a table a person reads" in err and "a progress line" in err

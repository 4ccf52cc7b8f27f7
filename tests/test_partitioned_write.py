"""``write_parquet(..., partition_by=[...])``: a hive-partitioned folder that DuckDB reads
back to the same rows, with skipping summaries in every file."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mlskip
from mlskip.errors import InputDataError
from tests.test_skipping_e2e import make_net


@pytest.fixture(scope="module")
def table() -> pa.Table:
    rng = np.random.default_rng(11)
    n = 6_000
    return pa.table(
        {
            # values that need escaping in folder names, and NULL keys
            "k": pa.array(rng.choice(["a", "b c", "x/y", "p=q", "ü", None], n)),
            "year": pa.array(rng.integers(2020, 2023, n)),
            "v": rng.uniform(0, 100, n),
            "w": rng.uniform(0, 100, n),
        }
    )


def test_duckdb_reads_back_the_same_rows(table, tmp_path):
    report = mlskip.write_parquet(
        table, tmp_path / "ds", partition_by=["k", "year"], row_group_size=250, hulls=[("v", "w")]
    )
    data = duckdb.from_arrow(table)
    groups = len(data.select("k, year").distinct().fetchall())
    assert len(report.files) == groups and report.num_rows == table.num_rows
    glob = f"{tmp_path}/ds/**/*.parquet"
    columns = "k, year, v, w"
    got = duckdb.sql(f"SELECT {columns} FROM read_parquet('{glob}', hive_partitioning = true)")
    want = data.select(columns)
    assert sorted(got.fetchall(), key=repr) == sorted(want.fetchall(), key=repr)
    for file in report.files:
        meta = mlskip.read_skip_metadata(file.path)
        assert meta is not None and len(meta.row_groups) == file.num_row_groups
        # partition columns live in the folder names only
        assert pq.read_schema(file.path).names == ["v", "w"]


def test_skipping_over_the_partitioned_folder_keeps_results(table, tmp_path):
    mlskip.write_parquet(
        table, tmp_path / "ds", partition_by=["k"], row_group_size=200, cluster_by=["v"]
    )
    net = make_net(np.random.default_rng(5), 2)
    y = net.evaluate(np.column_stack([table["v"].to_numpy(), table["w"].to_numpy()]))[:, 0]
    threshold = float(np.quantile(y, 0.99))
    sql = (
        f"SELECT k, count(*), max(v) FROM read_parquet('{tmp_path}/ds/**/*.parquet', "
        f"hive_partitioning = true) WHERE m(v, w) > {threshold!r} GROUP BY k ORDER BY k"
    )
    results = []
    for skipping in (True, False):
        con = mlskip.connect(skipping=skipping)
        con.register_model("m", net)
        results.append(con.sql(sql).fetchall())
    assert results[0] == results[1] and results[0]
    con = mlskip.connect()
    con.register_model("m", net)
    assert con.explain_skipping(sql).pruned > 0


def test_bad_partitioning_is_a_clear_error(table, tmp_path):
    with pytest.raises(InputDataError, match="partition_by column 'nope'"):
        mlskip.write_parquet(table, tmp_path / "a", partition_by=["nope"])
    with pytest.raises(InputDataError, match="every column"):
        mlskip.write_parquet(table.select(["k"]), tmp_path / "b", partition_by=["k"])
    (tmp_path / "file.parquet").write_bytes(b"x")
    with pytest.raises(InputDataError, match="is a file"):
        mlskip.write_parquet(table, tmp_path / "file.parquet", partition_by=["k"])


def test_copy_writes_partitioned_folders(tmp_path):
    con = mlskip.connect()
    report = mlskip.copy(
        con,
        "SELECT i % 3 AS part, i::DOUBLE AS x, (i * 7 % 11)::DOUBLE AS y FROM range(3000) t(i)",
        tmp_path / "out",
        partition_by=["part"],
        row_group_size=500,
    )
    assert sorted(f.path.split("/")[-2] for f in report.files) == ["part=0", "part=1", "part=2"]
    total = duckdb.sql(f"SELECT count(*), sum(part) FROM '{tmp_path}/out/**/*.parquet'").fetchone()
    assert total == (3000, 3000)


def test_cli_write_partition_by(table, tmp_path):
    from typer.testing import CliRunner

    from mlskip.cli import app

    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    result = CliRunner().invoke(app, ["write", str(source), str(tmp_path / "out"),
                                      "--partition-by", "year", "--row-group-size", "500"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 partition file(s)" in result.output
    count = duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/out/**/*.parquet'").fetchone()[0]
    assert count == table.num_rows

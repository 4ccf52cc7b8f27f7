"""TPC data generation: counts match DuckDB's generators, row groups are exact, cache reused."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest

from mlskip.errors import UnknownSuiteError
from mlskip.metadata.writer import exact_row_groups
from mlskip.tpch.extensions import load_extension
from mlskip.tpch.generate import generate_tpc

SF = 0.01


def duckdb_counts(suite: str, tables: list[str]) -> dict[str, int]:
    con = duckdb.connect()
    load_extension(con, suite)
    con.execute(f"CALL {'dbgen' if suite == 'tpch' else 'dsdgen'}(sf={SF})")
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def row_group_sizes(path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


@pytest.fixture(scope="module")
def both_suites(tmp_path_factory):
    """Both suites generated in one process (they define the same table name ``customer``)."""
    root = tmp_path_factory.mktemp("tpc")
    tpch = generate_tpc("tpch", SF, root / "h", row_group_size=1000)
    tpcds = generate_tpc(
        "tpcds", SF, root / "ds", row_group_size=1000, tables=["store_sales", "customer"]
    )
    return tpch, tpcds


def test_row_counts_match_duckdb(both_suites):
    tpch, tpcds = both_suites
    for suite, paths in (("tpch", tpch), ("tpcds", tpcds)):
        expected = duckdb_counts(suite, list(paths))
        got = {t: pq.ParquetFile(p).metadata.num_rows for t, p in paths.items()}
        assert got == expected


def test_customer_tables_differ_between_suites(both_suites):
    tpch, tpcds = both_suites
    assert "c_custkey" in pq.read_schema(tpch["customer"]).names
    assert "c_customer_sk" in pq.read_schema(tpcds["customer"]).names


def test_row_group_size_is_exact(both_suites):
    tpch, _ = both_suites
    sizes = row_group_sizes(tpch["lineitem"])
    assert len(sizes) > 10
    assert all(n == 1000 for n in sizes[:-1]) and 0 < sizes[-1] <= 1000


def test_cache_is_reused(both_suites, tmp_path):
    tpch, _ = both_suites
    path = tpch["region"]
    before = path.stat().st_mtime_ns
    again = generate_tpc("tpch", SF, path.parent, row_group_size=1000, tables=["region"])
    assert again["region"].stat().st_mtime_ns == before


def test_different_row_group_size_regenerates(both_suites):
    tpch, _ = both_suites
    out = tpch["nation"].parent
    generate_tpc("tpch", SF, out, row_group_size=7, tables=["nation"])
    assert row_group_sizes(out / "nation.parquet") == [7, 7, 7, 4]


@pytest.mark.parametrize(
    "suite, tables, message",
    [("tpcx", None, "unknown suite 'tpcx'"), ("tpch", ["lineitems"], "'lineitems'")],
)
def test_unknown_names_give_clear_errors(tmp_path, suite, tables, message):
    with pytest.raises(UnknownSuiteError, match=message):
        generate_tpc(suite, SF, tmp_path, tables=tables)


def test_exact_row_groups_recuts_uneven_batches():
    import pyarrow as pa

    batches = [pa.record_batch({"x": list(range(a, b))}) for a, b in [(0, 3), (3, 4), (4, 11)]]
    tables = list(exact_row_groups(iter(batches), batches[0].schema, 4))
    assert [t.num_rows for t in tables] == [4, 4, 3]
    assert sum((t.column("x").to_pylist() for t in tables), []) == list(range(11))

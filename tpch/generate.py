"""Generate TPC-H / TPC-DS tables as Parquet files with exact row-group sizes.

Data comes from DuckDB's own generators (dbgen / dsdgen), loaded offline.
Each suite is generated in its own in-memory database because both define
``customer``. Output is cached per (suite, scale factor, row-group size):
a directory whose manifest matches is reused, so benchmarks never
regenerate data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from mlskip.errors import UnknownSuiteError
from mlskip.metadata.writer import exact_row_groups
from mlskip.tpch.extensions import SUITES, load_extension

TABLES: dict[str, tuple[str, ...]] = {
    "tpch": ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"),
    "tpcds": (
        "call_center", "catalog_page", "catalog_returns", "catalog_sales", "customer",
        "customer_address", "customer_demographics", "date_dim", "household_demographics",
        "income_band", "inventory", "item", "promotion", "reason", "ship_mode", "store",
        "store_returns", "store_sales", "time_dim", "warehouse", "web_page", "web_returns",
        "web_sales", "web_site",
    ),
}  # fmt: skip

_GENERATOR_CALL = {"tpch": "CALL dbgen(sf={sf})", "tpcds": "CALL dsdgen(sf={sf})"}
MANIFEST = "_mlskip_tpc.json"


def default_cache_root() -> Path:
    """Where generated data is cached unless an output directory is given."""
    env = os.environ.get("MLSKIP_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mlskip"


def default_out_dir(suite: str, sf: float, row_group_size: int) -> Path:
    """The cache directory for one (suite, scale factor, row-group size)."""
    return default_cache_root() / "tpc" / f"{suite}-sf{sf:g}-rg{row_group_size}"


def resolve_tables(suite: str, tables: Sequence[str] | None) -> tuple[str, ...]:
    """Validate the suite and table names; ``None`` means every table."""
    if suite not in SUITES:
        raise UnknownSuiteError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    if not tables:
        return TABLES[suite]
    unknown = [t for t in tables if t not in TABLES[suite]]
    if unknown:
        raise UnknownSuiteError(
            f"unknown {suite} table(s) {', '.join(map(repr, unknown))}; "
            f"{suite} has: {', '.join(TABLES[suite])}"
        )
    return tuple(dict.fromkeys(tables))


def _write_table(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, row_group_size: int, on_rows
) -> int:
    reader = con.execute(f"SELECT * FROM {table}").to_arrow_reader(max(row_group_size, 65_536))
    tmp = path.with_suffix(".parquet.tmp")
    rows = 0
    with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as writer:
        for group in exact_row_groups(iter(reader), reader.schema, row_group_size):
            writer.write_table(group, row_group_size=row_group_size)
            rows += group.num_rows
            on_rows(group.num_rows)
    tmp.replace(path)
    return rows


def _read_manifest(out: Path) -> dict:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def generate_tpc(
    suite: str = "tpch",
    sf: float = 0.1,
    out_dir: str | os.PathLike | None = None,
    *,
    row_group_size: int = 122_880,
    tables: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Generate ``suite`` at scale factor ``sf`` into one Parquet file per table.

    Returns ``{table: path}``. Tables already generated with the same suite,
    scale factor and row-group size (recorded in the directory's manifest)
    are reused, not regenerated.
    """
    names = resolve_tables(suite, tables)
    if sf <= 0:
        raise UnknownSuiteError(f"scale factor must be positive, got {sf}")
    if row_group_size < 1:
        raise UnknownSuiteError(f"row-group size must be at least 1, got {row_group_size}")
    out = Path(out_dir) if out_dir is not None else default_out_dir(suite, sf, row_group_size)
    out.mkdir(parents=True, exist_ok=True)
    key = {"suite": suite, "sf": sf, "row_group_size": row_group_size}
    manifest = _read_manifest(out)
    done: dict[str, int] = manifest.get("tables", {}) if manifest.get("key") == key else {}
    paths = {t: out / f"{t}.parquet" for t in names}
    todo = [t for t in names if t not in done or not paths[t].exists()]
    if not todo:
        return paths

    con = duckdb.connect()
    try:
        load_extension(con, suite)
        con.execute(_GENERATOR_CALL[suite].format(sf=sf))
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in todo}
        with _progress(progress) as bar:
            task = bar.add_task(f"{suite} sf={sf:g}", total=sum(counts.values()))
            for table in todo:
                bar.update(task, description=f"{suite} sf={sf:g} {table}")
                done[table] = _write_table(
                    con, table, paths[table], row_group_size, lambda n: bar.advance(task, n)
                )
                (out / MANIFEST).write_text(json.dumps({"key": key, "tables": done}, indent=1))
    finally:
        con.close()
    return paths


def _progress(enabled: bool):
    from mlskip.progress import progress

    return progress(disable=not enabled)

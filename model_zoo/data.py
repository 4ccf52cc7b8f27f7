"""Training and evaluation data for zoo models: TPC columns as float64 arrays.

All data access of the zoo goes through `table_columns`, which reads the
Parquet files of the shared TPC generator (`mlskip.tpch.generate_tpc`, cached
on disk, so models train without regenerating data). Columns follow docs/CONTRACTS.md's numeric encoding: numbers and
decimals as float64, dates as days since 1970-01-01.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from mlskip.errors import InputDataError

DEFAULT_SF = 0.1


def _table_path(suite: str, table: str, sf: float) -> Path:
    """The table as a Parquet file from the shared, cached TPC generator."""
    from mlskip.tpch.generate import generate_tpc

    return generate_tpc(suite, sf, tables=[table])[table]


def input_types(spec, sf: float = DEFAULT_SF) -> tuple[str, ...]:
    """The SQL type of each of ``spec``'s inputs as its model reads them: DATE (days),
    TIMESTAMP (microseconds) or DOUBLE."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(_table_path(spec.suite, spec.table, sf))
    types = []
    for column in spec.inputs:
        kind = schema.field(column).type
        types.append(
            "DATE" if pa.types.is_date(kind)
            else "TIMESTAMP" if pa.types.is_timestamp(kind)
            else "DOUBLE"
        )  # fmt: skip
    return tuple(types)


def _to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    """One Arrow column as float64 (dates as days since epoch) or, for strings, an object array."""
    t = col.type
    if pa.types.is_date(t):
        return (
            col.cast(pa.date32())
            .to_numpy()
            .astype("datetime64[D]")
            .astype(np.int64)
            .astype(np.float64)
        )
    if pa.types.is_timestamp(t):
        return col.cast(pa.timestamp("us")).to_numpy().astype(np.int64).astype(np.float64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return np.asarray(col.to_pylist(), dtype=object)
    return col.cast(pa.float64()).to_numpy()


@functools.lru_cache(maxsize=32)
def _table_columns_cached(
    suite: str, table: str, exprs: tuple[str, ...], sf: float
) -> tuple[np.ndarray, ...]:
    path = _table_path(suite, table, sf)
    select = ", ".join(f"{e} AS c{i}" for i, e in enumerate(exprs))
    not_null = " AND ".join(f"({e}) IS NOT NULL" for e in exprs)
    try:
        con = duckdb.connect()
        arrow = con.sql(
            f"SELECT {select} FROM read_parquet('{path}') WHERE {not_null}"
        ).to_arrow_table()
    except duckdb.Error as exc:
        raise InputDataError(f"cannot read {exprs} from {suite}.{table}: {exc}") from exc
    return tuple(_to_numpy(arrow.column(i)) for i in range(len(exprs)))


def table_columns(
    suite: str, table: str, exprs: Sequence[str], sf: float = DEFAULT_SF
) -> dict[str, np.ndarray]:
    """Every row (in the table's natural order) of the SQL expressions ``exprs``,
    rows with a NULL in any of them left out. Cached per process."""
    arrays = _table_columns_cached(suite, table, tuple(exprs), float(sf))
    return dict(zip(exprs, arrays, strict=True))


def sample_table(
    suite: str, table: str, exprs: Sequence[str], n: int, seed: int = 0, sf: float = DEFAULT_SF
) -> dict[str, np.ndarray]:
    """``n`` rows drawn uniformly without replacement (deterministic for a seed)."""
    full = table_columns(suite, table, exprs, sf)
    total = len(next(iter(full.values())))
    if total == 0:
        raise InputDataError(f"{suite}.{table} has no rows with non-NULL {list(exprs)}")
    idx = np.random.default_rng(seed).choice(total, size=min(n, total), replace=False)
    return {k: v[idx] for k, v in full.items()}


def block_boxes(x: np.ndarray, block_rows: int = 1000) -> np.ndarray:
    """Min-max box of every ``block_rows``-row block of ``x`` [n, d] -> [blocks, d, 2] (lo, hi).

    These stand in for Parquet row groups' min-max statistics in the zoo report.
    """
    n, d = x.shape
    blocks = -(-n // block_rows)
    pad = blocks * block_rows - n
    lo = np.pad(x, ((0, pad), (0, 0)), constant_values=np.inf).reshape(blocks, block_rows, d).min(1)
    hi = (
        np.pad(x, ((0, pad), (0, 0)), constant_values=-np.inf).reshape(blocks, block_rows, d).max(1)
    )
    return np.stack([lo, hi], axis=-1)

"""The benchmark's data: model input columns of a TPC table, laid out and written with summaries.

Rows are read once per (table, inputs) from the generated SF files in the
numeric encoding of docs/CONTRACTS.md. A *layout* is the natural order or the
order ``mlskip.metadata.cluster_order`` gives (the one ``write_parquet(...,
cluster_by=...)`` uses). Blocks are sampled from a layout and written with
``mlskip.write_parquet`` at exactly one block per row group, so each row
group's summaries (Parquet min-max, 45-byte pair hulls) are what the writer
stores for that block in the full file.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class TableInputs:
    """Every row of a table's input columns: float64 values and a no-NULL mask."""

    table: pa.Table
    x: np.ndarray
    valid: np.ndarray


@functools.lru_cache(maxsize=4)
def load_inputs(suite: str, table: str, columns: tuple[str, ...], sf: float) -> TableInputs:
    """The input columns of ``suite.table`` at scale ``sf`` (generated and cached if needed)."""
    from mlskip.metadata import to_numeric
    from mlskip.tpch.generate import generate_tpc

    path = generate_tpc(suite, sf, tables=[table])[table]
    tbl = pq.read_table(path, columns=list(columns))
    nums = [to_numeric(tbl.column(c)) for c in columns]
    x = np.column_stack([n.values for n in nums]).astype(np.float64)
    ones = np.ones(tbl.num_rows, dtype=bool)
    valid = np.logical_and.reduce([ones] + [ones if n.valid is None else n.valid for n in nums])
    return TableInputs(tbl, x, valid)


def head(data: TableInputs, rows: int) -> TableInputs:
    """The first ``rows`` rows of a table's inputs (the reference protocol's data set)."""
    return TableInputs(data.table.slice(0, rows), data.x[:rows], data.valid[:rows])


def layout_order(
    data: TableInputs, cluster_by: str | Sequence[str] | None, curve: str = "hilbert"
) -> np.ndarray:
    """Row order of a layout: natural (None), sorted by one column, or clustered on a
    space-filling ``curve`` over several columns, exactly as ``write_parquet(cluster_by=...)``."""
    if cluster_by is None:
        return np.arange(data.table.num_rows, dtype=np.int64)
    from mlskip.metadata import cluster_order

    cols = [cluster_by] if isinstance(cluster_by, str) else list(cluster_by)
    return cluster_order(data.table, cols, curve)


def prediction_order(y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Rows sorted by the model's own output (stable; rows with a NULL input last): the
    layout a writer that knows the model at write time can choose."""
    key = np.where(valid, y.astype(np.float64), np.inf)
    return np.argsort(key, kind="stable").astype(np.int64)


def sample_blocks(n_rows: int, block_rows: int, max_blocks: int, seed: int) -> np.ndarray:
    """Sorted indices of up to ``max_blocks`` full blocks (random, without replacement)."""
    blocks = n_rows // block_rows
    if blocks <= max_blocks:
        return np.arange(blocks)
    return np.sort(np.random.default_rng(seed).choice(blocks, max_blocks, replace=False))


def block_rows_index(order: np.ndarray, blocks: np.ndarray, block_rows: int) -> np.ndarray:
    """Table row indices of the chosen blocks of a layout, block after block."""
    starts = blocks * block_rows
    return order[(starts[:, None] + np.arange(block_rows)[None, :]).ravel()]


def write_blocks(
    data: TableInputs,
    rows: np.ndarray,
    block_rows: int,
    path: Path,
    hull_bytes: int = 45,
) -> Path:
    """Write the given rows, one block per row group, with pair hulls on every input pair."""
    import mlskip

    if path.exists():
        return path
    pairs = list(itertools.combinations(data.table.column_names, 2))
    tmp = path.with_suffix(".tmp")
    mlskip.write_parquet(
        data.table.take(pa.array(rows)), tmp, row_group_size=block_rows, hulls=pairs,
        hull_bytes=hull_bytes,
    )  # fmt: skip
    tmp.replace(path)
    return path


def hull_bytes_per_pair(groups: Sequence) -> float:
    """Mean stored polygon bytes per row group and pair (pairs without a polygon count 0)."""
    sizes = [b for g in groups for b in g.hull_bytes.values()]
    pairs = max((len(g.hull_bytes) for g in groups), default=0)
    return float(np.sum(sizes) / (len(groups) * pairs)) if pairs and groups else 0.0

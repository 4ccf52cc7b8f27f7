"""Layout-aware writing: row orders that make per-row-group summaries tight.

One column: a plain sort. Several: sort by the position of each row on a
Hilbert (default) or Z-order curve over the columns' dense ranks, quantized to
``63 // d`` bits (at most 16) per column, so rows close in all the columns
share row groups.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlskip.errors import InputDataError


@numba.njit(cache=True, nogil=True)
def _hilbert(coords, bits):
    n, d = coords.shape
    keys = np.zeros(n, np.uint64)
    x = np.empty(d, np.uint64)
    top = np.uint64(1) << np.uint64(bits - 1)
    one = np.uint64(1)
    for r in range(n):
        for i in range(d):
            x[i] = coords[r, i]
        q = top
        while q > one:  # Skilling: axes to transposed Hilbert index
            p = q - one
            for i in range(d):
                if x[i] & q:
                    x[0] ^= p
                else:
                    t = (x[0] ^ x[i]) & p
                    x[0] ^= t
                    x[i] ^= t
            q >>= one
        for i in range(1, d):
            x[i] ^= x[i - 1]
        t = np.uint64(0)
        q = top
        while q > one:
            if x[d - 1] & q:
                t ^= q - one
            q >>= one
        for i in range(d):
            x[i] ^= t
        k = np.uint64(0)
        for b in range(bits - 1, -1, -1):
            for i in range(d):
                k = (k << one) | ((x[i] >> np.uint64(b)) & one)
        keys[r] = k
    return keys


@numba.njit(cache=True, nogil=True)
def _zorder(coords, bits):
    n, d = coords.shape
    keys = np.zeros(n, np.uint64)
    one = np.uint64(1)
    for r in range(n):
        k = np.uint64(0)
        for b in range(bits - 1, -1, -1):
            for i in range(d):
                k = (k << one) | ((coords[r, i] >> np.uint64(b)) & one)
        keys[r] = k
    return keys


def _quantized_ranks(col: pa.ChunkedArray | pa.Array, bits: int) -> np.ndarray:
    ranks = pc.rank(col, sort_keys="ascending", tiebreaker="dense")
    r = np.asarray(ranks.to_numpy(zero_copy_only=False), np.uint64) - np.uint64(1)
    top = int(r.max()) + 1 if len(r) else 1
    scaled = (r.astype(np.float64) * float(1 << bits) / float(top)).astype(np.uint64)
    return np.minimum(scaled, np.uint64((1 << bits) - 1))


def cluster_order(table: pa.Table, cluster_by: list[str], curve: str = "hilbert") -> np.ndarray:
    """Row permutation (int64 indices) that clusters ``table`` by ``cluster_by``."""
    missing = [c for c in cluster_by if c not in table.column_names]
    if missing:
        raise InputDataError(
            f"cluster_by names unknown columns {missing}; have {table.column_names}"
        )
    if not cluster_by:
        return np.arange(table.num_rows, dtype=np.int64)
    if len(cluster_by) == 1:
        # Nulls (and NaN) sort last: pyarrow's default, which newer releases
        # want given per key and older ones (>= 15, our floor) only as a whole.
        idx = pc.sort_indices(table, sort_keys=[(cluster_by[0], "ascending")])
        return np.asarray(idx.to_numpy(), np.int64)
    if curve not in ("hilbert", "zorder"):
        raise InputDataError(f"unknown curve {curve!r}; use 'hilbert' or 'zorder'")
    bits = min(16, 63 // len(cluster_by))
    coords = np.column_stack([_quantized_ranks(table.column(c), bits) for c in cluster_by])
    coords = np.ascontiguousarray(coords, dtype=np.uint64)
    keys = _hilbert(coords, bits) if curve == "hilbert" else _zorder(coords, bits)
    return np.argsort(keys, kind="stable").astype(np.int64)

"""Numeric encoding of Arrow columns as float64 (docs/CONTRACTS.md).

integers and floats by value; decimal(p, s) as its value rounded to float64;
date as days since 1970-01-01; timestamp as microseconds since 1970-01-01 UTC,
whatever unit is stored. Conversions that may round carry ``ulps`` > 0: every
bound built from the values is widened outward by that many float64 steps, so
it also contains the float64 value any other correct (or faithfully rounded)
conversion of the row gives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from mlskip.errors import InputDataError

_EXACT_INT = 2**53


class NumericColumn(NamedTuple):
    """float64 values (NULL rows hold 0), validity (None = no NULLs) and outward widening."""

    values: np.ndarray
    valid: np.ndarray | None
    ulps: int


def is_numeric(t: pa.DataType) -> bool:
    """Integer, float, decimal, date or timestamp (what a model may read)."""
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
    )


def _valid(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _ints(arr: pa.Array, dtype) -> np.ndarray:
    if arr.null_count:
        import pyarrow.compute as pc  # on use: importing it costs a first query 40 ms

        arr = pc.fill_null(arr, 0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _int_ulps(raw: np.ndarray) -> int:
    if raw.size == 0:
        return 0
    big = max(abs(int(raw.min())), abs(int(raw.max())))
    return 1 if big > _EXACT_INT else 0


def _decimal(arr: pa.Array) -> tuple[np.ndarray, int]:
    t = arr.type
    if isinstance(t, pa.Decimal128Type) and t.precision <= 18 and 0 <= t.scale <= 22:
        # unscaled value = low 64 bits of the little-endian two's complement int128
        buf = arr.buffers()[1]
        words = np.frombuffer(buf, dtype=np.int64, count=2 * (arr.offset + len(arr)))
        unscaled = words[2 * arr.offset :: 2]
        vals = unscaled.astype(np.float64)
        if t.scale:
            vals = vals / float(10**t.scale)  # one correctly rounded division
        ulps = 1 if t.precision <= 15 else 2
        if arr.null_count:
            vals = np.where(_valid(arr), vals, 0.0)
        return vals, ulps
    import pyarrow.compute as pc

    vals = pc.cast(arr, pa.float64(), safe=False)
    return np.asarray(pc.fill_null(vals, 0.0).to_numpy(zero_copy_only=False), np.float64), 8


def to_numeric(column: pa.Array | pa.ChunkedArray) -> NumericColumn:
    """float64 encoding of one numeric column (raises InputDataError otherwise)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(arr, pa.ChunkedArray):  # zero chunks
        arr = pa.array([], type=arr.type)
    t = arr.type
    valid = _valid(arr)
    if pa.types.is_floating(t):
        return NumericColumn(_ints(arr, np.float64), valid, 0)
    if pa.types.is_integer(t):
        raw = _ints(arr, np.uint64 if t == pa.uint64() else np.int64)
        return NumericColumn(raw.astype(np.float64), valid, _int_ulps(raw))
    if pa.types.is_decimal(t):
        vals, ulps = _decimal(arr)
        return NumericColumn(vals, valid, ulps)
    if pa.types.is_date(t):
        if t == pa.date32():
            return NumericColumn(_ints(arr.cast(pa.int32()), np.float64), valid, 0)
        ms = _ints(arr.cast(pa.int64()), np.int64)
        return NumericColumn(ms.astype(np.float64) / 86_400_000.0, valid, 1)
    if pa.types.is_timestamp(t):
        raw = _ints(arr.cast(pa.int64()), np.int64)
        scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[t.unit]
        if scale is None:
            return NumericColumn(raw.astype(np.float64) / 1000.0, valid, 2)
        vals = raw.astype(np.float64) * float(scale)
        ulps = (
            0
            if raw.size == 0 or max(abs(int(raw.min())), abs(int(raw.max()))) * scale <= _EXACT_INT
            else 2
        )
        return NumericColumn(vals, valid, ulps)
    raise InputDataError(
        f"column of type {t} is not numeric (integer, float, decimal, date, timestamp)"
    )

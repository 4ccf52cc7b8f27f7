"""Boxes from Parquet's own column-chunk statistics, in the numeric encoding.

Uses the physical (raw) min/max and the Parquet logical type, never pyarrow's
Python conversions (they lose nanoseconds and unsigned ranges). Every bound is
rounded outward to float64. Statistics that are absent, deprecated or not
trustworthy (NaN bounds, INT96, float16, unknown types) give None: the caller
then uses (-inf, inf).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType

_US_PER = {"MILLIS": 1000, "MICROS": 1, "NANOS": Fraction(1, 1000)}
_JSON_UNITS = {"milliseconds": "MILLIS", "microseconds": "MICROS", "nanoseconds": "NANOS"}


def _cmp(f: float, q: Fraction | int) -> int:
    """Sign of ``f - q``, exactly (Python compares floats and ints exactly; a fraction
    is compared through integer cross-multiplication, without building Fractions)."""
    if isinstance(q, int):
        return (f > q) - (f < q)
    n, d = f.as_integer_ratio()
    left, right = n * q.denominator, q.numerator * d
    return (left > right) - (left < right)


def down(q: Fraction | int) -> float:
    """Largest float64 <= q (q finite)."""
    try:
        f = float(q)
    except OverflowError:
        return -math.inf if q < 0 else math.nextafter(math.inf, 0)
    return math.nextafter(f, -math.inf) if _cmp(f, q) > 0 else f


def up(q: Fraction | int) -> float:
    """Smallest float64 >= q (q finite)."""
    try:
        f = float(q)
    except OverflowError:
        return math.inf if q > 0 else math.nextafter(-math.inf, 0)
    return math.nextafter(f, math.inf) if _cmp(f, q) < 0 else f


def _logical(stats) -> Mapping:
    lt = stats.logical_type
    if lt is None or lt.type == "NONE":
        return {}
    try:
        return _parse_logical(lt.to_json())
    except AttributeError:
        return {"Type": "?"}


@functools.lru_cache(maxsize=256)
def _parse_logical(text: str) -> Mapping:
    """A logical type's JSON, parsed once per distinct text (every column chunk of a
    column repeats it); read-only, since the cache shares it."""
    try:
        return MappingProxyType(json.loads(text))
    except ValueError:
        return MappingProxyType({"Type": "?"})


def _exact(
    raw, physical: str, info: Mapping, converted: str, column_schema
) -> Fraction | int | None:
    """Exact value of one raw statistic in the numeric encoding, or None if unsupported."""
    kind = info.get("Type")
    if physical in ("INT32", "INT64") and isinstance(raw, int):
        if kind == "Date" or converted == "DATE":
            return raw
        if kind == "Timestamp" or converted in ("TIMESTAMP_MILLIS", "TIMESTAMP_MICROS"):
            unit = _JSON_UNITS.get(info.get("timeUnit", ""), converted.rsplit("_", 1)[-1])
            return raw * _US_PER[unit] if unit in _US_PER else None
        if kind == "Decimal" or converted == "DECIMAL":
            scale = info.get("scale", getattr(column_schema, "scale", None))
            return Fraction(raw, 10**scale) if scale is not None else None
        if kind == "Int" or (kind is None and converted.startswith(("NONE", "INT_", "UINT_"))):
            if (kind == "Int" and not info.get("isSigned", True)) or converted.startswith("UINT_"):
                raw %= 1 << (32 if physical == "INT32" else 64)
            return raw
        return None
    if physical in ("FLOAT", "DOUBLE") and isinstance(raw, float) and kind is None:
        return None if math.isnan(raw) else raw  # type: ignore[return-value]
    if physical in ("FIXED_LEN_BYTE_ARRAY", "BYTE_ARRAY") and isinstance(raw, bytes) and raw:
        if kind == "Decimal" or converted == "DECIMAL":
            scale = info.get("scale", getattr(column_schema, "scale", None))
            if scale is None:
                return None
            return Fraction(int.from_bytes(raw, "big", signed=True), 10**scale)
    return None


def stats_box(chunk, column_schema=None) -> tuple[float, float] | None:
    """Outward float64 (lo, hi) from a ColumnChunkMetaData, or None when unknown/untrusted."""
    if not chunk.is_stats_set:
        return None
    stats = chunk.statistics
    if stats is None or not stats.has_min_max:
        return None
    physical = stats.physical_type
    info = _logical(stats)
    converted = str(stats.converted_type or "NONE")
    try:
        lo = _exact(stats.min_raw, physical, info, converted, column_schema)
        hi = _exact(stats.max_raw, physical, info, converted, column_schema)
    except (ValueError, TypeError, KeyError, OverflowError, ZeroDivisionError):
        return None
    if lo is None or hi is None:
        return None
    if isinstance(lo, float) or isinstance(hi, float):  # float/double column
        flo, fhi = float(lo), float(hi)
        if flo > fhi:
            return None
        return flo, fhi  # +-0.0 ordering quirks do not matter numerically; inf kept
    if lo > hi:
        return None
    return down(lo), up(hi)


def stats_null_count(chunk) -> int | None:
    """Null count from the statistics, or None when not recorded."""
    if not chunk.is_stats_set or chunk.statistics is None or not chunk.statistics.has_null_count:
        return None
    return int(chunk.statistics.null_count)

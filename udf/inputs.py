"""What a model reads from a column: a number, a date as days since 1970-01-01, or a
timestamp as microseconds since 1970-01-01 (``docs/CONTRACTS.md``).

A model's SQL function declares one DuckDB type per input (``INPUT_TYPES``):
DOUBLE (any number DuckDB casts to it), DATE or TIMESTAMP. Every evaluator (the
SQL function, batch evaluation, ``mlskip.scan``) turns Arrow columns into the
model's inputs through ``model_rows`` (float64; the runner casts them to what the
model reads), so all see the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from mlskip.errors import ModelInputError
from mlskip.metadata.encoding import to_numeric

INPUT_TYPES = ("DOUBLE", "DATE", "TIMESTAMP")


def check_input_types(types: Sequence[str] | None, count: int, where: str) -> tuple[str, ...]:
    """The model's input types in upper case (all DOUBLE when not given)."""
    if types is None:
        return ("DOUBLE",) * count
    upper = tuple(str(t).upper() for t in types)
    unknown = [t for t in upper if t not in INPUT_TYPES]
    if unknown:
        raise ModelInputError(
            f"{where}: input type {unknown[0]!r} is not one of {', '.join(INPUT_TYPES)}"
        )
    if len(upper) != count:
        raise ModelInputError(
            f"{where} takes {count} inputs, but {len(upper)} input types were given"
        )
    return upper


def numbers(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column as float64 numbers: dates and timestamps exactly as the footers encode
    them (``mlskip.metadata.encoding``: days, microseconds; NULL as 0), anything else as
    its float64 value (NULL as NaN: callers mask NULL rows themselves)."""
    kind = column.type
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        return np.array(to_numeric(column).values, dtype=np.float64)  # a writable copy
    if not pa.types.is_floating(kind):
        column = column.cast(pa.float64())
    return np.array(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def model_rows(columns: Sequence[pa.Array | pa.ChunkedArray]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``columns`` as the model's [N, d] inputs (float64), and which rows have
    no NULL input (a NULL never satisfies a predicate; its inputs read as 0)."""
    n = len(columns[0]) if columns else 0
    x = np.empty((n, len(columns)), dtype=np.float64)
    valid = np.ones(n, dtype=bool)
    for j, column in enumerate(columns):
        values = numbers(column)
        if column.null_count:
            present = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            values[~present] = 0.0
            valid &= present
        x[:, j] = values
    return x, valid


def model_inputs(columns: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """The rows of ``columns`` as the model's [N, d] inputs (float64; the SQL function's:
    DuckDB never passes it a NULL row)."""
    return model_rows(columns)[0]

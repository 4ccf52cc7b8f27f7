"""A model call's arguments as DuckDB computes them: the text of every step (for one
DESCRIBE that types them all), each step's DuckDB type, the argument renamed to the
files' column names, and the arguments as SQL numbers for batch evaluation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from sqlglot import exp

from mlskip.skipper.rules.predicates import AffineArg, MLPredicate
from mlskip.skipper.rules.rewrite import unqualified_sql
from mlskip.skipper.rules.roundtrip import duckdb_days, duckdb_double


def call_args(ml: MLPredicate, types: Sequence[str]) -> tuple[str, ...]:
    """The model's arguments as SQL numbers (DATE as days, TIMESTAMP as microseconds since
    1970-01-01, as the SQL function reads them), for batch evaluation."""
    call = next(c for c in ml.node.find_all(exp.Anonymous) if str(c.this).lower() == ml.function)
    args = [unqualified_sql(a) for a in call.expressions]
    return tuple(_AS_NUMBER[t].format(a) for a, t in zip(args, types, strict=True))


# ... as the SQL function reads them (udf/inputs.numbers): a DATE's days, a TIMESTAMP's
# stored microseconds, which for 'infinity' / '-infinity' are +-(2^63 - 1) where DuckDB's
# epoch_us gives NULL (a NULL input never qualifies: those rows would be lost)
_AS_NUMBER = {
    "DOUBLE": "{0}",
    "DATE": "(({0}) - DATE '1970-01-01')",
    "TIMESTAMP": (
        "(CASE WHEN isinf({0}) THEN (CASE WHEN ({0}) > TIMESTAMP '1970-01-01' "
        "THEN 9223372036854775807 ELSE -9223372036854775807 END) ELSE epoch_us({0}) END)"
    ),
}


def file_columns_arg(arg: AffineArg, names: Mapping[str, str]) -> AffineArg:
    """The argument with its columns named as in the files."""

    def rename(expr: tuple | None) -> tuple | None:
        if expr is None or expr[0] == "num":
            return expr
        if expr[0] == "col":
            return ("col", expr[1], names.get(expr[2].lower(), expr[2]))
        return (*expr[:2], *(rename(p) for p in expr[2:]))

    coeffs = tuple((names.get(c.lower(), c), w) for c, w in arg.coeffs)
    return AffineArg(coeffs, arg.const, rename(arg.expr))


def step_texts(expr: tuple | None) -> list[str]:
    if expr is None:
        return []
    texts = [expr[1]]
    if expr[0] not in ("col", "num"):
        for part in expr[2:]:
            texts += step_texts(part)
    return texts


def _typed(expr: tuple, steps: Mapping[str, str]) -> tuple | None:
    """``expr`` with DuckDB's type of each step (None where a step is not modelled: a
    non-numeric type, or a division DuckDB does not compute in floating point)."""
    op, text = expr[0], expr[1]
    kind = steps.get(text)
    date = str(kind).upper() == "DATE"  # a value in days since 1970 (docs/CONTRACTS.md)
    if kind is None or not (_numeric_type(kind) or (date and op in ("col", "num", "add", "sub"))):
        return None
    if op == "col":
        return ("col", kind, expr[2])
    if op == "num":
        value = duckdb_days(expr[2]) if date else duckdb_double(expr[2])
        return ("num", kind, value) if value is not None and math.isfinite(value) else None
    if op == "div" and kind.upper() not in ("FLOAT", "DOUBLE"):
        return None  # integer division (integer_division, //) or rounded DECIMAL quotients
    parts = [_typed(p, steps) for p in expr[2:]]
    if any(p is None for p in parts):
        return None
    if not _date_arithmetic_ok(kind, parts):
        return None
    return (op, kind, *parts)


_DAY_OFFSETS = ("TINYINT", "SMALLINT", "INTEGER")  # DuckDB: +(DATE, INTEGER) -> DATE


def _date_arithmetic_ok(kind: str, parts: Sequence[tuple]) -> bool:
    """Date arithmetic that is exact in days, as DuckDB binds it: DATE - DATE (BIGINT
    days) and DATE +- an integer (DATE). DATE operands anywhere else are not modelled."""
    dates = [str(p[1]).upper() == "DATE" for p in parts]
    if not any(dates):
        return True
    if kind.upper() == "BIGINT":
        return all(dates)
    if kind.upper() == "DATE":
        return sum(dates) == 1 and all(
            d or str(p[1]).upper() in _DAY_OFFSETS for d, p in zip(dates, parts, strict=True)
        )
    return False


def typed_arg(
    arg: AffineArg, steps: Mapping[str, str], sql_type: str = "DOUBLE"
) -> AffineArg | None:
    """The argument with its steps typed, converted to DOUBLE as the SQL function takes it.

    A DATE input is planned as a DATE column or exact date arithmetic (DATE +- integer
    days), a TIMESTAMP input only as a bare TIMESTAMP column: their footers and Parquet
    statistics hold the days or microseconds the function reads (a TIMESTAMP_NS column,
    or a DATE cast to TIMESTAMP, would not). A numeric argument may hold DATE - DATE."""
    if sql_type == "DATE" and arg.expr is not None:
        typed = _typed(arg.expr, steps)  # a DATE column, or date arithmetic giving a DATE
        if typed is None or str(typed[1]).upper() != "DATE":
            return None
        return dataclasses.replace(arg, expr=("cast", "DOUBLE", typed))
    if sql_type != "DOUBLE":
        expr = arg.expr
        if expr is None or expr[0] != "col" or str(steps.get(expr[1], "")).upper() != sql_type:
            return None
        return dataclasses.replace(arg, expr=("cast", "DOUBLE", ("col", sql_type, expr[2])))
    if arg.expr is None:
        return arg
    typed = _typed(arg.expr, steps)
    if typed is None or str(typed[1]).upper() == "DATE":  # a DATE is no DOUBLE argument
        return None
    if typed[1].upper() != "DOUBLE":
        typed = ("cast", "DOUBLE", typed)
    return dataclasses.replace(arg, expr=typed)


_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")  # fmt: skip


def _numeric_type(duckdb_type: str) -> bool:
    return duckdb_type.split("(")[0].upper() in _NUMERIC_TYPES

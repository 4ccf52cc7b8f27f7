"""Ask DuckDB's own parser: does a query round-trip, and what does a constant mean?

Faithful round trip: sqlglot must regenerate a query exactly before we rewrite it.

The rewrite changes only the planned scans and moves ML conjuncts; everything
else must reach DuckDB exactly as the user wrote it. sqlglot regenerates the
whole statement, so before any rewrite the unmodified round trip is compared
with the original by DuckDB's own parser (``json_serialize_sql``): if the
parse trees differ (or DuckDB cannot serialize the statement), the query runs
unmodified.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

import duckdb

_LOCAL = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's own in-memory DuckDB connection, for asking DuckDB how it reads SQL."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = duckdb.connect()
    return con


_IGNORED_KEYS = {"query_location"}


def sql_literal(text: str) -> str:
    """``text`` as a SQL string literal. Binding-only statements inline their strings:
    a Python parameter makes DuckDB probe for optional libraries on every call."""
    return "'" + text.replace("'", "''") + "'"


def duckdb_tree(sql: str) -> Any | None:
    """DuckDB's parse tree of ``sql`` (source positions removed), or None when DuckDB
    cannot serialize it (a parse error, or not a SELECT). Do not modify the result: it
    is cached by text (parsing depends on nothing else)."""
    return _cached_tree(sql)


@functools.lru_cache(maxsize=1024)
def _cached_tree(sql: str) -> Any | None:
    con = _connection()
    try:
        row = con.execute(f"SELECT json_serialize_sql({sql_literal(sql)})").fetchone()
        tree = json.loads(row[0])
    except (duckdb.Error, ValueError, TypeError):
        return None
    if not isinstance(tree, dict) or tree.get("error"):
        return None
    return _strip(tree)


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in _IGNORED_KEYS}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


@functools.lru_cache(maxsize=4096)
def duckdb_double(literal_sql: str) -> float | None:
    """The DOUBLE DuckDB compares a DOUBLE expression with, for a constant as written
    (DuckDB reads ``0.3`` as DECIMAL and converts it itself), or None if it is not one."""
    con = _connection()
    try:
        value = con.execute(f"SELECT CAST(({literal_sql}) AS DOUBLE)").fetchone()[0]
    except duckdb.Error:
        return None
    return float(value) if value is not None else None


def duckdb_days(literal_sql: str) -> int | None:
    """Days since 1970-01-01 of a DATE constant as DuckDB reads it (``infinity`` included,
    as DuckDB's own date arithmetic sees it), or None if it is not a DATE constant."""
    con = _connection()
    try:
        kind, days = con.execute(
            f"SELECT typeof(({literal_sql})), ({literal_sql}) - DATE '1970-01-01'"
        ).fetchone()
    except duckdb.Error:
        return None
    return int(days) if kind == "DATE" and days is not None else None


def faithful(original: str, regenerated: str) -> bool:
    """True when DuckDB parses both statements to the same tree."""
    a = duckdb_tree(original)
    return a is not None and a == duckdb_tree(regenerated)

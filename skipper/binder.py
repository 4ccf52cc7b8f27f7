"""Ask DuckDB, never guess: the facts the planner needs from the engine that runs the query.

Column names and types of a scan or a whole query (DuckDB's binder, through
``DESCRIBE``), the files a glob names (DuckDB's ``glob()``, which also lists
dot-files and resolves ``~``), whether a name is taken by a table, view,
function or macro. Everything runs on the user's own connection, so temporary
views, registered relations, macros and settings are those the query will see.
Nothing here reads data: binding only (binding errors do not abort a
transaction the user has open).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from mlskip.rules.roundtrip import sql_literal

Schema = tuple[tuple[str, str], ...]  # (column name, DuckDB type) in order


def has_glob(pattern: str) -> bool:
    """Whether DuckDB reads ``pattern`` as a glob (it holds a wildcard character)."""
    return any(ch in pattern for ch in "*?[")


class Binder:
    """Binding-only questions to one DuckDB connection (the one the query runs on)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def describe(self, sql: str, params: Any = None) -> Schema | None:
        """Output columns of the query ``sql`` as DuckDB binds it, or None if it does not bind."""
        try:
            rows = self._con.execute(f"DESCRIBE {sql}", params).fetchall()
        except duckdb.Error:
            return None
        return tuple((str(r[0]), str(r[1])) for r in rows)

    def glob(self, pattern: str) -> list[str]:
        """The files DuckDB reads for ``pattern``, in its order, as DuckDB names them: its
        ``glob()`` expands wildcards, ``~`` and ``file_search_path`` (an ``s3://`` path
        without wildcards is returned as is: listing it would cost a request)."""
        if pattern.lower().startswith("s3://") and not has_glob(pattern):
            return [pattern]
        cursor = self._con.cursor()
        try:
            rows = cursor.execute(f"SELECT file FROM glob({sql_literal(pattern)})").fetchall()
        finally:
            cursor.close()
        return [r[0] for r in rows]

    def user_function(self, name: str) -> bool:
        """Whether a function or macro ``name`` is defined outside DuckDB's system catalog
        in a schema the query's names are looked up in (it then shadows the builtin)."""
        database, schema, path = self._con.execute(
            "SELECT current_database(), current_schema(), current_setting('search_path')"
        ).fetchone()
        places = {("temp", "main"), (database, schema)}
        for entry in filter(None, str(path).split(",")):
            parts = entry.strip().strip('"').split(".")
            places.add((parts[0], parts[1]) if len(parts) == 2 else (database, parts[0]))
        for catalog, schema_name in places:
            qualified = ".".join('"' + p.replace('"', '""') + '"' for p in (catalog, schema_name))
            try:
                self._con.execute(f"DESCRIBE SELECT * FROM {qualified}.{name}()")
            except duckdb.CatalogException as error:
                if "is not in the catalog" in str(error) or "does not exist" in str(error):
                    continue
                return True
            except duckdb.Error:
                return True
            return True
        return False

    def relation_named(self, name: str) -> bool:
        """Whether a table or view (also temporary, or a registered Python object) is named
        ``name``: DuckDB then reads it instead of a file of that name."""
        name = sql_literal(name.lower())
        query = (
            f"SELECT (SELECT count(*) FROM duckdb_views() WHERE lower(view_name) = {name}) "
            f"+ (SELECT count(*) FROM duckdb_tables() WHERE lower(table_name) = {name})"
        )
        return bool(self._con.execute(query).fetchone()[0])

    def function_names(self, names: Sequence[str]) -> set[str]:
        """Those of ``names`` (lower case) that DuckDB already knows as functions or macros."""
        wanted = ", ".join(sql_literal(n.lower()) for n in names)
        rows = self._con.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
            f"WHERE lower(function_name) IN ({wanted})"
        ).fetchall()
        return {r[0] for r in rows}

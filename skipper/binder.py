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

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from mlskip.skipper.rules.roundtrip import duckdb_tree, sql_literal

Schema = tuple[tuple[str, str], ...]  # (column name, DuckDB type) in order


# (name, DuckDB type of each argument, DuckDB return type) of a SQL function backed by a model
Signature = tuple[str, tuple[str, ...], str]

# a probe column of each argument type a model function takes (see shadowing_probe)
_PROBE_COLUMNS = {
    "DOUBLE": "CAST(range AS DOUBLE) AS x_double",
    "DATE": "DATE '1970-01-01' + CAST(range AS INTEGER) AS x_date",
    "TIMESTAMP": "TIMESTAMP '1970-01-01' + to_microseconds(range) AS x_timestamp",
}

ARITHMETIC_OPERATORS = ("+", "-", "*", "/")


def has_glob(pattern: str) -> bool:
    """Whether DuckDB reads ``pattern`` as a glob (it holds a wildcard character)."""
    return any(ch in pattern for ch in "*?[")


def parses_as_call(name: str, arity: int) -> bool:
    """Whether DuckDB's parser reads ``name(x, ...)`` as a call of a function ``name`` (not
    a keyword's syntax: ``select``, ``cast``, ``interval`` ...)."""
    args = ", ".join(["1.0"] * max(arity, 1))
    tree = duckdb_tree(f"SELECT {name}({args})")
    try:
        expr = tree["statements"][0]["node"]["select_list"][0]
    except (TypeError, KeyError, IndexError):
        return False
    return expr.get("class") == "FUNCTION" and str(expr.get("function_name")).lower() == name


@dataclass(frozen=True)
class Lookups:
    """Answers to several binder questions asked at once (see ``Binder.lookups``)."""

    probe: str  # the shadowing probe (see ``shadowing_probe``)
    plan: str  # json_serialize_plan of the probe on the user's connection
    relations: Mapping[str, bool]  # whether a table or view has each name (lower case)
    files: Mapping[str, list[str]]  # DuckDB's glob of each local pattern
    settings: str  # a digest of every setting of the connection (duckdb_settings())


class Binder:
    """Binding-only questions to one DuckDB connection (the one the query runs on)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._described: dict[tuple, Schema] = {}

    def describe_cached(self, sql: str, key: tuple | None) -> Schema | None:
        """``describe(sql)``, remembered under ``key``: everything its answer depends on
        beyond ``sql`` (see ``scan_checks._describe_key``); None as key asks every time."""
        if key is not None:
            found = self._described.get((sql, key))
            if found is not None:
                return found
        schema = self.describe(sql)
        if key is not None and schema is not None:
            if len(self._described) >= 256:
                self._described.pop(next(iter(self._described)))
            self._described[(sql, key)] = schema
        return schema

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
        if "://" not in pattern:  # listing a local folder does not fail; its settings count
            rows = self._con.execute(f"SELECT file FROM glob({sql_literal(pattern)})").fetchall()
            return [r[0] for r in rows]
        cursor = self._con.cursor()  # a failed remote listing must not abort a transaction
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

    def plan_json(self, sql: str) -> str | None:
        """DuckDB's bound logical plan of ``sql`` as JSON, or None if it does not bind."""
        try:
            return self._con.execute(f"SELECT json_serialize_plan({sql_literal(sql)})").fetchone()[
                0
            ]
        except duckdb.Error:
            return None

    def lookups(self, probe: str, names: Sequence[str], patterns: Sequence[str]) -> Lookups | None:
        """The answers of ``plan_json(probe)``, of ``relation_named`` for each of ``names``
        and of ``glob`` for each local pattern of ``patterns``, asked in one statement
        (each question is a round trip through DuckDB's parser and binder).

        None when that statement fails: then each question is asked alone.
        """
        local = list(dict.fromkeys(p for p in patterns if "://" not in p))
        names = list(dict.fromkeys(n.lower() for n in names))
        # rows (question, answer, position): 0 the plan, 1 a name taken, 2 the settings'
        # fingerprint, 3 + i a file of pattern i; sorted here (an ORDER BY costs a sort)
        parts = [
            f"SELECT 0, CAST(json_serialize_plan({sql_literal(probe)}) AS VARCHAR), 0",
            "SELECT 2, md5(string_agg(name || '=' || coalesce(value, ''), ',' ORDER BY name)), 0 "
            "FROM duckdb_settings()",
        ]
        if names:
            wanted = ", ".join(sql_literal(n) for n in names)
            for function, column in (
                ("duckdb_views", "view_name"),
                ("duckdb_tables", "table_name"),
            ):
                parts.append(
                    f"SELECT 1, lower({column}), 0 FROM {function}() WHERE lower({column}) IN ({wanted})"
                )
        parts += [
            f"SELECT {3 + i}, file, ordinality FROM glob({sql_literal(p)}) WITH ORDINALITY"
            for i, p in enumerate(local)
        ]
        try:
            rows = self._con.execute(" UNION ALL ".join(f"({p})" for p in parts)).fetchall()
        except duckdb.Error:
            return None
        rows.sort(key=lambda r: (r[0], r[2]))
        taken = {r[1] for r in rows if r[0] == 1}
        files: dict[str, list[str]] = {p: [] for p in local}
        settings = ""
        for question, answer, _ in rows:
            if question == 2:
                settings = answer
            elif question >= 3:
                files[local[question - 3]].append(answer)
        return Lookups(probe, rows[0][1], {n: n in taken for n in names}, files, settings)

    def shadowed(
        self, signatures: Sequence[Signature], operators: bool, asked: Lookups | None = None
    ) -> bool:
        """Whether a user macro or function changes what the model functions (and, with
        ``operators``, the arithmetic operators) mean on this connection.

        DuckDB's binder is asked: a probe query calling each of them is bound here and on
        a fresh connection holding only the model functions; the plans differ exactly when
        a name resolves to something else (a macro is expanded, an overload chosen).
        """
        probe = shadowing_probe(signatures, operators)
        plan = asked.plan if asked is not None and asked.probe == probe else self.plan_json(probe)
        # a probe that does not bind here tells nothing: assume the worst
        return plan is None or plan != reference_plan(probe, tuple(signatures))


def shadowing_probe(signatures: Sequence[Signature], operators: bool) -> str:
    """A query that calls every model function and arithmetic operator on a column
    (not on constants, which DuckDB folds before the plan is serialised)."""
    calls = [
        f"{name}({', '.join('x_' + t.lower() for t in types)})" for name, types, _ in signatures
    ]
    if operators:
        calls += [f"x_double {op} x_double" for op in ARITHMETIC_OPERATORS] + ["-x_double"]
    used = {"DOUBLE"} | {t for _, types, _ in signatures for t in types}
    columns = ", ".join(c for t, c in _PROBE_COLUMNS.items() if t in used)
    return f"SELECT {', '.join(calls)} FROM (SELECT {columns} FROM range(1))"


@functools.lru_cache(maxsize=256)
def reference_plan(probe: str, signatures: tuple[Signature, ...]) -> str | None:
    """The plan of ``probe`` on a connection with nothing but the model functions
    (registered as the SQL functions of a model are: typed arguments, Arrow UDFs)."""
    con = duckdb.connect()
    try:
        for name, types, returns in signatures:
            con.create_function(
                name,
                _probe_function(len(types)),
                [duckdb.sqltype(t) for t in types],
                duckdb.sqltype(returns),
                type="arrow",
                side_effects=False,
            )
        return Binder(con).plan_json(probe)
    finally:
        con.close()


def _probe_function(arity: int):
    def never_called(*columns):  # binding only: the probe is never executed
        raise AssertionError("probe function executed")

    never_called.__signature__ = inspect.Signature(
        [inspect.Parameter(f"x{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(arity)]
    )
    return never_called

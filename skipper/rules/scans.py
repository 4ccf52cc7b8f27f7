"""Find the Parquet scans of a query and the WHERE clause that filters each."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

PARQUET_FUNCTIONS = {"read_parquet", "parquet_scan"}


@dataclass(frozen=True)
class ParquetScan:
    """One Parquet scan inside one SELECT.

    ``paths`` are the path strings or globs as written; ``options`` the named
    arguments of ``read_parquet`` (e.g. ``hive_partitioning``) as SQL text;
    ``alias`` the table alias or ``None``; ``nullable_side`` is true when an
    outer join can fill the scan's columns with NULLs (then a filter cannot be
    moved into it); ``only_table`` is true when it is the SELECT's only table.
    """

    node: exp.Table
    select: exp.Select
    paths: tuple[str, ...]
    options: tuple[tuple[str, str], ...]
    alias: str | None
    nullable_side: bool
    only_table: bool


def _call_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.ReadParquet):
        return "read_parquet"
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return None


def _parquet_source(table: exp.Table) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]] | None:
    """Paths and named options when ``table`` reads Parquet files, else None."""
    inner = table.this
    if isinstance(inner, exp.Identifier) and inner.quoted and not table.args.get("db"):
        name = inner.this
        if _looks_like_parquet(name):
            return (name,), ()
        return None
    if _call_name(inner) not in PARQUET_FUNCTIONS:
        return None
    paths: list[str] = []
    options: list[tuple[str, str]] = []
    for arg in inner.expressions:
        if isinstance(arg, exp.EQ) and isinstance(arg.this, exp.Column):
            options.append((arg.this.name.lower(), arg.expression.sql(dialect="duckdb")))
        elif isinstance(arg, exp.Literal) and arg.is_string:
            paths.append(arg.this)
        elif isinstance(arg, exp.Array) and all(
            isinstance(e, exp.Literal) and e.is_string for e in arg.expressions
        ):
            paths.extend(e.this for e in arg.expressions)
        else:
            return None  # a path computed at run time: not something we can plan
    return (tuple(paths), tuple(options)) if paths else None


def _looks_like_parquet(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(".parquet") or lowered.endswith(".parq") or "*.parquet" in lowered


def find_parquet_scans(tree: exp.Expression) -> list[ParquetScan]:
    """Every Parquet scan that sits directly in a SELECT's FROM or JOIN list."""
    scans: list[ParquetScan] = []
    for select in tree.find_all(exp.Select):
        from_ = select.args.get("from_")
        if from_ is None:
            continue
        joins = select.args.get("joins") or []
        entries: list[tuple[exp.Expression, bool]] = [(from_.this, False)]
        right_or_full = any(j.args.get("side") in ("RIGHT", "FULL") for j in joins)
        for join in joins:
            side = join.args.get("side")
            entries.append((join.this, side in ("LEFT", "FULL")))
        for node, nullable in entries:
            if not isinstance(node, exp.Table):
                continue
            source = _parquet_source(node)
            if source is None:
                continue
            if node is from_.this and right_or_full:
                nullable = True
            alias = node.alias or None
            scans.append(
                ParquetScan(
                    node=node,
                    select=select,
                    paths=source[0],
                    options=source[1],
                    alias=alias,
                    nullable_side=nullable,
                    only_table=not joins,
                )
            )
    return scans

"""Which Parquet scans of a query lie inside the plannable fragment, read on DuckDB's own tree.

The rewrite (``rewrite.py``) may only touch a scan when filtering its rows by
the WHERE conjuncts of the SELECT that reads it cannot change that SELECT's
result. This rule decides that on the parse tree DuckDB itself produces
(``json_serialize_sql``), not on sqlglot's reading of the query, so a clause
sqlglot misreads or drops can never be planned. ``docs/PLANNABLE.md`` lists
the fragment and why each part preserves results.

A scan is keyed by its paths as written and its alias (lower case); a key is
refused when any scan with that key, anywhere in the query, is outside the
fragment, so a mismatch between the two parsers can only lose planning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PARQUET_FUNCTIONS = ("read_parquet", "parquet_scan")
# the join shapes a scan may sit under: (ref_type, join_type) -> sides whose rows may be filtered
_JOINS = {
    ("REGULAR", "INNER"): ("left", "right"),
    ("CROSS", "INNER"): ("left", "right"),
    ("REGULAR", "LEFT"): ("left",),
    ("REGULAR", "RIGHT"): ("right",),
}
_SELECTS = ("SELECT_NODE",)


@dataclass(frozen=True)
class ScanKey:
    """A Parquet scan as written: its paths and its alias (lower case, "" if none)."""

    paths: tuple[str, ...]
    alias: str


@dataclass
class Fragment:
    """What DuckDB's tree says about the query's Parquet scans.

    ``refused`` maps a scan key to why it is outside the fragment; ``planned``
    holds the keys of scans seen inside it (refusal wins); ``names`` are the
    CTE names defined anywhere in the query (lower case): a scan whose path
    names one of them reads the CTE, not the file.
    """

    planned: set[ScanKey] = field(default_factory=set)
    refused: dict[ScanKey, str] = field(default_factory=dict)
    cte_names: set[str] = field(default_factory=set)

    def reason(self, key: ScanKey) -> str | None:
        """None when the scan may be planned, else why not."""
        if key in self.refused:
            return self.refused[key]
        if key not in self.planned:
            return "DuckDB's parser does not read it as a Parquet scan in a FROM clause"
        shadowed = [p for p in key.paths if p.lower() in self.cte_names]
        if shadowed:
            return f"a CTE named {shadowed[0]!r} shadows the file"
        return None


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        yield from node.values()
    elif isinstance(node, list):
        yield from node


def _walk(node: Any) -> Iterator[dict]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
        stack.extend(_children(item))


def _constant_string(node: Any) -> str | None:
    if not isinstance(node, dict) or node.get("class") != "CONSTANT":
        return None
    value = node.get("value") or {}
    if value.get("is_null") or (value.get("type") or {}).get("id") != "VARCHAR":
        return None
    return value.get("value")


def _function_paths(function: dict) -> tuple[str, ...] | None:
    """Path strings of a ``read_parquet(...)`` call (named options skipped), else None."""
    paths: list[str] = []
    for child in function.get("children", []):
        if (
            child.get("class") == "COMPARISON"
            and (child.get("left") or {}).get("class") == "COLUMN_REF"
        ):
            continue  # a named option
        single = _constant_string(child)
        if single is not None:
            paths.append(single)
            continue
        if child.get("class") == "FUNCTION" and child.get("function_name") == "list_value":
            items = [_constant_string(c) for c in child.get("children", [])]
            if items and all(i is not None for i in items):
                paths.extend(items)  # type: ignore[arg-type]
                continue
        return None
    return tuple(paths) if paths else None


def scan_key(ref: dict) -> ScanKey | None:
    """The key of a table reference that reads Parquet files, else None."""
    alias = (ref.get("alias") or "").lower()
    if ref.get("type") == "BASE_TABLE":
        name = ref.get("table_name") or ""
        if looks_like_parquet(name):
            return ScanKey((name,), alias)
        return None
    if ref.get("type") == "TABLE_FUNCTION":
        function = ref.get("function") or {}
        if str(function.get("function_name", "")).lower() not in PARQUET_FUNCTIONS:
            return None
        paths = _function_paths(function)
        return ScanKey(paths, alias) if paths else None
    return None


def looks_like_parquet(name: str) -> bool:
    """A table name DuckDB reads as a Parquet file (replacement scan by extension)."""
    lowered = name.lower()
    return lowered.endswith((".parquet", ".parq")) or "*.parquet" in lowered


def _ref_problem(ref: dict) -> str | None:
    """Clauses on the scan itself that change its rows or columns."""
    if ref.get("sample") is not None:
        return "a sample (TABLESAMPLE) of the scan depends on every row"
    if ref.get("column_name_alias"):
        return "a column alias list renames the file's columns"
    if ref.get("at_clause") is not None:
        return "an AT clause (time travel)"
    if ref.get("schema_name") or ref.get("catalog_name"):
        return "a schema- or catalog-qualified name"
    if ref.get("type") == "TABLE_FUNCTION":
        if ref.get("with_ordinality", "WITHOUT_ORDINALITY") != "WITHOUT_ORDINALITY":
            return "WITH ORDINALITY numbers every row"
        if (ref.get("function") or {}).get("schema") or (ref.get("function") or {}).get("catalog"):
            return "a schema-qualified read_parquet"
    return None


def _leaves(ref: dict, problem: str | None) -> Iterator[tuple[dict, str | None]]:
    """Table references reached from a FROM clause through joins, with the first join
    (or clause) on the way that makes filtering that leaf's rows change the result."""
    if ref.get("type") != "JOIN":
        yield ref, problem
        return
    if ref.get("sample") is not None:
        problem = problem or "a sample of a join depends on every row"
    kind = (ref.get("ref_type"), ref.get("join_type"))
    sides = _JOINS.get(kind, ())
    if ref.get("using_columns"):
        sides = ()
        kind = ("USING", kind[1])
    for side in ("left", "right"):
        why = problem
        if why is None and side not in sides:
            ref_type, join_type = kind
            what = ref_type if ref_type not in ("REGULAR", "CROSS") else join_type
            why = f"on the {side} side of a {what} join, whose result depends on every row"
        yield from _leaves(ref.get(side) or {}, why)


def analyse_fragment(tree: dict) -> Fragment:
    """The fragment facts of one serialized statement (``json_serialize_sql``'s)."""
    fragment = Fragment()
    seen: set[int] = set()
    for node in _walk(tree):
        for entry in (node.get("cte_map") or {}).get("map") or []:
            key = entry.get("key")
            if isinstance(key, str):
                fragment.cte_names.add(key.lower())
        if node.get("type") not in _SELECTS or not isinstance(node.get("from_table"), dict):
            continue
        problem = None
        if node.get("sample") is not None:
            problem = "the SELECT samples its rows (USING SAMPLE)"
        for leaf, why in _leaves(node["from_table"], problem):
            key = scan_key(leaf)
            if key is None:
                continue
            seen.add(id(leaf))
            why = why or _ref_problem(leaf)
            if why is None:
                fragment.planned.add(key)
            else:
                fragment.refused.setdefault(key, why)
    nodes = list(_walk(tree))
    for node in nodes:
        key = scan_key(node) if node.get("type") in ("BASE_TABLE", "TABLE_FUNCTION") else None
        if key is not None and id(node) not in seen:
            fragment.refused.setdefault(key, "not directly in a SELECT's FROM clause")
    # order-sensitive clauses anywhere refuse every scan: a rewrite anywhere below (also in
    # a subquery or a CTE they read) may change the plan that sets the order of rows
    whole_query = (
        # a positional join pairs rows by the order in which its sides produce them (a
        # join's build side sets it, for one)
        (lambda node: node.get("ref_type") == "POSITIONAL",
         "the query has a POSITIONAL join, which pairs rows by their order"),
        # a sample picks rows by the order and vectors in which they reach it
        (lambda node: node.get("sample") is not None,
         "the query samples rows (USING SAMPLE / TABLESAMPLE)"),
    )  # fmt: skip
    for found, why in whole_query:
        if any(found(node) for node in nodes):
            for key in fragment.planned:
                fragment.refused.setdefault(key, why)
    return fragment

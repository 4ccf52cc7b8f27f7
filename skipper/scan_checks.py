"""Whether a scan's files can be planned as DuckDB reads them: the files a scan lists
(globs as DuckDB expands them), their footers, one DESCRIBE of the scan (its schema as
DuckDB binds it and the type of every step of every model argument), and the per-file
checks (options, partitions, float filters) that make planning file by file safe.
``ScanContext`` is what every scan of one query is planned with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from mlskip.skipper.binder import Binder, Lookups, Schema, has_glob
from mlskip.skipper.explain import FileReport
from mlskip.skipper.model_args import step_texts
from mlskip.skipper.models import Evaluator, ModelBinding
from mlskip.skipper.planner import FileFacts, Planner
from mlskip.skipper.rules.fragment import Fragment, ScanKey
from mlskip.skipper.rules.predicates import (
    ConjunctAnalysis,
)
from mlskip.skipper.rules.rewrite import (
    FileScan,
    default_binding_name,
    file_scan_sql,
)
from mlskip.skipper.rules.scans import ParquetScan

# remote schemes not planned (s3:// is: see mlskip.skipper.remote)
REMOTE_PREFIXES = (
    "gs://",
    "gcs://",
    "http://",
    "https://",
    "az://",
    "abfss://",
    "hf://",
)

# what a described conjunct may be built of for its DESCRIBE to be remembered: nodes whose
# binding depends only on the scan's columns and the settings (comparisons are not
# functions a macro can replace; arithmetic and the model calls are checked by the
# shadowing probe of every query)
_DESCRIBED_NODES = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Neg,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.Between, exp.In, exp.Is, exp.Not, exp.And, exp.Or, exp.Tuple,
)  # fmt: skip


# read_parquet options a per-file rewrite keeps with the same meaning (checked again by
# comparing DuckDB's schema of the scan with that of one file read alone)
KEPT_OPTIONS = frozenset(
    {"binary_as_string", "filename", "file_row_number", "hive_partitioning", "union_by_name"}
)


@dataclass
class ScanContext:
    """What every scan of one query is planned with, and what planning found."""

    functions: Mapping[str, ModelBinding]
    kinds: Mapping[str, str]
    planner: Planner
    binder: Binder
    fragment: Fragment
    evaluate: Evaluator | None
    asked: Lookups | None  # answers asked of DuckDB ahead for all scans (None: ask each)
    reasons: list[str] = dataclasses.field(default_factory=list)
    rewritten: dict[str, str] = dataclasses.field(default_factory=dict)  # see spliced_sql
    files: list[FileReport] = dataclasses.field(default_factory=list)
    predicates: list[str] = dataclasses.field(default_factory=list)
    identities: dict[str, tuple | None] = dataclasses.field(default_factory=dict)
    known_columns: set[str] = dataclasses.field(default_factory=set)  # of rewritten scans
    all_alone: bool = True  # every rewritten scan is the only table of its SELECT


def scan_files(scan: ParquetScan, context: ScanContext) -> tuple[list[str], str | None]:
    """The files DuckDB reads for ``scan``, or a reason not to plan it."""
    label = ", ".join(scan.paths)
    why = context.fragment.reason(ScanKey(scan.paths, (scan.alias or "").lower()))
    if why is not None:
        return [], why
    if not isinstance(scan.node.this, exp.Anonymous) and not isinstance(
        scan.node.this, exp.ReadParquet
    ):
        asked = context.asked.relations if context.asked is not None else {}
        named = asked.get(scan.paths[0].lower())
        if named is None:
            named = context.binder.relation_named(scan.paths[0])
        if named:
            return [], f"a table or view named {scan.paths[0]!r} shadows the file"
    unknown = sorted({k for k, _ in scan.options} - KEPT_OPTIONS)
    if unknown:
        return [], f"read_parquet option(s) {unknown} are not planned"
    if any(p.lower().startswith(REMOTE_PREFIXES) for p in scan.paths):
        return [], "remote paths other than s3:// are read without skipping"
    if isinstance(scan.node.this, (exp.Anonymous, exp.ReadParquet)):
        function = str(getattr(scan.node.this, "this", "read_parquet") or "read_parquet")
        name = "read_parquet" if isinstance(scan.node.this, exp.ReadParquet) else function
        if context.binder.user_function(name.lower()):
            return [], f"a user function or macro named {name.lower()} shadows DuckDB's reader"
    try:
        asked = context.asked.files if context.asked is not None else {}
        listed = {p: asked[p] if p in asked else context.binder.glob(p) for p in scan.paths}
    except Exception as error:  # a listing that fails: DuckDB reads (or reports) as written
        return [], f"cannot list the files ({error}); read without skipping"
    paths = [f for p in scan.paths for f in listed[p]]
    if not paths:
        return [], f"no file matches {label}"
    odd = [p for p in paths if has_glob(p)]
    if odd:
        return [], f"{odd[0]!r}: a file name with a wildcard character would be globbed again"
    resolved = [p for p, files in listed.items() if not has_glob(p) and files != [p]]
    if resolved and any(k == "filename" for k, _ in scan.options):
        return [], f"DuckDB resolves {resolved[0]!r} (~, file_search_path) and reports its name"
    return paths, None


def _per_file_problem(
    scan: ParquetScan, paths: Sequence[str], facts: Sequence[FileFacts], schema: Schema,
    context: ScanContext,
) -> str | None:  # fmt: skip
    """Why reading each file alone and combining them would not give the scan as written."""
    first = facts[0]
    for f in facts[1:]:
        if f.parquet_schema != first.parquet_schema:
            return (
                f"{f.path} and {first.path} differ in their columns (names, order or types): "
                "a per-file rewrite could change how DuckDB combines them"
            )
    columns = {c.lower() for c in first.column_names}
    if {"file_row_number", "filename"} & columns:
        return "the file has a column named like one of DuckDB's virtual columns"
    keys = _partition_keys(scan, paths)
    if keys & columns:
        # DuckDB takes such a column from the folder name, over the file's own values
        return f"hive partition key {sorted(keys & columns)[0]!r} is also a column of the files"
    if len(paths) == 1 and not scan.options and paths[0] == scan.paths[0]:
        # one file named as written, no options: the scan is read_parquet(path) by definition
        return None
    # DuckDB types partition keys from every path it reads: then each file is asked
    for path in paths if keys else paths[:1]:
        alone = context.binder.describe(file_scan_sql(scan, FileScan(path, None, ()), []), None)
        if alone != schema:
            return (
                f"DuckDB reads {path} alone with other columns than the scan as written "
                "(hive partitions, options or virtual columns)"
            )
    return None


def _float_filter_problem(
    paths: Sequence[str], local: Sequence[exp.Expression], schema: Schema
) -> str | None:
    """Why a multi-file scan with a conjunct on a float column is not read file by file.

    DuckDB 1.5.5 pushes such a conjunct into the scan and skips it where a row group's
    Parquet min/max say it always holds, but those statistics leave NaN out (as the
    Parquet spec asks): ``SELECT * FROM 'one.parquet' WHERE y < c`` then keeps NaN rows,
    while the same conjunct over a glob of files did not. A per-file rewrite changes which
    of the two DuckDB does, so such scans run as written.
    """
    if len(paths) < 2 or not local:
        return None
    floats = {name.lower() for name, kind in schema if kind.upper() in ("FLOAT", "DOUBLE", "REAL")}
    for conjunct in local:
        used = {c.name.lower() for c in conjunct.find_all(exp.Column)}
        if used & floats:
            column = sorted(used & floats)[0]
            return (
                f"a conjunct on the float column {column!r} over several files: DuckDB's "
                "Parquet statistics filter treats NaN differently for one file and for many"
            )
    return None


def _partition_keys(scan: ParquetScan, paths: Sequence[str]) -> set[str]:
    """Names of ``key=value`` folders in ``paths`` (lower case), unless the scan says
    ``hive_partitioning = false``."""
    if any(k == "hive_partitioning" and v.upper() == "FALSE" for k, v in scan.options):
        return set()
    return {
        part.split("=", 1)[0].lower() for p in paths for part in p.split("/")[:-1] if "=" in part
    }


def _describe_key(
    conjuncts: Sequence[exp.Expression],
    paths: Sequence[str],
    facts: Sequence[FileFacts],
    context: ScanContext,
) -> tuple | None:
    """What the DESCRIBE of a scan with ``conjuncts`` depends on besides its text, or None
    when that cannot be told without asking DuckDB again.

    Its text names the scan and the conjuncts. The files' Parquet schemas are fixed by
    their footers, whose hashes were checked while planning; which files, and that no
    table or view has the scan's name, were asked of DuckDB for this query; settings
    (``binary_as_string``, ``integer_division``, ``search_path`` ...) by a digest of all of
    them, asked with those; the model functions and arithmetic operators by the shadowing
    probe, whose text holds their signatures. What else the conjuncts may call (a
    function, a macro, a cast to a type) is not covered: those are asked every time.
    """
    asked = context.asked
    if asked is None or not asked.settings:
        return None
    for conjunct in conjuncts:
        for node in conjunct.walk():
            if isinstance(node, exp.Anonymous):
                if str(node.this).lower() not in context.kinds:
                    return None
            elif not isinstance(node, _DESCRIBED_NODES):
                return None
    files = tuple(
        (p, f.metadata.footer_hash, f.identity) for p, f in zip(paths, facts, strict=True)
    )
    return (asked.settings, asked.probe, tuple(paths), files)


def read_footers(paths: Sequence[str], planner: Planner) -> tuple[list[FileFacts], str | None]:
    facts = []
    for path, got in zip(paths, planner.files_facts(paths), strict=True):
        if isinstance(got, Exception):
            return [], f"{path}: cannot read its footer ({got})"
        facts.append(got)
    return facts, None


@dataclass
class _Described:
    """What one DESCRIBE of a scan told: DuckDB's type of every step of every model
    argument, and the scan's schema as DuckDB binds it."""

    steps: dict[str, str]
    schema: Sequence[tuple[str, str]]  # as the binder returns it (compared as such)


def describe_scan(
    scan: ParquetScan,
    context: ScanContext,
    paths: list[str],
    facts: list[FileFacts],
    analysis: ConjunctAnalysis,
    local: list[exp.Expression],
) -> tuple[_Described | None, str | None]:
    """One DESCRIBE gives the scan's columns as DuckDB binds them, shows that every
    conjunct binds to the scan's own columns (not an outer query's or another table's),
    and gives DuckDB's type of every step of every model argument."""
    nodes = [ml.node for ml in analysis.predicates] + local
    terms = [t.sql(dialect="duckdb") for t in nodes]
    texts = list(dict.fromkeys(t for ml in analysis.predicates for a in ml.args if a
                               for t in step_texts(a.expr)))  # fmt: skip
    source = scan.node.sql(dialect="duckdb")
    star = "*"
    if not scan.alias and any(c.table for c in scan.select.find_all(exp.Column)):
        # qualified references to a scan without alias: the rewrite keeps the name we
        # derive from the path, and DuckDB must know the scan by that name
        star = quoted(default_binding_name(scan)) + ".*"
    described = context.binder.describe_cached(
        f"SELECT {', '.join(terms + texts)}, {star} FROM {source}",
        _describe_key(nodes, paths, facts, context),
    )
    if described is None:
        if context.binder.describe(f"SELECT * FROM {source}") is None:
            return None, "DuckDB does not bind the scan on its own"
        return None, (
            "its WHERE conjuncts do not bind to the scan's own columns, or DuckDB knows the "
            "scan by another name"
        )
    n = len(terms) + len(texts)
    steps = {t: kind for t, (_, kind) in zip(texts, described[len(terms) : n], strict=True)}
    return _Described(steps, described[n:]), None


def schema_problem(
    scan: ParquetScan,
    context: ScanContext,
    paths: list[str],
    facts: list[FileFacts],
    schema: Sequence[tuple[str, str]],
    local: list[exp.Expression],
) -> str | None:
    """Why the scan's schema, as DuckDB reads it, cannot be planned from the footers."""
    lowered = [name.lower() for name, _ in schema]
    if len(set(lowered)) != len(lowered):
        return "column names that differ only in case"
    if not {c.lower() for c in facts[0].column_names} <= set(lowered):
        return "DuckDB reads other columns than the file's footer names"
    return _per_file_problem(scan, paths, facts, schema, context) or _float_filter_problem(
        paths, local, schema
    )


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

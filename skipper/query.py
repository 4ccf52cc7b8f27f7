"""Plan a whole SQL query: find its Parquet scans and ML predicates, verify, rewrite.

Only what can be handled soundly is touched: a scan is rewritten when its
plan prunes a row group or spares the model somewhere; every other part of
the query, and every query shape we do not handle, runs unmodified, and the
report says why.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from mlskip.errors import MlskipError
from mlskip.skipper.binder import Binder, Lookups, Schema, Signature, has_glob, shadowing_probe
from mlskip.skipper.explain import FileReport, SkippingReport
from mlskip.skipper.model_args import call_args, file_columns_arg, step_texts, typed_arg
from mlskip.skipper.plan import row_ranges
from mlskip.skipper.planner import BoundPredicate, FileFacts, Planner, verifier_predicate
from mlskip.skipper.rules.fragment import Fragment, ScanKey, analyse_fragment
from mlskip.skipper.rules.predicates import (
    ConjunctAnalysis,
    MLPredicate,
    analyse_where,
    local_conjuncts,
)
from mlskip.skipper.rules.rewrite import (
    FileScan,
    Ranges,
    default_binding_name,
    file_scan_sql,
    read_parquet_call,
    rewrite_scan,
    spliced_sql,
    unqualified_sql,
)
from mlskip.skipper.rules.roundtrip import duckdb_double, duckdb_tree
from mlskip.skipper.rules.scans import ParquetScan, find_parquet_scans
from mlskip.verifier import Network

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


@dataclass(frozen=True, eq=False)
class ModelBinding:
    """A SQL function backed by a model: ``kind`` is ``value`` (a number) or
    ``class`` (the argmax); ``network`` is None when it cannot be verified."""

    name: str
    kind: str
    num_inputs: int
    network: Network | None
    digest: str
    unverifiable: str | None = None
    num_outputs: int = 1
    input_types: tuple[str, ...] = ()  # DuckDB type of each argument; () all DOUBLE

    @property
    def sql_types(self) -> tuple[str, ...]:
        return self.input_types or ("DOUBLE",) * self.num_inputs


@dataclass(frozen=True)
class EvaluationTask:
    """Rows of one file on which one ML predicate is to be evaluated in advance.

    ``source`` is a ``read_parquet(...)`` call exposing ``file_row_number``;
    ``ranges`` the rows to evaluate (None: all); ``filters`` other conjuncts
    on the same scan (rows failing them never reach the result); ``args``
    the model's arguments as SQL; ``kind``/``values`` the comparison.
    """

    source: str
    ranges: Ranges | None
    filters: tuple[str, ...]
    function: str
    args: tuple[str, ...]
    kind: str
    values: tuple[float, ...]


# returns the name of a relation with column file_row_number, or None to keep the SQL function
Evaluator = Callable[[EvaluationTask], "str | None"]


# read_parquet options a per-file rewrite keeps with the same meaning (checked again by
# comparing DuckDB's schema of the scan with that of one file read alone)
KEPT_OPTIONS = frozenset(
    {"binary_as_string", "filename", "file_row_number", "hive_partitioning", "union_by_name"}
)


def plan_query(
    sql: str,
    functions: Mapping[str, ModelBinding],
    planner: Planner,
    binder: Binder,
    evaluate: Evaluator | None = None,
    params: Any = None,
) -> SkippingReport:
    """The skipping report for ``sql``; ``report.sql`` is the query to run.

    ``binder`` asks the connection the query runs on (its models, views, macros
    and settings); ``params`` are the query's prepared parameters. With
    ``evaluate``, ML predicates on planned scans are evaluated in advance through
    it (outside DuckDB's per-chunk UDF calls) and the query selects the
    qualifying rows by ``file_row_number``. ``docs/PLANNABLE.md`` lists what is
    planned and why each rewrite keeps the result.
    """
    start = time.perf_counter()

    identities: dict[str, tuple | None] = {}
    is_query = False

    def done(reasons, files=(), rewritten_sql=None, predicates=()) -> SkippingReport:
        return SkippingReport(
            files=tuple(files),
            reasons=tuple(reasons),
            sql=rewritten_sql if rewritten_sql is not None else sql,
            rewritten=rewritten_sql is not None,
            planning_seconds=time.perf_counter() - start,
            predicates=tuple(predicates),
            identities=tuple(identities.items()),
            is_query=is_query,
        )

    if not functions:
        return done([])
    parsed = _parse(sql)
    if parsed.reason is not None:
        return done([parsed.reason])
    is_query = parsed.is_query
    names = parsed.functions & set(functions)
    if not names:
        return done([])
    if parsed.fragment is None:
        return done(
            [
                "only SELECT statements that the rewriter reproduces exactly are planned; run as written"
            ]
        )
    tree = parsed.tree.copy()  # the cached tree stays as parsed: the rewrite edits a copy
    kinds = {name: b.kind for name, b in functions.items()}
    scans = find_parquet_scans(tree)
    signatures, operators = _probe_terms(tree, names, functions)
    scans = [scan for scan in scans if _carries_predicates(scan, kinds)]
    asked = _ask_binder(scans, shadowing_probe(signatures, operators), binder)
    if binder.shadowed(signatures, operators, asked):
        return done(
            [
                "a user macro or function replaces a model function or an arithmetic "
                "operator on this connection; run as written"
            ]
        )
    context = _ScanContext(functions, kinds, planner, binder, parsed.fragment, evaluate, asked)
    referenced = {c.name.lower() for c in tree.find_all(exp.Column)}
    changed = False
    for scan in scans:
        changed |= _plan_scan(scan, context)
    if not scans:
        context.reasons.append(
            "no Parquet scan (read_parquet or a '*.parquet' path) carries the ML predicate"
        )
    rewritten = spliced_sql(tree, context.rewritten) if changed else None
    if rewritten is not None and not _binds_alike(sql, rewritten, params, referenced, context):
        rewritten = None
    identities.update(context.identities)
    return done(context.reasons, context.files, rewritten, context.predicates)


@dataclass(frozen=True)
class _Parsed:
    """What planning learns from a query's text alone (cached by text: parsing depends on
    nothing else). ``fragment`` is None when the sqlglot round trip does not give DuckDB's
    own parse tree back; ``functions`` are the names of the functions it calls."""

    tree: exp.Expression | None
    reason: str | None
    is_query: bool = False
    functions: frozenset[str] = frozenset()
    fragment: Fragment | None = None


@functools.lru_cache(maxsize=256)
def _parse(sql: str) -> _Parsed:
    try:
        statements = [s for s in sqlglot.parse(sql, dialect="duckdb") if s is not None]
    except SqlglotError as error:
        first = str(error).splitlines()[0]
        return _Parsed(None, f"the query could not be parsed for planning ({first})")
    if len(statements) != 1:
        return _Parsed(None, "several statements in one string are run unmodified")
    tree = statements[0]
    functions = frozenset(str(c.this).lower() for c in tree.find_all(exp.Anonymous))
    duck_tree = duckdb_tree(sql)
    same = duck_tree is not None and duck_tree == duckdb_tree(tree.sql(dialect="duckdb"))
    fragment = analyse_fragment(duck_tree) if same else None
    return _Parsed(tree, None, isinstance(tree, exp.Query), functions, fragment)


# DuckDB return type of a model's SQL function, by its kind
_RETURNS = {"value": "DOUBLE", "class": "INTEGER", "vector": "DOUBLE[]"}
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Neg)


def _probe_terms(
    tree: exp.Expression, names: set[str], functions: Mapping[str, ModelBinding]
) -> tuple[list[Signature], bool]:
    """The model functions the query calls (with their SQL signatures) and whether its
    arguments use arithmetic operators: what the shadowing probe asks DuckDB about."""
    signatures = sorted(
        (n, functions[n].sql_types, _RETURNS.get(functions[n].kind, "DOUBLE")) for n in names
    )
    return signatures, any(True for _ in tree.find_all(*_ARITHMETIC))


def _carries_predicates(scan: ParquetScan, kinds: Mapping[str, str]) -> bool:
    """Whether the WHERE clause of ``scan`` calls a model function (anywhere in it: the
    scan's own conjuncts are told apart once its files' columns are known)."""
    where = scan.select.args.get("where")
    return where is not None and any(
        str(call.this).lower() in kinds for call in where.find_all(exp.Anonymous)
    )


def _ask_binder(scans: Sequence[ParquetScan], probe: str, binder: Binder) -> Lookups | None:
    """Ask DuckDB at once what planning ``scans`` needs to know of names and files, with
    the shadowing ``probe`` (see ``Binder.lookups``)."""
    names: list[str] = []
    patterns: list[str] = []
    for scan in scans:
        if scan.nullable_side:
            continue
        if not isinstance(scan.node.this, (exp.Anonymous, exp.ReadParquet)):
            names.append(scan.paths[0])
        patterns += scan.paths
    return binder.lookups(probe, names, patterns)


def _binds_alike(
    sql: str, rewritten: str, params: Any, referenced: set[str], context: _ScanContext
) -> bool:
    """Whether DuckDB binds the ``rewritten`` query exactly as the query as written.

    Asked of DuckDB unless it follows from the checks already made: every rewritten scan
    is the only table of its SELECT (so the conjuncts that bound on the scan alone bind
    the same in the query, and no other table's name can clash), and every column the
    query names is a real column of a rewritten scan (each read per file with the same
    columns and types, under the same name; no virtual column such as ``filename``).
    Then the query as written binds exactly when the rewrite does, with the same columns.
    """
    if context.all_alone and referenced <= context.known_columns:
        return True
    original = context.binder.describe(sql, params)
    if original is None:
        context.reasons.append("DuckDB does not bind the query as written; it runs as written")
        return False
    if context.binder.describe(rewritten, params) != original:
        context.reasons.append(
            "the rewritten query does not bind to the same columns and types in DuckDB "
            "(for example a virtual column such as filename); run as written"
        )
        return False
    return True


@dataclass
class _ScanContext:
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


def _scan_files(scan: ParquetScan, context: _ScanContext) -> tuple[list[str], str | None]:
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
    context: _ScanContext,
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


# what a described conjunct may be built of for its DESCRIBE to be remembered: nodes whose
# binding depends only on the scan's columns and the settings (comparisons are not
# functions a macro can replace; arithmetic and the model calls are checked by the
# shadowing probe of every query)
_DESCRIBED_NODES = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Neg,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.Between, exp.In, exp.Is, exp.Not, exp.And, exp.Or, exp.Tuple,
)  # fmt: skip


def _describe_key(
    conjuncts: Sequence[exp.Expression],
    paths: Sequence[str],
    facts: Sequence[FileFacts],
    context: _ScanContext,
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


def _footers(paths: Sequence[str], planner: Planner) -> tuple[list[FileFacts], str | None]:
    facts = []
    for path in paths:
        try:
            facts.append(planner.file_facts(path))
        except (OSError, ValueError, MlskipError) as error:
            return [], f"{path}: cannot read its footer ({error})"
    return facts, None


@dataclass
class _Described:
    """What one DESCRIBE of a scan told: DuckDB's type of every step of every model
    argument, and the scan's schema as DuckDB binds it."""

    steps: dict[str, str]
    schema: Sequence[tuple[str, str]]  # as the binder returns it (compared as such)


def _describe_scan(
    scan: ParquetScan,
    context: _ScanContext,
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
        star = _quoted(default_binding_name(scan)) + ".*"
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


def _schema_problem(
    scan: ParquetScan,
    context: _ScanContext,
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


def _file_scans(
    scan: ParquetScan,
    context: _ScanContext,
    paths: list[str],
    plans: list,
    bound: list,
    usable: list[MLPredicate],
    local: list[exp.Expression],
) -> list[FileScan]:
    """Per file: the row ranges to read, those that all match, and (with batch
    evaluation) the relation of qualifying rows per predicate."""
    filters = tuple(unqualified_sql(t) for t in local)
    scans = []
    gave_up = [False] * len(usable)  # a predicate found not selective in one file: all files
    for path, plan in zip(paths, plans, strict=True):
        if plan.reason is not None:
            file = FileScan(path, None, tuple(() for _ in bound))
            todo: list[Ranges | None] = [None] * len(bound)
        else:
            read = plan.read_ranges()
            if read == ():
                continue
            all_match = tuple(plan.all_match_ranges(p) for p in range(len(bound)))
            file = FileScan(path, read, all_match)
            todo = [
                row_ranges(plan.offsets, plan.num_rows, ~plan.pruned & ~plan.all_match(p))
                for p in range(len(bound))
            ]
        if context.evaluate is not None:
            source = read_parquet_call(scan, path)
            matches = []
            for k, (ml, ranges) in enumerate(zip(usable, todo, strict=True)):
                args = call_args(ml, context.functions[ml.function].sql_types)
                task = EvaluationTask(
                    source, ranges, filters, ml.function, args, ml.kind, ml.values
                )
                match = None if gave_up[k] else context.evaluate(task)
                gave_up[k] = match is None
                matches.append(match)
            file = FileScan(file.path, file.read, file.all_match, tuple(matches))
        scans.append(file)
    return scans


def _plan_scan(scan: ParquetScan, context: _ScanContext) -> bool:
    """Plan one scan and rewrite it if that helps; returns whether it was rewritten."""
    label = ", ".join(scan.paths)

    def give_up(why: str) -> bool:
        context.reasons.append(f"{label}: {why}")
        return False

    if scan.nullable_side:
        return give_up("on the NULL-filled side of an outer join")
    paths, why = _scan_files(scan, context)
    if why is None:
        facts, why = _footers(paths, context.planner)
    if why is not None:
        return give_up(why)
    # conjuncts are attributed with the file's column names, then DuckDB confirms
    file_columns = frozenset(c.lower() for c in facts[0].column_names)
    analysis = analyse_where(scan, context.kinds, file_columns)
    context.reasons.extend(analysis.ignored)
    if not analysis.predicates:
        return False
    local = list(local_conjuncts(scan, context.kinds, file_columns))
    described, why = _describe_scan(scan, context, paths, facts, analysis, local)
    if described is None:
        return give_up(why)
    why = _schema_problem(scan, context, paths, facts, described.schema, local)
    if why is not None:
        return give_up(why)
    column_map = {name.lower(): name for name, _ in described.schema}
    usable, bound = _bind_predicates(scan, analysis, described.steps, column_map, context)
    if not bound:
        return False
    bounds = {column_map.get(c.lower(), c): b for c, b in analysis.bounds.items()}
    plans = context.planner.plan_files(paths, bound, bounds, facts)
    context.files.extend(FileReport.from_plan(p) for p in plans)
    for path, plan in zip(paths, plans, strict=True):
        context.identities[path] = (
            plan.identity if plan.identity is not None else _try_identity(context.planner, path)
        )
    prunes = any(p.changes_anything for p in plans)
    if not prunes and context.evaluate is None:
        return False  # nothing to gain: the query runs as written
    # With batch evaluation, a scan gains even where nothing is pruned: the model runs
    # in large batches instead of DuckDB's per-chunk UDF calls.
    scans = _file_scans(scan, context, paths, plans, bound, usable, local)
    if not prunes and all(m is None for f in scans for m in (f.matches or ())):
        return False  # nothing pruned and no batch evaluated: the query runs as written
    if not scans:  # every row group pruned: keep one empty scan for the schema
        scans.append(FileScan(paths[0], (), tuple(() for _ in bound)))
    placeholder, body = rewrite_scan(scan, scans, usable)
    context.rewritten[placeholder] = body
    context.known_columns.update(column_map)
    context.all_alone &= scan.only_table
    return True


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bind_predicates(
    scan: ParquetScan,
    analysis: ConjunctAnalysis,
    steps: Mapping[str, str],
    column_map: Mapping[str, str],
    context: _ScanContext,
) -> tuple[list[MLPredicate], list[BoundPredicate]]:
    """The ML conjuncts that can be planned, and each bound to its model."""
    reasons = context.reasons
    label = ", ".join(scan.paths)
    usable: list[MLPredicate] = []
    bound: list[BoundPredicate] = []
    for ml in analysis.predicates:
        binding = context.functions[ml.function]
        if binding.network is None:
            # still planned: column bounds may prune, and batch evaluation applies
            reasons.append(
                f"{ml.sql}: model {binding.name} cannot be verified ({binding.unverifiable}); "
                "only column bounds can prune"
            )
        if any(a is None for a in ml.args):
            bad = [i + 1 for i, a in enumerate(ml.args) if a is None]
            reasons.append(f"{ml.sql}: argument(s) {bad} are not affine in the columns of {label}")
            continue
        types = binding.sql_types
        if len(types) != len(ml.args):
            reasons.append(f"{ml.sql}: {len(ml.args)} arguments for a model of {len(types)}")
            continue
        typed = tuple(typed_arg(a, steps, t) for a, t in zip(ml.args, types, strict=True))
        if any(a is None for a in typed):
            reasons.append(
                f"{ml.sql}: an argument is computed in a way the planner does not model "
                "(a non-numeric step, an integer or DECIMAL division, or a DATE/TIMESTAMP "
                "input that is not a column of exactly that type); run as written"
            )
            continue
        ml = dataclasses.replace(ml, args=typed)
        if ml.kind != "argmax":
            exact = tuple(duckdb_double(v) for v in ml.value_sql)
            if any(v is None for v in exact):
                reasons.append(f"{ml.sql}: DuckDB does not read its constants as numbers")
                continue
            ml = dataclasses.replace(ml, values=exact)
        why = _predicate_problem(ml, binding)
        if why is not None:
            reasons.append(f"{ml.sql}: {why}; run as written")
            continue
        usable.append(ml)
        context.predicates.append(ml.sql)
        bound.append(
            BoundPredicate(
                network=binding.network,
                predicate=verifier_predicate(ml),
                args=tuple(file_columns_arg(a, column_map) for a in ml.args),
                digest=binding.digest,
                sql=ml.sql,
            )
        )
    return usable, bound


def _predicate_problem(ml: MLPredicate, binding: ModelBinding) -> str | None:
    """Why a comparison DuckDB evaluates is not one the planner models exactly."""
    if ml.kind == "between" and ml.values[0] > ml.values[1]:
        return "BETWEEN with low > high selects no row"
    if ml.kind == "argmax":
        outputs = binding.num_outputs
        if not 0 <= int(ml.values[0]) < outputs:
            return f"class {int(ml.values[0])} is not one of the model's {outputs} classes"
    return None


def _try_identity(planner: Planner, path: str) -> tuple | None:
    try:
        return planner.identity(path)
    except (OSError, ValueError):
        return None

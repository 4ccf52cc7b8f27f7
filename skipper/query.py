"""Plan a whole SQL query: find its Parquet scans and ML predicates, verify, rewrite.

Only what can be handled soundly is touched: a scan is rewritten when its
plan prunes a row group or spares the model somewhere; every other part of
the query, and every query shape we do not handle, runs unmodified, and the
report says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from mlskip.skipper.binder import Binder, Lookups, Signature, shadowing_probe
from mlskip.skipper.explain import FileReport, SkippingReport
from mlskip.skipper.model_args import call_args, file_columns_arg, typed_arg
from mlskip.skipper.models import EvaluationTask, Evaluator, ModelBinding
from mlskip.skipper.plan import row_ranges
from mlskip.skipper.planner import BoundPredicate, Planner, verifier_predicate
from mlskip.skipper.rules.fragment import Fragment, analyse_fragment
from mlskip.skipper.rules.predicates import (
    ConjunctAnalysis,
    MLPredicate,
    analyse_where,
    local_conjuncts,
)
from mlskip.skipper.rules.rewrite import (
    FileScan,
    Ranges,
    read_parquet_call,
    rewrite_scan,
    spliced_sql,
    unqualified_sql,
)
from mlskip.skipper.rules.roundtrip import duckdb_double, duckdb_tree
from mlskip.skipper.rules.scans import ParquetScan, find_parquet_scans
from mlskip.skipper.scan_checks import (
    ScanContext,
    describe_scan,
    read_footers,
    scan_files,
    schema_problem,
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
    context = ScanContext(functions, kinds, planner, binder, parsed.fragment, evaluate, asked)
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


@contextlib.contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning for syntax it does not model (EXPLAIN, PRAGMA, ...); the
    planner reports its own reason instead, so the user never sees that log line."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.lru_cache(maxsize=256)
def _parse(sql: str) -> _Parsed:
    try:
        with _quiet_sqlglot():  # statements it only wraps as commands are run as written
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
    sql: str, rewritten: str, params: Any, referenced: set[str], context: ScanContext
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


def _file_scans(
    scan: ParquetScan,
    context: ScanContext,
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


def _plan_scan(scan: ParquetScan, context: ScanContext) -> bool:
    """Plan one scan and rewrite it if that helps; returns whether it was rewritten."""
    label = ", ".join(scan.paths)

    def give_up(why: str) -> bool:
        context.reasons.append(f"{label}: {why}")
        return False

    if scan.nullable_side:
        return give_up("on the NULL-filled side of an outer join")
    paths, why = scan_files(scan, context)
    if why is None:
        facts, why = read_footers(paths, context.planner)
    if why is not None:
        return give_up(why)
    # conjuncts are attributed with the file's column names, then DuckDB confirms
    file_columns = frozenset(c.lower() for c in facts[0].column_names)
    analysis = analyse_where(scan, context.kinds, file_columns)
    context.reasons.extend(analysis.ignored)
    if not analysis.predicates:
        return False
    local = list(local_conjuncts(scan, context.kinds, file_columns))
    described, why = describe_scan(scan, context, paths, facts, analysis, local)
    if described is None:
        return give_up(why)
    why = schema_problem(scan, context, paths, facts, described.schema, local)
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


def _bind_predicates(
    scan: ParquetScan,
    analysis: ConjunctAnalysis,
    steps: Mapping[str, str],
    column_map: Mapping[str, str],
    context: ScanContext,
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
                sql_types=tuple(binding.sql_types),
                references={
                    b.digest: b.network
                    for b in context.functions.values()
                    if b.network is not None and b.digest != binding.digest
                },
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

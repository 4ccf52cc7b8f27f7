"""Plan a whole SQL query: find its Parquet scans and ML predicates, verify, rewrite.

Only what can be handled soundly is touched: a scan is rewritten when its
plan prunes a row group or spares the model somewhere; every other part of
the query, and every query shape we do not handle, runs unmodified, and the
report says why.
"""

from __future__ import annotations

import dataclasses
import glob
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from mlskip.errors import ModelInputError
from mlskip.plan import row_ranges
from mlskip.planner import BoundPredicate, Planner, verifier_predicate
from mlskip.remote import is_s3, s3_key
from mlskip.report import FileReport, SkippingReport
from mlskip.rules.predicates import AffineArg, MLPredicate, analyse_where, local_conjuncts
from mlskip.rules.rewrite import (
    FileScan,
    Ranges,
    read_parquet_call,
    rewrite_scan,
    unqualified_sql,
)
from mlskip.rules.roundtrip import duckdb_double, faithful
from mlskip.rules.scans import ParquetScan, find_parquet_scans
from mlskip.verifier import Network

# remote schemes not planned (s3:// is: see mlskip.remote)
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


def _call_args(ml: MLPredicate) -> tuple[str, ...]:
    call = next(c for c in ml.node.find_all(exp.Anonymous) if str(c.this).lower() == ml.function)
    return tuple(unqualified_sql(a) for a in call.expressions)


def has_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _glob_regex(pattern: str) -> re.Pattern:
    """DuckDB-style glob: ``**`` crosses folders, ``*`` and ``?`` do not."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def expand_paths(pattern: str, filesystem: Any = None) -> list[str]:
    """Files a path or glob names, in DuckDB's order (sorted).

    An ``s3://`` glob is listed with ``filesystem`` (a pyarrow S3 filesystem);
    without one it raises ``OSError`` (the scan is then left unplanned).
    """
    if not has_glob(pattern):
        return [pattern]
    if is_s3(pattern):
        if filesystem is None:
            raise OSError("s3:// globs are listed only with an S3 filesystem")
        from pyarrow import fs as pafs

        scheme = pattern.split("://", 1)[0] + "://"
        key = s3_key(pattern)
        fixed = key[: min(key.index(c) for c in "*?[" if c in key)]
        base = fixed.rsplit("/", 1)[0]
        infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
        regex = _glob_regex(key)
        return sorted(
            scheme + i.path for i in infos if i.type == pafs.FileType.File and regex.match(i.path)
        )
    return sorted(glob.glob(pattern, recursive=True))


def check_arity(tree: exp.Expression, functions: Mapping[str, ModelBinding]) -> None:
    """Raise a clear error when a model function is called with the wrong number of arguments."""
    for call in tree.find_all(exp.Anonymous):
        binding = functions.get(str(call.this).lower())
        if binding is not None and len(call.expressions) != binding.num_inputs:
            raise ModelInputError(
                f"{binding.name}() takes {binding.num_inputs} arguments (one per model input), "
                f"got {len(call.expressions)} in {call.sql(dialect='duckdb')}"
            )


def _rename(arg: AffineArg, names: Mapping[str, str]) -> AffineArg:
    return AffineArg(tuple((names.get(c.lower(), c), w) for c, w in arg.coeffs), arg.const)


def plan_query(
    sql: str,
    functions: Mapping[str, ModelBinding],
    planner: Planner,
    expand: Callable[[str], Sequence[str]] = expand_paths,
    evaluate: Evaluator | None = None,
) -> SkippingReport:
    """The skipping report for ``sql``; ``report.sql`` is the query to run.

    With ``evaluate``, ML predicates on planned scans are evaluated in advance
    through it (outside DuckDB's per-chunk UDF calls) and the query selects the
    qualifying rows by ``file_row_number``.
    """
    start = time.perf_counter()

    identities: dict[str, tuple | None] = {}
    is_query = False

    def done(reasons, files=(), tree=None, predicates=()) -> SkippingReport:
        rewritten = tree is not None
        return SkippingReport(
            files=tuple(files),
            reasons=tuple(reasons),
            sql=tree.sql(dialect="duckdb") if rewritten else sql,
            rewritten=rewritten,
            planning_seconds=time.perf_counter() - start,
            predicates=tuple(predicates),
            identities=tuple(identities.items()),
            is_query=is_query,
        )

    if not functions:
        return done([])
    try:
        statements = [s for s in sqlglot.parse(sql, dialect="duckdb") if s is not None]
    except SqlglotError as error:
        return done([f"the query could not be parsed for planning ({str(error).splitlines()[0]})"])
    if len(statements) != 1:
        return done(["several statements in one string are run unmodified"])
    tree = statements[0]
    is_query = isinstance(tree, exp.Query)
    check_arity(tree, functions)
    names = {
        n for n in (str(c.this).lower() for c in tree.find_all(exp.Anonymous)) if n in functions
    }
    if not names:
        return done([])
    if not faithful(sql, tree.sql(dialect="duckdb")):
        return done(
            [
                "only SELECT statements that the rewriter reproduces exactly are planned; run as written"
            ]
        )
    kinds = {name: b.kind for name, b in functions.items()}
    reasons: list[str] = []
    files: list[FileReport] = []
    predicates_seen: list[str] = []
    changed = False
    for scan in find_parquet_scans(tree):
        changed |= _plan_scan(
            scan,
            functions,
            kinds,
            planner,
            expand,
            evaluate,
            reasons,
            files,
            predicates_seen,
            identities,
        )
    if not find_parquet_scans(tree) and not changed:
        reasons.append(
            "no Parquet scan (read_parquet or a '*.parquet' path) carries the ML predicate"
        )
    return done(reasons, files, tree if changed else None, predicates_seen)


def _plan_scan(
    scan: ParquetScan,
    functions: Mapping[str, ModelBinding],
    kinds: Mapping[str, str],
    planner: Planner,
    expand: Callable[[str], Sequence[str]],
    evaluate: Evaluator | None,
    reasons: list[str],
    files: list[FileReport],
    predicates_seen: list[str],
    identities: dict[str, tuple | None],
) -> bool:
    """Plan one scan and rewrite it if that helps; returns whether it was rewritten.

    ``identities`` receives, for every planned file, the identity its plan was
    made for (None where it could not be read)."""
    label = ", ".join(scan.paths)
    light = analyse_where(scan, kinds, None)
    if not light.predicates and not light.ignored:
        return False
    if scan.nullable_side:
        reasons.append(f"{label}: on the NULL-filled side of an outer join")
        return False
    if any(p.lower().startswith(REMOTE_PREFIXES) for p in scan.paths):
        reasons.append(f"{label}: remote paths other than s3:// are read without skipping")
        return False
    try:
        paths = [f for p in scan.paths for f in expand(p)]
    except Exception as error:  # a listing that fails: DuckDB reads (or reports) as written
        reasons.append(f"{label}: cannot list the files ({error}); read without skipping")
        return False
    if not paths:
        reasons.append(f"{label}: no file matches")
        return False
    try:
        first = planner.file_facts(paths[0])
    except (OSError, ValueError) as error:
        reasons.append(f"{paths[0]}: cannot read its footer ({error})")
        return False
    column_map = {c.lower(): c for c in first.column_names}
    analysis = analyse_where(scan, kinds, frozenset(column_map))
    reasons.extend(analysis.ignored)
    usable = []
    bound: list[BoundPredicate] = []
    for ml in analysis.predicates:
        binding = functions[ml.function]
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
        for position, arg in enumerate(ml.args, start=1):
            for column in arg.columns:
                actual = column_map.get(column.lower())
                if actual is not None and actual not in first.numeric_columns:
                    raise ModelInputError(
                        f"argument {position} of {ml.function}() uses column {actual!r} of "
                        f"{paths[0]}, which is not numeric; models take numbers "
                        "(cast or encode the column first)"
                    )
        if ml.kind != "argmax":
            exact = tuple(duckdb_double(v) for v in ml.value_sql)
            if any(v is None for v in exact):
                reasons.append(f"{ml.sql}: DuckDB does not read its constants as numbers")
                continue
            ml = dataclasses.replace(ml, values=exact)
        usable.append(ml)
        predicates_seen.append(ml.sql)
        bound.append(
            BoundPredicate(
                network=binding.network,
                predicate=verifier_predicate(ml),
                args=tuple(_rename(a, column_map) for a in ml.args),
                digest=binding.digest,
                sql=ml.sql,
            )
        )
    if not bound:
        return False
    bounds = {column_map.get(c.lower(), c): b for c, b in analysis.bounds.items()}
    plans = planner.plan_files(paths, bound, bounds)
    files.extend(FileReport.from_plan(p) for p in plans)
    for path, plan in zip(paths, plans, strict=True):
        identities[path] = (
            plan.identity if plan.identity is not None else _try_identity(planner, path)
        )
    prunes = any(p.changes_anything for p in plans)
    if not prunes and evaluate is None:
        return False  # nothing to gain: the query runs as written
    # With batch evaluation, a scan gains even where nothing is pruned: the model runs
    # in large batches instead of DuckDB's per-chunk UDF calls.
    filters = tuple(unqualified_sql(t) for t in local_conjuncts(scan, kinds, frozenset(column_map)))
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
            file = FileScan(path, read, tuple(plan.all_match_ranges(p) for p in range(len(bound))))
            todo = [
                row_ranges(plan.offsets, plan.num_rows, ~plan.pruned & ~plan.all_match(p))
                for p in range(len(bound))
            ]
        if evaluate is not None:
            source = read_parquet_call(scan, path)
            matches = []
            for k, (ml, ranges) in enumerate(zip(usable, todo, strict=True)):
                task = EvaluationTask(
                    source, ranges, filters, ml.function, _call_args(ml), ml.kind, ml.values
                )
                match = None if gave_up[k] else evaluate(task)
                gave_up[k] = match is None
                matches.append(match)
            file = FileScan(file.path, file.read, file.all_match, tuple(matches))
        scans.append(file)
    if not prunes and all(m is None for f in scans for m in (f.matches or ())):
        return False  # nothing pruned and no batch evaluated: the query runs as written
    if not scans:  # every row group pruned: keep one empty scan for the schema
        scans.append(FileScan(paths[0], (), tuple(() for _ in bound)))
    rewrite_scan(scan, scans, usable)
    return True


def _try_identity(planner: Planner, path: str) -> tuple | None:
    try:
        return planner.identity(path)
    except (OSError, ValueError):
        return None

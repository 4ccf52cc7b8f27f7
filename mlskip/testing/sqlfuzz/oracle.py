"""The fuzzer's oracle: what one query gave on each connection, and whether they agree."""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

REL_TOL, ABS_TOL = 1e-9, 1e-12
# DuckDB's own failures: when only the baseline raises one, the query is not held against
# skipping (counted as engine_error and listed, not as a mismatch)
ENGINE_ERRORS = ("InternalException", "NotImplementedException", "FatalException")
# Errors DuckDB raises while evaluating an expression on some row (a string that does not
# convert, an overflow). Which rows DuckDB evaluates an expression on depends on its plan
# (filter order, pushdown, empty inputs optimised away), so when only the query as written
# raises one and the rewrite returns rows, the outcome is counted as error_order and listed,
# not as a mismatch (docs/PLANNABLE.md, "Known limits").
ROW_ERRORS = ("ConversionException", "OutOfRangeException")
QUERY_TIMEOUT = 60.0  # seconds per query and side, then DuckDB is interrupted


# ----------------------------------------------------------------------------- results
@dataclass
class Outcome:
    """What one connection gave for one query: rows, or an error."""

    rows: list[tuple] | None = None
    error: str | None = None  # exception class name
    message: str = ""

    def __str__(self) -> str:
        if self.error is not None:
            return f"{self.error}: {self.message}"
        return f"{len(self.rows)} rows"


@dataclass
class QueryResult:
    seed: int  # the trial's seed
    index: int  # the query's number within the trial
    sql: str  # temporary folder shown as <root>
    params: list | dict | None = None
    setting: str | None = None
    form: str = ""
    # passed | mismatch | flaky | timeout | engine_error | error_order | pushdown
    status: str = "passed"
    planned: bool = False  # explain_skipping planned at least one file
    pruned: bool = False  # ... and pruned (or found all-match) at least one row group
    as_written: bool = True  # the skipping connection ran the query text unmodified
    skipping: str = ""  # outcome with skipping
    baseline: str = ""  # outcome with skipping=False
    detail: str = ""  # rows on one side only, errors, explain failure
    layout: str = ""  # the dataset, for a mismatch

    @property
    def ok(self) -> bool:
        return self.status != "mismatch"

    def describe(self) -> str:
        lines = [
            f"MISMATCH seed {self.seed} query {self.index} "
            f"(replay: mlskip.testing.sqlfuzz.replay({self.seed}, {self.index}))"
            if self.status == "mismatch"
            else f"{self.status} seed {self.seed} query {self.index}",
            f"  sql: {self.sql}",
        ]
        if self.params is not None:
            lines.append(f"  params: {self.params!r}")
        if self.setting:
            lines.append(f"  setting: {self.setting}")
        lines += [f"  with skipping: {self.skipping}", f"  without:       {self.baseline}"]
        if self.detail:
            lines.append(f"  {self.detail}")
        if self.layout:
            lines.append("  files:\n" + "\n".join("    " + ln for ln in self.layout.splitlines()))
        return "\n".join(lines)


@dataclass
class CampaignResult:
    trials: int
    seed: int
    seconds: float = 0.0
    queries: list[QueryResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # trials the fuzzer itself failed on
    # product failures outside queries (mlskip.write_parquet raising): the file was then
    # written by pyarrow and the trial went on
    notes: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[QueryResult]:
        return [q for q in self.queries if q.status == "mismatch"]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.errors

    def share(self, flag: str) -> float:
        return sum(bool(getattr(q, flag)) for q in self.queries) / max(1, len(self.queries))

    def summary(self, limit: int = 20, mismatches: bool = True) -> str:
        """Counts and shares, then (up to ``limit`` each) mismatches (unless ``mismatches``
        is False, e.g. when they were printed as found), flaky queries, DuckDB errors and
        the fuzzer's own errors."""
        counts = Counter(q.status for q in self.queries)
        lines = [
            f"sqlfuzz: {self.trials} trials (seeds {self.seed}..{self.seed + self.trials - 1}), "
            f"{len(self.queries)} queries, {len(self.mismatches)} mismatches, "
            f"{counts['flaky']} flaky, {counts['timeout']} timed out, "
            f"{counts['engine_error']} DuckDB errors without skipping only, "
            f"{counts['error_order']} row errors (conversion, overflow) without skipping only, "
            f"{counts['pushdown']} rows DuckDB's own pushdown dropped without skipping, "
            f"{len(self.errors)} fuzzer errors, {self.seconds:.1f} s",
            f"planned {self.share('planned'):.1%}, pruned something {self.share('pruned'):.1%}, "
            f"ran as written {self.share('as_written'):.1%}",
        ]
        if mismatches:
            lines += [m.describe() for m in self.mismatches[:limit]]
        if mismatches and len(self.mismatches) > limit:
            lines.append(f"... and {len(self.mismatches) - limit} more mismatches")
        others = [
            q
            for q in self.queries
            if q.status in ("flaky", "engine_error", "error_order", "pushdown")
        ]
        lines += [q.describe() for q in others[:limit]]
        lines += [f"fuzzer error: {e}" for e in self.errors[:limit]]
        if self.notes:
            lines.append(f"{len(self.notes)} files mlskip.write_parquet failed to write, e.g.:")
            lines += [f"  {n}" for n in self.notes[:3]]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- oracle
def _norm(value: Any) -> Any:
    """Hashable, comparable form of a result value."""
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _norm(v)) for k, v in value.items()))
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def sort_key(value: Any) -> tuple:
    """A total order over result values (None, NaN, numbers, strings, nested): floats
    are rounded so that values equal within the tolerance sort together."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float, Decimal)):
        f = float(value)
        if math.isnan(f):
            return (3,)
        return (2, float(f"{f:.6e}") if math.isfinite(f) else f)
    if isinstance(value, str):
        return (4, value)
    if isinstance(value, tuple):
        return (5, tuple(sort_key(v) for v in value))
    return (6, repr(value))


def values_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False  # 3 and 3.0: a result type changed
    return a == b


def _rows_equal(a: Sequence[tuple], b: Sequence[tuple]) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(values_equal(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def same_rows(a: Sequence[tuple], b: Sequence[tuple]) -> bool:
    """Same multiset of rows, floats within tolerance."""
    if len(a) != len(b):
        return False
    for key in (sort_key, lambda v: sort_key(v) if not isinstance(v, float) else (2, v)):
        row_key = (lambda k: lambda row: tuple(k(v) for v in row))(key)
        if _rows_equal(sorted(a, key=row_key), sorted(b, key=row_key)):
            return True
    return False


def same_outcome(a: Outcome, b: Outcome, ordered: bool = False) -> bool:
    """Same error class, or the same rows: as multisets, or (``ordered``) as lists."""
    if a.error is not None or b.error is not None:
        return a.error == b.error
    if ordered:
        return len(a.rows) == len(b.rows) and _rows_equal(a.rows, b.rows)
    return same_rows(a.rows, b.rows)


def _row_key(row: tuple) -> tuple:
    return tuple(sort_key(v) for v in row)


def _difference(a: Outcome, b: Outcome, limit: int = 3) -> str:
    """Rows found on one side only (compared rounded), for the report."""
    if a.rows is None or b.rows is None:
        return ""
    ca = Counter(_row_key(r) for r in a.rows)
    cb = Counter(_row_key(r) for r in b.rows)
    only_a = [r for r in a.rows if ca[_row_key(r)] > cb.get(_row_key(r), 0)]
    only_b = [r for r in b.rows if cb[_row_key(r)] > ca.get(_row_key(r), 0)]
    parts = []
    if only_a:
        parts.append(f"only with skipping: {only_a[:limit]}")
    if only_b:
        parts.append(f"only without: {only_b[:limit]}")
    if not parts:  # the same rows when rounded: show the first pair that differs
        pairs = zip(sorted(a.rows, key=_row_key), sorted(b.rows, key=_row_key), strict=True)
        first = next(((x, y) for x, y in pairs if not _rows_equal([x], [y])), None)
        if first is not None:
            parts.append(f"rows differ in value or type: {first[0]!r} vs {first[1]!r}")
    if not parts and len(a.rows) == len(b.rows):  # the same multiset in another order
        at = next(
            (
                i
                for i, (x, y) in enumerate(zip(a.rows, b.rows, strict=True))
                if not _rows_equal([x], [y])
            ),
            None,
        )
        if at is not None:
            parts.append(
                f"the same rows in another order, from row {at}: {a.rows[at : at + limit]} "
                f"vs {b.rows[at : at + limit]}"
            )
    return "; ".join(parts)


@dataclass
class Query:
    sql: str
    params: list | dict | None = None
    setting: tuple[str, str] | None = None  # (SET ..., RESET ...)
    api: str = "sql"  # "sql" (con.sql) or "execute" (con.execute)
    form: str = ""  # the generator's top-level form (simple, join, ...)
    ordered: bool = False  # DuckDB defines the row order: compare lists, not multisets


def run_query(con: Any, query: Query, timeout: float = QUERY_TIMEOUT) -> Outcome:
    """Run ``query`` on ``con`` (a DuckDB or mlskip connection, or anything with the same
    ``sql``/``execute``/``fetchall``) and normalize the rows; errors become outcomes."""
    timer = None
    interrupt = getattr(con, "interrupt", None)
    if interrupt is not None and timeout:
        timer = threading.Timer(timeout, interrupt)
        timer.daemon = True
        timer.start()
    try:
        if query.setting is not None:
            con.execute(query.setting[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if query.api == "execute" or query.params is not None:
                rows = con.execute(query.sql, query.params).fetchall()
            else:
                relation = con.sql(query.sql)
                rows = relation.fetchall() if relation is not None else []
        return Outcome(rows=[tuple(_norm(v) for v in row) for row in rows])
    except Exception as error:
        return Outcome(error=type(error).__name__, message=str(error).splitlines()[0][:300])
    finally:
        if timer is not None:
            timer.cancel()
        if query.setting is not None:
            with contextlib.suppress(Exception):
                con.execute(query.setting[1])


def _without_pushdown(off: Any, query: Query, timeout: float) -> Outcome:
    """The baseline again with DuckDB's filter pushdowns (and so its Parquet min-max
    pruning) off: plain filters, the dynamic ones from joins and scalar subqueries, and
    its row-group pruner."""
    off.execute("SET disabled_optimizers = 'filter_pushdown,join_filter_pushdown,row_group_pruner'")
    try:
        return run_query(off, query, timeout)
    finally:
        off.execute("RESET disabled_optimizers")


def check_query(on: Any, off: Any, query: Query, timeout: float = QUERY_TIMEOUT) -> QueryResult:
    """The differential check of one query: ``on`` (skipping) against ``off`` (baseline)."""
    result = QueryResult(
        0, 0, query.sql, query.params, query.setting[0] if query.setting else None, query.form
    )
    a = run_query(on, query, timeout)
    b = run_query(off, query, timeout)
    result.skipping, result.baseline = str(a), str(b)
    if same_outcome(a, b, query.ordered):
        return result
    if "Interrupt" in f"{a.error}{b.error}":
        result.status = "timeout"
        return result
    if b.error in ENGINE_ERRORS:  # DuckDB fails on the query as written: its bug, not ours
        result.status = "engine_error"
        return result
    if b.error in ROW_ERRORS and a.error is None:
        result.status = "error_order"
        return result
    again = run_query(off, query, timeout)
    if not same_outcome(b, again, query.ordered):  # the query itself is not deterministic
        result.status, result.detail = "flaky", f"baseline again: {again}"
        return result
    if same_outcome(a, _without_pushdown(off, query, timeout), query.ordered):
        # DuckDB's own Parquet min-max pruning (filter pushdown) drops rows its semantics
        # keeps (NaN, which it orders above every number, is not in Parquet's max); the
        # rewrite returns what DuckDB gives with that pushdown off
        result.status, result.detail = "pushdown", _difference(a, b)
        return result
    result.status = "mismatch"
    result.detail = _difference(a, b)
    return result

"""``mlskip selfcheck --sql``: a differential SQL fuzzer (issue 16, point 5).

In the spirit of SQLancer and sqlsmith: each trial draws, from its seed alone,

- a dataset of several Parquet files in a temporary folder: 2-4 numeric columns
  (INTEGER / BIGINT / DOUBLE / FLOAT) and sometimes a string column, with column
  order, types and sets that differ between files in some trials, names that differ
  only in case, NULL / NaN / +-inf values, hive-partitioned folders (``p=1/``),
  dot-files, empty files (0 row groups), written by ``mlskip.write_parquet`` (with or
  without hulls), by pyarrow and by DuckDB's ``COPY``;
- one to three models (seeded ``mlskip.verifier.Network`` or torch MLPs: regressors,
  sigmoid heads, classifiers with and without softmax), registered on
  ``mlskip.connect()`` and on ``mlskip.connect(skipping=False)``;
- several queries over DuckDB's grammar touching those files: every join kind
  (INNER, LEFT, RIGHT, FULL, CROSS, POSITIONAL, ASOF, NATURAL, LATERAL, SEMI, ANTI),
  CTEs (also names that shadow others), subqueries (scalar, IN, EXISTS, correlated),
  set operations, window functions, repeatable samples, PIVOT / UNPIVOT, aliases with
  column lists, prepared parameters, settings (``SET integer_division = true`` ...),
  and ML predicates in WHERE, ON, HAVING, SELECT, under OR / NOT / CASE, BETWEEN,
  class functions, affine arguments, with thresholds drawn from the model's outputs
  on the data (so that predicates are selective, and sometimes empty or full).

Oracle: each query runs on both connections; it passes when both return the same
multiset of rows (floats equal within 1e-9 relative, NaN equals NaN, int and float
values are not interchangeable) or both raise an exception of the same class. The
generator avoids nondeterministic queries (no LIMIT without a total ORDER BY, samples
always REPEATABLE, order-dependent window functions ordered by every column they
see, DuckDB on one thread); a mismatch whose baseline does not repeat itself is
counted as ``flaky`` (a generator bug), not as a mismatch.

Trial ``i`` of a campaign uses ``random.Random(seed + i)`` (and numpy generators seeded
from it); ``replay(seed, index)`` runs one query of one trial again.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

NUMERIC_TYPES = ("INTEGER", "BIGINT", "DOUBLE", "FLOAT")
_ARROW_TYPES = {
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
}
TEMPORAL_TYPES = ("DATE", "TIMESTAMP")  # model inputs read as days / microseconds
_NUMERIC_BOUND = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
    r"|FLOAT|DOUBLE|DECIMAL.*)$"
)
SETTINGS = (  # (statement before the query, statement after it)
    ("SET integer_division = true", "RESET integer_division"),
    ("SET default_null_order = 'nulls_first'", "RESET default_null_order"),
    ("SET default_order = 'desc'", "RESET default_order"),
    ("SET ieee_floating_point_ops = false", "RESET ieee_floating_point_ops"),
    ("SET preserve_identifier_case = false", "RESET preserve_identifier_case"),
    # user macros that replace an arithmetic operator for the query
    ('CREATE TEMP MACRO "+"(x, y) AS x - y', 'DROP MACRO "+"'),
    ('CREATE TEMP MACRO "*"(x, y) AS x + y', 'DROP MACRO "*"'),
    ('CREATE TEMP MACRO "-"(x) AS x', 'DROP MACRO "-"'),
)
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
QUERIES_PER_TRIAL = 5
CHUNK = 10  # trials per worker task


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
    status: str = "passed"  # passed | mismatch | flaky | timeout | engine_error | error_order
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
            f"{len(self.errors)} fuzzer errors, {self.seconds:.1f} s",
            f"planned {self.share('planned'):.1%}, pruned something {self.share('pruned'):.1%}, "
            f"ran as written {self.share('as_written'):.1%}",
        ]
        if mismatches:
            lines += [m.describe() for m in self.mismatches[:limit]]
        if mismatches and len(self.mismatches) > limit:
            lines.append(f"... and {len(self.mismatches) - limit} more mismatches")
        others = [q for q in self.queries if q.status in ("flaky", "engine_error", "error_order")]
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
    result.status = "mismatch"
    result.detail = _difference(a, b)
    return result


# ----------------------------------------------------------------------------- datasets
@dataclass
class Col:
    name: str
    type: str  # DuckDB type
    values: tuple = ()  # a few finite values, for constants

    @property
    def numeric(self) -> bool:
        return bool(_NUMERIC_BOUND.match(self.type))

    @property
    def integer(self) -> bool:
        return self.numeric and "INT" in self.type

    @property
    def string(self) -> bool:
        return self.type == "VARCHAR"

    @property
    def temporal(self) -> bool:
        return self.type in TEMPORAL_TYPES


@dataclass
class Source:
    sql: str  # a FROM item
    cols: list[Col]


@dataclass
class Dataset:
    root: Path
    files: list[str] = field(default_factory=list)  # layout lines
    sources: list[Source] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # mlskip.write_parquet errors
    temporal: tuple[str, ...] = ()  # DATE / TIMESTAMP columns the files have (dt, tm)

    def summary(self) -> str:
        return "\n".join([*self.files, *self.models])


def _values(
    nrng: np.random.Generator, name: str, typ: str, n: int, specials: bool, scale: float
) -> pa.Array:
    if typ == "VARCHAR":
        pool = np.array(["x", "y", "z", "X", "", "ab", "x1"])
        v = pool[nrng.integers(0, len(pool), n)].tolist()
        mask = nrng.random(n) < (0.1 if specials else 0.0)
        return pa.array([None if m else s for s, m in zip(v, mask, strict=True)], pa.string())
    if typ in TEMPORAL_TYPES:  # days around 1997 (timestamps: plus seconds in the day)
        days = nrng.integers(9_000, 11_000, n).astype(np.int64)
        mask = nrng.random(n) < (0.05 if specials else 0.0)
        if typ == "DATE":
            return pa.array(days.astype(np.int32), mask=mask).cast(pa.date32())
        micros = days * 86_400_000_000 + nrng.integers(0, 86_400, n) * 1_000_000
        return pa.array(micros, mask=mask).cast(pa.timestamp("us"))
    if name.lower() == "k":
        v = nrng.integers(0, 20, n).astype(np.float64)
    elif typ in ("INTEGER", "BIGINT"):
        v = np.round(nrng.normal(0, scale, n))
    else:
        v = nrng.normal(nrng.uniform(-scale, scale), scale, n)
        if nrng.random() < 0.3:
            v = np.round(v, 1)
    mask = nrng.random(n) < (nrng.choice([0.0, 0.05, 0.3]) if specials else 0.0)
    if typ in ("DOUBLE", "FLOAT") and specials:
        odd = nrng.random(n) < 0.05
        v = np.where(odd, nrng.choice([np.nan, np.inf, -np.inf], n), v)
    arrow = _ARROW_TYPES[typ]
    if typ in ("INTEGER", "BIGINT"):
        return pa.array(v.astype(np.int64), mask=mask).cast(arrow)
    return pa.array(v.astype(arrow.to_pandas_dtype()), mask=mask)


def _table(
    rnd: random.Random,
    nrng: np.random.Generator,
    cols: list[tuple[str, str]],
    n: int,
    specials: bool,
) -> pa.Table:
    scale = rnd.choice([5.0, 50.0, 500.0])
    table = pa.table({name: _values(nrng, name, typ, n, specials, scale) for name, typ in cols})
    numeric = [name for name, typ in cols if typ != "VARCHAR"]
    if numeric and n and rnd.random() < 0.5:  # sorted rows: summaries can prune
        table = table.sort_by([(rnd.choice(numeric), rnd.choice(["ascending", "descending"]))])
    return table


def _write(
    rnd: random.Random, table: pa.Table, path: Path, writer: str, probe: Any
) -> tuple[str, str]:
    """Write ``table`` with ``writer``; returns (writer description, note)."""
    import pyarrow.parquet as pq

    import mlskip

    path.parent.mkdir(parents=True, exist_ok=True)
    rg = rnd.choice([7, 20, 50, 100])
    if writer == "mlskip":
        numeric = [f.name for f in table.schema if not pa.types.is_string(f.type)]
        hulls = rnd.choice([None, "auto", "auto"])
        cluster = [rnd.choice(numeric)] if numeric and rnd.random() < 0.3 else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlskip.write_parquet(
                    table, path, row_group_size=rg, hulls=hulls, cluster_by=cluster
                )
            return f"mlskip(rg={rg}, hulls={hulls}, cluster={cluster})", ""
        except Exception as error:  # noted in the layout; the file is written by pyarrow
            note = f" [mlskip.write_parquet failed: {type(error).__name__}: {error}]"
            writer = "pyarrow"
    else:
        note = ""
    if writer == "pyarrow":
        pq.write_table(table, path, row_group_size=rg)
        return f"pyarrow(rg={rg})", note
    probe.register("__fuzz_table", table)
    try:
        probe.execute(
            f"COPY (SELECT * FROM __fuzz_table) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {rg})"
        )
    finally:
        probe.unregister("__fuzz_table")
    return f"duckdb(rg={rg})", note


def _describe(probe: Any, source: str) -> list[Col] | None:
    """The columns DuckDB binds for ``source`` and a few values of each, or None."""
    try:
        described = probe.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        table = probe.execute(f"SELECT * FROM {source}").to_arrow_table()
    except Exception:
        return None
    cols = []
    for j, (name, typ, *_) in enumerate(described):
        col = Col(str(name), str(typ))
        if col.numeric:
            v = table.column(j).cast(pa.float64()).to_numpy(zero_copy_only=False)
            v = np.unique(v[np.isfinite(v)])
            if len(v) > 24:
                v = v[np.linspace(0, len(v) - 1, 24).astype(int)]
            col.values = tuple(float(x) for x in v)
        elif col.string:
            col.values = tuple(sorted({s for s in table.column(j).to_pylist() if s is not None}))
        cols.append(col)
    return cols


def draw_dataset(rnd: random.Random, nrng: np.random.Generator, root: Path, probe: Any) -> Dataset:
    """Files under ``root`` and the FROM items (sources) that read them."""
    data = Dataset(root)
    names = ["k", *rnd.sample(["a", "b", "c", "x", "y"], rnd.randint(1, 3))]
    string = rnd.random() < 0.5
    types = {
        n: rnd.choice(("INTEGER", "BIGINT")) if n == "k" else rnd.choice(NUMERIC_TYPES)
        for n in names
    }
    vary_types, vary_order = rnd.random() < 0.3, rnd.random() < 0.3
    vary_sets, case_only = rnd.random() < 0.25, rnd.random() < 0.15
    specials = rnd.random() < 0.6
    temporal = [t for t in TEMPORAL_TYPES if rnd.random() < 0.3]  # a DATE, a TIMESTAMP column
    data.temporal = tuple(temporal)

    def columns() -> list[tuple[str, str]]:
        cols = [
            (n, rnd.choice(NUMERIC_TYPES) if vary_types and n != "k" else types[n]) for n in names
        ]
        if vary_types and rnd.random() < 0.3:
            cols[0] = ("k", rnd.choice(NUMERIC_TYPES))
        if string:
            cols.append(("s", "VARCHAR"))
        cols += [({"DATE": "dt", "TIMESTAMP": "tm"}[t], t) for t in temporal]
        if vary_sets and len(cols) > 2 and rnd.random() < 0.5:
            cols.pop(rnd.randrange(1, len(cols)))
        if vary_sets and rnd.random() < 0.3:
            cols.append(("extra", rnd.choice(NUMERIC_TYPES)))
        if case_only and rnd.random() < 0.5:
            j = rnd.randrange(len(cols))
            cols[j] = (cols[j][0].upper(), cols[j][1])
        if vary_order and rnd.random() < 0.6:
            rnd.shuffle(cols)
        return cols

    def add(rel: str, n: int, writer: str | None = None, cols=None) -> Path:
        path = root / rel
        cols = cols or columns()
        table = _table(rnd, nrng, cols, n, specials)
        if writer is None:
            writer = rnd.choice(["mlskip", "mlskip", "pyarrow", "duckdb"])
        how, note = _write(rnd, table, path, writer, probe)
        import pyarrow.parquet as pq

        groups = pq.ParquetFile(path).metadata.num_row_groups
        described = ", ".join(f"{c}:{t}" for c, t in cols)
        data.files.append(f"{rel}: {how}, {n} rows, {groups} row groups [{described}]{note}")
        if note:
            data.failures.append(f"{rel} ({n} rows):{note}")
        return path

    main = [
        add(
            f"d/t{i}.parquet",
            0 if rnd.random() < 0.05 else rnd.choice([5, 40, 80, 120, 160, 200, 200]),
        )
        for i in range(rnd.randint(2, 4))
    ]
    if rnd.random() < 0.25:
        add("d/.hidden.parquet", 60)
    if rnd.random() < 0.25:
        add("d/t_empty.parquet", 0, writer=rnd.choice(["duckdb", "mlskip", "pyarrow"]))
    if rnd.random() < 0.1:
        add("d/T0.parquet", 30)  # differs from t0.parquet only in case
    hive = rnd.random() < 0.3
    if hive:
        key = "p" if rnd.random() < 0.85 else names[-1]
        for v in range(1, rnd.randint(2, 3) + 1):
            add(f"h/{key}={v}/part.parquet", rnd.choice([10, 60, 100]))

    d, h = root / "d", root / "h"
    candidates = [f"'{p}'" for p in main]
    candidates += [f"read_parquet('{p}')" for p in main[:1]]
    candidates += [
        f"'{d}/*.parquet'",
        f"read_parquet('{d}/t*.parquet')",
        f"read_parquet('{d}/*.parquet', union_by_name = true)",
        f"read_parquet(['{main[0]}', '{main[-1]}'])",
        f"read_parquet('{d}/t*.parquet', filename = true)",
        f"parquet_scan('{main[0]}')",
    ]
    if hive:
        candidates += [
            f"read_parquet('{h}/*/*.parquet', hive_partitioning = true)",
            f"'{h}/**/*.parquet'",
            f"read_parquet('{h}/*/*.parquet', hive_partitioning = true, union_by_name = true)",
        ]
    for sql in candidates:
        cols = _describe(probe, sql)
        if cols and any(c.numeric or c.temporal for c in cols):
            data.sources.append(Source(sql, cols))
    return data


# ----------------------------------------------------------------------------- models
@dataclass
class Model:
    name: str  # as registered
    inputs: int
    classes: int  # 1: a regressor (one number)
    obj: Any
    description: str
    types: tuple[str, ...] = ()  # SQL type per input (DATE, TIMESTAMP); () all DOUBLE

    def type_of(self, i: int) -> str:
        return self.types[i] if self.types else "DOUBLE"


def draw_models(
    rnd: random.Random, nrng: np.random.Generator, seed: int, temporal: Sequence[str] = ()
) -> list[Model]:
    """One to three models; with ``temporal`` (the dataset's DATE / TIMESTAMP column
    types) some take one of those as an input."""
    from mlskip.verifier import Network, ReLU, Sigmoid, Tanh

    names = rnd.sample(["m", "score", "risk", "f2", "Model", "net_a"], rnd.choice([1, 1, 2, 2, 3]))
    models = []
    for name in names:
        d = rnd.randint(1, 3)
        classes = 1 if rnd.random() < 0.65 else rnd.randint(2, 4)
        if classes == 1:
            final = rnd.choice([None, None, "sigmoid"])
        else:
            final = rnd.choice([None, "softmax"])
        hidden = [rnd.randint(2, 8) for _ in range(rnd.randint(1, 2))]
        act = rnd.choice(["relu", "relu", "sigmoid", "tanh"])
        scale = rnd.choice([0.02, 0.2, 1.0])
        if rnd.random() < 0.2:
            obj = _torch_mlp(seed * 7 + len(models), d, hidden, classes, act, final, scale)
            kind = "torch"
        else:
            widths = [d, *hidden, classes]
            weights = [
                (
                    nrng.normal(size=(widths[i + 1], widths[i])) * scale,
                    nrng.normal(size=widths[i + 1]),
                )
                for i in range(len(widths) - 1)
            ]
            types = ["DOUBLE"] * d
            if temporal and rnd.random() < 0.4:  # a date or timestamp input, scaled
                j = rnd.randrange(d)
                types[j] = rnd.choice(list(temporal))
                weights[0][0][:, j] *= 1e-4 if types[j] == "DATE" else 1e-15
            activation = {"relu": ReLU(), "sigmoid": Sigmoid(), "tanh": Tanh()}[act]
            obj = Network.mlp(weights, activation, final=final)
            kind = "Network" + ("" if set(types) == {"DOUBLE"} else f" inputs {types}")
        shape = "-".join(map(str, [d, *hidden, classes]))
        models.append(
            Model(
                name,
                d,
                classes,
                obj,
                f"model {name}: {kind} {shape} {act} final={final}",
                tuple(types) if kind.startswith("Network inputs") else (),
            )  # fmt: skip
        )
    return models


def _torch_mlp(seed: int, d: int, hidden: list[int], classes: int, act: str, final, scale: float):
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    layers: list[Any] = []
    widths = [d, *hidden, classes]
    for i in range(len(widths) - 1):
        linear = nn.Linear(widths[i], widths[i + 1])
        with torch.no_grad():
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * scale)
            linear.bias.copy_(torch.randn(linear.bias.shape, generator=generator))
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append({"relu": nn.ReLU(), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[act])
    if final == "sigmoid":
        layers.append(nn.Sigmoid())
    elif final == "softmax":
        layers.append(nn.Softmax(dim=-1))
    return nn.Sequential(*layers).eval()


# ----------------------------------------------------------------------------- queries
@dataclass
class Rel:
    """A FROM item of a query being built: its text, alias, columns, and a
    self-contained query giving its rows (to draw thresholds from)."""

    text: str
    alias: str | None
    cols: list[Col]
    body: str


_TEMPORAL_CONSTANTS = {"DATE": "DATE '1997-05-19'", "TIMESTAMP": "TIMESTAMP '1997-05-19 10:00:00'"}


def _lit(v: float) -> str:
    if math.isnan(v):
        return "'NaN'::DOUBLE"
    if math.isinf(v):
        return "'inf'::DOUBLE" if v > 0 else "'-inf'::DOUBLE"
    return repr(float(v))


class QueryGen:
    """Draws queries over a dataset's sources and the registered models.

    ``probe`` (the baseline connection, models registered) computes model outputs
    on the data, to put thresholds where they select something."""

    JOINS = (
        "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "POSITIONAL", "ASOF", "NATURAL",
        "LATERAL", "SEMI", "ANTI", "COMMA",
    )  # fmt: skip

    def __init__(
        self,
        rnd: random.Random,
        data: Dataset,
        models: list[Model],
        probe: Any,
        forms: Sequence[str] | None = None,
    ) -> None:
        self.rnd, self.data, self.models, self.probe = rnd, data, models, probe
        self.forms = [(f, w) for f, w in self.FORMS if forms is None or f in forms]
        if not self.forms:
            raise ValueError(
                f"no query form among {forms}; choose from {[f for f, _ in self.FORMS]}"
            )
        self.params: dict[str, Any] = {}
        self.aliases = 0
        self.low = False  # set by threshold()
        self.ctes: list[tuple[str, str, list[Col]]] = []  # (name, 'name AS (...)', columns)

    # -- small helpers
    def chance(self, p: float) -> bool:
        return self.rnd.random() < p

    def alias(self, prefix: str = "t") -> str:
        self.aliases += 1
        return f"{prefix}{self.aliases}"

    def ident(self, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return '"' + name.replace('"', '""') + '"'
        u = self.rnd.random()
        if u < 0.1:
            return name.upper()
        if u < 0.18:
            return f'"{name}"'
        return name

    def ref(self, rel: Rel, col: Col) -> str:
        name = self.ident(col.name)
        return f"{rel.alias}.{name}" if rel.alias else name

    def param(self, value: Any) -> str:
        token = f"__P{len(self.params)}__"
        self.params[token] = value
        return token

    def expand(self, sql: str) -> str:
        """``sql`` with parameter tokens replaced by their values (for probing)."""
        for token, value in self.params.items():
            sql = sql.replace(token, _lit(value) if isinstance(value, float) else repr(value))
        return sql

    def with_prefix(self) -> str:
        if not self.ctes:
            return ""
        return "WITH " + ", ".join(definition for _, definition, _ in self.ctes) + " "

    # -- FROM items
    def source_rel(self, need_alias: bool = True, sample: bool = True, plain: bool = False) -> Rel:
        """A Parquet source as a FROM item (``plain``: no column alias list, no sample)."""
        src = self.rnd.choice(self.data.sources)
        cols = [Col(c.name, c.type, c.values) for c in src.cols]
        alias = self.alias() if need_alias or self.chance(0.85) else None
        text = src.sql
        sample = sample and not plain
        if alias:
            text += f" AS {alias}"
            if not plain and self.chance(0.15):
                m = self.rnd.randint(1, len(cols))
                if self.chance(0.6):
                    new = self.rnd.sample([c.name for c in cols[:m]], m)
                else:
                    new = [f"v{i}" for i in range(m)]
                for c, n in zip(cols[:m], new, strict=True):
                    c.name = n
                text += "(" + ", ".join(self.ident(n) for n in new) + ")"
        body = f"SELECT * FROM {text}"
        if sample and self.chance(0.08):
            seed = self.rnd.randint(0, 99)
            text += self.rnd.choice(
                [
                    f" TABLESAMPLE reservoir({self.rnd.randint(1, 60)} ROWS) REPEATABLE ({seed})",
                    f" TABLESAMPLE bernoulli({self.rnd.choice([10, 50])}%) REPEATABLE ({seed})",
                    f" TABLESAMPLE system({self.rnd.choice([10, 50])}%) REPEATABLE ({seed})",
                ]
            )
        return Rel(text, alias, cols, body)

    def rel(self, depth: int, need_alias: bool = True, derived: float = 0.35) -> Rel:
        """A FROM item: a CTE (when defined), a subquery (share ``derived``) or a source."""
        u = self.rnd.random()
        if self.ctes and u < 0.2:
            name, _, cols = self.rnd.choice(self.ctes)
            alias = self.alias() if self.chance(0.5) or need_alias else None
            text = f"{name} AS {alias}" if alias else name
            return Rel(text, alias or name, [Col(c.name, c.type, c.values) for c in cols],
                       f"{self.with_prefix()}SELECT * FROM {name}")  # fmt: skip
        if depth < 2 and u < derived:
            inner, cols = self.simple(depth + 1)
            alias = self.alias("sq")
            return Rel(f"({inner}) AS {alias}", alias, cols, inner)
        return self.source_rel(need_alias)

    # -- model outputs and thresholds
    def outputs(self, expr: str, rels: list[Rel], group: str | None = None) -> list[float]:
        if len(rels) == 1:
            alias = rels[0].alias or "__r"
            frm = f"({rels[0].body}) AS {alias}"
        else:
            frm = ", ".join(
                f"(SELECT * FROM ({r.body}) AS {r.alias} LIMIT 60) AS {r.alias}" for r in rels
            )
        sql = self.expand(f"SELECT {expr} FROM {frm}" + (f" GROUP BY {group}" if group else ""))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = self.probe.execute(sql).fetchall()
        except Exception:
            return []
        out = []
        for (v,) in rows:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
        return out

    def threshold(self, values: list[float]) -> float:
        """A threshold among (or just beyond) ``values``; ``self.low`` says whether it lies
        in their lower half (so that a comparison can keep the larger side)."""
        finite = sorted(v for v in values if math.isfinite(v))
        self.low = self.chance(0.5)
        if not finite:
            return self.rnd.choice([-1.0, 0.0, 0.5, 1.0])
        u = self.rnd.random()
        if u < 0.05:
            return finite[0] - 1.0 - abs(finite[0])  # full / empty
        if u < 0.1:
            return finite[-1] + 1.0 + abs(finite[-1])
        if u < 0.13:
            return self.rnd.choice([math.nan, math.inf, -math.inf])
        q = self.rnd.choice([0.0, 0.001, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 0.999, 1.0])
        self.low = q < 0.5
        t = finite[min(len(finite) - 1, int(q * len(finite)))]
        if self.chance(0.15):
            t = float(np.nextafter(t, self.rnd.choice([-np.inf, np.inf])))
        return t

    def const(self, col: Col) -> str:
        if col.string:
            pool = list(col.values) or ["x"]
            return "'" + self.rnd.choice([*pool, "zz"]).replace("'", "''") + "'"
        v = self.rnd.choice(col.values) if col.values else float(self.rnd.randint(-5, 5))
        if col.integer:
            return str(int(v))
        return _lit(v)

    # -- ML expressions
    def affine(self, rel: Rel, col: Col, scope: list[Rel]) -> str:
        c = self.ref(rel, col)
        u = self.rnd.random()
        if u < 0.6:
            return c
        w = self.rnd.choice(["2", "0.5", "-1", "3.25", "1e-3", "10"])
        b = self.rnd.choice(["1", "-7.5", "100", "0.1"])
        other = [(r, x) for r in scope for x in r.cols if x.numeric]
        forms = [
            f"{w} * {c}", f"{c} + {b}", f"{w} * {c} + {b}", f"-{c}", f"({c})",
            f"({c} + 1e17) - 1e17", f"0 * {c}", f"{c} / 2", f"CAST({c} AS FLOAT)",
            f"{c}::DOUBLE", "1.5", f"{c} - {self.ref(*self.rnd.choice(other))}",
            f"{c} * {self.param(float(w))}",
        ]  # fmt: skip
        return self.rnd.choice(forms)

    def call(
        self,
        scope: list[Rel],
        model: Model | None = None,
        cross: bool = False,
        aggregate: bool = False,
    ) -> tuple[Model, str, list[Rel]]:
        """A model call on columns of ``scope`` (of one relation unless ``cross``; each
        argument aggregated when ``aggregate``); returns (model, arguments, relations used)."""
        model = model or self.rnd.choice(self.models)
        usable = [r for r in scope if any(c.numeric for c in r.cols)]
        if not usable:  # no numeric column in reach: constant arguments
            constants = [
                _TEMPORAL_CONSTANTS.get(model.type_of(i), "1.5") for i in range(model.inputs)
            ]
            return model, ", ".join(constants), scope[:1]
        rels = usable if cross else [self.rnd.choice(usable)]
        picks = [(r, c) for r in rels for c in r.cols if c.numeric]
        used: list[Rel] = []
        args = []
        for i in range(model.inputs):
            if model.type_of(i) != "DOUBLE":
                r, arg = self.temporal_arg(rels, model.type_of(i))
                used += [r] if r is not None and all(r is not u for u in used) else []
                if aggregate:
                    arg = f"{self.rnd.choice(['min', 'max'])}({arg})"
                args.append(arg)
                continue
            r, c = self.rnd.choice(picks)
            used += [r] if all(r is not u for u in used) else []
            arg = self.affine(r, c, [r])
            if aggregate:
                arg = f"{self.rnd.choice(['avg', 'min', 'max', 'sum'])}({arg})"
            args.append(arg)
        return model, ", ".join(args), used or rels[:1]

    def temporal_arg(self, rels: list[Rel], kind: str) -> tuple[Rel | None, str]:
        """A DATE or TIMESTAMP argument: mostly a bare column of that type, sometimes date
        arithmetic or a cast (run as written), else a constant."""
        picks = [(r, c) for r in rels for c in r.cols if c.temporal]
        same = [(r, c) for r, c in picks if c.type == kind]
        if not picks:
            return None, _TEMPORAL_CONSTANTS[kind]
        if same and self.chance(0.85):
            r, c = self.rnd.choice(same)
            return r, self.ref(r, c)
        r, c = self.rnd.choice(picks)
        col = self.ref(r, c)
        forms = {
            "DATE": [f"{col} + 1", f"CAST({col} AS DATE)", _TEMPORAL_CONSTANTS["DATE"]],
            "TIMESTAMP": [f"{col} + INTERVAL 1 HOUR", f"CAST({col} AS TIMESTAMP)", col],
        }[kind]
        return r, self.rnd.choice(forms)

    def fname(self, model: Model, suffix: str = "") -> str:
        name = model.name + suffix
        u = self.rnd.random()
        return name.upper() if u < 0.1 else name.lower() if u < 0.55 else name

    def ml_value(self, scope: list[Rel]) -> str:
        """A numeric ML expression (for SELECT)."""
        model, args, _ = self.call(scope)
        if model.classes > 1:
            if self.chance(0.5):
                return f"{self.fname(model, '_class')}({args})"
            return f"{self.fname(model)}({args})[{self.rnd.randint(1, model.classes)}]"
        return f"{self.fname(model)}({args})"

    def ml_atom(
        self, scope: list[Rel], cross: bool = False, group: str | None = None, basic: bool = False
    ) -> str:
        """An ML predicate over ``scope`` (``basic``: only comparisons with constants,
        BETWEEN and ``class = k``)."""
        model, args, rels = self.call(scope, cross=cross, aggregate=group is not None)
        if model.classes > 1 and self.chance(0.75):
            fn = f"{self.fname(model, '_class')}({args})"
            seen = [int(v) for v in self.outputs(fn, rels, group)]  # classes the data gets
            if seen and self.chance(0.8):
                k = self.rnd.choice(seen)
            else:
                k = self.rnd.randrange(model.classes)
            if basic:
                return f"{fn} = {k}"
            k = k if self.chance(0.93) else model.classes + 1
            forms = [
                f"{fn} = {k}", f"{fn} = {k}", f"{fn} <> {k}", f"{fn} IN ({k}, {(k + 1) % model.classes})",
                f"{fn} BETWEEN 1 AND 2", f"{fn} >= {k}", f"{k} = {fn}",
            ]  # fmt: skip
            return self.rnd.choice(forms)
        fn = f"{self.fname(model)}({args})"
        if model.classes > 1:
            fn = f"{fn}[{self.rnd.randint(1, model.classes)}]"
        values = self.outputs(fn, rels, group)
        t = self.threshold(values)
        lit = self.param(t) if self.chance(0.06) else _lit(t)
        # mostly keep the larger side: several selective conjuncts would leave nothing
        above = self.low if self.chance(0.75) else not self.low
        op = self.rnd.choice([">", ">=", ">"] if above else ["<", "<=", "<"])
        u = self.rnd.random() * (0.8 if basic else 1.0)
        if u < 0.55:
            return f"{fn} {op} {lit}"
        if u < 0.63:
            flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">="}[op]
            return f"{lit} {flipped} {fn}"
        if u < 0.8:
            t2 = self.threshold(values)
            lo, hi = (t, t2) if t <= t2 or self.chance(0.1) else (t2, t)
            neg = "NOT " if self.chance(0.15) else ""
            return f"{fn} {neg}BETWEEN {_lit(lo)} AND {_lit(hi)}"
        forms = [
            f"{fn} = {_lit(self.rnd.choice(values) if values else t)}",
            f"{fn} <> {lit}",
            f"-{fn} {op} {_lit(-t)}",
            f"{fn} + 0 {op} {lit}",
            f"{fn} IS NULL",
            f"isnan({fn})",
            f"{fn} > {lit} IS NOT TRUE",
        ]
        return self.rnd.choice(forms)

    def plain_atom(self, scope: list[Rel]) -> str:
        rel = self.rnd.choice(scope)
        col = self.rnd.choice(rel.cols)
        c = self.ref(rel, col)
        if col.string:
            return self.rnd.choice(
                [
                    f"{c} = {self.const(col)}",
                    f"{c} LIKE 'x%'",
                    f"{c} IS NOT NULL",
                    f"{c} <> {self.const(col)}",
                ]
            )
        if col.temporal:  # bounds written as DuckDB users write them: a literal or a string
            day = f"DATE '{1994 + self.rnd.randrange(6)}-0{1 + self.rnd.randrange(9)}-15'"
            value = self.rnd.choice([day, day.replace("DATE ", ""), f"{day} + 30"])
            op = self.rnd.choice(["<", "<=", ">", ">=", "=", "<>"])
            return self.rnd.choice([f"{c} {op} {value}", f"{c} BETWEEN {day} AND {day} + 400",
                                    f"{c} IS NULL"])  # fmt: skip
        if not col.numeric:
            return f"{c} IS NOT NULL"
        op = self.rnd.choice(["<", "<=", ">", ">="])
        u = self.rnd.random()
        if u < 0.55:
            return f"{c} {op} {self.const(col)}"
        if u < 0.6:
            return f"{c} {op} {self.param(self.rnd.choice(col.values) if col.values else 0.0)}"
        lo, hi = sorted([self.const(col), self.const(col)], key=float)
        forms = [
            f"{c} IS NULL", f"{c} IS NOT NULL", f"{c} BETWEEN {lo} AND {hi}", f"{c} <> {self.const(col)}",
            f"{c} IN ({self.const(col)}, {self.const(col)})", f"{c} = {self.const(col)}",
        ]  # fmt: skip
        if col.type in ("DOUBLE", "FLOAT"):
            forms.append(f"NOT isnan({c})")
        return self.rnd.choice(forms)

    def condition(self, scope: list[Rel], ml: int = 1, cross: bool = False, depth: int = 0) -> str:
        """A WHERE / ON condition with ``ml`` ML predicates, sometimes under OR / NOT / CASE."""
        atoms = [self.ml_atom(scope, cross=cross) for _ in range(ml)]
        atoms += [self.plain_atom(scope) for _ in range(self.rnd.choice([0, 0, 0, 1, 1, 2]))]
        if depth < 2 and self.chance(0.1):
            atoms.append(self.subquery_atom(scope, depth))
        out = []
        for a in atoms:
            u = self.rnd.random()
            if u < 0.05:
                a = f"NOT ({a})"
            elif u < 0.11:
                a = f"({a} OR {self.plain_atom(scope)})"
            elif u < 0.15:
                a = f"CASE WHEN {a} THEN true ELSE {self.plain_atom(scope)} END"
            elif u < 0.18:
                a = f"coalesce({a}, false)"
            elif u < 0.2:
                a = f"({a}) = true"
            out.append(a)
        self.rnd.shuffle(out)
        return " AND ".join(out)

    def subquery_atom(self, scope: list[Rel], depth: int) -> str:
        outer = self.rnd.choice(scope)
        keys = [c for c in outer.cols if c.numeric] or outer.cols
        key = self.rnd.choice(keys)
        inner = self.source_rel(sample=False)
        ikeys = [c for c in inner.cols if c.numeric]
        ikey = next(
            (c for c in ikeys if c.name.lower() == key.name.lower()), self.rnd.choice(ikeys)
        )
        where = self.condition([inner], depth=depth + 1)
        kind = self.rnd.choice(["in", "not_in", "exists", "not_exists", "scalar", "correlated"])
        if kind in ("in", "not_in"):
            neg = "NOT " if kind == "not_in" else ""
            return f"{self.ref(outer, key)} {neg}IN (SELECT {self.ref(inner, ikey)} FROM {inner.text} WHERE {where})"
        if kind in ("exists", "not_exists"):
            neg = "NOT " if kind == "not_exists" else ""
            return (
                f"{neg}EXISTS (SELECT 1 FROM {inner.text} WHERE "
                f"{self.ref(inner, ikey)} = {self.ref(outer, key)} AND {where})"
            )
        agg = self.rnd.choice(["avg", "min", "max", "count"])
        if kind == "scalar":
            return f"{self.ref(outer, key)} > (SELECT {agg}({self.ref(inner, ikey)}) FROM {inner.text} WHERE {where})"
        return (
            f"(SELECT count(*) FROM {inner.text} WHERE {self.ref(inner, ikey)} = "
            f"{self.ref(outer, key)} AND {where}) > {self.rnd.randint(0, 2)}"
        )

    # -- SELECT lists
    def projection(self, scope: list[Rel], star: bool = True) -> tuple[str, list[Col]]:
        if star and len(scope) == 1 and self.chance(0.35):
            return "*", [Col(c.name, c.type, c.values) for c in scope[0].cols]
        items, out = [], []
        picks = [(r, c) for r in scope for c in r.cols]
        chosen = self.rnd.sample(picks, min(len(picks), self.rnd.randint(1, 4)))
        numeric = [(r, c) for r, c in picks if c.numeric]
        if numeric and not any(c.numeric for _, c in chosen):
            chosen.append(self.rnd.choice(numeric))
        for i, (r, c) in enumerate(chosen):
            items.append(f"{self.ref(r, c)} AS c{i}")
            out.append(Col(f"c{i}", c.type, c.values))
        if self.chance(0.3):
            items.append(f"{self.ml_value(scope)} AS ml0")
            out.append(Col("ml0", "DOUBLE"))
        if self.chance(0.15):
            items.append(f"CASE WHEN {self.ml_atom(scope)} THEN 1 ELSE 0 END AS flag")
            out.append(Col("flag", "INTEGER", (0.0, 1.0)))
        if self.chance(0.05):
            items.append(f"({self.ml_atom(scope)}) AS b0")
            out.append(Col("b0", "BOOLEAN"))
        return ", ".join(items), out

    # -- query forms
    def core(self, depth: int = 0) -> tuple[str, list[Col]]:
        """The shape skipping is for: ML predicates as top-level WHERE conjuncts of a scan."""
        rel = self.source_rel(need_alias=False, plain=True)
        proj, out = self.projection([rel])
        atoms = [
            self.ml_atom([rel], basic=self.chance(0.7)) for _ in range(self.rnd.choice([1, 1, 2]))
        ]
        atoms += [self.plain_atom([rel]) for _ in range(self.rnd.choice([0, 0, 1]))]
        self.rnd.shuffle(atoms)
        sql = f"SELECT {proj} FROM {rel.text} WHERE {' AND '.join(atoms)}"
        if self.chance(0.1):
            sql += f" ORDER BY ALL LIMIT {self.rnd.randint(1, 20)}"
        return sql, out

    def simple(self, depth: int = 0, rel: Rel | None = None) -> tuple[str, list[Col]]:
        rel = rel or self.rel(depth, need_alias=False)
        proj, out = self.projection([rel])
        distinct = "DISTINCT " if self.chance(0.08) else ""
        sql = f"SELECT {distinct}{proj} FROM {rel.text}"
        if self.chance(0.92):
            sql += f" WHERE {self.condition([rel], ml=self.rnd.choice([1, 1, 1, 2]), depth=depth)}"
        if self.chance(0.05):
            sql += (
                f" USING SAMPLE {self.rnd.choice([20, 50])}% (bernoulli, {self.rnd.randint(0, 99)})"
            )
        if self.chance(0.1):
            sql += f" ORDER BY ALL LIMIT {self.rnd.randint(1, 20)}"
            if self.chance(0.3):
                sql += f" OFFSET {self.rnd.randint(1, 5)}"
        return sql, out

    def aggregate(self, depth: int = 0) -> tuple[str, list[Col]]:
        rel = self.rel(depth, need_alias=False)
        groups = [c for c in rel.cols if c.integer or c.string]
        items, out, group = [], [], None
        if groups and self.chance(0.8):
            g = self.rnd.choice(groups)
            group = self.ref(rel, g)
            items.append(f"{group} AS g")
            out.append(Col("g", g.type, g.values))
        elif self.chance(0.3):
            model = self.rnd.choice(self.models)
            group = (
                f"{self.fname(model, '_class')}({self.call([rel], model)[1]})"
                if model.classes > 1
                else f"{self.fname(model)}({self.call([rel], model)[1]}) > 0"
            )
            items.append(f"{group} AS g")
            out.append(Col("g", "BIGINT"))
        items.append("count(*) AS n")
        out.append(Col("n", "BIGINT"))
        numeric = [c for c in rel.cols if c.numeric]
        for i in range(self.rnd.randint(0, 2)):
            c = self.rnd.choice(numeric)
            fn = self.rnd.choice(["sum", "min", "max", "avg", "count"])
            items.append(f"{fn}({self.ref(rel, c)}) AS a{i}")
            out.append(Col(f"a{i}", "DOUBLE"))
        if self.chance(0.3):
            items.append(f"count(*) FILTER (WHERE {self.ml_atom([rel])}) AS nf")
            out.append(Col("nf", "BIGINT"))
        if self.chance(0.2):
            items.append(f"max({self.ml_value([rel])}) AS mx")
            out.append(Col("mx", "DOUBLE"))
        sql = f"SELECT {', '.join(items)} FROM {rel.text}"
        if self.chance(0.85):
            sql += f" WHERE {self.condition([rel], depth=depth)}"
        if group is not None:
            sql += f" GROUP BY {group}"
            if self.chance(0.35):
                having = (
                    self.ml_atom([rel], group=group)
                    if self.chance(0.6)
                    else f"count(*) > {self.rnd.randint(0, 3)}"
                )
                sql += f" HAVING {having}"
        return sql, out

    def join(self, depth: int = 0) -> tuple[str, list[Col]]:
        a, b = self.rel(depth, derived=0.15), self.rel(depth, derived=0.15)
        kind = self.rnd.choice(self.JOINS)
        ka = [c for c in a.cols if c.numeric]
        kb = [c for c in b.cols if c.numeric]
        x = self.rnd.choice(ka)
        y = next((c for c in kb if c.name.lower() == x.name.lower()), self.rnd.choice(kb))
        eq = f"{self.ref(a, x)} = {self.ref(b, y)}"
        where_scope = [a]
        out_scope = [a, b]
        on = ""
        if kind in ("INNER", "LEFT", "RIGHT", "FULL"):
            extra = (
                f" AND {self.ml_atom(self.rnd.choice([[a], [b], [a, b]]), cross=True)}"
                if self.chance(0.5)
                else ""
            )
            using = x.name.lower() == y.name.lower() and not extra and self.chance(0.3)
            on = f" USING ({self.ident(x.name)})" if using else f" ON {eq}{extra}"
            sep = f" {kind} JOIN "
            if kind != "INNER":
                where_scope = self.rnd.choice([[a], [b], [a, b]])
            if using:
                out_scope = [a]
        elif kind in ("SEMI", "ANTI"):
            extra = f" AND {self.ml_atom([b])}" if self.chance(0.6) else ""
            on = f" ON {eq}{extra}"
            sep = f" {kind} JOIN "
            out_scope = [a]
        elif kind == "ASOF":
            ineq = self.rnd.choice([c for c in kb if c is not y] or [y])
            ax = self.rnd.choice(ka)
            op = self.rnd.choice([">=", ">", "<=", "<"])
            on = f" ON {eq} AND {self.ref(a, ax)} {op} {self.ref(b, ineq)}"
            sep = " ASOF LEFT JOIN " if self.chance(0.3) else " ASOF JOIN "
            # which of several tied right rows pairs up is not defined: show only the keys
            b = Rel(b.text, b.alias, [y, ineq] if ineq is not y else [y], b.body)
            out_scope = [a, b]
        elif kind == "CROSS":
            sep = " CROSS JOIN "
            where_scope = [a, b]
        elif kind == "COMMA":
            sep = ", "
            where_scope = [a, b]
        elif kind == "POSITIONAL":
            sep = " POSITIONAL JOIN "
            where_scope = self.rnd.choice([[a], [b], [a, b]])
        elif kind == "NATURAL":
            sep = self.rnd.choice([" NATURAL JOIN ", " NATURAL LEFT JOIN "])
            out_scope = [a]
        else:  # LATERAL
            inner = self.source_rel(sample=False)
            ik = next(
                (c for c in inner.cols if c.numeric and c.name.lower() == x.name.lower()), None
            )
            ik = ik or self.rnd.choice([c for c in inner.cols if c.numeric])
            proj = [c for c in inner.cols if c.numeric][:2]
            alias = self.alias("l")
            items = ", ".join(
                f"{self.ref(inner, c)} AS {self.ident(f'l{i}')}" for i, c in enumerate(proj)
            )
            if self.chance(0.5):
                lateral = (
                    f"(SELECT {items} FROM {inner.text} WHERE {self.ref(inner, ik)} = {self.ref(a, x)} "
                    f"AND {self.ml_atom([inner])} ORDER BY ALL LIMIT {self.rnd.randint(1, 3)})"
                )
            else:
                lateral = f"(SELECT {self.ref(a, x)} * 2 AS l0, {self.ml_value([a])} AS l1)"
                proj = [x, x]
            b = Rel(f"LATERAL {lateral} AS {alias}", alias,
                    [Col(f"l{i}", "DOUBLE") for i in range(len(proj))], "")  # fmt: skip
            sep = self.rnd.choice([", ", " CROSS JOIN ", " LEFT JOIN "])
            on = " ON true" if sep == " LEFT JOIN " else ""
            out_scope, where_scope = [a, b], [a]
        proj, out = self.projection(out_scope, star=False)
        sql = f"SELECT {proj} FROM {a.text}{sep}{b.text}{on}"
        conds = []
        if kind in ("CROSS", "COMMA") and self.chance(0.8):
            conds.append(eq)
        if self.chance(0.85):
            conds.append(
                self.condition(where_scope, cross=len(where_scope) > 1 and self.chance(0.3))
            )
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        if kind == "CROSS" and not conds:
            sql = f"SELECT count(*) AS n, count({out[0].name}) AS m FROM ({sql}) AS j"
            out = [Col("n", "BIGINT"), Col("m", "BIGINT")]
        return sql, out

    def set_operation(self, depth: int = 0) -> tuple[str, list[Col]]:
        k = self.rnd.randint(1, 3)
        sides = []
        for _ in range(2):
            rel = self.rel(depth + 1, need_alias=False)
            numeric = [c for c in rel.cols if c.numeric]
            names = [f"c{i}" for i in range(k)]
            items = [
                f"CAST({self.ref(rel, self.rnd.choice(numeric))} AS DOUBLE) AS {n}" for n in names
            ]
            sql = f"SELECT {', '.join(items)} FROM {rel.text} WHERE {self.condition([rel], depth=depth + 1)}"
            sides.append(f"({sql})" if self.chance(0.5) else sql)
        op = self.rnd.choice(
            ["UNION", "UNION ALL", "INTERSECT", "INTERSECT ALL", "EXCEPT", "EXCEPT ALL",
             "UNION BY NAME", "UNION ALL BY NAME"]
        )  # fmt: skip
        sql = f"{sides[0]} {op} {sides[1]}"
        if self.chance(0.1):
            sql = f"SELECT * FROM ({sql}) AS u ORDER BY ALL LIMIT {self.rnd.randint(1, 10)}"
        return sql, [Col(f"c{i}", "DOUBLE") for i in range(k)]

    def with_ctes(self, depth: int = 0) -> tuple[str, list[Col]]:
        """WITH ... SELECT: CTE names that clash with aliases, a model, a table function,
        column lists, MATERIALIZED, and sometimes a name defined again inside (shadowing)."""
        saved = self.ctes
        self.ctes = []
        names = self.rnd.sample(
            ["x", "y", "t1", "cte", "m", "read_parquet"], self.rnd.randint(1, 2)
        )
        for name in names:
            body, cols = self.simple(depth + 1)
            header = name
            if self.chance(0.2) and cols:
                new = [f"w{i}" for i in range(len(cols))]
                for c, n in zip(cols, new, strict=True):
                    c.name = n
                header = f"{name}({', '.join(new)})"
            materialized = self.rnd.choice(["", "", "MATERIALIZED ", "NOT MATERIALIZED "])
            self.ctes.append((name, f"{header} AS {materialized}({body})", cols))
        prefix = self.with_prefix()
        rel = self.rel(depth, need_alias=False) if self.chance(0.7) else self.source_rel(False)
        main, out = self.simple(depth + 1, rel=rel)
        if self.chance(0.2):  # the first name defined again inside, shadowing the outer one
            outer, self.ctes = self.ctes, []
            inner_body, _ = self.simple(depth + 1)
            self.ctes = outer
            shadow = outer[0][0]
            main = (
                f"SELECT * FROM ({main}) AS z WHERE EXISTS "
                f"(WITH {shadow} AS ({inner_body}) SELECT 1 FROM {shadow})"
            )
        self.ctes = saved
        return prefix + main, out

    def window(self, depth: int = 0) -> tuple[str, list[Col]]:
        rel = self.rel(depth, need_alias=False)
        picks = self.rnd.sample(rel.cols, min(len(rel.cols), self.rnd.randint(1, 3)))
        refs = [self.ref(rel, c) for c in picks]
        order = ", ".join(refs)
        part = self.rnd.choice(refs)
        numeric = [r for r, c in zip(refs, picks, strict=True) if c.numeric]
        items = [f"{r} AS c{i}" for i, r in enumerate(refs)]
        items.append(f"row_number() OVER (PARTITION BY {part} ORDER BY {order}) AS rn")
        if numeric and self.chance(0.6):
            items.append(
                f"sum({self.rnd.choice(numeric)}) OVER (ORDER BY {order} ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS w1"
            )
        if self.chance(0.5):
            items.append(f"lag({self.rnd.choice(refs)}) OVER (ORDER BY {order}) AS w2")
        if self.chance(0.5):
            items.append(
                f"count(*) FILTER (WHERE {self.ml_atom([rel])}) OVER (PARTITION BY {part}) AS w3"
            )
        if self.chance(0.3):
            items.append(f"max({self.ml_value([rel])}) OVER (PARTITION BY {part}) AS w4")
        sql = (
            f"SELECT {', '.join(items)} FROM {rel.text} WHERE {self.condition([rel], depth=depth)}"
        )
        if self.chance(0.3):
            sql += f" QUALIFY rn <= {self.rnd.randint(1, 3)}"
        return sql, []

    def pivot(self, depth: int = 0) -> tuple[str, list[Col]]:
        rel = self.rel(depth, need_alias=False)
        numeric = [c for c in rel.cols if c.numeric]
        keys = [c for c in rel.cols if c.string or c.integer] or numeric
        if self.chance(0.6):
            on, g = self.rnd.choice(keys), self.rnd.choice(keys)
            v = self.rnd.choice(numeric)
            inner = (
                f"SELECT {self.ref(rel, on)} AS pc, {self.ref(rel, g)} AS g, {self.ref(rel, v)} AS v "
                f"FROM {rel.text} WHERE {self.condition([rel], depth=depth)}"
            )
            values = sorted(set(on.values))[:3]
            in_list = (
                " IN (" + ", ".join(self.const(Col("c", on.type, (x,))) for x in values) + ")"
                if values and self.chance(0.4)
                else ""
            )
            agg = self.rnd.choice(["count(*)", "sum(v)", "min(v)", "max(v)"])
            sql = f"PIVOT ({inner}) ON pc{in_list} USING {agg} GROUP BY g"
        else:
            picks = self.rnd.sample(numeric, min(len(numeric), 2))
            key = self.rnd.choice(rel.cols)
            items = [f"{self.ref(rel, key)} AS key"] + [
                f"CAST({self.ref(rel, c)} AS DOUBLE) AS u{i}" for i, c in enumerate(picks)
            ]
            inner = f"SELECT {', '.join(items)} FROM {rel.text} WHERE {self.condition([rel], depth=depth)}"
            cols = ", ".join(f"u{i}" for i in range(len(picks)))
            nulls = " INCLUDE NULLS" if self.chance(0.3) else ""
            if self.chance(0.5):
                sql = f"UNPIVOT{nulls} ({inner}) ON {cols} INTO NAME name VALUE val"
            else:
                sql = f"SELECT * FROM ({inner}) AS up UNPIVOT{nulls} (val FOR name IN ({cols}))"
        if self.chance(0.3):
            sql = f"SELECT * FROM ({sql}) AS pv"
        return sql, []

    FORMS = (
        ("core", 25), ("simple", 35), ("aggregate", 10), ("join", 20), ("set_operation", 6), ("with_ctes", 10),
        ("window", 6), ("pivot", 5), ("ordered", 8),
    )  # fmt: skip

    def ordered(self, depth: int = 0) -> tuple[str, list[Col]]:
        """Rows of one file scan in DuckDB's insertion order (filters and a LIMIT without
        ORDER BY keep it): the result is a list, compared as one."""
        rel = self.source_rel(need_alias=False, sample=False)  # a sample is not a list
        proj, out = self.projection([rel])
        sql = f"SELECT {proj} FROM {rel.text} WHERE {self.condition([rel], ml=1, depth=depth)}"
        # a LIMIT over a subquery condition (a join) keeps rows DuckDB does not define
        if self.chance(0.7) and sql.upper().count("SELECT") == 1:
            sql += f" LIMIT {self.rnd.randint(1, 30)}"
            if self.chance(0.3):
                sql += f" OFFSET {self.rnd.randint(1, 10)}"
        return sql, out

    def _model_macro(self, model: Model) -> tuple[str, str]:
        """A user macro named like a model's SQL function (it replaces the model there)."""
        name = f"{model.name}_class" if model.classes > 1 and self.chance(0.7) else model.name
        args = ", ".join(f"x{i}" for i in range(model.inputs))
        body = "1" if name.endswith("_class") else self.rnd.choice(["x0 + 1", "0.5", "-x0"])
        if model.classes > 1 and not name.endswith("_class"):
            body = f"[{body}, 0.0]"
        return f"CREATE TEMP MACRO {name}({args}) AS {body}", f"DROP MACRO {name}"

    def query(self) -> Query:
        self.params = {}
        self.ctes = []
        forms, weights = zip(*self.forms, strict=True)
        form = self.rnd.choices(forms, weights)[0]
        sql, _ = getattr(self, form)(0)
        setting = self.rnd.choice(SETTINGS) if self.chance(0.15) else None
        if setting is None and self.models and self.chance(0.03):
            setting = self._model_macro(self.rnd.choice(self.models))
        api = "execute" if self.chance(0.3) else "sql"
        params: list | dict | None = None
        tokens = re.findall(r"__P\d+__", sql)
        if tokens:
            if self.chance(0.7):
                params = [self.params[t] for t in tokens]
                sql = re.sub(r"__P\d+__", "?", sql)
            else:
                order = list(dict.fromkeys(tokens))
                params = [self.params[t] for t in order]
                for i, t in enumerate(order, start=1):
                    sql = sql.replace(t, f"${i}")
        # DuckDB defines the order of a filtered scan, not of a join: an IN / EXISTS
        # subquery in the condition is a join whose sides the optimizer may swap
        ordered = form == "ordered" and sql.upper().count("SELECT") == 1
        return Query(sql, params, setting, api, form, ordered=ordered)


# ----------------------------------------------------------------------------- trials
def _error_line(error: Exception) -> str:
    """The error and where it was raised (innermost frame), on one line."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if f.filename == __file__] or frames
    where = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
    return f"{type(error).__name__}: {error}{where}"


def _fuzz_verifier():
    from mlskip.verifier.cascade import Verifier

    return Verifier(methods=("ibp", "crown"), sample_points=0)


def _connections(models: list[Model], threads: int, verifier) -> tuple[Any, Any]:
    import mlskip

    on = mlskip.connect(verifier=verifier)
    off = mlskip.connect(skipping=False)
    for con in (on, off):
        con.execute(f"SET threads = {threads}")
        for m in models:
            con.register_model(m.name, m.obj, input_types=m.types or None)
    return on, off


def _recorder(con: Any) -> list:
    """Reports of the plans ``con`` ran (by wrapping its planning step, where it has one)."""
    reports: list = []
    inner = getattr(con, "_report", None)
    if inner is None:
        return reports

    def report(query, evaluate, *args, **kwargs):
        r = inner(query, evaluate, *args, **kwargs)
        if evaluate:
            reports.append(r)
        return r

    con._report = report
    return reports


def run_trial(
    seed: int,
    workdir: Path,
    queries: int = QUERIES_PER_TRIAL,
    only: int | None = None,
    threads: int = 1,
    timeout: float = QUERY_TIMEOUT,
    verifier=None,
    echo: Callable[[str], None] | None = None,
    errors: list[str] | None = None,
    notes: list[str] | None = None,
    forms: Sequence[str] | None = None,
) -> list[QueryResult]:
    """Trial ``seed``: a dataset, models, and ``queries`` queries checked (only query
    ``only`` when given; the others are still drawn, so it is the same query).
    ``forms``: only these query forms (``QueryGen.FORMS``; other forms, other queries)."""
    import logging

    import duckdb

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    rnd = random.Random(seed)
    nrng = np.random.default_rng(rnd.getrandbits(64))
    root = workdir / f"s{seed}"
    root.mkdir(parents=True, exist_ok=True)
    probe = duckdb.connect()
    probe.execute("SET threads = 1")
    on = off = None
    try:
        data = draw_dataset(rnd, nrng, root, probe)
        models = draw_models(rnd, nrng, seed, data.temporal)
        data.models = [m.description for m in models]
        if notes is not None:
            notes += [f"seed {seed}: {f}" for f in data.failures]
        if not data.sources:
            return []
        on, off = _connections(models, threads, verifier or _fuzz_verifier())
        reports = _recorder(on)
        gen = QueryGen(rnd, data, models, off, forms)
        results = []
        for index in range(queries):
            try:
                query = gen.query()
            except Exception as error:  # the generator's own bug: reported, the trial goes on
                if errors is None:
                    raise
                errors.append(f"seed {seed} query {index}: {_error_line(error)}")
                continue
            if only is not None and index != only:
                continue
            reports.clear()
            result = check_query(on, off, query, timeout)
            result.seed, result.index = seed, index
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:  # newer connections bind parameters when planning
                        report = on.explain_skipping(query.sql, params=query.params)
                    except TypeError:
                        report = on.explain_skipping(query.sql)
                result.planned = bool(report.files)
                result.pruned = report.pruned > 0 or report.all_match > 0
                rewritten = report.rewritten
            except Exception as error:
                rewritten = False
                result.detail = (result.detail + "; " if result.detail else "") + (
                    f"explain_skipping raised {type(error).__name__}: {error}"
                )
            ran = [r for r in reports if getattr(r, "is_query", True)]
            if ran:
                rewritten = any(getattr(r, "rewritten", False) for r in ran)
                result.pruned |= any(getattr(r, "pruned", 0) > 0 for r in ran)
            result.as_written = not rewritten
            result.sql = query.sql.replace(str(root), "<root>")
            result.skipping = result.skipping.replace(str(root), "<root>")
            result.baseline = result.baseline.replace(str(root), "<root>")
            if result.status == "mismatch":
                result.layout = data.summary()
                if echo is not None:
                    echo(result.describe())
            results.append(result)
        return results
    finally:
        for con in (on, off, probe):
            if con is not None:
                with contextlib.suppress(Exception):
                    con.close()
        shutil.rmtree(root, ignore_errors=True)


def replay(seed: int, index: int, **options: Any) -> QueryResult | None:
    """Query ``index`` of trial ``seed`` checked again (printed when it mismatches)."""
    with tempfile.TemporaryDirectory(prefix="mlskip-sqlfuzz-") as tmp:
        results = run_trial(seed, Path(tmp), queries=index + 1, only=index, echo=print, **options)
    return results[0] if results else None


def run_chunk(
    seeds: list[int],
    queries: int,
    threads: int,
    timeout: float,
    echo: bool,
    forms: Sequence[str] | None = None,
) -> tuple[list[QueryResult], list[str], list[str]]:
    """Trials ``seeds`` one after the other: (query results, fuzzer errors, writer failures)."""
    results: list[QueryResult] = []
    errors: list[str] = []
    notes: list[str] = []
    verifier = _fuzz_verifier()
    with tempfile.TemporaryDirectory(prefix="mlskip-sqlfuzz-") as tmp:
        for s in seeds:
            try:
                results += run_trial(
                    s, Path(tmp), queries, threads=threads, timeout=timeout, verifier=verifier,
                    echo=print if echo else None, errors=errors, notes=notes, forms=forms,
                )  # fmt: skip
            except Exception as error:  # the fuzzer's own failure: reported with its seed
                errors.append(f"seed {s}: {_error_line(error)}")
    return results, errors, notes


def run_campaign(
    trials: int,
    seed: int = 0,
    workers: int = 1,
    queries_per_trial: int = QUERIES_PER_TRIAL,
    threads: int = 1,
    timeout: float = QUERY_TIMEOUT,
    echo: bool = False,
    forms: Sequence[str] | None = None,
    progress: bool = False,
) -> CampaignResult:
    """``trials`` trials with seeds ``seed .. seed + trials - 1``, ``queries_per_trial``
    queries each, on ``workers`` processes; ``echo`` prints mismatches as they are found;
    ``forms`` restricts the query forms (e.g. ``("join",)``) for a focused campaign;
    ``progress`` shows trials done (also as plain lines when piped)."""
    from mlskip.progress import progress as make_progress

    start = time.perf_counter()
    seeds = list(range(seed, seed + trials))
    chunks = [seeds[i : i + CHUNK] for i in range(0, trials, CHUNK)]
    campaign = CampaignResult(trials, seed)
    with contextlib.ExitStack() as stack:
        if workers <= 1:
            done = (
                run_chunk(chunk, queries_per_trial, threads, timeout, echo, forms)
                for chunk in chunks
            )
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=context))
            futures = [
                pool.submit(run_chunk, c, queries_per_trial, threads, timeout, echo, forms)
                for c in chunks
            ]
            done = (future.result() for future in futures)
        bar = stack.enter_context(make_progress(disable=not progress))
        task = bar.add_task("sql fuzz trials", total=trials)
        for chunk, (results, errors, notes) in zip(chunks, done, strict=True):
            campaign.queries += results
            campaign.errors += errors
            campaign.notes += notes
            bar.advance(task, len(chunk))
    campaign.queries.sort(key=lambda q: (q.seed, q.index))
    campaign.seconds = time.perf_counter() - start
    return campaign


def main(
    trials: int, seed: int, workers: int = 1, queries_per_trial: int = QUERIES_PER_TRIAL
) -> bool:
    """The CLI's ``selfcheck --sql``: run, print the summary; True when nothing mismatched."""
    campaign = run_campaign(trials, seed, workers, queries_per_trial, echo=True, progress=True)
    print(campaign.summary(mismatches=False))
    return campaign.ok

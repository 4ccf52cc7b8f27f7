"""Replace a Parquet scan by per-file scans that read only the planned row groups.

Each file becomes ``read_parquet(file, ..., file_row_number = true)`` filtered
to the row ranges of the row groups to read (DuckDB pushes a range's BETWEEN
into the scan and skips the row groups outside it; ``ranges_condition``). ML predicates moved into the scan
become ``(all-match ranges) OR predicate`` so the model does not run on row
groups where every row provably qualifies. Files are combined with
UNION ALL: DuckDB would not push per-file ranges through one multi-file scan.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

import sqlglot
from sqlglot import exp

from mlskip.skipper.rules.predicates import MLPredicate, conjuncts
from mlskip.skipper.rules.scans import ParquetScan

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class FileScan:
    """What to read of one file: ``read`` row ranges (``None`` = the whole file),
    per moved predicate the ranges where every row satisfies it, and optionally
    per predicate the name of a relation listing the ``file_row_number`` of the
    other rows that satisfy it (evaluated in advance, in large batches)."""

    path: str
    read: Ranges | None
    all_match: tuple[Ranges, ...]
    matches: tuple[str | None, ...] = ()


def sql_string(value: str) -> str:
    """A SQL string literal for ``value`` (quotes doubled, so paths cannot inject SQL)."""
    return "'" + value.replace("'", "''") + "'"


# more ranges than this are tested by bucket (a hash lookup per row) rather than by a
# chain of BETWEENs: DuckDB evaluates an OR of comparisons term by term on every row, and
# over ~10 ranges that costs more than reading the row groups it skips
MAX_OR_RANGES = 8
MIN_BUCKET_ROWS = 256  # buckets finer than this make the IN list larger than it saves
MAX_BUCKETS = 100_000


def ranges_condition(ranges: Ranges, column: str = "file_row_number") -> str:
    """``column`` inside any of the inclusive ``ranges`` (sorted, disjoint); FALSE when
    there are none. An exact condition DuckDB evaluates cheaply: one range is a BETWEEN
    (pushed into the scan: row groups outside it are not read); more are that BETWEEN over
    their span, and then a few BETWEENs or, for many row-group-aligned ranges, membership
    of ``column // G`` in the buckets of ``G`` rows they cover."""
    if not ranges:
        return "FALSE"
    terms = [
        f"{column} = {lo}" if lo == hi else f"{column} BETWEEN {lo} AND {hi}" for lo, hi in ranges
    ]
    if len(terms) == 1:
        return terms[0]
    span = f"{column} BETWEEN {ranges[0][0]} AND {ranges[-1][1]}"
    buckets = _buckets(ranges)
    if len(ranges) > MAX_OR_RANGES and buckets is not None:
        size, ids = buckets
        return f"({span} AND {column} // {size} IN ({', '.join(map(str, ids))}))"
    return f"({span} AND (" + " OR ".join(terms) + "))"


# scattered ranges that keep more than this share of the rows they span are cheaper read
# whole: DuckDB tests a filter of many ranges on every row, which cost ~40% of reading the
# rows it skips (SF1 lineitem, 10,000-row row groups, 87% kept: 0.51 s against 0.39 s for
# all rows; 50% kept: 0.36 s against 0.38 s)
MAX_FILTERED_SHARE = 0.5


def span_is_cheaper(ranges: Ranges) -> bool:
    """Whether reading every row the (sorted, disjoint) ``ranges`` span, and dropping the
    others after reading, costs less than DuckDB's filter of the ranges."""
    if len(ranges) < 2:
        return False
    kept = sum(hi - lo + 1 for lo, hi in ranges)
    return kept > MAX_FILTERED_SHARE * (max(hi for _, hi in ranges) - ranges[0][0] + 1)


def _buckets(ranges: Ranges) -> tuple[int, list[int]] | None:
    """``(G, bucket ids)``: the largest ``G`` that every range starts at and every range
    but the last ends at a multiple of, and the buckets ``r // G`` of the ranges' rows
    (the last range's last bucket may reach past its end: the span's BETWEEN cuts it);
    None when ``G`` would be small or the buckets many."""
    size = 0
    for i, (lo, hi) in enumerate(ranges):
        size = math.gcd(size, lo)
        if i + 1 < len(ranges):
            size = math.gcd(size, hi + 1)
    if size < MIN_BUCKET_ROWS:  # also 0: one range starting at row 0 (not reached here)
        return None
    ids: list[int] = []
    for lo, hi in ranges:
        ids.extend(range(lo // size, hi // size + 1))
        if len(ids) > MAX_BUCKETS:
            return None
    return size, ids


def _strip_qualifiers(node: exp.Expression) -> exp.Expression:
    def strip(n: exp.Expression) -> exp.Expression:
        if isinstance(n, exp.Column) and n.table:
            return exp.column(n.this.copy())
        return n

    return node.transform(strip)  # a copy: the query's tree stays as it is


def default_binding_name(scan: ParquetScan) -> str:
    """The name DuckDB gives a scan without alias (file stem or function name)."""
    if scan.alias:
        return scan.alias
    inner = scan.node.this
    if isinstance(inner, exp.Identifier):
        return PurePath(inner.this).stem.split(".")[0]
    return "read_parquet" if isinstance(inner, exp.ReadParquet) else str(inner.this).lower()


def read_parquet_call(scan: ParquetScan, path: str) -> str:
    """``read_parquet(path, <the scan's options>, file_row_number = TRUE)``, naming DuckDB's
    own reader (``system.main``): a user macro called ``read_parquet`` must not be read."""
    options = [(k, v) for k, v in scan.options if k != "file_row_number"]
    args = ", ".join([sql_string(path)] + [f"{k} = {v}" for k, v in options])
    return f"system.main.read_parquet({args}, file_row_number = TRUE)"


def unqualified_sql(node: exp.Expression) -> str:
    """``node`` as DuckDB SQL with table qualifiers removed (for use inside a file scan)."""
    return _strip_qualifiers(node).sql(dialect="duckdb", copy=False)  # a copy already


def file_scan_sql(scan: ParquetScan, file: FileScan, moved: Sequence[MLPredicate]) -> str:
    """The SELECT that reads one file as planned.

    Rows kept through a relation of matches (a semi-join, which DuckDB does not run in
    the file's order) are put back in the file's order when the query can observe
    order (``order_observable``): DuckDB preserves insertion order for the query as
    written, so ``LIMIT`` without ``ORDER BY``, ``first()``, ``list()`` or a plain
    ``SELECT`` give the same rows in the same order with skipping as without.
    """
    user_wants_row_number = any(
        k == "file_row_number" and v.upper() == "TRUE" for k, v in scan.options
    )
    star = "*" if user_wants_row_number else "* EXCLUDE (file_row_number)"
    where: list[str] = []
    matches = file.matches or (None,) * len(moved)
    if file.read is not None:
        read = file.read
        # where every moved predicate keeps only listed rows (matches, all-match ranges),
        # rows of pruned row groups are dropped anyway: their filter need only save reading
        listed = bool(moved) and all(m is not None for m in matches)
        if listed and span_is_cheaper(tuple(sorted(read))):
            read = ((min(lo for lo, _ in read), max(hi for _, hi in read)),)
        where.append(ranges_condition(read))
    for predicate, ranges, match in zip(moved, file.all_match, matches, strict=True):
        if match is not None:
            condition = f"file_row_number IN (SELECT file_row_number FROM {match})"
        else:
            condition = unqualified_sql(predicate.node)
        where.append(f"({ranges_condition(ranges)} OR {condition})" if ranges else condition)
    source = read_parquet_call(scan, file.path)
    filtered = " WHERE " + " AND ".join(where) if where else ""
    if any(m is not None for m in matches) and order_observable(scan):
        # ASC written out: SET default_order = 'desc' would reverse a bare ORDER BY
        inner = f"SELECT * FROM {source}{filtered} ORDER BY file_row_number ASC"
        return f"SELECT {star} FROM ({inner})"
    return f"SELECT {star} FROM {source}{filtered}"


_ORDER_FREE_CALLS = (
    "count(a)", "sum(a)", "avg(a)", "mean(a)", "min(a)", "max(a)", "bool_and(a)",
    "bool_or(a)", "count_if(a)", "stddev(a)", "stddev_samp(a)", "stddev_pop(a)",
    "var_samp(a)", "var_pop(a)", "variance(a)", "median(a)", "quantile_cont(a, 0.5)",
    "quantile_disc(a, 0.5)", "approx_count_distinct(a)",
)  # fmt: skip


@functools.cache
def order_free_aggregates() -> frozenset[str]:
    """Aggregates whose result does not depend on the order of their input (up to float
    rounding of sums, which DuckDB's own parallel execution does not fix either), by the
    name sqlglot gives the function DuckDB knows under each of these names. Computed on
    first use: parsing them costs a first query tens of milliseconds."""
    names = set()
    for call in _ORDER_FREE_CALLS:
        node = sqlglot.parse_one(f"SELECT {call}", dialect="duckdb").expressions[0]
        names.add(node.sql_name() if isinstance(node, exp.AggFunc) else call.split("(")[0].upper())
    return frozenset(names)


def order_observable(scan: ParquetScan) -> bool:
    """Whether the query can see the order in which the scan's rows arrive: unless the
    scan's SELECT aggregates them with known order-free aggregates only (no window
    function, no function sqlglot does not know, which may be an aggregate), it can
    (its rows, a LIMIT, first(), list() ...)."""
    select = scan.select
    own = [n for n in select.walk() if n is select or n.find_ancestor(exp.Select) is select]
    if any(isinstance(n, exp.Window) for n in own) or _unknown_calls(select, own):
        return True
    aggregates = [n for n in own if isinstance(n, exp.AggFunc)]
    if not (aggregates or select.args.get("group")):
        return True
    return any(agg.sql_name() not in order_free_aggregates() for agg in aggregates)


def _unknown_calls(select: exp.Select, own: list[exp.Expression]) -> bool:
    """Calls sqlglot does not know in the SELECT outside its WHERE clause (the ML
    predicates moved into the scan sit there; elsewhere a call may be an aggregate)."""
    where = select.args.get("where")
    return any(
        isinstance(n, exp.Anonymous) and (where is None or n.find_ancestor(exp.Where) is not where)
        for n in own
    )


def rewrite_scan(
    scan: ParquetScan, files: Sequence[FileScan], moved: Sequence[MLPredicate]
) -> tuple[str, str]:
    """Rewrite ``scan`` in place (in its tree) to read ``files`` as planned, and
    drop the ``moved`` predicates from the SELECT's WHERE clause.

    The tree gets a placeholder table in the scan's place; the returned pair (its name,
    the SQL that reads the files) is what ``spliced_sql`` puts there. The files' SQL is
    written here, so it is spliced in as text rather than parsed and generated again.
    """
    if not files:
        raise ValueError("a scan rewrite needs at least one file")
    by_name = any(k == "union_by_name" and v.upper() == "TRUE" for k, v in scan.options)
    union = " UNION ALL BY NAME " if by_name else " UNION ALL "
    body = union.join(file_scan_sql(scan, f, moved) for f in files)
    placeholder = f"mlskip_scan_{uuid.uuid4().hex}"
    scan.node.replace(
        exp.Table(
            this=exp.to_identifier(placeholder, quoted=True),
            alias=exp.TableAlias(this=exp.to_identifier(default_binding_name(scan), quoted=True)),
        )
    )
    if moved:
        moved_ids = {id(p.node) for p in moved}
        where = scan.select.args.get("where")
        remaining = [t for t in conjuncts(where) if id(t) not in moved_ids]
        if remaining:
            scan.select.set("where", exp.Where(this=exp.and_(*remaining, copy=False)))
        else:
            scan.select.set("where", None)
    return placeholder, f"({body})"


def spliced_sql(tree: exp.Expression, scans: Mapping[str, str]) -> str:
    """``tree`` as DuckDB SQL with each placeholder of ``rewrite_scan`` replaced by its SQL.

    ``scans`` in the order they were rewritten: a scan rewritten later may hold an
    earlier one in a conjunct it moved into its files' SQL (a subquery in its WHERE),
    once per file, so later ones are spliced first. A scan whose placeholder is in
    neither (its node sat in a conjunct that was moved as text) stays as written there.
    """
    text = tree.sql(dialect="duckdb", copy=False)  # the generator may edit the tree
    for placeholder, body in reversed(list(scans.items())):
        text = text.replace(f'"{placeholder}"', body)
    return text

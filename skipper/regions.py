"""Build one verifier region per row group from footer summaries and SQL bounds.

A model argument that is a plain column takes that column's min-max box
(cut by the bounds implied by ordinary conjuncts such as ``a < 10``) and the
stored polygons of column pairs that are both plain arguments. An affine
argument ``sum(w * col) + c`` takes the interval-arithmetic range of its
columns' boxes, widened outward by more than the rounding of both our
arithmetic and DuckDB's evaluation of the same expression (each at most
(n + 1) units of roundoff times the sum of term magnitudes; we widen by
twice (n + 2) units).

SQL bounds that leave a column's box empty prove the row group empty, except
where NaN rows (outside every box) would pass them: DuckDB orders NaN above
every number, so ``x > c`` and ``x >= c`` hold for NaN.

Row groups where a region cannot be trusted are flagged rather than verified:
a float argument column that may hold NaN (the model's output is then
unpredictable, and DuckDB orders NaN above every number) makes the row group
undecidable; an argument column with NULLs rules out "every row qualifies"
(NULL arguments give NULL, which never qualifies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mlskip.rules.predicates import AffineArg

EPS = 2.0**-52


class RowGroupFacts(Protocol):
    """What the planner reads of one row group (``mlskip.metadata.RowGroupSummary``)."""

    num_rows: int
    box: Mapping[str, tuple[float, float]]
    null_counts: Mapping[str, int | None]
    may_have_nan: frozenset[str]
    halfspaces: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Regions:
    """Regions for one predicate over many row groups, plus per-row-group flags.

    ``lower``/``upper`` [n, d]; ``pairs`` model-input index pairs with their
    batched halfspaces; ``empty``: the SQL bounds exclude every row;
    ``all_null``: some argument is NULL on every row; ``untrusted``: NaN
    possible; ``has_nulls``: some argument has a NULL somewhere.
    """

    lower: np.ndarray
    upper: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    halfspaces: tuple[tuple[np.ndarray, np.ndarray], ...]
    empty: np.ndarray
    all_null: np.ndarray
    untrusted: np.ndarray
    has_nulls: np.ndarray


def _interval(arg: AffineArg, box: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """Outward-rounded range of an affine argument over a box."""
    lo = hi = arg.const
    magnitude = abs(arg.const)
    for column, weight in arg.coeffs:
        if weight == 0.0:
            continue
        a, b = box.get(column, (-math.inf, math.inf))
        ends = (weight * a, weight * b)
        lo += min(ends)
        hi += max(ends)
        magnitude += abs(weight) * max(abs(a), abs(b))
    if arg.plain_column is not None:
        return lo, hi
    slack = 2.0 * (len(arg.coeffs) + 2) * EPS * magnitude + 1e-300
    return lo - slack, hi + slack


def build_regions(
    groups: Sequence[RowGroupFacts],
    args: Sequence[AffineArg],
    bounds: Mapping[str, tuple[float, float]],
) -> Regions:
    """One region per row group for a model called on ``args``.

    ``bounds`` are SQL-implied column bounds (keys as in ``args``).
    """
    n, d = len(groups), len(args)
    lower = np.full((n, d), -np.inf)
    upper = np.full((n, d), np.inf)
    empty = np.zeros(n, dtype=bool)
    all_null = np.zeros(n, dtype=bool)
    untrusted = np.zeros(n, dtype=bool)
    has_nulls = np.zeros(n, dtype=bool)
    columns = sorted({c for a in args for c in a.columns})
    for g, group in enumerate(groups):
        box: dict[str, tuple[float, float]] = {}
        for column in columns:
            lo, hi = group.box.get(column, (-math.inf, math.inf))
            b_lo, b_hi = bounds.get(column, (-math.inf, math.inf))
            lo, hi = max(lo, b_lo), min(hi, b_hi)
            # NaN rows are outside the box, yet DuckDB orders NaN above every number:
            # they pass bounds that are open above (x > c, x >= c), so those cannot
            # empty a row group that may hold NaN
            if lo > hi and not (column in group.may_have_nan and b_hi == math.inf):
                empty[g] = True
            box[column] = (lo, hi)
            nulls = group.null_counts.get(column)
            has_nulls[g] |= nulls is None or nulls > 0
            all_null[g] |= nulls is not None and group.num_rows > 0 and nulls >= group.num_rows
            # a column without a box (not in the file, or not numeric) is not trusted either
            untrusted[g] |= column in group.may_have_nan or column not in group.box
        if empty[g]:
            continue
        for k, arg in enumerate(args):
            lower[g, k], upper[g, k] = _interval(arg, box)
    pairs, halfspaces = _pair_halfspaces(groups, args)
    return Regions(lower, upper, pairs, halfspaces, empty, all_null, untrusted, has_nulls)


def _pair_halfspaces(
    groups: Sequence[RowGroupFacts], args: Sequence[AffineArg]
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[np.ndarray, np.ndarray], ...]]:
    """Batched halfspaces for every stored column pair that maps onto two plain arguments."""
    position: dict[str, int] = {}
    for k, arg in enumerate(args):
        column = arg.plain_column
        if column is not None and column not in position:
            position[column] = k
    stored = sorted({p for group in groups for p in group.halfspaces})
    pairs: list[tuple[int, int]] = []
    halfspaces: list[tuple[np.ndarray, np.ndarray]] = []
    for a, b in stored:
        if a not in position or b not in position:
            continue
        m = max(len(group.halfspaces[(a, b)][1]) for group in groups if (a, b) in group.halfspaces)
        A = np.zeros((len(groups), m, 2))
        rhs = np.zeros((len(groups), m))  # padding rows 0 <= 0 hold everywhere
        for g, group in enumerate(groups):
            if (a, b) in group.halfspaces:
                Ag, bg = group.halfspaces[(a, b)]
                A[g, : len(bg)] = Ag
                rhs[g, : len(bg)] = bg
        pairs.append((position[a], position[b]))
        halfspaces.append((A, rhs))
    return tuple(pairs), tuple(halfspaces)

"""Pruning effectiveness of one filter on one file setting: the product's cascade and the exact limit.

The cascade is what the planner runs (``build_regions`` + the planner's
default ``Verifier``), with the same NULL/NaN rules. The exact limit is what
the complete method (MILP, exact for ReLU nets) prunes on the same regions:
blocks the cascade already pruned count, a skippable block whose region holds
a real qualifying row (a *witness*, from anywhere in the table) provably
cannot be pruned by any sound method, and MILP decides the rest (a sample of
at most ``exact_cap`` of them, extrapolated, with the count of time-outs kept).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import numpy as np

from mlskip.skipper.planner import PLANNER_METHODS, Planner
from mlskip.skipper.row_group_regions import build_regions
from mlskip.skipper.rules.predicates import AffineArg
from mlskip.tpch.filters import BlockTruth
from mlskip.verifier import Network, Predicate, RegionBatch
from mlskip.verifier.cascade import Verifier

NONE, ALL, UNKNOWN = 0, 1, 2
WITNESS_ROWS = 4000


def without_hulls(groups: Sequence[Any]) -> list[Any]:
    """The same row-group summaries with only their min-max boxes."""
    empty = MappingProxyType({})
    return [replace(g, halfspaces=empty, hulls=empty) for g in groups]


def plain_args(columns: Sequence[str]) -> tuple[AffineArg, ...]:
    """Model arguments that are plain columns, as the SQL rules produce them."""
    return tuple(AffineArg(((c, 1.0),), 0.0) for c in columns)


def _batch(regions, idx: np.ndarray) -> RegionBatch:
    return RegionBatch(
        regions.lower[idx],
        regions.upper[idx],
        regions.pairs,
        tuple((A[idx], b[idx]) for A, b in regions.halfspaces),
    )


WORK_BUDGET_PIECES = 64  # branch-and-bound pieces per region, on average, of the batch


def work_budget_verifier() -> Verifier:
    """The planner's methods with work budgets only (pieces shared by the regions of a
    batch, no clock, no MILP, whose solver limit is a clock): the same inputs give the
    same verdicts on any machine, so hulls provably add to what min-max decides
    (``Verifier.box_first``)."""
    return Verifier(
        methods=tuple(m for m in PLANNER_METHODS if m != "milp"),
        time_budget=None,
        bab_time_budget=float("inf"),
        bab_pieces_per_region=WORK_BUDGET_PIECES,
    )


def cascade_verdicts(
    groups: Sequence[Any],
    args: Sequence[AffineArg],
    bounds: Mapping[str, tuple[float, float]],
    network: Network,
    predicate: Predicate,
    verifier: Verifier | None = None,
) -> tuple[np.ndarray, dict[str, int], tuple[float, float], Any]:
    """Verdicts per row group as the planner decides them, counts per deciding method,
    (wall, process CPU) seconds, and the regions (mirrors ``Planner._verify_one``)."""
    start, cpu = time.perf_counter(), time.process_time()
    regions = build_regions(groups, args, bounds)
    n = len(groups)
    verdicts = np.full(n, UNKNOWN, dtype=np.int8)
    flagged = regions.empty | regions.all_null
    verdicts[flagged] = NONE
    by: dict[str, int] = {}
    if regions.empty.any():
        by["sql-bounds"] = int(regions.empty.sum())
    if (regions.all_null & ~regions.empty).any():
        by["all-null"] = int((regions.all_null & ~regions.empty).sum())
    if regions.untrusted.any():
        by["untrusted"] = int((regions.untrusted & ~flagged).sum())
    todo = np.flatnonzero(~flagged & ~regions.untrusted)
    if len(todo):
        verifier = verifier or Planner().verifier_for(len(todo))
        result = verifier.verify(network, _batch(regions, todo), predicate)
        got = np.asarray(result.verdicts, dtype=np.int8).copy()
        got[(got == ALL) & regions.has_nulls[todo]] = UNKNOWN
        verdicts[todo] = got
        for name, count in result.decided_by().items():
            by[name] = by.get(name, 0) + count
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    return verdicts, by, seconds, regions


def witnessed(regions, idx: np.ndarray, witnesses: np.ndarray) -> np.ndarray:
    """True where region ``idx[k]`` contains one of the ``witnesses`` rows [m, d]."""
    out = np.zeros(len(idx), dtype=bool)
    if len(witnesses) == 0 or len(idx) == 0:
        return out
    for k, r in enumerate(idx):
        inside = ((witnesses >= regions.lower[r]) & (witnesses <= regions.upper[r])).all(1)
        for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
            if not inside.any():
                break
            inside &= (witnesses[:, [i, j]] @ A[r].T <= b[r]).all(1)
        out[k] = inside.any()
    return out


def exact_pair_hulls(blocks: np.ndarray) -> list[list[tuple[np.ndarray, np.ndarray] | None]]:
    """Per block [b, rows, d] and input pair (i < j, in ``itertools.combinations`` order):
    the halfspaces ``A p <= b`` of the exact convex hull of the block's rows, with no byte
    budget (None where the rows are degenerate: fewer than 3 distinct points, or collinear).

    What the 45-byte polygons approximate; the exact limit's upper bound for exact pair hulls
    (the reference reports its limit with them) comes from these."""
    from scipy.spatial import ConvexHull, QhullError

    d = blocks.shape[2]
    pairs = list(itertools.combinations(range(d), 2))
    out = []
    for rows in blocks:
        per = []
        for i, j in pairs:
            pts = rows[:, [i, j]]
            pts = np.unique(pts[np.isfinite(pts).all(1)], axis=0)
            try:
                eq = ConvexHull(pts).equations if len(pts) >= 3 else None
            except QhullError:
                eq = None
            per.append(None if eq is None else (eq[:, :2], -eq[:, 2]))
        out.append(per)
    return out


def exact_hull_witnessed(
    hulls: Sequence[Sequence[tuple[np.ndarray, np.ndarray] | None]],
    regions,
    idx: np.ndarray,
    witnesses: np.ndarray,
) -> np.ndarray:
    """True where block ``idx[k]``'s box and exact pair hulls contain one of the
    ``witnesses`` rows; a degenerate pair keeps the stored polygon (a superset, so this may
    over-count, never under-count, what exact hulls leave unprunable)."""
    out = np.zeros(len(idx), dtype=bool)
    if len(witnesses) == 0:
        return out
    d = witnesses.shape[1]
    pairs = list(itertools.combinations(range(d), 2))
    stored = {}  # by (i, j) with i < j, columns in that order
    for (a, b), (A, rhs) in zip(regions.pairs, regions.halfspaces, strict=True):
        stored[(min(a, b), max(a, b))] = (A if a < b else A[..., ::-1], rhs)
    for k, r in enumerate(idx):
        inside = ((witnesses >= regions.lower[r]) & (witnesses <= regions.upper[r])).all(1)
        for p, (i, j) in enumerate(pairs):
            if not inside.any():
                break
            hull = hulls[r][p]
            if hull is None and (i, j) in stored:
                A, b = stored[(i, j)][0][r], stored[(i, j)][1][r]
            elif hull is None:
                continue
            else:
                A, b = hull
            inside &= (witnesses[:, [i, j]] @ A.T <= b + 1e-9 * (1.0 + np.abs(b))).all(1)
        out[k] = inside.any()
    return out


def evaluate(
    groups: Sequence[Any],
    args: Sequence[AffineArg],
    bounds: Mapping[str, tuple[float, float]],
    network: Network,
    predicate: Predicate,
    truth: BlockTruth,
    witnesses: np.ndarray,
    exact_cap: int,
    milp_seconds: float,
    rng: np.random.Generator,
    verifier: Verifier | None = None,
    exact_hulls: Sequence[Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Counts for one filter and setting: truth, cascade (``verifier``, by default the
    planner's), soundness checks and the exact limit; with ``exact_hulls`` (from
    ``exact_pair_hulls``) also how many skippable blocks exact pair hulls leave unprunable."""
    verdicts, by, (seconds, cpu_seconds), regions = cascade_verdicts(
        groups, args, bounds, network, predicate, verifier
    )
    skippable = truth.skippable
    pruned = verdicts == NONE
    all_match = verdicts == ALL
    rec: dict[str, Any] = {
        "row_groups": len(groups),
        "skippable": int(skippable.sum()),
        "truth_all_match": int(truth.all_match.sum()),
        "cascade_pruned": int(pruned.sum()),
        "cascade_pruned_skippable": int((pruned & skippable).sum()),
        "cascade_all_match": int(all_match.sum()),
        "lost_row_groups": int((pruned & ~skippable).sum()),
        "wrong_all_match": int((all_match & ~truth.all_match).sum()),
        "cascade_seconds": seconds,
        "cascade_cpu_seconds": cpu_seconds,
        "decided_by": by,
    }
    # exact limit: only skippable blocks the cascade left open can add to it
    open_ = np.flatnonzero(skippable & ~pruned & ~regions.untrusted)
    if len(witnesses) > WITNESS_ROWS:
        witnesses = witnesses[rng.choice(len(witnesses), WITNESS_ROWS, replace=False)]
    t0 = time.perf_counter()
    seen = witnessed(regions, open_, witnesses)
    rest = open_[~seen]
    sample = rest if len(rest) <= exact_cap else rng.choice(rest, exact_cap, replace=False)
    milp_pruned = milp_mixed = 0
    if len(sample):
        exact = Verifier(
            methods=("ibp", "crown", "milp"),
            milp_time_per_region=milp_seconds,
            time_budget=None,
        ).verify(network, _batch(regions, np.sort(sample)), predicate)
        milp_pruned = int((exact.verdicts == NONE).sum())
        milp_mixed = int(exact.mixed.sum())
    scale = len(rest) / len(sample) if len(sample) else 0.0
    rec.update(
        exact_open=len(open_),
        exact_witnessed=int(seen.sum()),
        exact_rest=len(rest),
        exact_sampled=len(sample),
        exact_milp_pruned=milp_pruned,
        exact_milp_mixed=milp_mixed,
        exact_milp_undetermined=len(sample) - milp_pruned - milp_mixed,
        exact_pruned_estimate=rec["cascade_pruned_skippable"] + milp_pruned * scale,
        exact_seconds=time.perf_counter() - t0,
    )
    if exact_hulls is not None:
        rec["exact_hull_witnessed"] = int(
            exact_hull_witnessed(exact_hulls, regions, open_[seen], witnesses).sum()
        )
    return rec

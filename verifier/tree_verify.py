"""The verifier's cascade for tree ensembles: leaf intervals, witnesses, then MILP.

1. ``leaves``: the interval of each spec row over the leaves the region's box can
   reach (exact per tree), then again over the leaves its polygons leave
   (tree_reach.py). Widened by the runtime's rounding margin, the predicate decides.
2. ``sampling``: points of each open region are evaluated; one clearly qualifying and
   one clearly not prove it mixed (never NONE or ALL), so the costly steps skip it.
3. ``bab``: branch and bound on split thresholds (tree_bab.py), within the verifier's
   pieces per region (work units: the planner's budget, deterministic).
4. ``milp``: exact row bounds (tree_milp.py) for what is left, within the time budget.

Spec rows, the final sigmoid/softmax and the decision rules are the networks'
(predicate.py): a ``TreeEnsemble`` has the ``num_outputs`` and ``final`` they read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from mlskip.errors import ModelInputError

from .concretize import tighten_boxes
from .predicate import ALL, NONE, UNKNOWN, Predicate, Spec
from .regions import RegionBatch
from .tree_bab import tree_bab
from .tree_reach import bounding_leaves, interval, reachable_leaves, row_margin
from .trees import TreeEnsemble

if TYPE_CHECKING:
    from .cascade import VerificationResult, Verifier

SAMPLES = 32  # points per open region tried as witnesses of a mixed region
# A branch-and-bound piece of a tree ensemble (the reach of every node, the leaf
# interval) costs several times a network's CROWN piece: the verifier's pieces per region
# (the planner's work budget) are divided by this, with at least TREE_MIN_PIECES. On the
# quick paper files 16 pieces per 1,000-row row group decided what 64 did, within 1%.
TREE_PIECE_COST = 2
TREE_MIN_PIECES = 8


def verify_trees(
    verifier: Verifier, ens: TreeEnsemble, regions: RegionBatch, predicate: Predicate
) -> VerificationResult:
    """Verdicts for ``predicate`` on ``ens`` over every region (see module docstring)."""
    from .cascade import METHOD_CODE, VerificationResult
    from .deadline import Deadline

    if regions.d != ens.num_inputs:
        raise ModelInputError(f"regions have {regions.d} inputs, the model takes {ens.num_inputs}")
    limit = verifier.time_budget if verifier.time_budget is not None else verifier.safety_seconds
    deadline = None if limit is None else Deadline(limit)
    spec = predicate.compile(ens)  # type: ignore[arg-type]  # num_outputs and final
    n = regions.n
    verdicts = np.full(n, UNKNOWN, dtype=np.int8)
    method = np.zeros(n, dtype=np.int8)
    mixed = np.zeros(n, dtype=bool)
    cost = np.zeros(n)
    seconds: dict[str, float] = {}
    capped = False

    def book(step: str, idx: np.ndarray, secs: float) -> None:
        seconds[step] = seconds.get(step, 0.0) + secs
        if len(idx):
            cost[idx] += secs / len(idx)

    t0 = time.perf_counter()
    empty = (regions.lower > regions.upper).any(axis=1)
    verdicts[empty] = NONE
    method[empty] = METHOD_CODE["empty"]
    margin = row_margin(ens, spec.C)
    live = np.flatnonzero(~empty)
    reach = np.zeros((n, len(ens.leaves)), dtype=bool)
    pieces = max(TREE_MIN_PIECES, (verifier.bab_pieces_per_region or verifier.bab_max_pieces)
                 // TREE_PIECE_COST)  # fmt: skip
    bab = "bab" in verifier.methods
    # boxes first: what min-max statistics alone decide, as for networks (box_first)
    if len(live):
        reach[live] = reachable_leaves(ens, RegionBatch(regions.lower[live], regions.upper[live]))
        _decide(spec, ens, reach, live, margin, verdicts, method, METHOD_CODE["leaves"])
    book("leaves", live, time.perf_counter() - t0)
    open_ = np.flatnonzero((verdicts == UNKNOWN) & ~mixed)
    if len(open_) and verifier.sample_points and {"bab", "milp"} & set(verifier.methods):
        t1 = time.perf_counter()
        mixed[open_] = _mixed(spec, ens, regions.subset(open_), margin, verifier.seed)
        method[open_[mixed[open_]]] = METHOD_CODE["sampling"]
        book("sampling", open_, time.perf_counter() - t1)
    open_ = np.flatnonzero((verdicts == UNKNOWN) & ~mixed)
    if len(open_) and bab:
        boxes = RegionBatch(regions.lower[open_], regions.upper[open_])
        _bab(spec, ens, boxes, open_, margin, pieces, verdicts, method, book)
    # then the polygons, on what the boxes left open: each box shrunk to their certified
    # bounding box, the leaves that set the bounds tested against them, and branch and
    # bound again with the polygons (each piece shrunk and tested the same way)
    open_ = np.flatnonzero((verdicts == UNKNOWN) & ~mixed)
    if regions.has_polygons and len(open_):
        t1 = time.perf_counter()
        cut = tighten_boxes(regions.subset(open_))
        lower, upper = regions.lower.copy(), regions.upper.copy()
        lower[open_], upper[open_] = cut.lower, cut.upper
        regions = RegionBatch(lower, upper, regions.pairs, regions.halfspaces)
        tight = reachable_leaves(ens, RegionBatch(cut.lower, cut.upper))
        reach[open_] = bounding_leaves(ens, spec.C, cut, tight)
        _decide(spec, ens, reach, open_, margin, verdicts, method, METHOD_CODE["leaves"])
        book("leaves", open_, time.perf_counter() - t1)
        still = np.flatnonzero((verdicts == UNKNOWN) & ~mixed)
        if len(still) and bab:
            _bab(spec, ens, regions.subset(still), still, margin, pieces, verdicts, method, book)

    open_ = np.flatnonzero((verdicts == UNKNOWN) & ~mixed)
    if len(open_) and "milp" in verifier.methods:
        for r in open_:
            if deadline is not None and deadline.passed():
                capped = True
                break
            t1 = time.perf_counter()
            left = verifier.milp_time_per_region
            if deadline is not None:
                left = min(left, max(deadline.remaining(), 1e-3))
            polygons = [
                ((i, j), A[r], b[r])
                for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True)
            ]
            from .tree_milp import milp_bounds  # scipy.optimize: imported when used

            lo, hi, out = milp_bounds(
                ens, spec.C, reach[r], regions.lower[r], regions.upper[r], polygons, left
            )
            capped |= out
            got = spec.verdicts((lo - margin)[None], (hi + margin)[None], "float32")[0]
            if got != UNKNOWN:
                verdicts[r] = got
                method[r] = METHOD_CODE["milp"]
            book("milp", np.array([r]), time.perf_counter() - t1)
    return VerificationResult(verdicts, method, mixed, seconds, region_seconds=cost, capped=capped)


def _bab(spec, ens, boxes, idx, margin, pieces, verdicts, method, book) -> None:
    """Branch and bound (tree_bab.py) on regions ``idx`` given as ``boxes``."""
    from .cascade import METHOD_CODE

    t1 = time.perf_counter()
    got, _ = tree_bab(ens, spec, boxes, margin, pieces)
    decided = got != UNKNOWN
    verdicts[idx[decided]] = got[decided]
    method[idx[decided]] = METHOD_CODE["bab"]
    book("bab", idx, time.perf_counter() - t1)


def _decide(
    spec: Spec,
    ens: TreeEnsemble,
    reach: np.ndarray,
    idx: np.ndarray,
    margin: np.ndarray,
    verdicts: np.ndarray,
    method: np.ndarray,
    code: np.int8,
) -> None:
    """Decide regions ``idx`` from their leaf intervals (a tree with no reachable leaf:
    the region is empty, NONE)."""
    L, U = interval(ens, spec.C, reach[idx])
    got = spec.verdicts(L - margin, U + margin, "float32")
    unreachable = ~_every_tree_reached(ens, reach[idx])
    got[unreachable] = NONE
    decided = got != UNKNOWN
    verdicts[idx[decided]] = got[decided]
    method[idx[decided]] = code


def _every_tree_reached(ens: TreeEnsemble, reach: np.ndarray) -> np.ndarray:
    starts = np.flatnonzero(np.r_[True, np.diff(ens.leaf_tree) != 0])
    return np.logical_or.reduceat(reach, starts, axis=1).all(axis=1)


def _mixed(
    spec: Spec, ens: TreeEnsemble, regions: RegionBatch, margin: np.ndarray, seed: int
) -> np.ndarray:
    """Regions with one point that clearly qualifies and one that clearly does not
    (both inside the box and every polygon, the rounding margin around each)."""
    rng = np.random.default_rng(seed)
    n, d = regions.n, regions.d
    lo, hi = regions.lower, regions.upper
    u = rng.random((n, SAMPLES, d))
    u[:, 0], u[:, 1] = 0.0, 1.0  # two corners
    pts = lo[:, None, :] + u * (hi - lo)[:, None, :]
    inside = np.ones((n, SAMPLES), dtype=bool)
    for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
        xy = pts[:, :, [i, j]]  # [n, s, 2]
        with np.errstate(invalid="ignore"):
            val = np.einsum("nmk,nsk->nsm", A, xy)
            inside &= (val <= b[:, None, :] - 1e-9 * (np.abs(b[:, None, :]) + 1)).all(axis=2)
    z = ens.evaluate(pts.reshape(-1, d), final=False)  # [n*s, k]
    rows = z @ spec.C.T
    got = spec.verdicts(rows - margin, rows + margin, "float32").reshape(n, SAMPLES)
    yes = ((got == ALL) & inside).any(axis=1)
    no = ((got == NONE) & inside).any(axis=1)
    return yes & no

"""Input-domain branch and bound: split boxes, bound the pieces with CROWN.

Very effective for the 2 to 8 inputs of filter models: the relaxation
error of CROWN shrinks quadratically with the box width. A region is NONE
when every piece is NONE (no qualifying point), ALL when every piece is ALL;
a piece is split in two along the input with the largest
``width * sensitivity`` (the absolute weight chain from each input to the spec
rows). Pieces keep their region's polygons and float margins (a piece's margins
are at most its region's); with polygons each piece's box is first shrunk to the
certified bounding box of its part inside them (tighten_boxes: the same points,
tighter intermediate bounds), and a piece proven to hold no point of its region
is dropped. Regions are taken cheapest first by triage.py's estimate, and none
that no bound can decide. Breadth-first, all pieces of all regions in one batch
per round, within a piece limit per region, a piece budget for the whole batch
(work units: the same inputs give the same verdicts on any machine) and a time
budget (a safety net).
"""

from __future__ import annotations

import numpy as np

from .concretize import tighten_or_empty
from .crown import crown_bounds
from .deadline import Deadline
from .network import Network
from .predicate import ALL, NONE, UNKNOWN, Spec
from .regions import RegionBatch

EMPTY = np.int8(-1)  # a piece proven to hold no point of its region


def bab_verdicts(
    spec: Spec,
    net: Network,
    regions: RegionBatch,
    row_margin: np.ndarray,
    precision: str,
    max_pieces: int = 256,
    time_budget: float = 1.0,
    batch: int = 20_000,
    stats: dict | None = None,
    piece_budget: int | None = None,
    cost: np.ndarray | None = None,
) -> np.ndarray:
    """Verdicts ``[n]`` for ``regions`` by input splitting (UNKNOWN if undecided).

    ``piece_budget`` caps the pieces bounded over all regions (None: no cap); pieces are
    taken breadth-first, so the regions decided early leave their share to the others.
    ``cost [n]``: the pieces each region is estimated to need (triage.py): regions are
    taken cheapest first, and those no bound can decide (``inf``) get none.
    ``stats["weights"]`` receives the pieces bounded per region (its share of the work),
    ``stats["pieces"]`` their total, ``stats["given_up"]`` the regions not tried and
    ``stats["timed_out"]`` whether the clock stopped it.
    """
    n = regions.n
    out = np.full(n, UNKNOWN, dtype=np.int8)
    finite = np.isfinite(regions.lower).all(1) & np.isfinite(regions.upper).all(1)
    hopeless = np.zeros(n, bool) if cost is None else ~np.isfinite(cost)
    finite &= ~hopeless
    sens = _sensitivity(net)
    parent = np.flatnonzero(finite)
    if cost is not None:
        parent = parent[np.argsort(cost[parent], kind="stable")]
    lo = regions.lower[parent].copy()
    hi = regions.upper[parent].copy()
    split = np.full(len(parent), -1)  # the input each piece was last split along
    seen_none = np.zeros(n, bool)  # a piece proven NONE
    seen_all = np.zeros(n, bool)
    pieces = np.zeros(n, np.int64)
    pieces[parent] = 1
    alive = np.zeros(n, bool)
    alive[parent] = True
    bounded = np.zeros(n)
    deadline = Deadline(time_budget)
    left = np.inf if piece_budget is None else int(piece_budget)
    timed_out = False
    while len(parent) and left > 0:
        if deadline.passed():
            timed_out = True
            break
        take = int(min(len(parent), batch, left))
        left -= take
        np.add.at(bounded, parent[:take], 1.0)
        sub = regions.with_boxes(lo[:take], hi[:take], parent[:take])
        empty = None
        if sub.has_polygons:  # shrink each piece to its part inside the polygons (same points)
            sub, empty = tighten_or_empty(sub, split[:take])
            lo[:take], hi[:take] = sub.lower, sub.upper
        L, U = crown_bounds(net, sub, clip="ibp")
        mg = row_margin[parent[:take]]
        v = spec.verdicts(L - mg, U + mg, precision)
        if empty is not None:  # a piece without a point of its region says nothing
            v[empty] = EMPTY
        p = parent[:take]
        np.logical_or.at(seen_none, p[v == NONE], True)
        np.logical_or.at(seen_all, p[v == ALL], True)
        und = v == UNKNOWN
        # a region with a NONE piece and an ALL piece can never be decided
        dead = seen_none & seen_all
        und &= ~dead[p]
        keep_lo, keep_hi, keep_p = lo[:take][und], hi[:take][und], p[und]
        over = pieces[keep_p] * 2 > max_pieces
        alive[keep_p[over]] = False
        ok = ~over & alive[keep_p]
        keep_lo, keep_hi, keep_p = keep_lo[ok], keep_hi[ok], keep_p[ok]
        # split along the most influential input
        score = (keep_hi - keep_lo) * sens
        dim = np.argmax(score, axis=1)
        rows = np.arange(len(dim))
        mid = 0.5 * (keep_lo[rows, dim] + keep_hi[rows, dim])
        lo_a, hi_a = keep_lo.copy(), keep_hi.copy()
        hi_a[rows, dim] = mid
        lo_b, hi_b = keep_lo.copy(), keep_hi.copy()
        lo_b[rows, dim] = mid
        np.add.at(pieces, keep_p, 1)
        lo = np.concatenate([lo[take:], lo_a, lo_b])
        hi = np.concatenate([hi[take:], hi_a, hi_b])
        parent = np.concatenate([parent[take:], keep_p, keep_p])
        split = np.concatenate([split[take:], dim, dim])
        # regions with an undecided piece that ran out of budget stay UNKNOWN
    if stats is not None:
        stats["weights"] = bounded
        stats["pieces"] = int(bounded.sum())
        stats["given_up"] = int(hopeless.sum())
        stats["timed_out"] = timed_out
    has_open = np.zeros(n, bool)
    has_open[parent] = True
    done = finite & ~has_open & alive
    out[done & seen_none & ~seen_all] = NONE
    out[done & seen_all & ~seen_none] = ALL
    return out


def _sensitivity(net: Network) -> np.ndarray:
    """How much each input can move the spec rows: the column sums of the product of the
    layers' absolute weights (a Lipschitz bound per input, through every path)."""
    g = np.ones(net.affines[-1].W.shape[0])
    for a in reversed(net.affines):
        with np.errstate(over="ignore", invalid="ignore"):
            g = g @ np.abs(a.W)
    g = np.where(np.isfinite(g), g, np.finfo(float).max)
    return g / max(float(g.max()), 1e-300) + 1e-12

"""Branch and bound for tree ensembles: split boxes at split thresholds until the leaf
intervals decide.

On a box no split threshold cuts, every tree is constant, so the leaf interval
(tree_reach.py) is exact there: splitting at thresholds makes the interval converge to
the exact range, one cell at a time. Each open region is cut into pieces, at most
``pieces`` per region (work units, not seconds: the same plan on any machine); a piece
is split where the bound is loosest: in the tree whose reachable leaves spread the spec
rows most, at the shallowest node that sends the piece both ways. The two
halves partition the piece exactly in the ensemble's grid (``split_point``); polygons,
if any, stay with every piece (the cascade passes boxes the polygons already tightened). A region is NONE when every piece is, ALL when every piece is
ALL or empty, and left open as soon as one piece is ALL and another one NONE with
points in it.
"""

from __future__ import annotations

import numpy as np

from .concretize import tighten_or_empty
from .predicate import ALL, NONE, UNKNOWN, Spec
from .regions import RegionBatch
from .tree_reach import bounding_leaves, interval, reachable_nodes, row_values
from .trees import TreeEnsemble


def split_point(ens: TreeEnsemble, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float64 ends of ``{x : cast(x) <= t}`` and ``{x : cast(x) > t}``: the first
    piece keeps ``x <= upper``, the second ``x >= lower``; together exactly the line."""
    if ens.precision == "float64":
        return t, np.nextafter(t, np.inf)
    f32 = np.float32
    above = np.nextafter(t.astype(f32), f32(np.inf)).astype(np.float64)
    mid = np.where(np.isfinite(above), (t + above) / 2, np.inf)
    with np.errstate(over="ignore"):
        ties_low = mid.astype(f32).astype(np.float64) <= t  # the midpoint rounds to t
    upper = np.where(ties_low, mid, np.nextafter(mid, -np.inf))
    lower = np.where(ties_low, np.nextafter(mid, np.inf), mid)
    return upper, lower


POLYGON_ROUNDS = 2  # rounds of bounding-leaf tests per piece (tree_reach.bounding_leaves)


def _pieces_verdicts(
    ens: TreeEnsemble, spec: Spec, pieces: RegionBatch, margin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verdicts of each piece, whether it holds no point (some tree reaches nothing), and
    the node to split it at (-1: none): in the tree whose reachable leaves spread the
    spec rows most, the shallowest node both of whose children are reachable."""
    void = np.zeros(pieces.n, dtype=bool)
    if pieces.has_polygons:  # each piece shrunk to its polygons' certified bounding box
        pieces, void = tighten_or_empty(pieces)
    nodes = reachable_nodes(ens, pieces)
    reach = nodes[:, ens.leaves]
    if pieces.has_polygons:  # the leaves that set the bounds, tested against the polygons
        reach = bounding_leaves(ens, spec.C, pieces, reach, rounds=POLYGON_ROUNDS)
        nodes = nodes.copy()
        nodes[:, ens.leaves] = reach
    starts = np.flatnonzero(np.r_[True, np.diff(ens.leaf_tree) != 0])
    empty = ~np.logical_or.reduceat(reach, starts, axis=1).all(axis=1)
    L, U = interval(ens, spec.C, reach)
    got = spec.verdicts(L - margin, U + margin, "float32")
    empty |= void
    got[empty] = NONE
    S = row_values(ens, spec.C)  # [leaves, m]
    spread = np.zeros((pieces.n, ens.num_trees))
    for k in range(S.shape[1]):
        hi = np.maximum.reduceat(np.where(reach, S[:, k], -np.inf), starts, axis=1)
        lo = np.minimum.reduceat(np.where(reach, S[:, k], np.inf), starts, axis=1)
        spread += np.where(hi > lo, hi - lo, 0.0)
    tree = spread.argmax(axis=1)
    inner = np.flatnonzero(ens.feature >= 0)
    if not len(inner):  # every tree is a single leaf: nothing to split
        return got, empty, np.full(pieces.n, -1)
    both = nodes[:, ens.left[inner]] & nodes[:, ens.right[inner]]
    both &= ens.node_tree[inner][None, :] == tree[:, None]
    has = both.any(axis=1) & (spread.max(axis=1) > 0)
    split = np.where(has, inner[both.argmax(axis=1)], -1)
    return got, empty, split


def tree_bab(
    ens: TreeEnsemble,
    spec: Spec,
    regions: RegionBatch,
    margin: np.ndarray,
    pieces: int,
) -> tuple[np.ndarray, int]:
    """Verdicts [n] of branch and bound with at most ``pieces`` pieces per region, and the
    number of pieces bounded in all."""
    n = regions.n
    verdicts = np.full(n, UNKNOWN, dtype=np.int8)
    lo, hi = regions.lower.copy(), regions.upper.copy()
    owner = np.arange(n)
    used = np.ones(n, dtype=np.int64)
    has_all = np.zeros(n, bool)
    has_none = np.zeros(n, bool)
    done = np.zeros(n, bool)
    total = 0
    while len(owner):
        batch = regions.with_boxes(lo, hi, owner)  # the root's polygon cycles are reused
        got, empty, split_node = _pieces_verdicts(ens, spec, batch, margin)
        total += len(owner)
        np.logical_or.at(has_all, owner, got == ALL)
        np.logical_or.at(has_none, owner, (got == NONE) & ~empty)
        open_piece = got == UNKNOWN
        done |= has_all & has_none  # both kinds of points: neither NONE nor ALL
        # a region with no open piece left is decided
        still = np.zeros(n, bool)
        np.logical_or.at(still, owner, open_piece)
        finished = ~still & ~done & (verdicts == UNKNOWN)
        live_regions = np.unique(owner)
        for r in live_regions[finished[live_regions]]:
            if has_all[r] and not has_none[r]:
                verdicts[r] = ALL
            elif has_none[r] and not has_all[r]:
                verdicts[r] = NONE
            elif not has_all[r] and not has_none[r]:  # every piece empty
                verdicts[r] = NONE
            done[r] = True
        keep = open_piece & ~done[owner]
        # split the open pieces of regions with budget left
        own = owner[keep]
        node = split_node[keep]
        cut = (node >= 0) & (used[own] < pieces)
        # an open piece with nothing to split, or with no budget: its region stays open
        stuck = np.zeros(n, bool)
        np.logical_or.at(stuck, own, ~cut)
        done |= stuck
        sel = np.flatnonzero(keep)[cut]
        cut_owner = own[cut]
        alive = ~done[cut_owner]
        sel, cut_owner = sel[alive], cut_owner[alive]
        if not len(sel):
            break
        chosen = node[cut][alive]
        f = ens.feature[chosen]
        t = ens.left_max[chosen]
        upper, lower = split_point(ens, t)
        lo_a, hi_a = lo[sel].copy(), hi[sel].copy()
        lo_b, hi_b = lo[sel].copy(), hi[sel].copy()
        idx = np.arange(len(sel))
        hi_a[idx, f] = np.minimum(hi_a[idx, f], upper)
        lo_b[idx, f] = np.maximum(lo_b[idx, f], lower)
        np.add.at(used, cut_owner, 1)
        lo, hi = np.vstack([lo_a, lo_b]), np.vstack([hi_a, hi_b])
        owner = np.concatenate([cut_owner, cut_owner])
    return verdicts, total

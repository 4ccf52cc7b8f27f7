"""Which leaves of a tree ensemble a region can reach, and the sound output interval.

A leaf is reachable from a region when some point of the region, cast to the
ensemble's precision as the runtime casts it, ends there. On boxes this is exact:
the cast is monotone and its image of ``[lo, hi]`` is every value of the
precision's grid in ``[cast(lo), cast(hi)]`` (trees.py), so a node is reachable iff
its parent is and the cast box meets the node's own path box on the feature its
parent splits (its other features were checked at the ancestors).
With polygons a reachable leaf is dropped only when a polygon edge separates the
polygon from the leaf's box ∩ the region's box, certified in float64 with outward
rounding (for convex sets, that and the box test are exact up to the relaxation of
the leaf box from the precision's grid to float64, which only keeps leaves).

The interval of a spec row ``c . z`` is ``c . base`` plus, per tree, the extremes of
``c . value`` over its reachable leaves. The runtime's float sum (float32 output;
any order, any accumulator) is within ``gamma_{T+2}(2^-24)`` of the magnitudes
summed, which ``eval_margin`` returns per output.
"""

from __future__ import annotations

import numpy as np

from .fp_margin import UNIT, gamma
from .regions import RegionBatch
from .trees import TreeEnsemble

CHUNK = 1024  # regions per pass: the [nodes, chunk] reach matrix stays small


def domain_box(ens: TreeEnsemble, lower: np.ndarray, upper: np.ndarray):
    """The regions' boxes as the trees see them: cast to the ensemble's precision."""
    return ens.cast(lower), ens.cast(upper)


def reachable_leaves(ens: TreeEnsemble, regions: RegionBatch, polygons: bool = True) -> np.ndarray:
    """bool [n, leaves]: leaves each region may reach (its box, then, with ``polygons``,
    every leaf tested against its polygons; ``bounding_leaves`` tests only the leaves
    that set the bounds)."""
    out = reachable_nodes(ens, regions)[:, ens.leaves]
    if polygons and regions.has_polygons:
        out &= ~separated(ens, regions, out)
    return out


def reachable_nodes(ens: TreeEnsemble, regions: RegionBatch) -> np.ndarray:
    """bool [n, nodes]: nodes each region's box may reach (exact, see module docstring)."""
    out = np.zeros((regions.n, ens.num_nodes), dtype=bool)
    for start in range(0, regions.n, CHUNK):
        idx = np.arange(start, min(start + CHUNK, regions.n))
        lo, hi = domain_box(ens, regions.lower[idx], regions.upper[idx])
        reach = np.zeros((ens.num_nodes, len(idx)), dtype=bool)
        reach[ens.roots] = True
        box_lo, box_hi = ens.node_boxes()
        possible = (box_lo <= box_hi).all(axis=1)  # a path may contradict itself
        for level in ens.levels:
            f = ens.feature[level]
            lo_f, hi_f = lo[:, f].T, hi[:, f].T  # [level nodes, chunk]
            for child in (ens.left[level], ens.right[level]):
                meets = (lo_f <= box_hi[child, f][:, None]) & (hi_f >= box_lo[child, f][:, None])
                reach[child] = reach[level] & meets & possible[child][:, None]
        out[idx] = reach.T
    return out


def bounding_leaves(
    ens: TreeEnsemble, C: np.ndarray, regions: RegionBatch, reach: np.ndarray, rounds: int = 4
) -> np.ndarray:
    """``reach`` with polygon-separated leaves dropped where they set a bound: per tree
    and spec row, the leaf of the largest and of the smallest value is tested against
    the polygons and dropped if separated, for up to ``rounds`` rounds. The interval over
    the result is the one over all polygon-reachable leaves whenever the rounds suffice,
    and sound (looser) otherwise; it costs a few leaves per tree instead of all."""
    if not regions.has_polygons:
        return reach
    cut = np.flatnonzero(~inside_polygons(regions))  # elsewhere polygons cut nothing
    if not len(cut):
        return reach
    out = reach.copy()
    out[cut] = _bounding(ens, C, regions.subset(cut), reach[cut], rounds)
    return out


def inside_polygons(regions: RegionBatch) -> np.ndarray:
    """bool [n]: regions whose box lies inside every polygon (all four corners of each
    pair's rectangle satisfy its rows, with a rounding allowance): there the polygons
    exclude nothing the box holds."""
    inside = np.ones(regions.n, dtype=bool)
    for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
        lo, hi = regions.lower[:, [i, j]], regions.upper[:, [i, j]]
        with np.errstate(invalid="ignore", over="ignore"):
            terms = np.where(A > 0, A * hi[:, None, :], A * lo[:, None, :])  # the max corner
            terms = np.where(A == 0, 0.0, terms)
            top = terms.sum(axis=2) + 4 * UNIT["float64"] * np.abs(terms).sum(axis=2)
            ok = (top <= b) | (np.isinf(b) & (b > 0))
        inside &= ok.all(axis=1) & np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1)
    return inside


def _bounding(
    ens: TreeEnsemble, C: np.ndarray, regions: RegionBatch, reach: np.ndarray, rounds: int
) -> np.ndarray:
    reach = reach.copy()
    S = row_values(ens, C)  # [leaves, m]
    starts = np.flatnonzero(np.r_[True, np.diff(ens.leaf_tree) != 0])
    tested = np.zeros_like(reach)
    for _ in range(rounds):
        pick = np.zeros_like(reach)
        for k in range(S.shape[1]):
            for sign in (1.0, -1.0):
                v = np.where(reach, sign * S[:, k], -np.inf)  # [n, leaves]
                best = np.maximum.reduceat(v, starts, axis=1)  # [n, trees]
                at = v == np.repeat(best, np.diff(np.r_[starts, v.shape[1]]), axis=1)
                pick |= at & reach & np.isfinite(v)
        pick &= ~tested
        if not pick.any():
            break
        tested |= pick
        reach &= ~separated(ens, regions, pick)
    return reach


def _double_box(ens: TreeEnsemble) -> tuple[np.ndarray, np.ndarray]:
    """Leaf boxes in float64 inputs: every x whose cast lies in the leaf's box (a
    superset for float32: the grid box widened to the midpoints around it)."""
    lo, hi = ens.leaf_boxes()
    if ens.precision == "float64":
        return lo, hi
    f32 = np.float32
    lo32, hi32 = lo.astype(f32), hi.astype(f32)
    below = np.nextafter(lo32, f32(-np.inf)).astype(np.float64)
    above = np.nextafter(hi32, f32(np.inf)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        dlo = np.where(np.isfinite(lo), (below + lo) / 2, lo)
        dhi = np.where(np.isfinite(hi), (hi + above) / 2, hi)
    # the largest float32's neighbour is infinity: anything above rounds to it or beyond
    dlo = np.where(np.isnan(dlo) | np.isinf(below) & np.isfinite(lo), -np.inf, dlo)
    dhi = np.where(np.isnan(dhi) | np.isinf(above) & np.isfinite(hi), np.inf, dhi)
    return dlo, dhi


KERNEL_PAIRS = 2_000  # (leaf, region) pairs from which the compiled kernel runs


def separated(ens: TreeEnsemble, regions: RegionBatch, reach: np.ndarray) -> np.ndarray:
    """bool [n, leaves]: reachable leaves whose box ∩ the region's box misses a polygon.

    A polygon row ``a . (x_i, x_j) <= b`` separates when its minimum over the
    rectangle exceeds ``b``; the minimum is computed in float64 and lowered by a
    rounding allowance, so a separation is never claimed wrongly. Large batches run the
    same arithmetic compiled (_tree_kernels.py; equal bit for bit).
    """
    out = np.zeros_like(reach)
    dlo, dhi = _double_box(ens)
    rows, leaves = np.nonzero(reach)
    if not len(rows):
        return out
    hit = np.zeros(len(rows), dtype=bool)
    for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
        if len(rows) >= KERNEL_PAIRS:
            from ._tree_kernels import separated_pairs

            separated_pairs(rows, leaves, i, j, dlo, dhi, regions.lower, regions.upper,
                            np.ascontiguousarray(A, dtype=np.float64),
                            np.ascontiguousarray(b, dtype=np.float64), hit)  # fmt: skip
        else:
            hit |= _separated_numpy(rows, leaves, i, j, dlo, dhi, regions, A, b)
    out[rows, leaves] = hit
    return out


def _separated_numpy(rows, leaves, i, j, dlo, dhi, regions, A, b) -> np.ndarray:
    """The separation test of one polygon for (region, leaf) pairs, in numpy."""
    hit = np.zeros(len(rows), dtype=bool)
    for start in range(0, len(rows), 1 << 16):
        sl = slice(start, start + (1 << 16))
        r, lf = rows[sl], leaves[sl]
        lo = np.stack(
            [
                np.maximum(dlo[lf, i], regions.lower[r, i]),
                np.maximum(dlo[lf, j], regions.lower[r, j]),
            ],
            axis=1,
        )
        hi = np.stack(
            [
                np.minimum(dhi[lf, i], regions.upper[r, i]),
                np.minimum(dhi[lf, j], regions.upper[r, j]),
            ],
            axis=1,
        )
        keep = np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1)
        Ar, br = A[r], b[r]  # [p, m, 2], [p, m]
        with np.errstate(invalid="ignore", over="ignore"):
            terms = np.where(Ar > 0, Ar * lo[:, None, :], Ar * hi[:, None, :])
            terms = np.where(Ar == 0, 0.0, terms)
            low = terms[:, :, 0] + terms[:, :, 1]
            low -= 4 * UNIT["float64"] * (np.abs(terms[:, :, 0]) + np.abs(terms[:, :, 1])) + 1e-300
            usable = np.isfinite(br) & ~np.isnan(Ar).any(axis=2)
            cut = (low > br) & usable & np.isfinite(low)
        hit[sl] = cut.any(axis=1) & keep
    return hit


def row_values(ens: TreeEnsemble, C: np.ndarray) -> np.ndarray:
    """``c . value`` of every leaf for every spec row: [leaves, m]."""
    return ens.value[ens.leaves] @ C.T


def interval(ens: TreeEnsemble, C: np.ndarray, reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``[n, m]`` on the rows ``C z`` over the reachable leaves (float64, before
    the runtime's rounding margin); NaN-free, ``L > U`` for a region no tree can reach."""
    S = row_values(ens, C)  # [leaves, m]
    starts = np.flatnonzero(np.r_[True, np.diff(ens.leaf_tree) != 0])
    n, m = reach.shape[0], C.shape[0]
    L = np.empty((n, m))
    U = np.empty((n, m))
    for k in range(m):
        lo = np.where(reach, S[:, k], np.inf)
        hi = np.where(reach, S[:, k], -np.inf)
        tree_lo = np.minimum.reduceat(lo, starts, axis=1)
        tree_hi = np.maximum.reduceat(hi, starts, axis=1)
        L[:, k] = tree_lo.sum(axis=1)
        U[:, k] = tree_hi.sum(axis=1)
    const = C @ ens.base
    # float64 rounding of the sums above
    mag = np.abs(S).max(axis=0) * ens.num_trees + np.abs(const)
    slack = gamma(ens.num_trees + 2, UNIT["float64"]) * mag
    with np.errstate(invalid="ignore"):
        L = L + const - slack
        U = U + const + slack
    return L, U


def eval_margin(ens: TreeEnsemble) -> np.ndarray:
    """Bound ``[k]`` on |runtime output - exact sum| per raw output (float32 result)."""
    if "eval_margin" not in ens._cache:
        absval = np.abs(ens.value[ens.leaves])  # [leaves, k]
        starts = np.flatnonzero(np.r_[True, np.diff(ens.leaf_tree) != 0])
        per_tree = np.maximum.reduceat(absval, starts, axis=0).sum(axis=0)
        terms = ens.num_trees + 2
        e = (gamma(terms, UNIT["float32"]) + gamma(terms, UNIT["float64"])) * (
            per_tree + np.abs(ens.base)
        )
        ens._cache["eval_margin"] = e * (1 + 1e-6) + 1e-300
    return ens._cache["eval_margin"]


def row_margin(ens: TreeEnsemble, C: np.ndarray) -> np.ndarray:
    """Rounding margin ``[m]`` of each spec row ``C z``."""
    return np.abs(C) @ eval_margin(ens)

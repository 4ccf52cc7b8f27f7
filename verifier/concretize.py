"""Minimise batched linear functions over regions (box, or box ∩ polygons).

``region_min(a, c, regions)`` returns a lower bound of ``min a[r, k] . x + c[r, k]``
over region ``r`` for every row ``k``: exact for boxes, exact up to float
rounding for box ∩ polygons on disjoint input pairs.

Polygons: the minimum of a 2-D linear function over polygon ∩ box is taken at
a vertex. We pick the best candidate vertex, then *certify* the bound with
the dual solution of its two active constraints: for any ``lam >= 0`` and
``r = a + A^T lam``, every feasible ``x`` has ``a.x >= min_box(r.x) - lam.b``
(weak duality; the residual ``r`` absorbs rounding in ``lam``). So even a
wrongly computed vertex can only loosen the bound, never make it unsound.
The vertices (regions.py) and the per-row certificate run as numba kernels
(_kernels.py: IEEE float64, no fast-math); ``_pair_min_reference`` states
the same certificate in numpy and the tests hold the two equal.
When pairs overlap, a greedy disjoint subset is used (still sound, looser).
"""

from __future__ import annotations

import numpy as np

from .regions import RegionBatch


def box_min(a: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``min_{l<=x<=u} a.x`` for ``a [n, k, d]`` and boxes ``[n, d]`` -> ``[n, k]``.

    Safe for infinite bounds (a zero coefficient contributes 0).
    """
    if np.isfinite(lower).all() and np.isfinite(upper).all():
        c = 0.5 * (lower + upper)
        r = 0.5 * (upper - lower)
        d = a.shape[-1]
        if d > 16:
            return np.einsum("nkd,nd->nk", a, c) - np.einsum("nkd,nd->nk", np.abs(a), r)
        # few inputs: a loop over them beats einsum's small inner axis several times
        out = np.zeros(a.shape[:2])
        t = np.empty(a.shape[:2])
        for k in range(d):
            ak = a[:, :, k]
            out += np.multiply(ak, c[:, k : k + 1], out=t)
            out -= np.multiply(np.abs(ak, out=t), r[:, k : k + 1], out=t)
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        t = np.where(a > 0, a * lower[:, None, :], np.where(a < 0, a * upper[:, None, :], 0.0))
    return t.sum(-1)


def region_min(a: np.ndarray, c: np.ndarray, regions: RegionBatch) -> np.ndarray:
    """Lower bound of ``min_x a.x + c`` over each region; ``a [n, k, d]``, ``c [n, k]``."""
    lo, hi = regions.lower, regions.upper
    if not regions.has_polygons:
        return box_min(a, lo, hi) + c
    out = np.array(c, dtype=np.float64)
    rest = a.copy()
    for k in regions.disjoint_pairs():
        i, j = regions.pairs[k]
        pv = regions.pair_vertices(k)
        a2 = a[..., [i, j]]  # [n, rows, 2]
        poly = _pair_min(a2, pv, lo[:, [i, j]], hi[:, [i, j]])
        box = box_min(a2, lo[:, [i, j]], hi[:, [i, j]])
        use = pv.usable[:, None]
        out += np.where(use, np.maximum(poly, box), box)
        rest[..., i] = 0.0
        rest[..., j] = 0.0
    return out + box_min(rest, lo, hi)


def _pair_min(a2: np.ndarray, pv, lo2: np.ndarray, hi2: np.ndarray) -> np.ndarray:
    """Certified minimum of ``a2 . (x_i, x_j)`` over polygon ∩ box for one pair
    (-inf where the polygon is not usable; callers mask those)."""
    from ._kernels import pair_min_certified

    return pair_min_certified(
        np.ascontiguousarray(a2, dtype=np.float64),
        pv.xy,
        pv.rows,
        pv.A,
        np.ascontiguousarray(pv.b),
        np.ascontiguousarray(lo2),
        np.ascontiguousarray(hi2),
        pv.usable,
    )


def _pair_min_reference(a2: np.ndarray, pv, lo2: np.ndarray, hi2: np.ndarray) -> np.ndarray:
    """``_pair_min`` in numpy (the same arithmetic, vectorised): the readable statement
    of the certificate, cross-checked against the kernel in the tests."""
    from ._kernels import best_vertices

    n, m, _ = a2.shape
    V, K = pv.xy.shape[1], pv.A.shape[1]
    a2 = np.ascontiguousarray(a2)
    best = best_vertices(a2, pv.xy)  # [n, m]: only guides which certificate is built
    best += V * np.arange(n)[:, None]
    rows = pv.rows.reshape(n * V, 2)[best]  # [n, m, 2]
    rows += K * np.arange(n)[:, None, None]
    A, b = pv.A.reshape(n * K, 2), pv.b.reshape(n * K)
    Ap, Aq = A[rows[..., 0]], A[rows[..., 1]]  # [n, m, 2]
    bp, bq = b[rows[..., 0]], b[rows[..., 1]]
    a0, a1 = a2[..., 0], a2[..., 1]
    # solve lam_p * Ap + lam_q * Aq = -a2 (2x2, Cramer)
    det = Ap[..., 0] * Aq[..., 1] - Ap[..., 1] * Aq[..., 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sdet = np.where(det != 0, det, 1.0)
        lp = (a1 * Aq[..., 0] - a0 * Aq[..., 1]) / sdet
        lq = (Ap[..., 1] * a0 - Ap[..., 0] * a1) / sdet
    lp = np.where(np.isfinite(lp) & (det != 0), np.maximum(lp, 0.0), 0.0)
    lq = np.where(np.isfinite(lq) & (det != 0), np.maximum(lq, 0.0), 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        # residual r = a + A^T lam, minimised over the box (a wrong lam only loosens)
        r0 = a0 + lp * Ap[..., 0] + lq * Aq[..., 0]
        r1 = a1 + lp * Ap[..., 1] + lq * Aq[..., 1]
        bound = box_min(np.stack([r0, r1], axis=-1), lo2, hi2)
        lbp = np.where(lp > 0, lp * bp, 0.0)
        lbq = np.where(lq > 0, lq * bq, 0.0)
        bound -= lbp
        bound -= lbq
        # outward margin for the rounding in this certificate (about ten
        # roundings per term; 2^-45 is 256 unit roundoffs of float64)
        x0 = np.maximum(np.abs(lo2[:, 0]), np.abs(hi2[:, 0]))[:, None]
        x1 = np.maximum(np.abs(lo2[:, 1]), np.abs(hi2[:, 1]))[:, None]
        mag = np.abs(lbp) + np.abs(lbq)
        mag += (np.abs(a0) + np.abs(lp * Ap[..., 0]) + np.abs(lq * Aq[..., 0])) * x0
        mag += (np.abs(a1) + np.abs(lp * Ap[..., 1]) + np.abs(lq * Aq[..., 1])) * x1
        bound -= 2.0**-45 * mag
    return np.where(np.isnan(bound), -np.inf, bound)


def tighten_boxes(regions: RegionBatch) -> RegionBatch:
    """Shrink each box to the certified bounding box of its polygons (same point set).

    Each pair's polygon ∩ box contains the region, so the certified range of
    ``x_i`` and ``x_j`` over it (four objectives per pair) bounds the region.
    """
    if not regions.has_polygons:
        return regions
    n = regions.n
    lo, hi = regions.lower.copy(), regions.upper.copy()
    rows = np.broadcast_to(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), (n, 4, 2))
    for k in range(len(regions.pairs)):
        i, j = regions.pairs[k]
        pv = regions.pair_vertices(k)
        cols = [i, j]
        lo2, hi2 = regions.lower[:, cols], regions.upper[:, cols]
        m = _pair_min(rows, pv, lo2, hi2)
        use = pv.usable[:, None]
        lo[:, cols] = np.where(use, np.maximum(lo[:, cols], m[:, :2]), lo[:, cols])
        hi[:, cols] = np.where(use, np.minimum(hi[:, cols], -m[:, 2:]), hi[:, cols])
    # keep the original where rounding would cross (an empty or degenerate cut)
    bad = lo > hi
    lo = np.where(bad, regions.lower, lo)
    hi = np.where(bad, regions.upper, hi)
    return regions.with_tighter_boxes(lo, hi)

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
        return np.einsum("nkd,nd->nk", a, c) - np.einsum("nkd,nd->nk", np.abs(a), r)
    with np.errstate(invalid="ignore", over="ignore"):
        t = np.where(a > 0, a * lower[:, None, :], np.where(a < 0, a * upper[:, None, :], 0.0))
    return t.sum(-1)


def region_min(a: np.ndarray, c: np.ndarray, regions: RegionBatch) -> np.ndarray:
    """Lower bound of ``min_x a.x + c`` over each region; ``a [n, k, d]``, ``c [n, k]``."""
    lo, hi = regions.lower, regions.upper
    if not regions.has_polygons:
        return box_min(a, lo, hi) + c
    out = c.copy()
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
    """Certified minimum of ``a2 . (x_i, x_j)`` over polygon ∩ box for one pair."""
    n, m, _ = a2.shape
    vals = np.einsum("nmt,nvt->nmv", a2, pv.xy)
    vals = np.where(pv.valid[:, None, :], vals, np.inf)
    best = np.argmin(vals, axis=-1)  # [n, m]
    rows = np.take_along_axis(pv.rows[:, None, :, :], best[..., None, None], axis=2)[
        :, :, 0, :
    ]  # [n, m, 2]
    nidx = np.arange(n)[:, None]
    Ap = pv.A[nidx, rows[..., 0]]  # [n, m, 2]
    Aq = pv.A[nidx, rows[..., 1]]
    bp = pv.b[nidx, rows[..., 0]]
    bq = pv.b[nidx, rows[..., 1]]
    # solve lam_p * Ap + lam_q * Aq = -a2 (2x2, Cramer)
    det = Ap[..., 0] * Aq[..., 1] - Ap[..., 1] * Aq[..., 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sdet = np.where(det != 0, det, 1.0)
        lp = (-a2[..., 0] * Aq[..., 1] + a2[..., 1] * Aq[..., 0]) / sdet
        lq = (-Ap[..., 0] * a2[..., 1] + Ap[..., 1] * a2[..., 0]) / sdet
    lp = np.where(np.isfinite(lp) & (det != 0), np.maximum(lp, 0.0), 0.0)
    lq = np.where(np.isfinite(lq) & (det != 0), np.maximum(lq, 0.0), 0.0)
    resid = a2 + lp[..., None] * Ap + lq[..., None] * Aq
    with np.errstate(invalid="ignore", over="ignore"):
        lb = np.where(lp > 0, lp * bp, 0.0) + np.where(lq > 0, lq * bq, 0.0)
        bound = box_min(resid, lo2, hi2) - lb
        # outward margin for the rounding in this certificate (about ten
        # roundings per term; 2^-45 is 256 unit roundoffs of float64)
        xmag = np.maximum(np.abs(lo2), np.abs(hi2))[:, None, :]
        mag = (
            np.abs(lp * bp)
            + np.abs(lq * bq)
            + ((np.abs(a2) + np.abs(lp[..., None] * Ap) + np.abs(lq[..., None] * Aq)) * xmag).sum(
                -1
            )
        )
        bound = bound - 2.0**-45 * mag
    return np.where(np.isnan(bound), -np.inf, bound)


def tighten_boxes(regions: RegionBatch) -> RegionBatch:
    """Shrink each box to the certified bounding box of its polygons (same point set)."""
    if not regions.has_polygons:
        return regions
    n, d = regions.n, regions.d
    eye = np.concatenate([np.eye(d), -np.eye(d)])  # 2d rows
    a = np.broadcast_to(eye, (n, 2 * d, d))
    m = region_min(a, np.zeros((n, 2 * d)), regions)
    lo = np.maximum(regions.lower, m[:, :d])
    hi = np.minimum(regions.upper, -m[:, d:])
    # keep the original where rounding would cross (an empty or degenerate cut)
    bad = lo > hi
    lo = np.where(bad, regions.lower, lo)
    hi = np.where(bad, regions.upper, hi)
    return regions.with_tighter_boxes(lo, hi)

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
(_kernels.py: IEEE float64, no fast-math; the same source as plain Python for small
batches, _kernels_py.py); ``_pair_min_reference`` states
the same certificate in numpy and the tests hold the two equal.
When pairs overlap, a greedy disjoint subset is used (still sound, looser);
``region_min(..., overlap_lp=True)`` then also minimises over box ∩ *all*
polygons by an LP (``lp_min``: HiGHS via scipy, many regions per call as
independent blocks) and keeps the better of the two bounds. The LP optimum
is never trusted: its dual multipliers ``y`` only guide the same weak-duality
certificate (``dual_bound``: ``a.x >= min_box((a + G^T y).x) - y.h`` for every
``x`` with ``G x <= h``, any ``y >= 0``), evaluated in float64 with an outward
margin. An LP reported infeasible proves nothing until a phase-one LP's dual
certifies emptiness the same way (``y.(G x - h) > 0`` on the whole box).
"""

from __future__ import annotations

import numpy as np

from .regions import GUIDE_TOL, RegionBatch, root_cycles

_U64 = 2.0**-53
LP_BLOCKS = 64  # objective instances (region, row) per LP call, as independent blocks


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


def region_min(
    a: np.ndarray, c: np.ndarray, regions: RegionBatch, overlap_lp: bool = False
) -> np.ndarray:
    """Lower bound of ``min_x a.x + c`` over each region; ``a [n, k, d]``, ``c [n, k]``.

    ``overlap_lp``: where pairs overlap, also certify the minimum over box ∩
    all polygons by LP (``lp_min``) and keep the larger bound (``+inf`` for a
    region certified empty).
    """
    lo, hi = regions.lower, regions.upper
    if not regions.has_polygons:
        return box_min(a, lo, hi) + c
    out = _greedy_min(a, c, regions)
    if overlap_lp and regions.has_overlap:
        with np.errstate(invalid="ignore", over="ignore"):
            lp = lp_min(a, regions) + c
        out = np.where(np.isnan(lp), out, np.maximum(out, lp))
    return out


def _greedy_min(a: np.ndarray, c: np.ndarray, regions: RegionBatch) -> np.ndarray:
    """``region_min`` over box ∩ a greedy disjoint subset of the polygons (vertex certificates)."""
    lo, hi = regions.lower, regions.upper
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
    from ._kernels_py import kernels

    return kernels(a2.shape[0]).pair_min_certified(
        np.ascontiguousarray(a2, dtype=np.float64),
        pv.xy,
        pv.rows,
        pv.A,
        pv.b,
        pv.src,
        np.ascontiguousarray(lo2),
        np.ascontiguousarray(hi2),
        pv.usable,
    )


def _pair_min_reference(a2: np.ndarray, pv, lo2: np.ndarray, hi2: np.ndarray) -> np.ndarray:
    """``_pair_min`` in numpy (the same arithmetic, vectorised): the readable statement
    of the certificate, cross-checked against the kernel in the tests."""
    from ._kernels_py import PLAIN

    TIE = PLAIN.TIE
    n, m, _ = a2.shape
    full_A, full_b = pv.system(lo2, hi2)
    V, K = pv.xy.shape[1], full_A.shape[1]
    a2 = np.ascontiguousarray(a2)
    # every vertex within TIE of the best one (they only guide which certificates
    # are built) gives a certificate; the largest bound is kept
    val = a2[:, :, None, 0] * pv.xy[:, None, :, 0] + a2[:, :, None, 1] * pv.xy[:, None, :, 1]
    xm = np.maximum(np.abs(lo2), np.abs(hi2))  # [n, 2]
    tie = val.min(-1, keepdims=True) + TIE * (np.abs(a2) * xm[:, None, :]).sum(-1)[..., None]
    flat = np.arange(n)[:, None] * V + np.arange(V)[None, :]  # [n, V]
    rows = pv.rows.reshape(n * V, 2)[flat]  # [n, V, 2]
    rows = rows + K * np.arange(n)[:, None, None]
    rows = np.broadcast_to(rows[:, None], (n, m, V, 2))
    A, b = full_A.reshape(n * K, 2), full_b.reshape(n * K)
    Ap, Aq = A[rows[..., 0]], A[rows[..., 1]]  # [n, m, V, 2]
    bp, bq = b[rows[..., 0]], b[rows[..., 1]]
    a = np.broadcast_to(a2[:, :, None, :], (n, m, V, 2))
    a0, a1 = a[..., 0], a[..., 1]
    # solve lam_p * Ap + lam_q * Aq = -a2 (2x2, Cramer)
    det = Ap[..., 0] * Aq[..., 1] - Ap[..., 1] * Aq[..., 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sdet = np.where(det != 0, det, 1.0)
        lp = (a1 * Aq[..., 0] - a0 * Aq[..., 1]) / sdet
        lq = (Ap[..., 1] * a0 - Ap[..., 0] * a1) / sdet
    lp = np.where(np.isfinite(lp) & (det != 0), np.maximum(lp, 0.0), 0.0)
    lq = np.where(np.isfinite(lq) & (det != 0), np.maximum(lq, 0.0), 0.0)
    # the certificate: residual a + A^T lam minimised over the box, minus lam.b and
    # the outward rounding margin (a wrong lam only loosens)
    N = n * m * V
    G = np.stack([Ap, Aq], axis=-2).reshape(N, 2, 2)
    h = np.stack([bp, bq], axis=-1).reshape(N, 2)
    y = np.stack([lp, lq], axis=-1).reshape(N, 2)
    lo_r = np.repeat(lo2, m * V, axis=0)
    hi_r = np.repeat(hi2, m * V, axis=0)
    bound = dual_bound(a.reshape(N, 2), G, h, y, lo_r, hi_r).reshape(n, m, V)
    bound = np.where(np.isnan(bound), -np.inf, bound)
    return np.where(val <= tie, bound, -np.inf).max(-1)


def tighten_boxes(regions: RegionBatch) -> RegionBatch:
    """Shrink each box to the certified bounding box of its polygons (same point set).

    Each pair's polygon ∩ box contains the region, so the certified range of
    ``x_i`` and ``x_j`` over it (four objectives per pair) bounds the region.
    """
    return tighten_or_empty(regions)[0]


def tighten_or_empty(
    regions: RegionBatch, changed: np.ndarray | None = None
) -> tuple[RegionBatch, np.ndarray]:
    """``tighten_boxes`` and which regions it proved empty: a certified lower bound of
    some input above a certified upper bound (every point would lie above and below
    it). Those keep their boxes; branch and bound drops such pieces.

    ``changed [n]``: the one input whose bounds changed since the box was last
    tightened (-1: unknown); only the pairs holding it are applied (a pair's cut
    depends on its two inputs' bounds alone, so the others would repeat themselves).
    """
    if not regions.has_polygons:
        return regions, np.zeros(regions.n, bool)
    from ._kernels_py import kernels

    tighten_cycles = kernels(regions.n).tighten_cycles

    n = regions.n
    lo, hi = regions.lower.copy(), regions.upper.copy()
    root, _ = regions.lineage()
    for k in range(len(regions.pairs)):
        i, j = regions.pairs[k]
        rows = np.arange(n)
        if changed is not None:
            rows = np.flatnonzero((changed < 0) | (changed == i) | (changed == j))
            if not len(rows):
                continue
        (cxy, cedge, count), index = root_cycles(regions, k)
        A, b = root.halfspaces[k]
        cols = [i, j]
        new_lo, new_hi, _ = tighten_cycles(
            cxy, cedge, count, index[rows], A, b,
            np.ascontiguousarray(regions.lower[rows][:, cols]),
            np.ascontiguousarray(regions.upper[rows][:, cols]), GUIDE_TOL,
        )  # fmt: skip
        at = np.ix_(rows, cols)
        lo[at] = np.maximum(lo[at], new_lo)
        hi[at] = np.minimum(hi[at], new_hi)
    # crossing bounds prove the region empty; its box is kept
    bad = lo > hi
    lo = np.where(bad, regions.lower, lo)
    hi = np.where(bad, regions.upper, hi)
    return regions.with_tighter_boxes(lo, hi), bad.any(axis=1)


def dual_bound(
    a: np.ndarray, G: np.ndarray, h: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Certified lower bound of ``min a.x`` over ``{G x <= h} ∩ [lo, hi]`` from multipliers ``y``.

    ``a [N, d]``, ``G [N, K, d]``, ``h [N, K]``, ``y [N, K]``, finite boxes
    ``lo, hi [N, d]``. Weak duality: for ``y >= 0`` and every feasible ``x``,
    ``a.x >= a.x + y.(G x - h) = r.x - y.h >= min_box(r.x) - y.h`` with
    ``r = a + G^T y``; the box minimum plays the role of the box multipliers.
    ``y`` is clamped to ``>= 0`` (NaN -> 0), so any input gives a valid bound.
    Rounding: ``r`` carries at most ``gamma_{K+1}`` relative error per entry,
    the box minimum ``gamma_{2d+2}``, ``y.h`` ``gamma_K``, all relative to
    ``mag = sum|y h| + sum_i (|a_i| + sum_p |y_p G_pi|) max(|lo_i|, |hi_i|)``;
    we subtract ``max(2^-45, 2 gamma_{K+2d+8}) * mag`` (also covering the
    rounding of ``mag`` itself and of the final subtraction).
    """
    N, K, d = G.shape
    y = np.where(np.isfinite(y), np.maximum(y, 0.0), 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        yG = y[:, :, None] * G  # [N, K, d]
        r = a + yG.sum(1)
        bound = box_min(r[:, None, :], lo, hi)[:, 0]
        yh = np.where(y > 0, y * h, 0.0)
        bound -= yh.sum(1)
        xm = np.maximum(np.abs(lo), np.abs(hi))
        mag = np.abs(yh).sum(1) + ((np.abs(a) + np.abs(yG).sum(1)) * xm).sum(1)
        k = K + 2 * d + 8
        factor = max(2.0**-45, 2.0 * k * _U64 / (1.0 - k * _U64))
        bound -= factor * mag
    return np.where(np.isnan(bound), -np.inf, bound)


def _all_constraints(regions: RegionBatch) -> tuple[np.ndarray, np.ndarray]:
    """Every polygon halfspace of every pair as rows over all inputs: ``G [n, K, d]``,
    ``h [n, K]``; rows every point satisfies (zero or ``h = +inf``) become ``0 <= 0``,
    and so do impossible zero rows (``0 <= h < 0``): dropping a constraint only loosens."""
    n, d = regions.n, regions.d
    Gs, hs = [], []
    for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
        G = np.zeros((n, A.shape[1], d))
        G[:, :, i] = A[:, :, 0]
        G[:, :, j] = A[:, :, 1]
        drop = ~np.isfinite(b) | ((A[:, :, 0] == 0) & (A[:, :, 1] == 0))
        G[drop] = 0.0
        Gs.append(G)
        hs.append(np.where(drop, 0.0, b))
    return np.concatenate(Gs, axis=1), np.concatenate(hs, axis=1)


def _solve_blocks(
    objs: np.ndarray, G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[int, np.ndarray]:
    """Minimise ``sum_q objs[q].x_q`` s.t. ``G[q] x_q <= h[q]``, ``lo[q] <= x_q <= hi[q]``:
    independent blocks in one HiGHS call. Returns the status and the multipliers
    ``y [N, K] >= 0`` (only a guide for ``dual_bound``; zeros unless status is 0)."""
    from scipy import sparse
    from scipy.optimize import linprog

    N, K, d = G.shape
    keep = (G != 0).any(-1)  # [N, K] rows that constrain something
    rows = [sparse.csr_matrix(G[q][keep[q]]) for q in range(N)]
    A = sparse.block_diag(rows, format="csr") if keep.any() else None
    b = h[keep] if keep.any() else None
    bounds = np.stack([lo.reshape(-1), hi.reshape(-1)], axis=1)
    res = linprog(objs.reshape(-1), A_ub=A, b_ub=b, bounds=bounds, method="highs")
    y = np.zeros((N, K))
    if res.status == 0 and A is not None and res.ineqlin is not None:
        y[keep] = -np.asarray(res.ineqlin.marginals, dtype=np.float64)  # HiGHS: <= 0 for a min
    return int(res.status), y


def _certify_empty(G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether ``{G x <= h} ∩ [lo, hi]`` (one region) is certified empty.

    Phase one: minimise ``s`` s.t. ``G x - s <= h`` over the box. Its dual ``y >= 0``
    gives ``y.(G x - h) >= min_box((G^T y).x) - y.h`` for every x in the box
    (``dual_bound`` with ``a = 0``); a certified value above 0 contradicts
    ``y.(G x - h) <= 0``, which every feasible x satisfies.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    keep = (G != 0).any(-1)
    if not keep.any():
        return False
    Gk, hk = G[keep], h[keep]
    d = G.shape[1]
    A = sparse.csr_matrix(np.concatenate([Gk, -np.ones((len(hk), 1))], axis=1))
    c = np.zeros(d + 1)
    c[-1] = 1.0
    bounds = [(lo[i], hi[i]) for i in range(d)] + [(None, None)]
    res = linprog(c, A_ub=A, b_ub=hk, bounds=bounds, method="highs")
    if res.status != 0 or res.ineqlin is None:
        return False
    y = np.zeros((1, G.shape[0]))
    y[0, keep] = -np.asarray(res.ineqlin.marginals, dtype=np.float64)
    cert = dual_bound(np.zeros((1, d)), G[None], h[None], y, lo[None], hi[None])
    return bool(cert[0] > 0.0)


def lp_min(a: np.ndarray, regions: RegionBatch, blocks: int = LP_BLOCKS) -> np.ndarray:
    """Certified lower bound ``[n, k]`` of ``min a[r, k].x`` over box ∩ all polygons.

    Regions with an infinite box bound get ``-inf`` (callers keep their other
    bound); a region certified empty gets ``+inf``. ``blocks`` objective
    instances share one LP call; a call that does not end optimal is retried
    per region, and an infeasible region is only believed empty when
    ``_certify_empty`` proves it.
    """
    n, k, d = a.shape
    out = np.full((n, k), -np.inf)
    lo, hi = regions.lower, regions.upper
    ok = np.isfinite(lo).all(1) & np.isfinite(hi).all(1) & np.isfinite(a).all((1, 2))
    G, h = _all_constraints(regions)
    regs = np.flatnonzero(ok)
    if not len(regs):
        return out
    per = max(1, blocks // max(k, 1))  # regions per call
    for s in range(0, len(regs), per):
        rr = regs[s : s + per]
        _solve_regions(a, G, h, lo, hi, rr, out)
    return out


def _solve_regions(
    a: np.ndarray,
    G: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    rr: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out[rr]`` with certified bounds (one LP call for all of ``rr``'s rows)."""
    k = a.shape[1]
    q_r = np.repeat(rr, k)  # instance -> region
    q_k = np.tile(np.arange(k), len(rr))
    Gq, hq, loq, hiq = G[q_r], h[q_r], lo[q_r], hi[q_r]
    aq = a[q_r, q_k]
    status, y = _solve_blocks(aq, Gq, hq, loq, hiq)
    if status == 0:
        out[q_r, q_k] = dual_bound(aq, Gq, hq, y, loq, hiq)
        return
    if len(rr) > 1:  # one bad region spoils the call: isolate it
        for r in rr:
            _solve_regions(a, G, h, lo, hi, np.array([r]), out)
        return
    r = int(rr[0])
    if status == 2 and _certify_empty(G[r], h[r], lo[r], hi[r]):
        out[r] = np.inf

"""numba kernels for the polygon *guides*: which vertex to certify.

Nothing computed here is trusted for soundness. ``clip_vertices`` proposes
the vertices of polygon ∩ box (``polygon_cycles`` orders them once per batch
and ``clip_cycles`` cuts the cycle by the smaller boxes of branch and bound);
``pair_min_certified`` picks, per objective row, the best vertex and builds
a dual certificate from the rows that meet there (weak duality with the
residual absorbed by the box), so a wrong vertex or a wrong choice can only
loosen a bound, never make it unsound.

Compiled on first use (about a second, cached on disk by numba), with numpy's error
model: a division by zero gives an IEEE infinity or NaN, as in the numpy statements these
kernels are held equal to, never a ZeroDivisionError.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clip_vertices(A, b, tol):  # pragma: no cover - compiled
    """Vertices of ``{x : A[r] x <= b[r]}`` (2-D) for every region r.

    For each constraint line p, the feasible part of the line is the
    interval ``[tmin, tmax]`` along its direction (the normal turned by +90
    degrees, so edges run counter-clockwise); its start ``tmin`` is a vertex,
    and every vertex of a convex polygon starts exactly one edge. Returns
    ``xy [n, K, 2]``, ``rows [n, K, 2]`` (the two constraints meeting there),
    ``valid [n, K]``; invalid entries repeat the region's first valid vertex
    so that callers need no mask.
    """
    n, K = b.shape
    xy = np.zeros((n, K, 2))
    rows = np.zeros((n, K, 2), np.int64)
    valid = np.zeros((n, K), np.bool_)
    for r in range(n):
        first = -1
        for p in range(K):
            a0 = A[r, p, 0]
            a1 = A[r, p, 1]
            bp = b[r, p]
            rows[r, p, 0] = p
            rows[r, p, 1] = p
            nn = a0 * a0 + a1 * a1
            if nn == 0.0 or not np.isfinite(bp):
                continue
            sc = bp / nn
            x0 = a0 * sc
            y0 = a1 * sc
            dx = -a1
            dy = a0
            xm = max(abs(x0), abs(y0))
            tmin = -np.inf
            tmax = np.inf
            qbest = -1
            ok = True
            for q in range(K):
                if q == p:
                    continue
                c0 = A[r, q, 0]
                c1 = A[r, q, 1]
                bq = b[r, q]
                s = c0 * dx + c1 * dy
                rr = bq - (c0 * x0 + c1 * y0)
                if s > 0.0:
                    t = rr / s
                    if t < tmax:
                        tmax = t
                elif s < 0.0:
                    t = rr / s
                    if t > tmin:
                        tmin = t
                        qbest = q
                elif rr < -tol * (1.0 + abs(bq) + (abs(c0) + abs(c1)) * xm):
                    ok = False  # a parallel constraint excludes the whole line
                    break
            if not ok or qbest < 0 or not np.isfinite(tmin):
                continue
            if tmin > tmax + tol * (1.0 + abs(tmin) + abs(tmax)):
                continue
            xy[r, p, 0] = x0 + tmin * dx
            xy[r, p, 1] = y0 + tmin * dy
            rows[r, p, 1] = qbest
            valid[r, p] = True
            if first < 0:
                first = p
        if first >= 0:
            for p in range(K):
                if not valid[r, p]:
                    xy[r, p, 0] = xy[r, first, 0]
                    xy[r, p, 1] = xy[r, first, 1]
                    rows[r, p, 0] = rows[r, first, 0]
                    rows[r, p, 1] = rows[r, first, 1]
    return xy, rows, valid


TIE = 1e-9  # vertices within TIE * magnitude of the best one are tied: each gives a certificate


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _row(A, b, s, p, lo2, hi2, r):  # pragma: no cover - compiled
    """Row p of region r's system: polygon row p of root region s, or a box row."""
    K = A.shape[1]
    if p < K:
        return A[s, p, 0], A[s, p, 1], b[s, p]
    side = p - K
    if side == 0:
        return -1.0, 0.0, -lo2[r, 0]
    if side == 1:
        return 1.0, 0.0, hi2[r, 0]
    if side == 2:
        return 0.0, -1.0, -lo2[r, 1]
    return 0.0, 1.0, hi2[r, 1]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _certificate(a0, a1, A, b, s, p, q, lo2, hi2, r, c0, h0, c1, h1, x0m, x1m):  # pragma: no cover
    """Weak-duality bound of ``min a . x`` from rows p and q of region r (see below)."""
    p0, p1, bp = _row(A, b, s, p, lo2, hi2, r)
    q0, q1, bq = _row(A, b, s, q, lo2, hi2, r)
    det = p0 * q1 - p1 * q0
    lp = 0.0
    lq = 0.0
    if det != 0.0:
        lp = (a1 * q0 - a0 * q1) / det
        lq = (p1 * a0 - p0 * a1) / det
        lp = max(lp, 0.0) if np.isfinite(lp) else 0.0
        lq = max(lq, 0.0) if np.isfinite(lq) else 0.0
    r0 = a0 + lp * p0 + lq * q0
    r1 = a1 + lp * p1 + lq * q1
    bound = (r0 * c0 - abs(r0) * h0) + (r1 * c1 - abs(r1) * h1)
    lbp = lp * bp if lp > 0.0 else 0.0
    lbq = lq * bq if lq > 0.0 else 0.0
    bound = bound - lbp - lbq
    mag = abs(lbp) + abs(lbq)
    mag += (abs(a0) + abs(lp * p0) + abs(lq * q0)) * x0m
    mag += (abs(a1) + abs(lp * p1) + abs(lq * q1)) * x1m
    bound -= 2.0**-45 * mag
    return -np.inf if np.isnan(bound) else bound


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _best_bound(a0, a1, pts, prow, qrow, m, A, b, s, lo2, hi2, r):  # pragma: no cover
    """Certified lower bound of ``min a . x`` over region r from its ``m`` vertex guides
    ``pts`` (rows ``prow``, ``qrow`` meet at each): the certificates of every vertex
    tied for the best value, the largest kept (see ``pair_min_certified``)."""
    c0 = 0.5 * (lo2[r, 0] + hi2[r, 0])
    h0 = 0.5 * (hi2[r, 0] - lo2[r, 0])
    c1 = 0.5 * (lo2[r, 1] + hi2[r, 1])
    h1 = 0.5 * (hi2[r, 1] - lo2[r, 1])
    x0m = max(abs(lo2[r, 0]), abs(hi2[r, 0]))
    x1m = max(abs(lo2[r, 1]), abs(hi2[r, 1]))
    best = np.inf
    for v in range(m):
        val = a0 * pts[v, 0] + a1 * pts[v, 1]
        if val < best:
            best = val
    tie = best + TIE * (abs(a0) * x0m + abs(a1) * x1m)
    bound = -np.inf
    f0 = -1  # rows of the first and last certificates built (padding repeats them)
    f1 = -1
    l0 = -1
    l1 = -1
    for v in range(m):
        val = a0 * pts[v, 0] + a1 * pts[v, 1]
        if val > tie:
            continue
        p = prow[v]
        q = qrow[v]
        if (p == f0 and q == f1) or (p == l0 and q == l1):
            continue
        got = _certificate(a0, a1, A, b, s, p, q, lo2, hi2, r, c0, h0, c1, h1, x0m, x1m)
        if got > bound:
            bound = got
        if f0 < 0:
            f0 = p
            f1 = q
        l0 = p
        l1 = q
    return bound


@numba.njit(cache=True, nogil=True, error_model="numpy")
def pair_min_certified(a2, xy, rows, A, b, src, lo2, hi2, usable):  # pragma: no cover
    """Certified lower bound of ``min a2[r, k] . x`` over polygon ∩ box -> ``[n, m]``.

    The same arithmetic as ``concretize._pair_min_reference`` (IEEE float64,
    no fast-math), one region and row at a time: the best vertex is only a
    guide; the bound is weak duality with the two constraints that meet there,
    ``lam >= 0`` by Cramer's rule (clamped), the residual ``a + A^T lam``
    minimised over the box, and the outward rounding margin ``2^-45 * mag``.
    Polygon rows are ``A[src[r]], b[src[r]]``; rows from ``K = A.shape[1]`` on are the
    box's (-x, +x, -y, +y at ``lo2[r], hi2[r]``).
    Where several entries tie for the best vertex (three rows meeting at a point,
    a vertex on a box side) each one's rows give a certificate and the largest
    bound is kept: only the right two rows give the exact minimum.
    Regions that are not ``usable`` get ``-inf`` (callers ignore them).
    """
    n, m, _ = a2.shape
    V = xy.shape[1]
    out = np.empty((n, m))
    for r in range(n):
        for k in range(m):
            if not usable[r]:
                out[r, k] = -np.inf
                continue
            out[r, k] = _best_bound(
                a2[r, k, 0], a2[r, k, 1], xy[r], rows[r, :, 0], rows[r, :, 1], V, A, b, src[r],
                lo2, hi2, r,
            )  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def polygon_cycles(A, b, tol):  # pragma: no cover - compiled
    """The vertices of each ``{x : A[r] x <= b[r]}`` (2-D, bounded) in counter-clockwise
    order: ``xy [n, K, 2]``, ``edge [n, K]`` (the row of the edge leaving each vertex)
    and ``count [n]``. Boxes cut from such a region are then clipped in O(count)
    (``clip_cycles``) instead of intersecting every pair of rows again."""
    xy0, rows0, valid0 = clip_vertices(A, b, tol)
    n, K = b.shape
    xy = np.zeros((n, K, 2))
    edge = np.zeros((n, K), np.int64)
    count = np.zeros(n, np.int64)
    ang = np.empty(K)
    idx = np.empty(K, np.int64)
    for r in range(n):
        m = 0
        cx = 0.0
        cy = 0.0
        for p in range(K):
            if valid0[r, p]:
                cx += xy0[r, p, 0]
                cy += xy0[r, p, 1]
                m += 1
        if m == 0:
            continue
        cx /= m
        cy /= m
        t = 0
        for p in range(K):
            if valid0[r, p]:
                idx[t] = p
                ang[t] = np.arctan2(xy0[r, p, 1] - cy, xy0[r, p, 0] - cx)
                t += 1
        order = np.argsort(ang[:m])
        # coincident vertices (three rows through one point, a zero-length edge) come
        # out of the sort in any order: keep one per point, leaving it by the row whose
        # line passes closest to the next point (the real edge)
        g = 0
        t = 0
        while t < m:
            p = idx[order[t]]
            x0 = xy0[r, p, 0]
            y0 = xy0[r, p, 1]
            e = t + 1
            while e < m:
                q = idx[order[e]]
                d = abs(xy0[r, q, 0] - x0) + abs(xy0[r, q, 1] - y0)
                if d > tol * (1.0 + abs(x0) + abs(y0)):
                    break
                e += 1
            nxt = idx[order[e if e < m else 0]]
            nx = xy0[r, nxt, 0]
            ny = xy0[r, nxt, 1]
            best = np.inf
            for u in range(t, e):
                q = idx[order[u]]
                a0 = A[r, q, 0]
                a1 = A[r, q, 1]
                res = abs(a0 * nx + a1 * ny - b[r, q]) / (abs(a0) + abs(a1) + 1e-300)
                if res < best:
                    best = res
                    p = q
            xy[r, g, 0] = x0
            xy[r, g, 1] = y0
            edge[r, g] = p  # clip_vertices: the vertex of row p starts edge p
            g += 1
            t = e
        count[r] = g
    return xy, edge, count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _clip_buffers(V):  # pragma: no cover - compiled
    """Scratch for ``_clip_one``: two vertex lists of capacity V with their edge rows."""
    return (
        np.empty((V, 2)), np.empty(V, np.int64), np.empty(V, np.int64),
        np.empty((V, 2)), np.empty(V, np.int64), np.empty(V, np.int64),
    )  # fmt: skip


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _clip_one(
    cxy, cedge, count, s, lo, hi, r, K, tol, px, pin, pout, qx, qin, qout
):  # pragma: no cover
    """Cycle ``s`` cut by box r into ``px`` (vertices), ``pin``/``pout`` (the rows of the
    edges entering / leaving each); returns the vertex count (see ``clip_cycles``)."""
    V = px.shape[0]
    m = count[s]
    if m == 0:
        return 0
    for t in range(m):
        px[t, 0] = cxy[s, t, 0]
        px[t, 1] = cxy[s, t, 1]
        pout[t] = cedge[s, t]
        pin[t] = cedge[s, t - 1 if t > 0 else m - 1]
    for side in range(4):
        axis = side // 2
        if side % 2 == 0:
            sign = -1.0
            bound = lo[r, axis]
        else:
            sign = 1.0
            bound = hi[r, axis]
        if not np.isfinite(bound):
            continue
        slack = tol * (1.0 + abs(bound))
        m2 = 0
        for u in range(m):
            if m2 + 2 > V:  # only a non-convex cycle (rounding) could get here
                break
            w = u + 1 if u + 1 < m else 0
            du = sign * (px[u, axis] - bound)
            dw = sign * (px[w, axis] - bound)
            uin = du <= slack
            win = dw <= slack
            if uin != win:
                f = du / (du - dw)
                f = min(max(f, 0.0), 1.0)
                qx[m2, 0] = px[u, 0] + f * (px[w, 0] - px[u, 0])
                qx[m2, 1] = px[u, 1] + f * (px[w, 1] - px[u, 1])
                qx[m2, axis] = bound
                if uin:
                    qin[m2] = pout[u]
                    qout[m2] = K + side
                else:
                    qin[m2] = K + side
                    qout[m2] = pout[u]
                m2 += 1
            if win:
                qx[m2, 0] = px[w, 0]
                qx[m2, 1] = px[w, 1]
                qin[m2] = pin[w]
                qout[m2] = pout[w]
                m2 += 1
        m = m2
        for t in range(m):
            px[t, 0] = qx[t, 0]
            px[t, 1] = qx[t, 1]
            pin[t] = qin[t]
            pout[t] = qout[t]
        if m == 0:
            return 0
    return m


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clip_cycles(cxy, cedge, count, src, lo, hi, K, tol):  # pragma: no cover - compiled
    """Vertices of cycle ``src[r]`` (``polygon_cycles``) cut by box ``[lo[r], hi[r]]``
    (Sutherland-Hodgman, one box side at a time), in ``clip_vertices``' layout:
    ``xy [n, V, 2]``, ``rows [n, V, 2]`` (the two rows meeting there: cycle rows as
    given, box rows ``K + (0: -x, 1: +x, 2: -y, 3: +y)``), ``valid [n, V]``, with
    ``V = cxy.shape[1] + 4``. Points within ``tol`` (relative) of a side count as
    inside: like clip_vertices, a guide that errs outwards."""
    n = len(src)
    V = cxy.shape[1] + 4
    xy = np.zeros((n, V, 2))
    rows = np.zeros((n, V, 2), np.int64)
    valid = np.zeros((n, V), np.bool_)
    px, pin, pout, qx, qin, qout = _clip_buffers(V)
    for r in range(n):
        m = _clip_one(cxy, cedge, count, src[r], lo, hi, r, K, tol, px, pin, pout, qx, qin, qout)
        if m == 0:
            continue
        for t in range(V):
            u = t if t < m else 0
            xy[r, t, 0] = px[u, 0]
            xy[r, t, 1] = px[u, 1]
            rows[r, t, 0] = pout[u]
            rows[r, t, 1] = pin[u]
            valid[r, t] = t < m
    return xy, rows, valid


@numba.njit(cache=True, nogil=True, error_model="numpy")
def tighten_cycles(cxy, cedge, count, src, A, b, lo, hi, tol):  # pragma: no cover - compiled
    """Certified bounding boxes of cycle ``src[r]`` cut by box r, without materialising
    the vertices: ``clip_cycles`` and ``pair_min_certified`` on the four axis
    objectives, fused (branch and bound tightens thousands of pieces per round).
    Returns the new ``lo, hi [n, 2]`` (the old ones where nothing was certified) and
    ``usable [n]`` (a vertex was found)."""
    n = len(src)
    V = cxy.shape[1] + 4
    K = A.shape[1]
    new_lo = lo.copy()
    new_hi = hi.copy()
    usable = np.zeros(n, np.bool_)
    px, pin, pout, qx, qin, qout = _clip_buffers(V)
    for r in range(n):
        if not (np.isfinite(lo[r, 0]) and np.isfinite(lo[r, 1])):
            continue
        if not (np.isfinite(hi[r, 0]) and np.isfinite(hi[r, 1])):
            continue
        s = src[r]
        m = _clip_one(cxy, cedge, count, s, lo, hi, r, K, tol, px, pin, pout, qx, qin, qout)
        if m == 0:
            continue
        usable[r] = True
        for axis in range(2):
            a0 = 1.0 if axis == 0 else 0.0
            a1 = 1.0 - a0
            low = _best_bound(a0, a1, px, pout, pin, m, A, b, s, lo, hi, r)
            top = _best_bound(-a0, -a1, px, pout, pin, m, A, b, s, lo, hi, r)
            new_lo[r, axis] = max(lo[r, axis], low)
            new_hi[r, axis] = min(hi[r, axis], -top)
    return new_lo, new_hi, usable


@numba.njit(cache=True, nogil=True, error_model="numpy")
def inside_pair(A, b, xi, xj, ok):  # pragma: no cover - compiled
    """``ok[r, s] &= A[r] @ (xi[r, s], xj[r, s]) <= b[r]`` for one pair (witness.py's
    ``inside_points``; the same two products and sum per row, in IEEE float64)."""
    n, S = ok.shape
    K = b.shape[1]
    for r in range(n):
        for s in range(S):
            if not ok[r, s]:
                continue
            x = xi[r, s]
            y = xj[r, s]
            for p in range(K):
                if not (A[r, p, 0] * x + A[r, p, 1] * y <= b[r, p]):
                    ok[r, s] = False
                    break


@numba.njit(cache=True, nogil=True, error_model="numpy")
def pull_pair(A, b, ci, cj, dxi, dxj, lam):  # pragma: no cover - compiled
    """``lam[r, s] = min(lam[r, s], t)`` with t the largest step from ``c`` along ``dx``
    that stays inside pair polygon r (witness.py's ``pull_inside``: a NaN row gives 1,
    +inf gives 1, -inf gives 0, as numpy's nan_to_num of the rows' minimum)."""
    n, S = lam.shape
    K = b.shape[1]
    for r in range(n):
        for s in range(S):
            mn = np.inf
            nan = False
            for p in range(K):
                room = b[r, p] - (A[r, p, 0] * ci[r] + A[r, p, 1] * cj[r])
                step = A[r, p, 0] * dxi[r, s] + A[r, p, 1] * dxj[r, s]
                cut = room / step if step > room else 1.0
                if np.isnan(cut):
                    nan = True
                elif cut < mn:
                    mn = cut
            if nan or mn == np.inf:
                t = 1.0
            elif mn == -np.inf:
                t = 0.0
            else:
                t = mn
            if t < lam[r, s]:
                lam[r, s] = t

"""numba kernels for the polygon *guides*: which vertex to certify.

Nothing computed here is trusted for soundness. ``clip_vertices`` proposes
the vertices of polygon ∩ box (``polygon_cycles`` orders them once per batch
and ``clip_cycles`` cuts the cycle by the smaller boxes of branch and bound);
``pair_min_certified`` picks, per objective row, the best vertex and builds
a dual certificate from the rows that meet there (weak duality with the
residual absorbed by the box), so a wrong vertex or a wrong choice can only
loosen a bound, never make it unsound.

Compiled on first use (about a second, cached on disk by numba).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
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
        if not usable[r]:
            for k in range(m):
                out[r, k] = -np.inf
            continue
        c0 = 0.5 * (lo2[r, 0] + hi2[r, 0])
        h0 = 0.5 * (hi2[r, 0] - lo2[r, 0])
        c1 = 0.5 * (lo2[r, 1] + hi2[r, 1])
        h1 = 0.5 * (hi2[r, 1] - lo2[r, 1])
        x0m = max(abs(lo2[r, 0]), abs(hi2[r, 0]))
        x1m = max(abs(lo2[r, 1]), abs(hi2[r, 1]))
        for k in range(m):
            a0 = a2[r, k, 0]
            a1 = a2[r, k, 1]
            best = np.inf
            for v in range(V):
                val = a0 * xy[r, v, 0] + a1 * xy[r, v, 1]
                if val < best:
                    best = val
            tie = best + TIE * (abs(a0) * x0m + abs(a1) * x1m)
            bound = -np.inf
            f0 = -1  # rows of the first and last certificates built (padding repeats them)
            f1 = -1
            l0 = -1
            l1 = -1
            for v in range(V):
                val = a0 * xy[r, v, 0] + a1 * xy[r, v, 1]
                if val > tie:
                    continue
                p = rows[r, v, 0]
                q = rows[r, v, 1]
                if (p == f0 and q == f1) or (p == l0 and q == l1):
                    continue
                got = _certificate(
                    a0, a1, A, b, src[r], p, q, lo2, hi2, r, c0, h0, c1, h1, x0m, x1m
                )
                if got > bound:
                    bound = got
                if f0 < 0:
                    f0 = p
                    f1 = q
                l0 = p
                l1 = q
            out[r, k] = bound
    return out


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
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
    px = np.empty((V, 2))
    pin = np.empty(V, np.int64)
    pout = np.empty(V, np.int64)
    qx = np.empty((V, 2))
    qin = np.empty(V, np.int64)
    qout = np.empty(V, np.int64)
    for r in range(n):
        s = src[r]
        m = count[s]
        if m == 0:
            continue
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
                w = u + 1 if u + 1 < m else 0
                du = sign * (px[u, axis] - bound)
                dw = sign * (px[w, axis] - bound)
                uin = du <= slack
                win = dw <= slack
                if m2 + 2 > V:  # only a non-convex cycle (rounding) could get here
                    break
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
                break
        for t in range(V):
            u = t if t < m else 0
            if m == 0:
                break
            xy[r, t, 0] = px[u, 0]
            xy[r, t, 1] = px[u, 1]
            rows[r, t, 0] = pout[u]
            rows[r, t, 1] = pin[u]
            valid[r, t] = t < m
    return xy, rows, valid

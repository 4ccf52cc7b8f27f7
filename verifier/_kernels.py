"""numba kernels for the polygon *guides*: which vertex to certify.

Nothing computed here is trusted for soundness. ``clip_vertices`` proposes
the vertices of polygon ∩ box and ``best_vertices`` picks, per objective
row, the vertex to build a dual certificate from; concretize.py then
computes the bound from that certificate in numpy (weak duality with the
residual absorbed by the box), so a wrong vertex or a wrong choice can
only loosen a bound, never make it unsound.

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


@numba.njit(cache=True, nogil=True)
def best_vertices(a2, xy):  # pragma: no cover - compiled
    """``argmin_v a2[r, k] . xy[r, v]`` -> ``[n, m]`` (first minimum; NaN never wins)."""
    n, m, _ = a2.shape
    V = xy.shape[1]
    out = np.zeros((n, m), np.int64)
    for r in range(n):
        for k in range(m):
            c0 = a2[r, k, 0]
            c1 = a2[r, k, 1]
            best = np.inf
            bi = 0
            for v in range(V):
                val = c0 * xy[r, v, 0] + c1 * xy[r, v, 1]
                if val < best:
                    best = val
                    bi = v
            out[r, k] = bi
    return out


@numba.njit(cache=True, nogil=True)
def pair_min_certified(a2, xy, rows, A, b, lo2, hi2, usable):  # pragma: no cover - compiled
    """Certified lower bound of ``min a2[r, k] . x`` over polygon ∩ box -> ``[n, m]``.

    The same arithmetic as ``concretize._pair_min_reference`` (IEEE float64,
    no fast-math), one region and row at a time: the best vertex is only a
    guide; the bound is weak duality with the two constraints that meet there,
    ``lam >= 0`` by Cramer's rule (clamped), the residual ``a + A^T lam``
    minimised over the box, and the outward rounding margin ``2^-45 * mag``.
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
            bi = 0
            for v in range(V):
                val = a0 * xy[r, v, 0] + a1 * xy[r, v, 1]
                if val < best:
                    best = val
                    bi = v
            p = rows[r, bi, 0]
            q = rows[r, bi, 1]
            p0 = A[r, p, 0]
            p1 = A[r, p, 1]
            q0 = A[r, q, 0]
            q1 = A[r, q, 1]
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
            lbp = lp * b[r, p] if lp > 0.0 else 0.0
            lbq = lq * b[r, q] if lq > 0.0 else 0.0
            bound = bound - lbp - lbq
            mag = abs(lbp) + abs(lbq)
            mag += (abs(a0) + abs(lp * p0) + abs(lq * q0)) * x0m
            mag += (abs(a1) + abs(lp * p1) + abs(lq * q1)) * x1m
            bound -= 2.0**-45 * mag
            out[r, k] = -np.inf if np.isnan(bound) else bound
    return out

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

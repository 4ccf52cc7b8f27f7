"""Outward reduction of an integer convex polygon to at most k vertices.

Greedy: repeatedly remove the edge whose removal adds the least area. Removing
edge (a, b) extends its neighbours' edges (p, a) and (b, n) to their crossing w
and replaces a, b by a lattice point c in the outer cone at w (on or outside
both extended lines). A candidate c is accepted only if exact int64 tests show
the new polygon is strictly convex and still contains a and b; hence every
step's polygon contains the previous one and, by induction, the input.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_MAX_PUSH = 12  # outward search: push the candidate by 0, 1, 2, 4, ... 2**11 lattice steps


@numba.njit(cache=True, nogil=True)
def _cr(ax, ay, bx, by):
    return ax * by - ay * bx


@numba.njit(cache=True, nogil=True)
def _candidate(x, y, pp, p, a, b, n, nn, qmax):
    """Best lattice replacement for edge (a, b): (cost2, cx, cy); cost2 < 0 if none."""
    d0x = x[a] - x[p]
    d0y = y[a] - y[p]
    d2x = x[n] - x[b]
    d2y = y[n] - y[b]
    den = _cr(d0x, d0y, d2x, d2y)
    if den <= 0:
        return -1, 0, 0
    t = _cr(x[b] - x[a], y[b] - y[a], d2x, d2y) / den
    wx = x[a] + d0x * t
    wy = y[a] + d0y * t
    l0 = math.hypot(d0x, d0y)
    l2 = math.hypot(d2x, d2y)
    ux = d0x / l0 - d2x / l2
    uy = d0y / l0 - d2y / l2
    ul = math.hypot(ux, uy)
    if ul > 0:
        ux /= ul
        uy /= ul
    best = -1
    bx_ = 0
    by_ = 0
    for r in range(_MAX_PUSH):
        push = 0.0 if r == 0 else float(1 << (r - 1))
        fx = wx + ux * push
        fy = wy + uy * push
        if not (fx > -2.0 and fy > -2.0 and fx < qmax + 2.0 and fy < qmax + 2.0):
            return best, bx_, by_
        ix = int(math.floor(fx))
        iy = int(math.floor(fy))
        for cx in (ix, ix + 1):
            for cy in (iy, iy + 1):
                if cx < 0 or cy < 0 or cx > qmax or cy > qmax:
                    continue
                # outer side (or on) of both extended lines
                if _cr(d0x, d0y, cx - x[a], cy - y[a]) > 0:
                    continue
                if _cr(d2x, d2y, cx - x[b], cy - y[b]) > 0:
                    continue
                # strict convexity at p, c, n
                if _cr(x[p] - x[pp], y[p] - y[pp], cx - x[p], cy - y[p]) <= 0:
                    continue
                if _cr(cx - x[p], cy - y[p], x[n] - cx, y[n] - cy) <= 0:
                    continue
                if _cr(x[n] - cx, y[n] - cy, x[nn] - x[n], y[nn] - y[n]) <= 0:
                    continue
                # a and b left of (or on) the two new edges
                if _cr(cx - x[p], cy - y[p], x[a] - x[p], y[a] - y[p]) < 0:
                    continue
                if _cr(cx - x[p], cy - y[p], x[b] - x[p], y[b] - y[p]) < 0:
                    continue
                if _cr(x[n] - cx, y[n] - cy, x[a] - cx, y[a] - cy) < 0:
                    continue
                if _cr(x[n] - cx, y[n] - cy, x[b] - cx, y[b] - cy) < 0:
                    continue
                # added area: pentagon p, c, n, b, a
                s = (
                    _cr(x[p], y[p], cx, cy)
                    + _cr(cx, cy, x[n], y[n])
                    + _cr(x[n], y[n], x[b], y[b])
                    + _cr(x[b], y[b], x[a], y[a])
                    + _cr(x[a], y[a], x[p], y[p])
                )
                cost = abs(s)
                if best < 0 or cost < best:
                    best = cost
                    bx_ = cx
                    by_ = cy
        if best >= 0:
            return best, bx_, by_
    return best, bx_, by_


@numba.njit(cache=True, nogil=True)
def reduce_outward(hx, hy, k, qmax):
    """Reduce a strictly convex CCW int64 polygon to <= k (>= 3) vertices, outward.

    Returns (rx, ry, ok). ok is False when no further edge can be removed
    (the caller then falls back to a coarser lattice or the bounding box).
    Output starts at the lexicographically smallest vertex.
    """
    h = hx.shape[0]
    x = hx.copy()
    y = hy.copy()
    if h <= k:
        return x, y, True
    nxt = np.empty(h, np.int64)
    prv = np.empty(h, np.int64)
    for i in range(h):
        nxt[i] = (i + 1) % h
        prv[i] = (i - 1) % h
    alive = np.ones(h, np.bool_)
    cost = np.empty(h, np.int64)  # cost of removing edge (i, nxt[i])
    cx = np.empty(h, np.int64)
    cy = np.empty(h, np.int64)
    for i in range(h):
        a = i
        b = nxt[a]
        c, u, v = _candidate(x, y, prv[prv[a]], prv[a], a, b, nxt[b], nxt[nxt[b]], qmax)
        cost[i] = c
        cx[i] = u
        cy[i] = v
    start = 0
    while h > k:
        best = -1
        bi = -1
        for i in range(x.shape[0]):
            if alive[i] and cost[i] >= 0 and (best < 0 or cost[i] < best):
                best = cost[i]
                bi = i
        if bi < 0:
            return x[:0], y[:0], False
        a = bi
        b = nxt[a]
        # a takes the new vertex, b disappears
        x[a] = cx[a]
        y[a] = cy[a]
        alive[b] = False
        nb = nxt[b]
        nxt[a] = nb
        prv[nb] = a
        if start == b:
            start = a
        h -= 1
        if h <= 3:
            break
        # edges whose 6-vertex window holds a: starting at prv^3(a) .. nxt^2(a)
        e = prv[prv[prv[a]]]
        for _ in range(6):
            f = nxt[e]
            c, u, v = _candidate(x, y, prv[prv[e]], prv[e], e, f, nxt[f], nxt[nxt[f]], qmax)
            cost[e] = c
            cx[e] = u
            cy[e] = v
            e = nxt[e]
    rx = np.empty(h, np.int64)
    ry = np.empty(h, np.int64)
    # rotate to the lexicographically smallest vertex
    first = start
    i = start
    for _ in range(h):
        if x[i] < x[first] or (x[i] == x[first] and y[i] < y[first]):
            first = i
        i = nxt[i]
    i = first
    for j in range(h):
        rx[j] = x[i]
        ry[j] = y[i]
        i = nxt[i]
    return rx, ry, h <= k

"""Exact integer hulls on the fine grid (numba kernels, the writer's hot loop).

Every row becomes the grid cell rectangle that contains its value (cell
coordinates rounded outward and checked with exact float comparisons), and the
hull of all rectangle corners is computed in exact int64 arithmetic. That hull
contains every row exactly; no floating-point predicate decides containment.
The pass is O(rows + 2**16): per fine x coordinate only the lowest and highest
y matter, so no sort of the rows is needed.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .grid import QMAX

NULL = -1  # cell marker: row is NULL in this column
NONFINITE = -2  # cell marker: row is NaN or +-inf


@numba.njit(cache=True, nogil=True)
def _nudge(v, ulps, toward):
    for _ in range(ulps):
        v = np.nextafter(v, toward)
    return v


@numba.njit(cache=True, nogil=True)
def column_stats(values, valid, ulps):
    """(lo, hi, nulls, nans, infs) over non-NULL rows; lo/hi skip NaN and include +-inf.

    ``valid`` is a uint8 mask or an empty array (all rows valid); ``ulps`` widens
    each value outward by that many float64 steps (lossy conversions).
    """
    lo = np.inf
    hi = -np.inf
    nulls = 0
    nans = 0
    infs = 0
    check = valid.shape[0] > 0
    for i in range(values.shape[0]):
        if check and valid[i] == 0:
            nulls += 1
            continue
        v = values[i]
        if v != v:
            nans += 1
            continue
        if v == np.inf or v == -np.inf:
            infs += 1
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    # widening is monotone: widen the extremes only
    if lo <= hi:
        lo = _nudge(lo, ulps, -np.inf)
        hi = _nudge(hi, ulps, np.inf)
    return lo, hi, nulls, nans, infs


@numba.njit(cache=True, nogil=True)
def column_cells(values, valid, ulps, n0, e):
    """Outward fine-grid cell bounds (qlo, qhi) of each row, int32.

    Guarantees value(qlo) <= v_down and value(qhi) >= v_up (exact comparisons),
    where v_down/v_up are the row's value widened by ``ulps``. NULL rows get
    ``NULL``, NaN/inf rows ``NONFINITE``; a row outside the grid gets NONFINITE too
    (cannot happen for a grid made from this column's range; kept as a guard).
    """
    n = values.shape[0]
    qlo = np.empty(n, np.int32)
    qhi = np.empty(n, np.int32)
    check = valid.shape[0] > 0
    fn0 = float(n0)
    step = math.ldexp(1.0, e)  # representable: -1074 <= e <= 1023
    fast = e >= -1022
    inv = math.ldexp(1.0, -e) if fast else 0.0
    for i in range(n):
        if check and valid[i] == 0:
            qlo[i] = NULL
            qhi[i] = NULL
            continue
        v = values[i]
        if not np.isfinite(v):
            qlo[i] = NONFINITE
            qhi[i] = NONFINITE
            continue
        a = v
        b = v
        if ulps > 1:
            a = _nudge(v, ulps, -np.inf)
            b = _nudge(v, ulps, np.inf)
        # t only guides the guess; the exact comparisons below decide
        if fast:
            ta = a * inv - fn0
            tb = b * inv - fn0
        else:
            ta = math.ldexp(a, -e) - fn0
            tb = math.ldexp(b, -e) - fn0
        if not (ta > -2.0 and tb < QMAX + 2.0):
            qlo[i] = NONFINITE
            qhi[i] = NONFINITE
            continue
        la = int(math.floor(ta))
        # (n0 + q) * 2**e is exactly representable, so the product is exact
        while float(n0 + la) * step > a:
            la -= 1
        hb = int(math.ceil(tb))
        while float(n0 + hb) * step < b:
            hb += 1
        if ulps == 1:
            # grid values are floats: value < v implies value <= nextafter(v, -inf)
            if float(n0 + la) * step == v:
                la -= 1
            if float(n0 + hb) * step == v:
                hb += 1
        if la < 0 or hb > QMAX:
            qlo[i] = NONFINITE
            qhi[i] = NONFINITE
            continue
        qlo[i] = la
        qhi[i] = hb
    return qlo, qhi


@numba.njit(cache=True, nogil=True)
def _cross(ox, oy, ax, ay, bx, by):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@numba.njit(cache=True, nogil=True)
def chain_hull(px, py):
    """Andrew's monotone chain on points sorted by (x, y); int64, CCW, no collinear.

    Starts at the lexicographically smallest point. 1 or 2 vertices for
    degenerate inputs (a point, a segment).
    """
    n = px.shape[0]
    hx = np.empty(2 * n + 1, np.int64)
    hy = np.empty(2 * n + 1, np.int64)
    if n == 0:
        return hx[:0], hy[:0]
    if n == 1:
        hx[0] = px[0]
        hy[0] = py[0]
        return hx[:1], hy[:1]
    m = 0
    for i in range(n):
        while m >= 2 and _cross(hx[m - 2], hy[m - 2], hx[m - 1], hy[m - 1], px[i], py[i]) <= 0:
            m -= 1
        hx[m] = px[i]
        hy[m] = py[i]
        m += 1
    lower = m + 1
    for i in range(n - 2, -1, -1):
        while m >= lower and _cross(hx[m - 2], hy[m - 2], hx[m - 1], hy[m - 1], px[i], py[i]) <= 0:
            m -= 1
        hx[m] = px[i]
        hy[m] = py[i]
        m += 1
    m -= 1  # last point equals the first
    if m == 1 and (hx[0] != hx[1] or hy[0] != hy[1]):
        m = 2  # two distinct points: keep the segment
    return hx[:m].copy(), hy[:m].copy()


@numba.njit(cache=True, nogil=True)
def hull_of_points(px, py):
    """Exact convex hull of a small set of int64 points (sorts them first)."""
    n = px.shape[0]
    key = np.empty(n, np.int64)
    for i in range(n):
        key[i] = px[i] * 4294967296 + py[i]
    order = np.argsort(key)
    sx = np.empty(n, np.int64)
    sy = np.empty(n, np.int64)
    m = 0
    for j in range(n):
        i = order[j]
        if m > 0 and sx[m - 1] == px[i] and sy[m - 1] == py[i]:
            continue
        sx[m] = px[i]
        sy[m] = py[i]
        m += 1
    return chain_hull(sx[:m], sy[:m])


@numba.njit(cache=True, nogil=True)
def pair_hull(xlo, xhi, ylo, yhi):
    """Exact hull of the cell rectangles of all rows valid in both columns.

    Returns (hx, hy, status): status 0 ok, 1 no valid row, 2 a valid row is
    NaN/inf (the pair's polygon is then absent for this row group).
    """
    size = QMAX + 1
    cmin = np.full(size, size, np.int32)
    cmax = np.full(size, -1, np.int32)
    empty = np.empty(0, np.int64)
    seen = False
    for i in range(xlo.shape[0]):
        a = xlo[i]
        c = ylo[i]
        if a == NULL or c == NULL:
            continue
        if a == NONFINITE or c == NONFINITE:
            return empty, empty, 2
        seen = True
        b = xhi[i]
        d = yhi[i]
        if c < cmin[a]:
            cmin[a] = c
        if d > cmax[a]:
            cmax[a] = d
        if b != a:
            if c < cmin[b]:
                cmin[b] = c
            if d > cmax[b]:
                cmax[b] = d
    if not seen:
        return empty, empty, 1
    cnt = 0
    for x in range(size):
        if cmax[x] >= 0:
            cnt += 1 if cmin[x] == cmax[x] else 2
    px = np.empty(cnt, np.int64)
    py = np.empty(cnt, np.int64)
    m = 0
    for x in range(size):
        if cmax[x] >= 0:
            px[m] = x
            py[m] = cmin[x]
            m += 1
            if cmax[x] != cmin[x]:
                px[m] = x
                py[m] = cmax[x]
                m += 1
    hx, hy = chain_hull(px, py)
    return hx, hy, 0


@numba.njit(cache=True, nogil=True)
def coarsen(hx, hy, shift):
    """Hull of the coarse-lattice cells (lattice step 2**shift) holding each vertex."""
    n = hx.shape[0]
    px = np.empty(4 * n, np.int64)
    py = np.empty(4 * n, np.int64)
    unit = 1 << shift
    for i in range(n):
        x0 = hx[i] >> shift
        y0 = hy[i] >> shift
        x1 = x0 + (1 if (hx[i] & (unit - 1)) != 0 else 0)
        y1 = y0 + (1 if (hy[i] & (unit - 1)) != 0 else 0)
        px[4 * i] = x0
        py[4 * i] = y0
        px[4 * i + 1] = x1
        py[4 * i + 1] = y0
        px[4 * i + 2] = x0
        py[4 * i + 2] = y1
        px[4 * i + 3] = x1
        py[4 * i + 3] = y1
    return hull_of_points(px, py)


@numba.njit(cache=True, nogil=True)
def area2(hx, hy):
    """Twice the polygon's area (exact int64 shoelace)."""
    n = hx.shape[0]
    s = 0
    for i in range(n):
        j = (i + 1) % n
        s += hx[i] * hy[j] - hx[j] * hy[i]
    return s

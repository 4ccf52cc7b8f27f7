"""Construction of one size-bounded, conservative polygon per column pair and row group.

``pair_polygon`` is the pure reference function (a native port must reproduce
its bytes exactly; the algorithm is spelled out in FORMAT.md):

1. per column: range [lo, hi] of the (outward-widened) finite values and its
   fine grid (grid.make_grid), unless grids are given;
2. exact int64 hull of the rows' outward grid cells (hull.pair_hull);
3. for each lattice width ``bits`` in ``bits_choices``: coarsen the hull to
   that lattice outward, reduce it outward to the vertex budget of
   ``hull_bytes``, and keep the candidate of least exact area (ties: more bits);
4. if no candidate fits, the bounding box of the hull on the coarsest lattice
   that fits four vertices; None if not even that fits.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mlskip.errors import InputDataError

from .grid import FINE_BITS, QMAX, Grid, make_grid
from .polygon_codec import BITS_CHOICES, encode_record, max_vertices

DEFAULT_BITS_CHOICES: tuple[int, ...] = (16, 14, 12, 10, 8)
_EMPTY_MASK = np.empty(0, np.uint8)


def _hull():
    """The numba kernels (imported on first use: reading footers never needs them)."""
    from . import hull

    return hull


def _reduce_outward():
    from .reduce import reduce_outward

    return reduce_outward


class ColumnSummary(NamedTuple):
    """One column in one row group: finite range (widened outward), counts and grid."""

    lo: float
    hi: float
    null_count: int
    nan_count: int
    inf_count: int
    grid: Grid | None


class PairPolygon(NamedTuple):
    """Result of pair_polygon: the record (None = absent) and what it was built from."""

    record: bytes | None
    x: ColumnSummary
    y: ColumnSummary
    null_count: int  # rows where x or y is NULL


def as_mask(valid: np.ndarray | None, n: int) -> np.ndarray:
    """uint8 validity mask (empty array = all valid), as the kernels want it."""
    if valid is None:
        return _EMPTY_MASK
    m = np.ascontiguousarray(valid, dtype=np.uint8)
    if m.shape != (n,):
        raise InputDataError(f"validity mask has shape {m.shape}, expected ({n},)")
    return m


def summarize_column(values: np.ndarray, valid: np.ndarray | None, ulps: int = 0) -> ColumnSummary:
    """Range, counts and fine grid of one column's values (float64)."""
    v = np.ascontiguousarray(values, dtype=np.float64)
    lo, hi, nulls, nans, infs = _hull().column_stats(v, as_mask(valid, len(v)), ulps)
    grid = make_grid(lo, hi) if infs == 0 and lo <= hi else None
    return ColumnSummary(float(lo), float(hi), int(nulls), int(nans), int(infs), grid)


def cells(values: np.ndarray, valid: np.ndarray | None, ulps: int, grid: Grid):
    """Outward fine-grid cells (qlo, qhi) of each row (hull.column_cells)."""
    v = np.ascontiguousarray(values, dtype=np.float64)
    return _hull().column_cells(v, as_mask(valid, len(v)), ulps, grid.n0, grid.e)


def fine_hull(cx, cy) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact int64 hull (fine lattice) of the rows' cells; status as hull.pair_hull."""
    return _hull().pair_hull(cx[0], cx[1], cy[0], cy[1])


def lattice_candidates(hx, hy, hull_bytes: int, bits_choices=DEFAULT_BITS_CHOICES):
    """Yield (bits, cx, cy, fine_area2) of outward k-gons fitting ``hull_bytes``."""
    for bits in bits_choices:
        k = max_vertices(hull_bytes, bits)
        if k < 1:
            continue
        shift = FINE_BITS - bits
        if shift:
            lx, ly = _hull().coarsen(hx, hy, shift)
        else:
            lx, ly = hx, hy
        if len(lx) > k:
            if k < 3:
                continue
            lx, ly, ok = _reduce_outward()(lx, ly, k, QMAX >> shift)
            if not ok:
                continue
        yield bits, lx, ly, int(_hull().area2(lx, ly)) << (2 * shift)


def polygon_from_hull(hx, hy, hull_bytes: int, bits_choices=DEFAULT_BITS_CHOICES) -> bytes | None:
    """Smallest-area outward polygon record within ``hull_bytes`` (see module doc)."""
    best = None
    for cand in lattice_candidates(hx, hy, hull_bytes, bits_choices):
        if best is None or cand[3] < best[3]:
            best = cand
    if best is not None:
        return encode_record(best[1], best[2], best[0])
    for bits in BITS_CHOICES:  # fallback: the bounding box
        if max_vertices(hull_bytes, bits) >= 4:
            shift = FINE_BITS - bits
            x0, x1, y0, y1 = hx.min(), hx.max(), hy.min(), hy.max()
            bx, by = _hull().coarsen(  # all four corners (two would give the diagonal only)
                np.array([x0, x1, x1, x0], np.int64), np.array([y0, y0, y1, y1], np.int64), shift
            )
            return encode_record(bx, by, bits)
    return None


def pair_polygon(
    x: np.ndarray,
    y: np.ndarray,
    valid: np.ndarray | None = None,
    hull_bytes: int = 45,
    *,
    x_ulps: int = 0,
    y_ulps: int = 0,
    x_summary: ColumnSummary | None = None,
    y_summary: ColumnSummary | None = None,
    bits_choices: tuple[int, ...] = DEFAULT_BITS_CHOICES,
) -> PairPolygon:
    """Conservative polygon record (<= hull_bytes bytes incl. header) of the points (x, y).

    ``valid`` marks rows where both values are non-NULL (None: all). ``*_ulps``
    widen lossy conversions outward. Summaries (ranges and grids) are computed
    from the pair's own rows unless given (the writer shares one per column).
    The record is None when a valid row is NaN/inf, no row is valid, or the
    budget cannot hold a polygon.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputDataError(
            f"pair_polygon needs two 1-d arrays of one length, got {x.shape}, {y.shape}"
        )
    mask = as_mask(valid, len(x))
    xs = x_summary or summarize_column(x, valid, x_ulps)
    ys = y_summary or summarize_column(y, valid, y_ulps)
    nulls = int(len(x) - mask.sum()) if mask.size else 0
    if xs.grid is None or ys.grid is None:
        return PairPolygon(None, xs, ys, nulls)
    cx = cells(x, valid, x_ulps, xs.grid)
    cy = cells(y, valid, y_ulps, ys.grid)
    hx, hy, status = fine_hull(cx, cy)
    if status != 0:
        return PairPolygon(None, xs, ys, nulls)
    return PairPolygon(polygon_from_hull(hx, hy, hull_bytes, bits_choices), xs, ys, nulls)

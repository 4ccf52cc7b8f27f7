"""Property tests: every point lies inside its decoded polygon and halfspaces; size bounded."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlskip.metadata.grid import make_grid
from mlskip.metadata.polygon import pair_polygon
from mlskip.metadata.polygon_codec import (
    BITS_CHOICES,
    decode_many,
    decode_record,
    decode_vertices,
    encode_record,
    halfspaces,
    halfspaces_many,
)

SCALES = [1.0, 1e-300, 1e300, 1e-8, 1e15, 1e308]


def _check(x, y, valid=None, hull_bytes=45, x_ulps=0, y_ulps=0):
    res = pair_polygon(x, y, valid, hull_bytes, x_ulps=x_ulps, y_ulps=y_ulps)
    if valid is None:
        valid = np.ones(len(x), bool)
    px, py = x[valid], y[valid]
    if len(px) == 0 or not (np.isfinite(px).all() and np.isfinite(py).all()):
        assert res.record is None
        return res
    if res.record is None:  # only a grid overflowing float64 or < 5 bytes may drop it
        assert hull_bytes < 5 or max(np.abs(px).max(), np.abs(py).max()) > 1e307
        return res
    assert len(res.record) <= hull_bytes
    v = decode_vertices(res.record, res.x.grid, res.y.grid)
    assert np.isfinite(v).all()
    a, b = halfspaces(v)
    pts = np.column_stack([px, py])
    # widened values (lossy conversions) must be inside too
    for dx in (-1, 1) if x_ulps else (0,):
        for dy in (-1, 1) if y_ulps else (0,):
            qx = px if dx == 0 else np.nextafter(px, dx * np.inf)
            qy = py if dy == 0 else np.nextafter(py, dy * np.inf)
            q = np.column_stack([qx, qy])
            lhs = a[:, 0][:, None] * q[:, 0][None, :] + a[:, 1][:, None] * q[:, 1][None, :]
            assert (lhs <= b[:, None]).all()
            assert ((a @ q.T) <= b[:, None]).all()
    # shapely's own arithmetic under/overflows at extreme magnitudes (areas ~ 1e-600)
    if np.abs(v).max() < 1e150 and np.abs(v[np.nonzero(v)]).min(initial=1.0) > 1e-150:
        if len(v) >= 3:
            poly = shapely.Polygon(v)
            assert poly.is_valid and poly.exterior.is_ccw
        else:
            poly = shapely.LineString(v) if len(v) == 2 else shapely.Point(v[0])
        assert poly.covers(shapely.points(pts)).all()
    return res


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pts=st.lists(st.tuples(finite, finite), min_size=1, max_size=300),
    scale=st.sampled_from(SCALES),
    hull_bytes=st.sampled_from([45, 33, 17, 100]),
    dup=st.integers(1, 3),
)
def test_points_inside(pts, scale, hull_bytes, dup):
    p = np.array(pts * dup, dtype=np.float64) / 1e6 * scale
    _check(p[:, 0], p[:, 1], hull_bytes=hull_bytes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pts=st.lists(st.tuples(finite, finite), min_size=1, max_size=300),
    scale=st.sampled_from([1.0, 1e-8, 1e15]),
    hull_bytes=st.integers(1, 16),
)
def test_points_inside_small_budgets(pts, scale, hull_bytes):
    """Small record budgets (format v2 gives a pair hull_bytes minus its share of the
    grid anchors): the widths that fit and the bounding-box fallback contain every point."""
    p = np.array(pts, dtype=np.float64) / 1e6 * scale
    _check(p[:, 0], p[:, 1], hull_bytes=hull_bytes)


def test_box_fallback_is_the_box():
    """Regression: the fallback coarsened two corners of the box, i.e. its diagonal."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=1500)
    y = 3 * x + rng.normal(size=1500) * 0.05
    res = _check(x, y, hull_bytes=7)
    bits, cx, cy = decode_record(res.record)
    xs, ys = sorted(set(cx.tolist())), sorted(set(cy.tolist()))
    assert bits == 6 and len(xs) == len(ys) == 2
    assert sorted(zip(cx.tolist(), cy.tolist(), strict=True)) == [(x, y) for x in xs for y in ys]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 500),
    slope=st.floats(-1e3, 1e3, allow_nan=False),
    scale=st.sampled_from(SCALES),
    seed=st.integers(0, 2**31),
)
def test_collinear_and_thin(n, slope, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n) * scale
    with np.errstate(all="ignore"):
        y = slope * x
        y2 = y + rng.normal(size=n) * scale * 1e-9
    _check(x, y)
    _check(x, y2)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 2000), nulls=st.floats(0, 1))
def test_nulls_and_lossy_widening(seed, n, nulls):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) * 1e17  # beyond 2**53: lossy, widened
    y = x * 0.5 + rng.normal(size=n)
    valid = rng.uniform(size=n) >= nulls
    res = _check(x, y, valid, x_ulps=1, y_ulps=2)
    assert res.null_count == int((~valid).sum())


def test_single_point_and_zero():
    for v in (0.0, 5.0, -1e-300, 1e300, 2.0**-1074):
        r = _check(np.array([v]), np.array([v]))
        # a point on the grid stays a point; otherwise its grid cell
        assert len(decode_vertices(r.record, r.x.grid, r.y.grid)) in (1, 4)
    r = pair_polygon(np.array([5.0]), np.array([0.0]))
    assert decode_vertices(r.record, r.x.grid, r.y.grid).tolist() == [[5.0, 0.0]]


def test_nonfinite_makes_polygon_absent():
    x = np.array([1.0, 2.0, np.nan])
    assert pair_polygon(x, np.ones(3)).record is None
    assert pair_polygon(np.array([1.0, np.inf]), np.ones(2)).record is None
    # a NaN in a row that is NULL in the pair does not matter
    r = pair_polygon(x, np.ones(3), np.array([True, True, False]))
    assert r.record is not None and r.null_count == 1


def test_many_points_and_budget():
    rng = np.random.default_rng(1)
    x = rng.normal(size=100_000)
    y = 0.9 * x + 0.3 * rng.normal(size=100_000)
    for hb in (9, 13, 17, 33, 45, 255):
        r = _check(x, y, hull_bytes=hb)
        assert r.record is not None and len(r.record) <= hb
    # the 45-byte polygon is close to the exact hull
    r = pair_polygon(x, y)
    v = decode_vertices(r.record, r.x.grid, r.y.grid)
    exact = shapely.MultiPoint(np.column_stack([x, y])).convex_hull.area
    assert shapely.Polygon(v).area < exact * 1.01


@pytest.mark.parametrize("bits", [16, 12, 10, 8, 4])
def test_record_roundtrip(bits):
    rng = np.random.default_rng(bits)
    cx = rng.integers(0, 1 << bits, 7)
    cy = rng.integers(0, 1 << bits, 7)
    rec = encode_record(cx, cy, bits)
    b, dx, dy = decode_record(rec)
    assert b == bits and (dx == cx).all() and (dy == cy).all()


def test_grid_values_exact():
    for lo, hi in [(0.0, 0.0), (-1e-300, 1e-300), (1e15, 1e15 + 1), (-1e300, 1e300), (3.0, 1e16)]:
        g = make_grid(lo, hi)
        assert g is not None
        assert g.value(0) <= lo and g.value(65535) >= hi


def test_halfspaces_many_equals_one_at_a_time():
    """The reader computes a file's halfspaces in one batch: the same bits as one polygon
    at a time, also for degenerate edges, huge and tiny coordinates and non-finite rows."""
    rng = np.random.default_rng(7)
    polygons = []
    for t in range(3000):
        k = int(rng.integers(1, 12))
        scale = 10.0 ** rng.uniform(-300, 300) if t % 5 == 0 else 10.0 ** rng.uniform(-3, 6)
        v = rng.normal(size=(k, 2)) * scale
        if t % 7 == 0 and k > 2:
            v[1] = v[0]  # a zero-length edge
        if t % 11 == 0:
            v[0, 0] = 1e308  # normals overflow
        if t % 13 == 0:
            v[:] = 0.0
        polygons.append(v)
    for v, (A, b) in zip(polygons, halfspaces_many(polygons), strict=True):
        A1, b1 = halfspaces(v)
        assert A.shape == A1.shape and np.array_equal(A, A1) and np.array_equal(b, b1)


def test_decode_many_equals_one_at_a_time():
    """The reader decodes a file's polygons in one batch: the same bits as one record at a
    time, for every lattice width, vertex count, grid exponent and offset; a malformed
    header in the batch is refused as one record is."""
    from mlskip.errors import MetadataError
    from mlskip.metadata.grid import Grid

    rng = np.random.default_rng(11)
    recs, gx, gy = [], [], []
    for t in range(2000):
        bits = int(rng.choice(BITS_CHOICES))
        k = int(rng.integers(1, 20))
        cx = rng.integers(0, 1 << bits, k)
        cy = rng.integers(0, 1 << bits, k)
        recs.append(encode_record(cx, cy, bits))
        for grids in (gx, gy):
            e = int(rng.integers(-1070, 960)) if t % 3 else int(rng.integers(-20, 20))
            n0 = int(rng.integers(-(1 << 50), 1 << 50)) if t % 5 else 0
            grids.append(Grid(e, n0))
    for rec, x, y, v in zip(recs, gx, gy, decode_many(recs, gx, gy), strict=True):
        want = decode_vertices(rec, x, y)
        assert v.shape == want.shape and np.array_equal(v, want, equal_nan=True)
    bad = recs[:3] + [bytes([0xFF]) + recs[3][1:]]
    with pytest.raises(MetadataError):
        decode_many(bad, gx[:4], gy[:4])


def test_outward_rounding_of_exact_statistics():
    """down / up (Parquet statistics to float64 boxes) give the float64 neighbours of
    integers and decimal fractions exactly, as the Fraction definition does."""
    import math
    from fractions import Fraction

    from mlskip.metadata.parquet_stats import down, up

    rng = np.random.default_rng(5)
    for t in range(20000):
        if t % 3 == 0:
            q = int(rng.integers(-(1 << 62), 1 << 62)) << int(rng.integers(0, 12))
        else:
            q = Fraction(int(rng.integers(-(1 << 62), 1 << 62)), 10 ** int(rng.integers(0, 30)))
        f = float(q)
        assert down(q) == (math.nextafter(f, -math.inf) if Fraction(f) > q else f)
        assert up(q) == (math.nextafter(f, math.inf) if Fraction(f) < q else f)
        assert down(q) <= q <= up(q)

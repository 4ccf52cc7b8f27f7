"""Bound methods of mlskip.verifier: soundness by dense sampling, the tightness
order IBP ⊇ CROWN ⊇ alpha-CROWN ⊇ exact, relaxations, polygons, infinite bounds."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from mlskip.verifier import LeakyReLU, Network, RegionBatch, ReLU, Sigmoid, Tanh
from mlskip.verifier.alpha_crown import alpha_crown_bounds
from mlskip.verifier.concretize import region_min, tighten_boxes
from mlskip.verifier.crown import crown_bounds, crown_layers
from mlskip.verifier.ibp import ibp_bounds
from mlskip.verifier.milp import build_model, solve


def random_net(rng, sizes, act=None, scale=1.0):
    ws = [
        (rng.normal(size=(o, i)) * scale / np.sqrt(i), rng.normal(size=o) * 0.3)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return Network.mlp(ws, activation=act)


def random_boxes(rng, n, d, width=0.6):
    c = rng.uniform(-1, 1, size=(n, d))
    r = rng.uniform(0.01, width, size=(n, d))
    return c - r, c + r


def random_polygons(rng, lo, hi, m=6):
    """Per region, m halfspaces tangent to a random ellipse-ish set inside the box (+ padding rows)."""
    n = lo.shape[0]
    ang = rng.uniform(0, 2 * np.pi, size=(n, m))
    A = np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    c = (lo + hi) / 2
    r = (hi - lo) / 2
    pts = c[:, None, :] + 0.6 * r[:, None, :] * np.stack([np.cos(ang), np.sin(ang)], -1)
    b = np.einsum("nmt,nmt->nm", A, pts)
    A = np.concatenate([A, np.zeros((n, 2, 2))], axis=1)  # padding rows
    b = np.concatenate([b, np.zeros((n, 2))], axis=1)
    return A, b


def sample(rng, regions, k=400):
    n, d = regions.n, regions.d
    x = (
        regions.lower[:, None, :]
        + rng.uniform(size=(n, k, d)) * (regions.upper - regions.lower)[:, None, :]
    )
    inside = np.ones((n, k), bool)
    for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
        inside &= (np.einsum("nmt,nkt->nkm", A, x[..., [i, j]]) <= b[:, None, :]).all(-1)
    return x, inside


ACTS = [ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh()]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
@pytest.mark.parametrize("sizes", [(2, 16, 1), (3, 12, 12, 2), (4, 8, 8, 8, 3)])
def test_bounds_contain_sampled_outputs_and_are_ordered(act, sizes):
    rng = np.random.default_rng(zlib.crc32(repr((act.name, sizes)).encode()))
    net = random_net(rng, sizes, act, scale=1.5)
    lo, hi = random_boxes(rng, 60, sizes[0])
    R = RegionBatch(lo, hi)
    li, ui = ibp_bounds(net, R)
    lc, uc = crown_bounds(net, R)
    la, ua = alpha_crown_bounds(net, R, iters=10)
    x, _ = sample(rng, R)
    y = net.evaluate(x.reshape(-1, sizes[0])).reshape(R.n, x.shape[1], -1)
    assert (y.min(1) >= la).all() and (y.max(1) <= ua).all()
    # contained up to float64 rounding (interval arithmetic is not monotone to the last ulp)
    tol = 1e-12 * (1 + np.abs(li) + np.abs(ui))
    assert (li <= lc + tol).all() and (uc <= ui + tol).all()
    assert (lc <= la + tol).all() and (ua <= uc + tol).all()


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.name)
def test_relaxations_are_valid(act):
    rng = np.random.default_rng(3)
    lo = rng.normal(size=4000) * 3
    hi = lo + np.abs(rng.normal(size=4000)) * rng.choice([1e-9, 0.1, 3.0, 20.0], size=4000)
    al, bl, au, bu = act.relax(lo, hi)
    bl = 0.0 if bl is None else bl
    t = np.linspace(0, 1, 64)[:, None]
    x = lo + t * (hi - lo)
    f = act.forward(x)
    slack = 1e-9 * (1 + np.abs(x))
    assert (al * x + bl <= f + slack).all()
    assert (au * x + bu >= f - slack).all()


def test_relaxation_with_infinite_bounds_is_valid():
    lo = np.array([-np.inf, -np.inf, -3.0, 1.0, -np.inf])
    hi = np.array([2.0, np.inf, np.inf, np.inf, -1.0])
    for act in ACTS:
        al, bl, au, bu = act.relax(lo, hi)
        bl = 0.0 if bl is None else bl
        for x in (-1e6, -5.0, -1.5, 0.0, 1.5, 1e6):
            ok = (x >= lo) & (x <= hi)
            fx = act.forward(np.array(x))
            with np.errstate(invalid="ignore"):
                assert (~ok | (al * x + bl <= fx + 1e-9)).all()
                assert (~ok | np.isnan(au * x + bu) | (au * x + bu >= fx - 1e-9)).all()


def test_exact_range_contains_in_alpha_bounds():
    """Tightness against the exact range (MILP on a small ReLU net)."""
    rng = np.random.default_rng(11)
    net = random_net(rng, (3, 10, 10, 1), scale=1.5)
    lo, hi = random_boxes(rng, 12, 3)
    R = RegionBatch(lo, hi)
    la, ua = alpha_crown_bounds(net, R, iters=15)
    bounds, _ = crown_layers(net, R)
    for r in range(R.n):
        m = build_model(net, R, r, bounds)
        mx = solve(m, m.out_expr[0], m.out_const[0], True, 10.0)
        mn = solve(m, m.out_expr[0], m.out_const[0], False, 10.0)
        assert mx.optimal and mn.optimal
        assert la[r, 0] <= mn.value + 1e-7 and mx.value <= ua[r, 0] + 1e-7
        # the MILP's witnesses are real points with those values
        np.testing.assert_allclose(net.evaluate(mx.x)[0, 0], mx.value, atol=1e-5)


def test_region_min_with_polygons_matches_lp():
    rng = np.random.default_rng(5)
    n, d = 40, 4
    lo, hi = random_boxes(rng, n, d)
    A1, b1 = random_polygons(rng, lo[:, :2], hi[:, :2])
    A2, b2 = random_polygons(rng, lo[:, 2:], hi[:, 2:])
    R = RegionBatch(lo, hi, pairs=((0, 1), (2, 3)), halfspaces=((A1, b1), (A2, b2)))
    a = rng.normal(size=(n, 3, d))
    got = region_min(a, np.zeros((n, 3)), R)
    for r in range(n):
        Aub = np.zeros((A1.shape[1] + A2.shape[1], d))
        Aub[: A1.shape[1], :2] = A1[r]
        Aub[A1.shape[1] :, 2:] = A2[r]
        bub = np.concatenate([b1[r], b2[r]])
        for k in range(3):
            res = linprog(a[r, k], A_ub=Aub, b_ub=bub, bounds=list(zip(lo[r], hi[r], strict=True)))
            assert res.status == 0
            assert got[r, k] <= res.fun + 1e-9  # sound
            assert got[r, k] >= res.fun - 1e-6  # and exact
    T = tighten_boxes(R)
    assert (T.lower >= R.lower).all() and (T.upper <= R.upper).all()


def test_polygons_tighten_and_stay_sound():
    rng = np.random.default_rng(8)
    net = random_net(rng, (2, 16, 16, 1), scale=1.5)
    lo, hi = random_boxes(rng, 80, 2, width=0.8)
    A, b = random_polygons(rng, lo, hi)
    R = RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),))
    lb, ub = crown_bounds(net, RegionBatch(lo, hi))
    lp, up = crown_bounds(net, tighten_boxes(R))
    # relaxations differ once intermediate bounds differ, so not every bound is
    # tighter, but the polygons help on average
    assert np.mean(up - lp) < 0.9 * np.mean(ub - lb)
    x, inside = sample(rng, R, k=2000)
    y = net.evaluate(x.reshape(-1, 2)).reshape(R.n, -1)
    assert (np.where(inside, y, np.inf).min(1) >= lp[:, 0]).all()
    assert (np.where(inside, y, -np.inf).max(1) <= up[:, 0]).all()


def test_overlapping_pairs_are_sound():
    rng = np.random.default_rng(9)
    lo, hi = random_boxes(rng, 20, 3)
    A1, b1 = random_polygons(rng, lo[:, :2], hi[:, :2])
    A2, b2 = random_polygons(rng, lo[:, 1:], hi[:, 1:])
    R = RegionBatch(lo, hi, pairs=((0, 1), (1, 2)), halfspaces=((A1, b1), (A2, b2)))
    net = random_net(rng, (3, 8, 1))
    lc, uc = crown_bounds(net, R)
    x, inside = sample(rng, R, k=2000)
    y = net.evaluate(x.reshape(-1, 3)).reshape(R.n, -1)
    assert (np.where(inside, y, np.inf).min(1) >= lc[:, 0]).all()


def test_infinite_bounds_are_sound():
    rng = np.random.default_rng(4)
    net = random_net(rng, (3, 8, 8, 1))
    lo, hi = random_boxes(rng, 30, 3)
    lo[::3, 0] = -np.inf
    hi[1::3, 2] = np.inf
    lo[2::5, 1], hi[2::5, 1] = -np.inf, np.inf
    R = RegionBatch(lo, hi)
    for method in (ibp_bounds, crown_bounds, alpha_crown_bounds):
        l_, u_ = method(net, R)
        assert not np.isnan(l_).any() and not np.isnan(u_).any()
        xs = np.clip(rng.normal(size=(30, 500, 3)) * 50, lo[:, None], hi[:, None])
        y = net.evaluate(xs.reshape(-1, 3)).reshape(30, 500)
        assert (y.min(1) >= l_[:, 0]).all() and (y.max(1) <= u_[:, 0]).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), d=st.integers(1, 5), depth=st.integers(1, 3))
def test_crown_sound_property(seed, d, depth):
    rng = np.random.default_rng(seed)
    net = random_net(rng, (d, *[8] * depth, 2), scale=2.0)
    lo, hi = random_boxes(rng, 10, d, width=rng.uniform(0.011, 2))
    R = RegionBatch(lo, hi)
    lc, uc = crown_bounds(net, R)
    x, _ = sample(rng, R, k=300)
    y = net.evaluate(x.reshape(-1, d)).reshape(10, 300, 2)
    assert (y.min(1) >= lc).all() and (y.max(1) <= uc).all()


@pytest.mark.parametrize("act", [ReLU(), LeakyReLU(0.1)], ids=lambda a: a.name)
@pytest.mark.parametrize("polygons", [False, True])
def test_one_hidden_fast_path_matches_general_path(act, polygons):
    """The one-hidden-layer fast path computes the same bounds (to rounding) and stays sound,
    including chunks where a huge box overflows (general path taken there)."""
    rng = np.random.default_rng(21 + polygons)
    net = random_net(rng, (3, 24, 2), act, scale=1.5)
    n = 5000  # several chunks
    lo, hi = random_boxes(rng, n, 3)
    lo[7], hi[7] = -1e308, 1e308
    if polygons:
        with np.errstate(over="ignore", invalid="ignore"):
            A, b = random_polygons(rng, lo[:, :2], hi[:, :2])
        R = tighten_boxes(RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),)))
    else:
        R = RegionBatch(lo, hi)
    lf, uf = crown_bounds(net, R)
    lg, ug = crown_bounds(net, R, fast=False)
    for f, g in ((lf, lg), (uf, ug)):
        fin = np.isfinite(g)
        assert (np.isfinite(f) == fin).all() and (f[~fin] == g[~fin]).all()
        assert (np.abs(f[fin] - g[fin]) <= 1e-12 * (1 + np.abs(g[fin]))).all()
    idx = np.arange(8, 308)  # finite widths (region 7 is the huge box)
    x, inside = sample(rng, R.subset(idx), k=300)
    y = net.evaluate(x.reshape(-1, 3)).reshape(len(idx), -1, 2)
    assert (np.where(inside[..., None], y, np.inf).min(1) >= lf[idx]).all()
    assert (np.where(inside[..., None], y, -np.inf).max(1) <= uf[idx]).all()


def test_clip_vertices_are_the_polygon_vertices():
    """The vertex guide finds every vertex of polygon ∩ box (brute force over row pairs)."""
    from mlskip.verifier._kernels import clip_vertices

    rng = np.random.default_rng(13)
    n = 200
    lo, hi = random_boxes(rng, n, 2)
    A, b = random_polygons(rng, lo, hi, m=7)
    A[:5, 0] = [1.0, 0.0]  # an edge parallel to a box side
    b[:5, 0] = 0.7 * lo[:5, 0] + 0.3 * hi[:5, 0]
    R = RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),))
    pv = R.pair_vertices(0)
    A_full, b_full = pv.system(lo, hi)
    xy, rows, valid = clip_vertices(A_full, b_full, 1e-9)
    for r in range(n):
        Ar, br = A_full[r], b_full[r]
        pts = []
        for p in range(len(br)):
            for q in range(p + 1, len(br)):
                M = np.array([Ar[p], Ar[q]])
                if abs(np.linalg.det(M)) < 1e-12:
                    continue
                v = np.linalg.solve(M, [br[p], br[q]])
                if (Ar @ v <= br + 1e-9).all():
                    pts.append(v)
        pts = np.array(pts).reshape(-1, 2)
        assert valid[r].any() == (len(pts) > 0)
        got = xy[r][valid[r]]
        # every true vertex was found, and every proposed vertex is (nearly) feasible
        d = np.abs(pts[:, None, :] - got[None, :, :]).max(-1).min(1)
        assert (d < 1e-7).all()
        assert (got @ Ar.T <= br + 1e-7).all()
        # the rows named for each vertex meet there
        for v, (p, q) in zip(xy[r], rows[r], strict=True):
            assert abs(Ar[p] @ v - br[p]) < 1e-7 and abs(Ar[q] @ v - br[q]) < 1e-7


def test_pieces_clip_the_root_cycle_to_the_same_vertices_and_bounds():
    """Boxes cut from a batch (branch-and-bound pieces, subsets) clip the root's ordered
    polygon instead of intersecting every pair of rows: the same vertices as the
    brute-force guide, and certified minima never looser (ties at shared vertices,
    polygon edges parallel to box sides and boxes hugging the polygon included)."""
    from scipy.spatial import ConvexHull

    from mlskip.metadata.polygon_codec import halfspaces
    from mlskip.verifier._kernels import clip_vertices
    from mlskip.verifier.concretize import _pair_min, tighten_boxes
    from mlskip.verifier.regions import PairVertices, _pair_system

    rng = np.random.default_rng(29)
    n = 150
    lo, hi = random_boxes(rng, n, 2)
    A, b = random_polygons(rng, lo, hi, m=9)  # 11 rows
    A[:5, 0] = [1.0, 0.0]  # an edge parallel to a box side
    b[:5, 0] = 0.7 * lo[:5, 0] + 0.3 * hi[:5, 0]
    for r in range(5, n, 2):  # footer polygons: lattice hulls whose axis rows meet vertices
        pts = np.round(lo[r] + rng.uniform(size=(12, 2)) * (hi[r] - lo[r]), 2)
        v = pts[ConvexHull(pts).vertices]
        Ar, br = halfspaces(v[:7])
        A[r], b[r] = 0.0, 0.0
        A[r, : len(br)], b[r, : len(br)] = Ar, br
    root = tighten_boxes(RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),)))
    par = np.repeat(np.arange(n), 6)
    t = np.sort(rng.uniform(size=(len(par), 2, 2)), axis=1)
    t[::6] = [[0.0, 0.0], [1.0, 1.0]]  # whole boxes: the polygon touches every side
    t[1::6, 0] = 0.0  # pieces sharing sides with the root box
    w = (root.upper - root.lower)[par]
    pieces = root.with_boxes(root.lower[par] + t[:, 0] * w, root.lower[par] + t[:, 1] * w, par)
    for batch in (pieces, pieces.subset(np.arange(0, len(par), 3)), root):
        new = batch.pair_vertices(0)
        Af, bf = _pair_system(batch, 0)
        xy, rows, valid = clip_vertices(Af, bf, 1e-9)
        usable = valid.any(1)
        # the brute-force guide over each region's whole system (box rows included)
        old = PairVertices(xy, rows, valid, usable, Af, bf, np.arange(batch.n))
        assert (new.usable == usable).all()
        for r in np.flatnonzero(usable):
            want, got = xy[r][valid[r]], new.xy[r][new.valid[r]]
            scale = 1e-7 * (1 + np.abs(want).max())
            assert np.abs(want[:, None] - got[None]).max(-1).min(1).max() < scale
            assert np.abs(got[:, None] - want[None]).max(-1).min(1).max() < scale
        a2 = rng.normal(size=(batch.n, 8, 2))
        a2[:, :4] = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]  # ties at vertices
        m_old = _pair_min(a2, old, batch.lower, batch.upper)
        m_new = _pair_min(a2, new, batch.lower, batch.upper)
        mag = np.abs(a2).sum(-1) * (1 + np.abs(batch.upper).max())
        assert (m_new[usable] >= m_old[usable] - 1e-12 * mag[usable]).all()
        x, inside = sample(rng, batch, k=200)
        val = np.einsum("nkt,nst->nks", a2, x)
        truth = np.where(inside[:, None, :], val, np.inf).min(-1)
        assert (m_new[usable] <= truth[usable]).all()


def test_pair_min_kernel_equals_numpy_reference():
    from mlskip.verifier.concretize import _pair_min, _pair_min_reference

    rng = np.random.default_rng(17)
    n = 500
    lo, hi = random_boxes(rng, n, 2)
    A, b = random_polygons(rng, lo, hi, m=5)
    R = RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),))
    pv = R.pair_vertices(0)
    a2 = rng.normal(size=(n, 6, 2))
    a2[:, 0] = [1.0, 0.0]  # axis objectives hit ties between vertices
    got = _pair_min(a2, pv, lo, hi)
    ref = _pair_min_reference(a2, pv, lo, hi)
    use = pv.usable
    assert use.mean() > 0.9
    np.testing.assert_allclose(got[use], ref[use], rtol=1e-13, atol=1e-13)


def test_tightening_only_the_pairs_of_the_split_input():
    """Pieces split along one input re-apply only the pairs holding it: the boxes still
    hold every point of box ∩ polygons and are never wider than the untightened pieces
    (the full tightening can cut a little more: a later pair may use an earlier cut)."""
    from mlskip.verifier.concretize import tighten_or_empty

    rng = np.random.default_rng(41)
    n, d = 120, 3
    lo, hi = random_boxes(rng, n, d)
    pairs = ((0, 1), (1, 2), (0, 2))
    hs = tuple(random_polygons(rng, lo[:, list(p)], hi[:, list(p)], m=6) for p in pairs)
    root = tighten_boxes(RegionBatch(lo, hi, pairs=pairs, halfspaces=hs))
    dim = rng.integers(0, d, n)
    mid = 0.5 * (root.lower + root.upper)[np.arange(n), dim]
    plo, phi = root.lower.copy(), root.upper.copy()
    phi[np.arange(n), dim] = mid
    pieces = root.with_boxes(plo, phi, np.arange(n))
    part, _ = tighten_or_empty(pieces, dim)
    full, _ = tighten_or_empty(pieces)
    assert (part.lower >= pieces.lower).all() and (part.upper <= pieces.upper).all()
    x, inside = sample(rng, pieces, k=500)
    for R in (part, full):
        ok = (x >= R.lower[:, None]).all(-1) & (x <= R.upper[:, None]).all(-1)
        assert ok[inside].all()
    # a pair without the split input cuts its inputs as it did the root's box
    assert (part.upper - part.lower <= pieces.upper - pieces.lower).all()
    assert ((full.upper - full.lower) <= (part.upper - part.lower) + 1e-12).mean() > 0.99


def test_fused_tightening_equals_vertices_and_certificates():
    """tighten_boxes clips and certifies in one kernel: the same boxes, bit for bit, as
    enumerating each pair's vertices and certifying the four axis objectives."""
    from mlskip.verifier.concretize import _pair_min

    rng = np.random.default_rng(43)
    n, d = 150, 3
    lo, hi = random_boxes(rng, n, d)
    pairs = ((0, 1), (1, 2), (0, 2))
    hs = tuple(random_polygons(rng, lo[:, list(p)], hi[:, list(p)], m=6) for p in pairs)
    R = RegionBatch(lo, hi, pairs=pairs, halfspaces=hs)
    par = np.repeat(np.arange(n), 3)
    t = np.sort(rng.uniform(size=(len(par), 2, d)), axis=1)
    w = (R.upper - R.lower)[par]
    P = R.with_boxes(R.lower[par] + t[:, 0] * w, R.lower[par] + t[:, 1] * w, par)
    for batch in (R, P):
        want_lo, want_hi = batch.lower.copy(), batch.upper.copy()
        axes = np.broadcast_to(
            np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), (batch.n, 4, 2)
        )
        for k, (i, j) in enumerate(pairs):
            pv = batch.pair_vertices(k)
            cols = [i, j]
            m = _pair_min(axes, pv, batch.lower[:, cols], batch.upper[:, cols])
            use = pv.usable[:, None]
            want_lo[:, cols] = np.where(
                use, np.maximum(want_lo[:, cols], m[:, :2]), want_lo[:, cols]
            )
            want_hi[:, cols] = np.where(
                use, np.minimum(want_hi[:, cols], -m[:, 2:]), want_hi[:, cols]
            )
        bad = want_lo > want_hi
        want_lo, want_hi = np.where(bad, batch.lower, want_lo), np.where(bad, batch.upper, want_hi)
        got = tighten_boxes(batch)
        assert np.array_equal(got.lower, want_lo) and np.array_equal(got.upper, want_hi)


def test_alpha_search_precision_follows_magnitudes(monkeypatch):
    """The slope search runs in float32 only where float32 resolves the problem; either
    way the replayed bounds contain every sampled output, and on ordinary boxes the two
    precisions give the same bounds to the optimiser's noise."""
    from mlskip.verifier import slope_search as ss

    rng = np.random.default_rng(21)
    net = random_net(rng, (3, 12, 12, 1), scale=1.5)
    lo, hi = random_boxes(rng, 40, 3)
    R = RegionBatch(lo, hi)
    bounds, _ = crown_layers(net, R)
    assert ss.search_in_float32(net, R, bounds)
    narrow = RegionBatch(lo + 1e6, lo + 1e6 + 1e-4)  # a width 1e-10 of the magnitude
    assert not ss.search_in_float32(net, narrow, crown_layers(net, narrow)[0])
    huge = random_net(rng, (3, 12, 12, 1), scale=1e32)
    assert not ss.search_in_float32(huge, R, crown_layers(huge, R)[0])

    x, _ = sample(rng, R)
    y = net.evaluate(x.reshape(-1, 3)).reshape(R.n, x.shape[1], -1)
    got = {}
    for f32 in (True, False):
        monkeypatch.setattr(ss, "search_in_float32", lambda *a, f32=f32: f32)
        la, ua = alpha_crown_bounds(net, R, iters=15)
        assert (y.min(1) >= la).all() and (y.max(1) <= ua).all()
        got[f32] = ua - la
    np.testing.assert_allclose(got[True], got[False], rtol=1e-3)
    for region in (narrow,):
        la, ua = alpha_crown_bounds(net, region, iters=10)
        x, _ = sample(rng, region)
        y = net.evaluate(x.reshape(-1, 3)).reshape(region.n, x.shape[1], -1)
        assert (y.min(1) >= la).all() and (y.max(1) <= ua).all()

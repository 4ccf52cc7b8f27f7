"""Mixed proofs: concrete points on both sides of the predicate.

A region that holds a point where the predicate clearly holds and a point
where it clearly fails can be neither NONE nor ALL, so no complete method
needs to run on it. "Clearly" means the verdict on the point is the same
with every spec row moved by its float evaluation margin in either
direction (the margins of fp_margin.py, so the UDF's float32 evaluation
agrees). Points must lie in the region (box and every polygon). This step
never decides NONE or ALL; it only marks regions as proven mixed.

Candidates, batched over regions: the centre, two box corners, random
points and, per objective, the box corner its gradient at the centre points
to (with polygons, the polygon vertex it points to; every point is
pulled into the polygons towards an interior point); then a projected
signed-gradient search (PGD) from the most promising of them, maximising
and minimising every spec row (and, with several rows, their minimum,
which argmax predicates need). Every iterate is a candidate. For
``lo <= f <= hi``, a bisection between a point below the band and one
above it finds the band itself, which extremes never land in. The cascade
runs a light search before branch and bound and a heavy one (more points and starts) on the few regions left before a
complete method. Typical mixed regions lie on the predicate's boundary with
a small qualifying part that random points miss; the search finds it in a
few steps, where an exact method would need two optimal MILP solves.
"""

from __future__ import annotations

import numpy as np

from .layers import LeakyReLU
from .network import Network
from .predicate import ALL, NONE, Spec
from .regions import RegionBatch


def _act_grad(act, z: np.ndarray) -> np.ndarray:
    if isinstance(act, LeakyReLU):
        return np.where(z >= 0, 1.0, float(act.alpha))
    df = getattr(act, "df", None)
    return df(z) if df is not None else np.ones_like(z)


def _forward_grad(net: Network, x: np.ndarray, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``z [N, m]`` of ``net`` at ``x [N, d]`` and the gradient of ``sum coef * z``."""
    zs = []
    h = x
    with np.errstate(over="ignore", invalid="ignore"):
        for a, s in zip(net.affines[:-1], net.activations, strict=True):
            z = h @ a.W.T + a.b
            zs.append(z)
            h = s.forward(z)
        last = net.affines[-1]
        out = h @ last.W.T + last.b
        g = coef @ last.W
        for j in range(len(zs) - 1, -1, -1):
            g = g * _act_grad(net.activations[j], zs[j])
            g = g @ net.affines[j].W
    return out, g


def clear_points(spec: Spec, z: np.ndarray, mg: np.ndarray, precision: str):
    """(qualifies, fails) for points ``z [N, m]`` with row margins ``mg [N, m]``: the
    verdict is the same with every row moved down and up by its margin."""
    zz = np.concatenate([z - mg, z + mg])
    v = spec.verdicts(zz, zz, precision)
    n = len(z)
    return (v[:n] == ALL) & (v[n:] == ALL), (v[:n] == NONE) & (v[n:] == NONE)


# below this many (point, polygon row) tests a batch is checked with numpy: a small plan
# (a first query) then never loads numba, which costs about a tenth of a second
NUMPY_TESTS = 1 << 16


def inside_points(regions: RegionBatch, x: np.ndarray) -> np.ndarray:
    """``x [n, S, d]`` in region r (box and every polygon) -> ``[n, S]``."""
    ok = ((x >= regions.lower[:, None, :]) & (x <= regions.upper[:, None, :])).all(-1)
    for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
        xi, xj = np.ascontiguousarray(x[..., i]), np.ascontiguousarray(x[..., j])
        if ok.size * b.shape[1] <= NUMPY_TESTS:  # the kernel's statement, in numpy
            lhs = A[:, None, :, 0] * xi[:, :, None] + A[:, None, :, 1] * xj[:, :, None]
            ok &= (lhs <= b[:, None, :]).all(-1)
        else:
            from ._kernels import inside_pair

            inside_pair(A, b, xi, xj, ok)
    return ok


def interior_point(
    regions: RegionBatch, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A point ``c [n, d]`` of each region and whether it lies in the region.

    Each pair's inputs start at the mean of its polygon's vertices (averaged over the
    pairs an input is in); where pairs share inputs, a few rounds then pull each pair's
    two coordinates into its polygon towards that mean."""
    c = 0.5 * (lo + hi)
    centres, usable = [], []
    total, count = np.zeros_like(c), np.zeros_like(c)
    for k, (i, j) in enumerate(regions.pairs):
        pv = regions.pair_vertices(k)
        mean = pv.xy.mean(axis=1)  # invalid entries repeat valid vertices: still inside
        use = pv.usable & np.isfinite(mean).all(1)
        centres.append(mean)
        usable.append(use)
        for axis, col in ((0, i), (1, j)):
            total[use, col] += mean[use, axis]
            count[use, col] += 1
    c = np.where(count > 0, total / np.maximum(count, 1), c)
    if len(set(np.ravel(regions.pairs))) < 2 * len(regions.pairs):  # pairs share inputs
        subs, oks = [], []
        for k, (i, j) in enumerate(regions.pairs):
            sub = RegionBatch(regions.lower[:, [i, j]], regions.upper[:, [i, j]], ((0, 1),),
                              (regions.halfspaces[k],))  # fmt: skip
            subs.append(sub)
            oks.append(usable[k] & inside_points(sub, centres[k][:, None, :])[:, 0])
        for _ in range(8):
            for k, (i, j) in enumerate(regions.pairs):
                c[:, [i, j]] = pull_inside(subs[k], c[:, None, [i, j]], centres[k], oks[k])[:, 0]
    return c, inside_points(regions, c[:, None, :])[:, 0]


def pull_inside(regions: RegionBatch, x: np.ndarray, c: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``x [n, S, d]`` (in the boxes) moved towards the interior points ``c`` until
    inside every polygon, where ``ok``; the box is convex and holds both ends, so the
    result stays in it. Rounding may leave a point just outside: callers still test
    ``_inside``."""
    lam = np.ones(x.shape[:2])
    with np.errstate(invalid="ignore", over="ignore"):
        dx = x - c[:, None, :]
    for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True):
        ci, cj = np.ascontiguousarray(c[:, i]), np.ascontiguousarray(c[:, j])
        dxi, dxj = np.ascontiguousarray(dx[..., i]), np.ascontiguousarray(dx[..., j])
        if lam.size * b.shape[1] <= NUMPY_TESTS:
            _pull_pair_numpy(A, b, ci, cj, dxi, dxj, lam)
        else:
            from ._kernels import pull_pair

            pull_pair(A, b, ci, cj, dxi, dxj, lam)
    lam = np.clip(lam * (1.0 - 1e-9), 0.0, 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        moved = c[:, None, :] + lam[..., None] * dx
    return np.where(ok[:, None, None] & np.isfinite(moved).all(-1, keepdims=True), moved, x)


def _pull_pair_numpy(A, b, ci, cj, dxi, dxj, lam: np.ndarray) -> None:
    """``_kernels.pull_pair`` in numpy: the same products and sums, and the same answers
    for NaN (a step of 1), +inf (1) and -inf (0)."""
    if b.shape[1] == 0:
        return
    with np.errstate(all="ignore"):
        room = b - (A[:, :, 0] * ci[:, None] + A[:, :, 1] * cj[:, None])
        step = A[:, None, :, 0] * dxi[:, :, None] + A[:, None, :, 1] * dxj[:, :, None]
        cut = np.where(step > room[:, None, :], room[:, None, :] / step, 1.0)
    np.minimum(lam, np.nan_to_num(cut.min(-1), nan=1.0, posinf=1.0, neginf=0.0), out=lam)


def _vertex_corners(
    regions: RegionBatch, corners: np.ndarray, grads: list[np.ndarray]
) -> np.ndarray:
    """Gradient corners ``[n, Q, d]`` with each pair's inputs replaced by the vertex of its
    polygon ∩ box that the gradient points to (where the box corner lies outside)."""
    out = corners.copy()
    for k, (i, j) in enumerate(regions.pairs):
        pv = regions.pair_vertices(k)
        for q, g in enumerate(grads):
            score = g[:, None, i] * pv.xy[:, :, 0] + g[:, None, j] * pv.xy[:, :, 1]
            best = pv.xy[np.arange(regions.n), np.argmax(np.nan_to_num(score, nan=-np.inf), 1)]
            use = pv.usable & np.isfinite(best).all(1)
            out[use, q, i], out[use, q, j] = best[use, 0], best[use, 1]
    return out


def mixed_witness(
    spec: Spec,
    regions: RegionBatch,
    mg: np.ndarray,
    precision: str,
    points: int = 16,
    steps: int = 12,
    seed: int = 0,
    heavy: bool = False,
    seen: dict | None = None,
) -> np.ndarray:
    """True where points of the region show both a qualifying and a failing value.

    ``points`` random points per region and a gradient search per objective
    from the best of them; ``heavy`` (for the few regions left before a
    complete method) uses 16x the points, 4 starts per objective and twice
    the steps. ``seen`` (a dict) receives ``lo``, ``hi [n, m]``: the range of each
    spec row over the points evaluated inside the region (empty: +inf, -inf), an
    inner estimate of what any bound could reach (cascade.py's triage).
    """
    n = regions.n
    ranges = _Ranges(n, mg.shape[1])
    if seen is not None:
        seen["lo"], seen["hi"] = ranges.lo, ranges.hi
    if n == 0 or points <= 0:
        return np.zeros(n, bool)
    rng = np.random.default_rng(seed + heavy)
    if heavy:
        pos, neg = _search(spec, regions, mg, precision, 16 * points, 2 * steps, 4, rng, ranges)
    else:
        pos, neg = _search(spec, regions, mg, precision, points, steps, 1, rng, ranges)
    return pos & neg


class _Ranges:
    """Running min / max of each spec row over points evaluated inside their region."""

    def __init__(self, n: int, m: int) -> None:
        self.lo = np.full((n, m), np.inf)
        self.hi = np.full((n, m), -np.inf)

    def add(self, rows: np.ndarray, z: np.ndarray, inside: np.ndarray) -> None:
        """Points ``z [k, S, m]`` of regions ``rows [k]``, ``inside [k, S]``."""
        with np.errstate(invalid="ignore"):
            lo = np.where(inside[..., None], z, np.inf).min(1)
            hi = np.where(inside[..., None], z, -np.inf).max(1)
        self.lo[rows] = np.fmin(self.lo[rows], lo)
        self.hi[rows] = np.fmax(self.hi[rows], hi)


def _search(
    spec: Spec,
    regions: RegionBatch,
    mg: np.ndarray,
    precision: str,
    S: int,
    steps: int,
    n_starts: int,
    rng: np.random.Generator,
    ranges: _Ranges,
) -> tuple[np.ndarray, np.ndarray]:
    """(has a clearly qualifying point, has a clearly failing point) per region."""
    net = spec.spec_net
    n, d = regions.n, regions.d
    lo = np.where(
        np.isfinite(regions.lower),
        regions.lower,
        np.where(np.isfinite(regions.upper), regions.upper - 1.0, -1.0),
    )
    hi = np.where(np.isfinite(regions.upper), regions.upper, lo + 2.0)
    t = rng.uniform(size=(n, S, d))
    t[:, 0] = 0.5
    t[:, 1:3] = rng.integers(0, 2, size=(n, 2, d))  # two corners
    with np.errstate(over="ignore", invalid="ignore"):
        x = lo[:, None, :] + t * (hi - lo)[:, None, :]
    m = mg.shape[1]
    base = [(j, s) for j in range(m) for s in (1.0, -1.0)] + ([(-1, 1.0)] if m > 1 else [])
    polygons = bool(regions.pairs)
    if polygons:  # points are drawn in the box and pulled into the polygons
        c, pull_ok = interior_point(regions, lo, hi)
    if steps > 0:
        centre = c if polygons else 0.5 * (lo + hi)
        x = np.concatenate([x, _corner_points(net, regions, centre, lo, hi, base)], axis=1)
        S = x.shape[1]
    x = np.clip(x, lo[:, None, :], hi[:, None, :])
    if polygons:
        x = pull_inside(regions, x, c, pull_ok)
    z = net.evaluate(x.reshape(n * S, d), final=False).reshape(n, S, m)
    inside = inside_points(regions, x)
    ranges.add(np.arange(n), z, inside)
    pos, neg = clear_points(spec, z.reshape(n * S, m), np.repeat(mg, S, axis=0), precision)
    pos = (pos.reshape(n, S) & inside).any(1)
    neg = (neg.reshape(n, S) & inside).any(1)
    if steps <= 0:
        return pos, neg
    # PGD on the regions still lacking one side: objectives +-row_j (and +min_j row_j)
    open_ = np.flatnonzero(~(pos & neg))
    if not len(open_):
        return pos, neg
    seen_x, seen_z, seen_in = [x], [z], [inside]
    objs = [o for o in base for _ in range(min(n_starts, S))]
    k = len(open_)
    n_obj = len(objs)
    starts = _best_starts(objs, min(n_starts, S), z[open_], x[open_], inside[open_])
    lo_k, hi_k = lo[open_][:, None, :], hi[open_][:, None, :]
    width = hi_k - lo_k
    sub = regions.subset(open_)
    mg_k = np.repeat(mg[open_], n_obj, axis=0)
    cur = starts
    got_pos, got_neg = pos[open_].copy(), neg[open_].copy()
    step = 0.5
    decay = 0.6 if steps <= 12 else 0.75
    for it in range(steps + 1):
        flat = cur.reshape(k * n_obj, d)
        zc = net.evaluate(flat, final=False)
        p, ng = clear_points(spec, zc, mg_k, precision)
        ins = inside_points(sub, cur).reshape(k * n_obj)
        ranges.add(open_, zc.reshape(k, n_obj, m), ins.reshape(k, n_obj))
        got_pos |= (p & ins).reshape(k, n_obj).any(1)
        got_neg |= (ng & ins).reshape(k, n_obj).any(1)
        if it == steps:
            full = (n, n_obj, d)
            seen_x.append(_scatter(full, open_, cur, np.nan))
            seen_z.append(_scatter((n, n_obj, m), open_, zc.reshape(k, n_obj, m), np.nan))
            seen_in.append(_scatter((n, n_obj), open_, ins.reshape(k, n_obj), False))
            break
        coef = np.zeros((k * n_obj, m))
        for q, (j, s) in enumerate(objs):
            rows = np.arange(q, k * n_obj, n_obj)
            jj = np.argmin(zc[rows], axis=1) if j < 0 else np.full(k, j)
            coef[rows, jj] = s
        _, g = _forward_grad(net, flat, coef)
        cur = np.clip(cur + step * np.sign(g).reshape(k, n_obj, d) * width, lo_k, hi_k)
        if polygons:
            cur = pull_inside(sub, cur, c[open_], pull_ok[open_])
        step *= decay
    pos[open_], neg[open_] = got_pos, got_neg
    if spec.predicate.op == "between" and spec.kind in ("linear", "sigmoid", "softmax"):
        need = neg & ~pos
        if need.any():
            pts = np.concatenate(seen_x, axis=1)
            vals = np.concatenate(seen_z, axis=1)
            ok = np.concatenate(seen_in, axis=1)
            pos |= _band_bisect(spec, regions, mg, precision, pts, vals, ok, need)
    return pos, neg


def _corner_points(
    net: Network,
    regions: RegionBatch,
    centre: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    objectives: list[tuple[int, float]],
) -> np.ndarray:
    """``[n, objectives, d]``: the corner each objective's gradient at ``centre`` points to.

    Piecewise-linear models often take their extremes over a box at a corner; with
    polygons, at the polygon's vertex the gradient points to.
    """
    n, d = regions.n, regions.d
    zc = net.evaluate(centre, final=False)
    m = zc.shape[1]
    corners = np.empty((n, len(objectives), d))
    grads = []
    for q, (j, s) in enumerate(objectives):
        coef = np.zeros((n, m))
        coef[np.arange(n), np.argmin(zc, axis=1) if j < 0 else j] = s
        _, g = _forward_grad(net, centre, coef)
        corners[:, q] = np.where(g >= 0, hi, lo)
        grads.append(g)
    if regions.pairs:
        corners = _vertex_corners(regions, corners, grads)
    return corners


def _best_starts(
    objectives: list[tuple[int, float]],
    reps: int,
    z: np.ndarray,
    x: np.ndarray,
    inside: np.ndarray,
) -> np.ndarray:
    """``[k, objectives, d]``: per objective (``reps`` copies in a row), the inside points
    of ``x`` [k, S, d] where it is largest (outputs ``z`` [k, S, m])."""
    k, _, d = x.shape
    starts = np.empty((k, len(objectives), d))
    for q in range(0, len(objectives), reps):
        j, s = objectives[q]
        val = s * (z[..., j] if j >= 0 else z.min(-1))
        val = np.where(inside, val, -np.inf)
        top = np.argsort(-val, axis=1)[:, :reps]
        starts[:, q : q + reps] = x[np.arange(k)[:, None], top]
    return starts


def _scatter(shape: tuple, rows: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    out = np.full(shape, fill, dtype=values.dtype)
    out[rows] = values
    return out


def _band_bisect(
    spec: Spec,
    regions: RegionBatch,
    mg: np.ndarray,
    precision: str,
    pts: np.ndarray,
    z: np.ndarray,
    ok: np.ndarray,
    need: np.ndarray,
    steps: int = 40,
) -> np.ndarray:
    """For ``lo <= f <= hi``: a qualifying point on the segment between a point below the
    band's centre and one above it, found by bisection -> has one, per region.

    Sampling and gradient steps find the extremes of f, rarely a narrow band between
    them; f is continuous and the region convex (box and polygons), so the segment
    stays inside and crosses the centre (rounding may still leave a midpoint just
    outside: every candidate is tested with ``_inside``).
    """
    n, S, m = z.shape
    p = spec.predicate
    centre = 0.5 * (p.threshold + p.high)
    with np.errstate(invalid="ignore", over="ignore"):
        vlo, vhi = spec.value_bounds(z.reshape(n * S, m), z.reshape(n * S, m), precision)
        v = (0.5 * (vlo + vhi)).reshape(n, S) - centre
    usable = ok & np.isfinite(v)
    below = np.where(usable & (v < 0), v, -np.inf).argmax(1)  # closest to the centre
    above = np.where(usable & (v > 0), v, np.inf).argmin(1)
    go = need & (usable & (v < 0)).any(1) & (usable & (v > 0)).any(1)
    idx = np.flatnonzero(go)
    found = np.zeros(n, bool)
    if not len(idx):
        return found
    a, b = pts[idx, below[idx]], pts[idx, above[idx]]
    sub = regions.subset(idx)
    net = spec.spec_net
    mg = mg[idx]
    live = np.arange(len(idx))  # segments still searched: a hit ends a region's search
    for _ in range(steps):
        mid = 0.5 * (a + b)
        zm = net.evaluate(mid, final=False)
        q, _ = clear_points(spec, zm, mg, precision)
        q &= inside_points(sub, mid[:, None, :])[:, 0]
        found[idx[live[q]]] = True
        with np.errstate(invalid="ignore", over="ignore"):
            lo_m, hi_m = spec.value_bounds(zm, zm, precision)
        low = (0.5 * (lo_m + hi_m) < centre)[:, None]
        keep = ~q
        if not keep.any():
            break
        a, b = np.where(low, mid, a)[keep], np.where(low, b, mid)[keep]
        live, mg = live[keep], mg[keep]
        sub = sub.subset(np.flatnonzero(keep))
    return found

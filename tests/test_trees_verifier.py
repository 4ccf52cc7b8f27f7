"""Tree ensembles in the verifier: semantics against ONNX Runtime, leaf reachability
against brute force, and verdicts and MILP bounds against exhaustive enumeration.

Exhaustive enumeration: on a box, an ensemble is constant on every cell of the grid
its split thresholds cut, so evaluating one point per cell (each cell's two ends on the
precision's grid) gives the exact set of outputs over the box.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest

from mlskip.verifier import ALL, NONE, UNKNOWN, Predicate, RegionBatch, Verifier
from mlskip.verifier.tree_milp import milp_bounds
from mlskip.verifier.tree_onnx import from_onnx, to_onnx
from mlskip.verifier.tree_reach import eval_margin, reachable_leaves
from mlskip.verifier.trees import TreeEnsemble, concatenate

DT = {"float32": np.float32, "float64": np.float64}


def random_tree(rng, depth: int, d: int, k: int, precision: str) -> dict:
    """A complete tree of ``depth`` with thresholds on a coarse grid (shared values
    across trees, as real ensembles have)."""
    n_int, n = 2**depth - 1, 2 ** (depth + 1) - 1
    feature = np.full(n, -1)
    threshold = np.zeros(n)
    left, right = np.full(n, -1), np.full(n, -1)
    for i in range(n_int):
        feature[i] = rng.integers(d)
        threshold[i] = np.round(rng.normal() * 4) / 4 + rng.choice([0.0, 0.1])
        left[i], right[i] = 2 * i + 1, 2 * i + 2
    threshold = threshold.astype(DT[precision]).astype(np.float64)
    value = np.zeros((n, k))
    value[n_int:] = np.round(rng.normal(size=(n - n_int, k)), 2)
    return {
        "feature": feature,
        "threshold": threshold,
        "strict": rng.random(n) < 0.5,
        "left": left,
        "right": right,
        "missing_left": rng.random(n) < 0.5,
        "value": value,
    }


def random_ensemble(rng, precision="float32", final=None, trees=8, depth=3, d=3):
    k = 3 if final == "softmax" else 1
    parts = [random_tree(rng, depth, d, k, precision) for _ in range(trees)]
    return concatenate(
        parts, base=np.round(rng.normal(size=k), 2), num_features=d, final=final,
        precision=precision,
    )  # fmt: skip


def cell_points(ens: TreeEnsemble, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One point per end of every cell of the box (float64 values the cast maps onto the
    grid ends), covering every output the ensemble takes on the box."""
    axes = []
    for f in range(ens.num_inputs):
        mine = ens.feature == f
        cands = np.concatenate([[lo[f], hi[f]], ens.left_max[mine], ens.right_min[mine]])
        cands = cands[(cands >= lo[f]) & (cands <= hi[f])]
        axes.append(np.unique(cands))
    return np.array(list(itertools.product(*axes)))


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("final", [None, "sigmoid", "softmax"])
def test_onnx_runtime_evaluates_as_the_verifier_reads(precision, final):
    """The canonical graph on ONNX Runtime equals ``TreeEnsemble.evaluate`` (within the
    rounding margin), at split thresholds, one grid step either side, and NaN."""
    import onnxruntime as ort

    rng = np.random.default_rng(7)
    ens = random_ensemble(rng, precision, final, trees=20, depth=4, d=4)
    data = to_onnx(ens)
    back = from_onnx(onnx.load_model_from_string(data))
    assert np.array_equal(back.threshold, ens.threshold)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    dtype = DT[precision]
    x = rng.normal(size=(4000, 4)) * 4
    t = ens.threshold[ens.feature >= 0].astype(dtype)
    pick = rng.choice(t, 4000)
    step = rng.integers(-1, 2, 4000)
    pick = np.where(step < 0, np.nextafter(pick, dtype(-np.inf)), pick)
    pick = np.where(step > 0, np.nextafter(pick, dtype(np.inf)), pick)
    x[np.arange(4000), rng.integers(4, size=4000)] = pick
    x[:50, 1] = np.nan
    got = session.run(None, {"input": x.astype(dtype)})[0]
    want = back.evaluate(x)
    assert np.abs(got - want).max() <= 4 * eval_margin(back).max() + 1e-6


def test_ensemble_refuses_malformed_trees():
    rng = np.random.default_rng(0)
    tree = random_tree(rng, 2, 2, 1, "float32")
    bad = dict(tree, left=np.where(tree["left"] >= 0, 0, -1))  # a child before its parent
    with pytest.raises(Exception, match="children"):
        concatenate([bad], base=[0.0], num_features=2)
    off_grid = dict(tree, threshold=tree["threshold"] + 1e-12)
    with pytest.raises(ValueError, match="float32"):
        concatenate([off_grid], base=[0.0], num_features=2)
    with pytest.raises(Exception, match="feature"):
        concatenate([tree], base=[0.0], num_features=1)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_box_reachability_is_exact(precision):
    """Every leaf a point of the box reaches is reachable (sound), and every reachable
    leaf is reached by some point of the box (exact on boxes)."""
    rng = np.random.default_rng(3)
    ens = random_ensemble(rng, precision, trees=6, depth=3, d=2)
    for _ in range(40):
        c = rng.normal(size=2) * 2
        w = rng.random(2) * 2
        lo, hi = c - w, c + w
        reach = reachable_leaves(ens, RegionBatch(lo[None], hi[None]))[0]
        pts = cell_points(ens, lo, hi)
        seen = np.zeros(len(ens.leaves), bool)
        position = {int(node): k for k, node in enumerate(ens.leaves)}
        for node in ens.apply(pts).ravel():
            seen[position[int(node)]] = True
        assert np.array_equal(seen, reach)


def _polygon(rng, centre, radius, sides=5):
    """A random convex polygon as halfspaces A x <= b around ``centre``."""
    angles = np.sort(rng.random(sides)) * 2 * np.pi
    A = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    b = A @ centre + radius * (0.3 + rng.random(sides))
    return A, b


def test_polygon_separation_never_drops_a_reached_leaf():
    rng = np.random.default_rng(5)
    ens = random_ensemble(rng, "float32", trees=6, depth=3, d=2)
    n = 60
    centre = rng.normal(size=(n, 2)) * 2
    lower, upper = centre - 2, centre + 2
    A, b = zip(*[_polygon(rng, centre[r], 1.0) for r in range(n)], strict=True)
    regions = RegionBatch(lower, upper, ((0, 1),), ((np.array(A), np.array(b)),))
    reach = reachable_leaves(ens, regions)
    box_reach = reachable_leaves(ens, RegionBatch(lower, upper))
    assert (reach <= box_reach).all() and (reach < box_reach).any()
    position = {int(node): k for k, node in enumerate(ens.leaves)}
    for r in range(n):
        pts = lower[r] + rng.random((3000, 2)) * (upper[r] - lower[r])
        inside = (pts @ A[r].T <= b[r]).all(axis=1)
        for node in ens.apply(pts[inside]).ravel():
            assert reach[r, position[int(node)]]


def test_compiled_separation_equals_numpy_bit_for_bit():
    """The plan must not depend on the batch size: the compiled kernel that large batches
    use answers exactly as numpy does, also on zero, NaN and infinite coefficients,
    infinite bounds and huge or tiny coordinates."""
    pytest.importorskip("numba")
    from mlskip.verifier._tree_kernels import separated_pairs
    from mlskip.verifier.tree_reach import _double_box, _separated_numpy

    rng = np.random.default_rng(37)
    ens = random_ensemble(rng, "float32", trees=6, depth=4, d=3)
    n = 400
    scale = 10.0 ** rng.integers(-30, 30, size=(n, 1))
    centre = rng.normal(size=(n, 3)) * scale
    width = rng.random((n, 3)) * scale
    lower, upper = centre - width, centre + width
    lower[rng.random((n, 3)) < 0.05] = -np.inf
    upper[rng.random((n, 3)) < 0.05] = np.inf
    A, b = zip(*[_polygon(rng, centre[r, :2], float(width[r, 0]), sides=6) for r in range(n)],
               strict=True)  # fmt: skip
    A, b = np.array(A), np.array(b)
    A[rng.random(A.shape) < 0.05] = 0.0
    A[rng.random(A.shape) < 0.01] = np.nan
    A[rng.random(A.shape) < 0.01] = np.inf
    b[rng.random(b.shape) < 0.02] = np.inf
    regions = RegionBatch(lower, upper)  # the polygon goes in directly: RegionBatch refuses NaN
    rows, leaves = np.nonzero(np.ones((n, len(ens.leaves)), dtype=bool))
    dlo, dhi = _double_box(ens)
    want = _separated_numpy(rows, leaves, 0, 1, dlo, dhi, regions, A, b)
    got = np.zeros(len(rows), dtype=bool)
    separated_pairs(rows, leaves, 0, 1, dlo, dhi, lower, upper, A, b, got)
    assert want.any() and not want.all()
    assert np.array_equal(got, want)


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("final", [None, "sigmoid", "softmax"])
def test_verdicts_hold_on_every_cell(precision, final):
    _verdicts_hold_on_every_cell(precision, final, step=13, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 22, 23])
@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("final", [None, "sigmoid", "softmax"])
def test_verdicts_hold_on_every_cell_campaign(precision, final, seed):
    _verdicts_hold_on_every_cell(precision, final, step=4, seed=seed)


def _verdicts_hold_on_every_cell(precision, final, step, seed):
    """NONE / ALL against the exact outputs over each box; thresholds drawn at output
    values the box attains (the extremes included), where a wrong verdict shows."""
    rng = np.random.default_rng(seed)
    ens = random_ensemble(rng, precision, final, trees=6, depth=3, d=2)
    n = 40
    centre = rng.normal(size=(n, 2)) * 2
    width = rng.random((n, 2)) * 1.5
    lower, upper = centre - width, centre + width
    outputs = [ens.evaluate(cell_points(ens, lower[r], upper[r])) for r in range(n)]
    ops = [">", ">=", "<", "<="]
    for r in range(0, n, step):
        y = outputs[r]
        if final == "softmax":
            predicates = [Predicate.argmax(j) for j in range(3)]
        else:
            extremes = [float(y.min()), float(y.max()), float(np.median(y))]
            predicates = [Predicate(op, t) for op in ops for t in extremes]
        for pred in predicates:
            res = Verifier().verify(ens, RegionBatch(lower, upper), pred)
            for q in range(n):
                holds = pred.holds(outputs[q])
                if res.verdicts[q] == NONE:
                    assert not holds.any(), (q, pred)
                if res.verdicts[q] == ALL:
                    assert holds.all(), (q, pred)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_milp_bounds_are_the_exact_extremes(precision):
    rng = np.random.default_rng(13)
    ens = random_ensemble(rng, precision, trees=10, depth=3, d=3)
    C = np.ones((1, 1))
    for _ in range(8):
        c = rng.normal(size=3) * 2
        lo, hi = c - 1.5, c + 1.5
        reach = reachable_leaves(ens, RegionBatch(lo[None], hi[None]))[0]
        z = ens.evaluate(cell_points(ens, lo, hi), final=False)[:, 0]
        L, U, capped = milp_bounds(ens, C, reach, lo, hi, [], 10.0)
        assert not capped
        assert L[0] <= z.min() <= L[0] + 1e-3
        assert U[0] - 1e-3 <= z.max() <= U[0]


def test_milp_with_polygons_is_sound():
    rng = np.random.default_rng(17)
    ens = random_ensemble(rng, "float32", trees=8, depth=3, d=2)
    C = np.ones((1, 1))
    for _ in range(10):
        centre = rng.normal(size=2) * 2
        lo, hi = centre - 2, centre + 2
        A, b = _polygon(rng, centre, 1.0)
        regions = RegionBatch(lo[None], hi[None], ((0, 1),), ((A[None], b[None]),))
        reach = reachable_leaves(ens, regions)[0]
        L, U, _ = milp_bounds(ens, C, reach, lo, hi, [((0, 1), A, b)], 10.0)
        pts = lo + rng.random((20000, 2)) * (hi - lo)
        z = ens.evaluate(pts[(pts @ A.T <= b).all(axis=1)], final=False)[:, 0]
        assert L[0] <= z.min() and z.max() <= U[0]


def _boxes_and_filter(rng, ens: TreeEnsemble, n: int, width: float, quantile: float):
    """``n`` random boxes around the data and a filter ``> t`` at an output quantile."""
    d = ens.num_features
    centre = rng.normal(size=(n, d)) * 2
    half = rng.random((n, d)) * width
    t = float(np.quantile(ens.evaluate(rng.normal(size=(4000, d)) * 2), quantile))
    return RegionBatch(centre - half, centre + half), Predicate.gt(t)


def test_cascade_decides_more_with_milp_and_never_wrongly():
    rng = np.random.default_rng(19)
    ens = random_ensemble(rng, "float32", trees=15, depth=3, d=3)
    n = 80
    regions, pred = _boxes_and_filter(rng, ens, n, 1.2, 0.9)
    cheap = Verifier(methods=("ibp",)).verify(ens, regions, pred)
    full = Verifier().verify(ens, regions, pred)
    decided = lambda res: (res.verdicts != UNKNOWN).sum()  # noqa: E731
    assert decided(full) > decided(cheap)
    assert set(full.decided_by()) <= {"leaves", "bab", "milp", "sampling", "undecided", "empty"}
    for r in range(n):
        y = ens.evaluate(cell_points(ens, regions.lower[r], regions.upper[r]))
        holds = pred.holds(y)
        assert full.verdicts[r] != NONE or not holds.any()
        assert full.verdicts[r] != ALL or holds.all()
        if full.mixed[r]:
            assert holds.any() and not holds.all()


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_split_point_partitions_the_line(precision):
    from mlskip.verifier.tree_bab import split_point

    rng = np.random.default_rng(23)
    ens = random_ensemble(rng, precision)
    dtype = DT[precision]
    t = np.concatenate([rng.normal(size=500), [0.0, 1e-40, -1e-40, 3e38]]).astype(dtype)
    upper, lower = split_point(ens, t.astype(np.float64))
    assert (np.nextafter(upper, np.inf) == lower).all()
    assert (ens.cast(upper) <= t).all() and (ens.cast(lower) > t).all()


def test_branch_and_bound_reaches_the_milp_verdicts():
    """With pieces enough to isolate cells, branch and bound decides what the MILP
    decides (both exact), and never against the cells."""
    rng = np.random.default_rng(29)
    ens = random_ensemble(rng, "float32", trees=10, depth=3, d=2)
    n = 40
    regions, pred = _boxes_and_filter(rng, ens, n, 1.0, 0.8)
    bab = Verifier(methods=("ibp", "bab"), bab_max_pieces=4096, sample_points=0).verify(
        ens, regions, pred
    )
    milp = Verifier(methods=("ibp", "milp"), sample_points=0).verify(ens, regions, pred)
    assert np.array_equal(bab.verdicts, milp.verdicts)
    assert "bab" in bab.decided_by()
    for r in range(n):
        holds = pred.holds(ens.evaluate(cell_points(ens, regions.lower[r], regions.upper[r])))
        assert bab.verdicts[r] != NONE or not holds.any()
        assert bab.verdicts[r] != ALL or holds.all()


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("t", [-np.inf, np.inf])
def test_infinite_thresholds_reach_what_they_send(strict, t):
    """``x < -inf`` sends nothing left and -inf right; ``x <= inf`` sends inf left
    (self-check seed 6282 lost rows: -inf was taken to go left of ``x < -inf``)."""
    tree = {
        "feature": np.array([0, -1, -1]), "threshold": np.array([t, 0.0, 0.0]),
        "strict": np.array([strict, False, False]), "left": np.array([1, -1, -1]),
        "right": np.array([2, -1, -1]), "missing_left": np.array([False, False, False]),
        "value": np.array([[0.0], [1.0], [2.0]]),
    }  # fmt: skip
    ens = concatenate([tree], base=np.zeros(1), num_features=1)
    points = np.array([[-np.inf], [-1e300], [-1.0], [0.0], [3e38], [1e300], [np.inf]])
    reach = reachable_leaves(ens, RegionBatch(points, points))
    position = {int(node): k for k, node in enumerate(ens.leaves)}
    for r, leaf in enumerate(ens.apply(points)[:, 0]):
        assert reach[r, position[int(leaf)]], (points[r], leaf)
    wide = reachable_leaves(ens, RegionBatch(np.array([[-np.inf]]), np.array([[-1e300]])))
    assert wide[0, position[int(ens.apply(np.array([[-np.inf]]))[0, 0])]]

"""The Verifier cascade: predicates, dense-sampling soundness (float64, float32
numpy and onnxruntime), argmax ties, final sigmoid/softmax, float margins."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from mlskip.errors import ModelInputError, PredicateError
from mlskip.verifier import ALL, NONE, UNKNOWN, Network, Predicate, RegionBatch, Verifier
from mlskip.verifier.fp_margin import eval_error
from mlskip.verifier.layers import Affine, ReLU, Tanh
from mlskip.verifier.onnx_loader import to_onnx


def random_net(rng, sizes, final=None, scale=1.5):
    ws = [
        (rng.normal(size=(o, i)) * scale / np.sqrt(i), rng.normal(size=o) * 0.3)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return Network.mlp(ws, final=final)


def regions_for(rng, n, d, polygons=False, width=0.5):
    c = rng.uniform(-1, 1, size=(n, d))
    r = rng.uniform(0.02, width, size=(n, d))
    lo, hi = c - r, c + r
    if not polygons:
        return RegionBatch(lo, hi)
    ang = rng.uniform(0, 2 * np.pi, size=(n, 5))
    A = np.stack([np.cos(ang), np.sin(ang)], -1)
    pts = c[:, None, :2] + 0.5 * r[:, None, :2] * np.stack([np.cos(ang), np.sin(ang)], -1)
    b = np.einsum("nmt,nmt->nm", A, pts)
    return RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),))


def dense(rng, R, k=600):
    n, d = R.n, R.d
    t = rng.uniform(size=(n, k, d))
    t[:, :8] = rng.integers(0, 2, size=(n, 8, d))  # corners too
    x = R.lower[:, None, :] + t * (R.upper - R.lower)[:, None, :]
    inside = np.ones((n, k), bool)
    for (i, j), (A, b) in zip(R.pairs, R.halfspaces, strict=True):
        inside &= (np.einsum("nmt,nkt->nkm", A, x[..., [i, j]]) <= b[:, None, :]).all(-1)
    return x, inside


def check_sampled(net, R, pred, res, rng, use_ort=True):
    x, inside = dense(rng, R)
    flat = x.reshape(-1, R.d)
    outs = [net.evaluate(flat), net.evaluate(flat, dtype=np.float32)]
    if use_ort:
        sess = ort.InferenceSession(to_onnx(net), providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"input": flat.astype(np.float32)})[0])
    for y in outs:
        q = pred.holds(y).reshape(R.n, -1)
        bad_none = (res.verdicts == NONE)[:, None] & q & inside
        bad_all = (res.verdicts == ALL)[:, None] & ~q & inside
        assert not bad_none.any(), (
            f"qualifying point in a NONE region: {np.flatnonzero(bad_none.any(1))}"
        )
        assert not bad_all.any(), (
            f"violating point in an ALL region: {np.flatnonzero(bad_all.any(1))}"
        )


def quantile_threshold(net, rng, d, q, output=0):
    y = net.evaluate(rng.uniform(-1.5, 1.5, size=(20000, d)))
    return float(np.quantile(y[:, output], q))


PREDS = [
    lambda t, t2: Predicate.gt(t),
    lambda t, t2: Predicate.ge(t),
    lambda t, t2: Predicate.lt(t2),
    lambda t, t2: Predicate.le(t2),
    lambda t, t2: Predicate.between(t2, t),
]


@pytest.mark.parametrize("polygons", [False, True])
@pytest.mark.parametrize("pi", range(len(PREDS)))
def test_threshold_predicates_sound_by_sampling(pi, polygons):
    rng = np.random.default_rng(100 + pi + 10 * polygons)
    net = random_net(rng, (3, 12, 12, 1))
    t, t2 = quantile_threshold(net, rng, 3, 0.95), quantile_threshold(net, rng, 3, 0.3)
    pred = PREDS[pi](t, t2)
    R = regions_for(rng, 80, 3, polygons)
    res = Verifier(methods=("ibp", "crown", "bab", "milp")).verify(net, R, pred)
    assert res.verdicts.dtype == np.int8 and set(np.unique(res.verdicts)) <= {0, 1, 2}
    # the complete cascade decides (or proves mixed) nearly every region; a few
    # MILP time-outs are allowed on a loaded machine
    assert ((res.verdicts != UNKNOWN) | res.mixed).mean() >= 0.9
    check_sampled(net, R, pred, res, rng)


@pytest.mark.parametrize("k", [3, 4])
def test_argmax_many_classes_sound(k):
    rng = np.random.default_rng(k)
    net = random_net(rng, (2, 16, 16, k), scale=2.0)
    R = regions_for(rng, 60, 2, polygons=True, width=0.3)
    for label in range(k):
        pred = Predicate.argmax(label)
        res = Verifier(methods=("ibp", "crown", "bab", "milp")).verify(net, R, pred)
        assert ((res.verdicts != UNKNOWN) | res.mixed).mean() > 0.9
        check_sampled(net, R, pred, res, rng)


def test_argmax_ties_follow_first_index():
    # classes 0 and 1 have identical logits: argmax always returns 0, never 1
    W1, b1 = np.array([[1.0, -1.0], [0.5, 2.0]]), np.zeros(2)
    W2 = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    net = Network.mlp([(W1, b1), (W2, np.array([0.0, 0.0, -5.0]))])
    R = RegionBatch(np.zeros((1, 2)), np.ones((1, 2)))
    for precision in ("float32", "float64"):
        v1 = Verifier(precision=precision).verify(net, R, Predicate.argmax(1)).verdicts[0]
        assert v1 != ALL
        check_sampled(
            net,
            R,
            Predicate.argmax(1),
            Verifier(precision=precision).verify(net, R, Predicate.argmax(1)),
            np.random.default_rng(0),
        )
    # class 1 just below class 0 (by far more than the float margins): 1 never wins, 0 always
    net2 = Network.mlp([(W1, b1), (W2, np.array([0.0, -1e-3, -5.0]))])
    assert Verifier().verify(net2, R, Predicate.argmax(1)).verdicts[0] == NONE
    assert Verifier().verify(net2, R, Predicate.argmax(0)).verdicts[0] == ALL
    # class 1 just above class 0: the later index wins when strictly larger
    net3 = Network.mlp([(W1, b1), (W2, np.array([0.0, 1e-3, -5.0]))])
    assert Verifier().verify(net3, R, Predicate.argmax(1)).verdicts[0] == ALL


@pytest.mark.parametrize("final", ["sigmoid", "softmax"])
def test_final_monotone_ops_sound(final):
    rng = np.random.default_rng(21)
    k = 1 if final == "sigmoid" else 3
    net = random_net(rng, (2, 12, k), final=final, scale=2.5)
    R = regions_for(rng, 200, 2, width=0.3)
    y = net.evaluate(rng.uniform(-1.5, 1.5, size=(20000, 2)))
    preds = [
        Predicate.gt(float(np.quantile(y[:, 0], 0.9))),
        Predicate.le(float(np.quantile(y[:, 0], 0.2))),
    ]
    if final == "softmax":
        preds += [Predicate.argmax(2), Predicate.linear([1.0, -1.0, 0.0], ">", 0.1)]
    for pred in preds:
        res = Verifier().verify(net, R, pred)
        assert (res.verdicts != UNKNOWN).mean() > 0.3, pred
        check_sampled(net, R, pred, res, rng)


def test_tanh_network_cascade_sound():
    rng = np.random.default_rng(5)
    net = Network.from_steps(
        [
            Affine(rng.normal(size=(10, 3)), rng.normal(size=10)),
            Tanh(),
            Affine(rng.normal(size=(1, 10)), [0.0]),
        ]
    )
    assert not net.is_piecewise_linear
    R = regions_for(rng, 100, 3)
    pred = Predicate.gt(quantile_threshold(net, rng, 3, 0.9))
    res = Verifier().verify(net, R, pred)  # MILP skipped: not piecewise linear
    check_sampled(net, R, pred, res, rng)


def test_eval_error_bound_holds_for_float32_and_onnxruntime():
    rng = np.random.default_rng(2)
    for sizes, scale in [((4, 32, 32, 1), 1.0), ((8, 64, 64, 3), 3.0), ((2, 16, 16, 16, 2), 2.0)]:
        net = random_net(rng, sizes, scale=scale)
        lo = rng.uniform(-1e3, 1e3, size=(20, sizes[0]))
        hi = lo + rng.uniform(0, 500, size=lo.shape)
        e = eval_error(net, lo, hi, "float32")
        x = lo[:, None, :] + rng.uniform(size=(20, 300, sizes[0])) * (hi - lo)[:, None, :]
        flat = x.reshape(-1, sizes[0])
        exact = net.evaluate(flat).reshape(20, 300, -1)
        f32 = net.evaluate(flat, dtype=np.float32).reshape(20, 300, -1).astype(np.float64)
        sess = ort.InferenceSession(to_onnx(net), providers=["CPUExecutionProvider"])
        orty = sess.run(None, {"input": flat.astype(np.float32)})[0].reshape(20, 300, -1)
        for y in (f32, orty):
            err = np.abs(y - exact).max(1)
            assert (err <= e).all()
        # and the bound is not absurdly loose
        assert np.median(e / (np.abs(exact).max(1) + 1)) < 1e-3


def test_margins_cost_almost_nothing():
    rng = np.random.default_rng(12)
    net = random_net(rng, (4, 32, 32, 1), scale=1.0)
    R = regions_for(rng, 3000, 4, width=0.3)
    pred = Predicate.gt(quantile_threshold(net, rng, 4, 0.999))
    v32 = Verifier(methods=("ibp", "crown")).verify(net, R, pred).verdicts
    v64 = Verifier(methods=("ibp", "crown"), precision="float64").verify(net, R, pred).verdicts
    v0 = Verifier(methods=("ibp", "crown"), fp_margins=False).verify(net, R, pred).verdicts
    assert (v32 != v0).mean() <= 0.001 and (v64 != v0).mean() <= 0.001
    assert (v0 == NONE).sum() - (v32 == NONE).sum() <= 3


def test_empty_regions_errors_and_budget():
    rng = np.random.default_rng(0)
    net = random_net(rng, (2, 8, 1))
    lo = np.array([[0.0, 0.0], [1.0, 0.0]])
    hi = np.array([[1.0, 1.0], [0.0, 1.0]])  # second is empty
    res = Verifier().verify(net, RegionBatch(lo, hi), Predicate.gt(1e9))
    assert list(res.verdicts) == [NONE, NONE] and res.method_names[res.method[1]] == "empty"
    with pytest.raises(ModelInputError):
        Verifier().verify(net, RegionBatch(np.zeros((1, 3)), np.ones((1, 3))), Predicate.gt(0))
    with pytest.raises(PredicateError):
        Verifier().verify(net, RegionBatch(lo, hi), Predicate.argmax(0))
    with pytest.raises(PredicateError):
        Predicate.between(2, 1)
    with pytest.raises(ValueError):
        Verifier(methods=("magic",))
    with pytest.raises(ValueError):
        res.verdicts[0] = 1
    # a total time budget bounds the expensive methods
    big = random_net(rng, (4, 32, 32, 1), scale=2.0)
    R = regions_for(rng, 500, 4, width=1.0)
    pred = Predicate.gt(quantile_threshold(big, rng, 4, 0.5))
    import time

    t0 = time.perf_counter()
    res = Verifier(time_budget=1.0, sample_points=0).verify(big, R, pred)
    assert time.perf_counter() - t0 < 4.0
    assert (
        res.seconds and res.counts()["none"] + res.counts()["all"] + res.counts()["unknown"] == 500
    )


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, mlskip.verifier; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_leaky_relu_milp_sound():
    rng = np.random.default_rng(33)
    ws = [(rng.normal(size=(10, 2)), rng.normal(size=10)), (rng.normal(size=(1, 10)), [0.0])]
    from mlskip.verifier import LeakyReLU

    net = Network.mlp(ws, activation=LeakyReLU(0.2))
    R = regions_for(rng, 80, 2, polygons=True)
    pred = Predicate.ge(quantile_threshold(net, rng, 2, 0.9))
    res = Verifier(methods=("crown", "milp")).verify(net, R, pred)
    assert (res.verdicts != UNKNOWN).all() or res.mixed[res.verdicts == UNKNOWN].all()
    check_sampled(net, R, pred, res, rng)
    assert ReLU().piecewise_linear


@pytest.mark.parametrize("polygons", [False, True])
@pytest.mark.parametrize("kind", ["gt", "between", "argmax"])
def test_mixed_witnesses_are_genuine_and_found(kind, polygons):
    """A region the witness search proves mixed is never decided by the complete
    MILP; and the search finds most regions the MILP proves mixed."""
    from mlskip.verifier.witness import mixed_witness

    rng = np.random.default_rng(61 + polygons + 2 * len(kind))
    k = 3 if kind == "argmax" else 1
    net = random_net(rng, (3, 12, 12, k))
    R = regions_for(rng, 40, 3, polygons=polygons, width=0.4)
    t = quantile_threshold(net, rng, 3, 0.7)
    pred = {
        "gt": Predicate.gt(t),
        "between": Predicate.between(quantile_threshold(net, rng, 3, 0.4), t),
        "argmax": Predicate.argmax(1),
    }[kind]
    V = Verifier(methods=("milp",), sample_points=0, milp_time_per_region=10.0)
    exact = V.verify(net, R, pred)
    spec = pred.compile(net)
    mg = V.row_margins(net, spec, R)
    w = mixed_witness(spec, R, mg, "float32") | mixed_witness(spec, R, mg, "float32", heavy=True)
    assert (exact.verdicts[w] == UNKNOWN).all()
    assert exact.mixed.sum() >= 5
    assert (w & exact.mixed).sum() >= 0.8 * exact.mixed.sum()
    # the MILP calls a region mixed only with witnesses: dense sampling sees both sides
    from mlskip.verifier.witness import inside_points

    for r in np.flatnonzero(exact.mixed):
        one = R.subset(np.array([r]))
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 3)).reshape(3, -1).T
        unit = np.vstack([corners, rng.random((20_000, 3)), rng.beta(0.05, 0.05, (20_000, 3))])
        x = one.lower + unit * (one.upper - one.lower)
        x = x[inside_points(one, x[None])[0]]
        holds = pred.holds(net.evaluate(x))
        assert holds.any() and not holds.all(), f"region {r} called mixed"


def test_region_seconds_attribute_the_cascade_time():
    rng = np.random.default_rng(71)
    net = random_net(rng, (2, 10, 10, 1))
    R = regions_for(rng, 80, 2, width=0.4)
    pred = Predicate.gt(quantile_threshold(net, rng, 2, 0.8))
    res = Verifier(methods=("ibp", "crown", "bab", "milp")).verify(net, R, pred)
    rs = res.region_seconds
    assert rs.shape == (80,) and (rs > 0).all()
    assert abs(rs.sum() - res.total_seconds) <= 1e-9 + 1e-9 * res.total_seconds
    # regions that reached the expensive methods cost more than those CROWN decided
    cheap = res.method <= 2
    if cheap.any() and (~cheap).any():
        assert rs[~cheap].mean() > rs[cheap].mean()


@pytest.mark.parametrize("overlap", [False, True])
def test_witness_finds_qualifying_points_inside_thin_polygons(overlap):
    """Qualifying points that only a polygon's vertex reaches (every box corner where the
    gradient points lies outside the polygon) are found, and every witness is inside."""
    from mlskip.verifier.witness import inside_points, interior_point, mixed_witness, pull_inside

    n = 30
    rng = np.random.default_rng(5)
    lo = rng.uniform(-1, 0, (n, 3))
    hi = lo + 1.0
    # the strip |x0 - x1| <= 0.05 (and with overlap a second strip on (x1, x2))
    A = np.array([[1.0, -1.0], [-1.0, 1.0]])
    strip = (np.broadcast_to(A, (n, 2, 2)).copy(), np.full((n, 2), 0.05) + 0.0 * lo[:, :2])
    shift = lo[:, 0] - lo[:, 1]  # the boxes are the same square shifted: keep the strip inside
    strip[1][:, 0] += shift
    strip[1][:, 1] -= shift
    pairs, half = ((0, 1),), (strip,)
    if overlap:
        s2 = (
            strip[0].copy(),
            np.stack([0.05 + lo[:, 1] - lo[:, 2], 0.05 - lo[:, 1] + lo[:, 2]], 1),
        )
        pairs, half = ((0, 1), (1, 2)), (strip, s2)
    R = RegionBatch(lo, hi, pairs, half)
    # f = x0 - x1 - shift: qualifies (> 0.04) only within 0.01 of the strip's edge
    net = Network.mlp([(np.array([[1.0, -1.0, 0.0]]), np.zeros(1))], ReLU())
    preds = [Predicate.gt(float(0.04 + s)) for s in shift]
    found = np.array(
        [
            mixed_witness(p.compile(net), R.subset(np.array([r])), np.zeros((1, 1)), "float64")[0]
            for r, p in enumerate(preds)
        ]
    )
    assert found.all()
    c, ok = interior_point(R, R.lower, R.upper)
    assert ok.all()
    x = rng.uniform(R.lower[:, None, :], R.upper[:, None, :], (n, 50, 3))
    assert inside_points(R, pull_inside(R, x, c, ok)).mean() > 0.95


@pytest.mark.parametrize("polygons", [False, True])
def test_witness_finds_narrow_bands(polygons):
    """``lo <= f <= hi`` with a band of 1e-3 of f's range over the region: random points
    and extreme-seeking steps miss it; bisection between a point below and one above
    finds a qualifying point in every region, and only in regions that hold one."""
    from mlskip.verifier.witness import mixed_witness

    rng = np.random.default_rng(17)
    net = random_net(rng, (3, 16, 16, 1))
    R = regions_for(rng, 60, 3, polygons=polygons, width=0.5)
    spec0 = Predicate.gt(0.0).compile(net)
    V = Verifier(methods=("crown",))
    mg0 = V.row_margins(net, spec0, R)
    # a band around the value at each region's own sampled interior point
    x = rng.uniform(R.lower, R.upper)
    if polygons:
        from mlskip.verifier.witness import inside_points, interior_point, pull_inside

        c, ok = interior_point(R, R.lower, R.upper)
        x = pull_inside(R, x[:, None, :], c, ok)[:, 0]
        assert inside_points(R, x[:, None, :]).mean() > 0.95
    fx = net.evaluate(x, final=False)[:, 0]
    span = np.abs(fx).max() + 1.0
    found = []
    for r in range(R.n):
        pred = Predicate.between(float(fx[r] - 5e-4 * span), float(fx[r] + 5e-4 * span))
        spec = pred.compile(net)
        found.append(mixed_witness(spec, R.subset(np.array([r])), mg0[[r]], "float64")[0])
    found = np.array(found)
    assert found.mean() >= 0.9, found.mean()
    # a band above every value of the region is never "found"
    hi = float(np.abs(fx).max() * 10 + 1e6)
    far = Predicate.between(hi, hi + 1.0).compile(net)
    assert not mixed_witness(far, R, mg0, "float64").any()


def test_polygons_only_add_decisions_to_the_box_verdicts():
    """``box_first``: with work budgets (deterministic), every region decided on its bare
    box is decided the same with its polygons, and the polygons decide more."""
    rng = np.random.default_rng(91)
    net = random_net(rng, (3, 16, 16, 1))
    R = regions_for(rng, 120, 3, polygons=True, width=0.8)
    pred = Predicate.gt(quantile_threshold(net, rng, 3, 0.7))
    V = Verifier(methods=("ibp", "crown", "bab", "lp"), bab_time_budget=float("inf"),
                 bab_max_pieces=32)  # fmt: skip
    box = V.verify(net, RegionBatch(R.lower, R.upper), pred)
    both = V.verify(net, R, pred)
    decided = box.verdicts != UNKNOWN
    np.testing.assert_array_equal(both.verdicts[decided], box.verdicts[decided])
    assert (both.verdicts != UNKNOWN).sum() > decided.sum()
    check_sampled(net, R, pred, both, rng, use_ort=False)
    assert both.region_seconds.shape == (R.n,) and both.total_seconds > 0


def test_budgets_count_the_verifying_threads_cpu_time():
    """A deadline passes after its CPU seconds of work, not while the thread waits
    (up to the wall-clock cap of WALL_FACTOR times the budget)."""
    import time

    from mlskip.verifier.deadline import WALL_FACTOR, Deadline

    d = Deadline(0.2)
    time.sleep(0.25)
    assert not d.passed() and d.remaining() > 0.1  # waiting costs no CPU
    busy = Deadline(0.05)
    while not busy.passed():
        sum(range(1000))
    capped = Deadline(0.02)
    time.sleep(WALL_FACTOR * 0.02 + 0.02)
    assert capped.passed()


def test_triage_estimates_follow_the_gap_and_spot_hopeless_regions():
    """pieces_needed: 1 where nothing was seen, more the more of the bound gap must
    close, inf where the points seen already straddle the threshold."""
    from mlskip.verifier.triage import pieces_needed

    net = Network.mlp([(np.ones((1, 2)), np.zeros(1))])
    spec = Predicate.gt(1.0).compile(net)
    L = np.array([[-3.0], [0.0], [-3.0], [0.0]])
    U = np.array([[0.5], [0.5], [2.0], [0.5]])
    lo = np.array([[0.0], [0.0], [0.5], [np.inf]])  # rows seen at points inside
    hi = np.array([[0.4], [0.4], [1.5], [-np.inf]])
    est = pieces_needed(spec, L, U, lo, hi, np.zeros((4, 1)), "float64", d=2)
    # NONE needs U <= 1: region 0 already proves it at its bound's own gap (t = 1)
    assert est[0] == pytest.approx(1.0, rel=1e-3)
    assert est[1] == pytest.approx(1.0, rel=1e-3)
    assert est[2] == np.inf  # points on both sides of 1
    assert est[3] == 1.0  # nothing seen: try it
    U2 = np.array([[4.0]])  # gap 3.6 above the points, 0.6 may stay: t = 1/6
    est2 = pieces_needed(spec, L[:1], U2, lo[:1], hi[:1], np.zeros((1, 1)), "float64", d=4)
    assert est2[0] == pytest.approx(36.0, rel=1e-3)


def test_branch_and_bound_takes_regions_by_estimate_and_skips_hopeless_ones():
    """bab_verdicts with a cost: regions estimated at inf get no piece and stay UNKNOWN; the others get the verdicts they get without a cost when the
    budget is not binding; the cascade with triage stays sound."""
    from mlskip.verifier.bab import bab_verdicts

    rng = np.random.default_rng(71)
    net = random_net(rng, (2, 24, 1))
    R = regions_for(rng, 120, 2, polygons=True)
    pred = Predicate.gt(quantile_threshold(net, rng, 2, 0.7))
    spec = pred.compile(net)
    mg = np.zeros((R.n, 1))
    plain = bab_verdicts(spec, spec.spec_net, R, mg, "float64", max_pieces=64, time_budget=60)
    cost = rng.uniform(1, 10, R.n)
    cost[::3] = np.inf
    cost[1::7] = 500.0  # a high estimate is still tried
    stats: dict = {}
    got = bab_verdicts(
        spec, spec.spec_net, R, mg, "float64", max_pieces=64, time_budget=60, stats=stats,
        cost=cost,
    )  # fmt: skip
    skipped = ~np.isfinite(cost)
    assert stats["given_up"] == skipped.sum()
    assert (got[skipped] == UNKNOWN).all() and (stats["weights"][skipped] == 0).all()
    assert (got[~skipped] == plain[~skipped]).all()
    assert (plain[skipped] != UNKNOWN).any()  # the test skips regions that were decidable
    res = Verifier(methods=("ibp", "crown", "bab"), bab_pieces_per_region=64).verify(net, R, pred)
    check_sampled(net, R, pred, res, rng)


@pytest.mark.parametrize("numpy_tests", [0, 1 << 30], ids=["numba", "numpy"])
def test_witness_point_kernels_equal_their_numpy_definitions(monkeypatch, numpy_tests):
    """inside_points and pull_inside (numba kernels for large batches, numpy for small
    ones): the same answers as their numpy statements, also with zero steps, points on
    edges and infinite steps."""
    from mlskip.verifier import witness
    from mlskip.verifier.witness import inside_points, pull_inside

    monkeypatch.setattr(witness, "NUMPY_TESTS", numpy_tests)

    rng = np.random.default_rng(83)
    R = regions_for(rng, 60, 3, polygons=True)
    x = R.lower[:, None, :] + rng.uniform(-0.2, 1.2, (60, 40, 3)) * (R.upper - R.lower)[:, None]
    c = 0.5 * (R.lower + R.upper)
    x[:, 0] = c  # no step at all
    x[:5, 1, 0] = np.inf
    c[::4, :2] = R.upper[::4, :2] + 1.0  # centres outside the polygon: zero steps divide by 0
    x[::4, 2] = c[::4]
    A, b = R.halfspaces[0]
    want_in = ((x >= R.lower[:, None]) & (x <= R.upper[:, None])).all(-1)
    lhs = A[:, None, :, 0] * x[:, :, None, 0] + A[:, None, :, 1] * x[:, :, None, 1]
    want_in &= (lhs <= b[:, None, :]).all(-1)
    assert np.array_equal(inside_points(R, x), want_in)
    ok = rng.uniform(size=60) < 0.8
    with np.errstate(all="ignore"):
        dx = x - c[:, None, :]
        room = b - (A[:, :, 0] * c[:, None, 0] + A[:, :, 1] * c[:, None, 1])
        step = A[:, None, :, 0] * dx[:, :, None, 0] + A[:, None, :, 1] * dx[:, :, None, 1]
        cut = np.where(step > room[:, None, :], room[:, None, :] / step, 1.0)
        lam = np.minimum(1.0, np.nan_to_num(cut.min(-1), nan=1.0, posinf=1.0, neginf=0.0))
        lam = np.clip(lam * (1.0 - 1e-9), 0.0, 1.0)
        moved = c[:, None, :] + lam[..., None] * dx
    want = np.where(ok[:, None, None] & np.isfinite(moved).all(-1, keepdims=True), moved, x)
    assert np.array_equal(pull_inside(R, x, c, ok), want, equal_nan=True)


def test_every_cascade_method_is_registered():
    """The cascade runs methods by name from one registry (verifier/methods.py)."""
    from mlskip.verifier.cascade import AVAILABLE, DEFAULT_METHODS, METHOD_NAMES
    from mlskip.verifier.methods import METHODS

    assert set(AVAILABLE) == set(METHODS)
    assert set(DEFAULT_METHODS) <= set(METHODS) <= set(METHOD_NAMES)


def test_plain_python_kernels_give_way_to_compiled_ones_after_enough_work(monkeypatch):
    from mlskip.verifier import _kernels, _kernels_py

    monkeypatch.setattr(_kernels_py, "_plain_work", 0)
    monkeypatch.setattr(_kernels_py, "PLAIN_PYTHON_WORK", 1_000)
    assert _kernels_py.kernels(200) is _kernels_py.PLAIN
    assert _kernels_py.kernels(257) is _kernels  # large batches: always compiled
    for _ in range(4):
        _kernels_py.kernels(200)
    assert _kernels_py.kernels(10) is _kernels  # 1,000 regions done in plain Python


def test_plain_python_kernels_equal_the_compiled_ones(monkeypatch):
    """Small batches run the polygon kernels as plain Python (no numba to load for a first
    query), large ones compiled: the same vertices, tightened boxes and certified minima,
    also for empty polygons, tiny boxes and unbounded inputs."""
    from mlskip.verifier import _kernels_py
    from mlskip.verifier.concretize import region_min, tighten_boxes

    rng = np.random.default_rng(91)
    R = regions_for(rng, 80, 3, polygons=True)
    lo, hi = R.lower.copy(), R.upper.copy()
    hi[:5] = lo[:5] + 1e-12  # tiny boxes
    lo[5:8, 0] = 3.0  # the box misses the polygon
    hi[5:8, 0] = 4.0
    lo[8:10, 2] = -np.inf  # an unbounded input outside the pair
    R = RegionBatch(lo, hi, R.pairs, R.halfspaces)
    a = rng.normal(size=(80, 4, 3))
    got = []
    monkeypatch.setattr(_kernels_py, "PLAIN_PYTHON_WORK", 10**9)  # whatever ran before
    for limit in (10**9, 0):  # plain Python, then numba
        monkeypatch.setattr(_kernels_py, "PLAIN_PYTHON_REGIONS", limit)
        fresh = RegionBatch(R.lower, R.upper, R.pairs, R.halfspaces)
        pv = fresh.pair_vertices(0)
        tight = tighten_boxes(fresh)
        got.append((pv.xy, pv.rows, pv.valid, pv.usable, tight.lower, tight.upper,
                    region_min(a, np.zeros((80, 4)), fresh)))  # fmt: skip
    for plain, compiled in zip(*got, strict=True):
        assert np.array_equal(plain, compiled, equal_nan=True)

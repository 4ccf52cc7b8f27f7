"""Verdicts hold for the model as ONNX Runtime computes it, not as mathematics does.

Each case below was a lost or added row before (issue 17): a sigmoid or tanh kernel
that returns slightly more than 1, subnormal products, a partial sum that overflows
although the exact result is finite, and op attributes that change what the runtime
computes. Every end-to-end case compares ``mlskip.connect()`` with
``mlskip.connect(skipping=False)`` on a file whose row groups the planner decides.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlskip
from mlskip.errors import UnsupportedModelError
from mlskip.verifier import Network
from mlskip.verifier.fp_margin import TINY, UNIT, eval_error
from mlskip.verifier.onnx_loader import load_onnx

ROWS, GROUP = 4_000, 500


def onnx_model(nodes, inits, d: int, k: int = 1, opset: int = 17) -> bytes:
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), n) for n, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def gemm_then(op: str | None, w, b=(0.0,)) -> bytes:
    """Gemm(x, W, b) followed by ``op`` (a final activation) if given."""
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["z" if op else "y"], transB=1)]
    if op:
        nodes.append(helper.make_node(op, ["z"], ["y"]))
    return onnx_model(nodes, {"W": w, "b": np.asarray(b)}, w.shape[1], w.shape[0])


def run_onnx(model: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.asarray(x, dtype=np.float32)})[0]


def counts(tmp_path, model: bytes, columns: dict[str, np.ndarray], where: str) -> tuple:
    """(rows with skipping, rows without, row groups pruned or spared the model)."""
    path = tmp_path / "t.parquet"
    mlskip.write_parquet(pa.table(columns), path, row_group_size=GROUP)
    out = []
    for skipping in (True, False):
        con = mlskip.connect(skipping=skipping)
        con.register_model("m", model, inputs=list(columns))
        query = f"SELECT count(*) FROM '{path}' WHERE {where}"
        out.append(con.sql(query).fetchone()[0])
        if skipping:
            report = con.explain_skipping(query)
            decided = sum(f.pruned + f.all_match for f in report.files)
    return out[0], out[1], decided


def test_sigmoid_kernel_above_one(tmp_path):
    model = gemm_then("Sigmoid", [[1.0]])
    x = np.float32(17.844)
    assert run_onnx(model, [[x]])[0, 0] > 1.0  # the kernel, not the function
    a = np.full(ROWS, float(x))
    for where in ("m(a) > 1.00000001", "m(a) <= 1.00000001", "m(a) >= 1.0000001"):
        on, off, _ = counts(tmp_path, model, {"a": a}, where)
        assert on == off, where
    # the model stays prunable where it must be: far from 1
    on, off, decided = counts(tmp_path, model, {"a": a}, "m(a) < 0.5")
    assert on == off == 0 and decided == ROWS // GROUP


def test_tanh_kernel_above_one(tmp_path):
    model = onnx_model(
        [
            helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1),
            helper.make_node("Tanh", ["z"], ["t"]),
            helper.make_node("Gemm", ["t", "V", "c"], ["y"], transB=1),
        ],
        {"W": [[1.0]], "b": [0.0], "V": [[1.0]], "c": [0.0]},
        1,
    )
    grid = np.linspace(8, 10, 20_001, dtype=np.float32)
    above = grid[run_onnx(model, grid[:, None])[:, 0] > 1.0]
    assert len(above), "ONNX Runtime's tanh no longer exceeds 1: the case is moot"
    a = np.resize(above.astype(np.float64), ROWS)
    for where in ("m(a) > 1.00000001", "m(a) <= 1.00000001"):
        on, off, _ = counts(tmp_path, model, {"a": a}, where)
        assert on == off, where


def test_subnormal_intermediates(tmp_path):
    """1e-42 * a is subnormal in float32 (rounded on an absolute grid, not relative to the
    value); the next layer multiplies that error by 1e38."""
    model = onnx_model(
        [
            helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1),
            helper.make_node("Gemm", ["z", "V", "c"], ["y"], transB=1),
        ],
        {"W": [[1e-42]], "b": [0.0], "V": [[1e38]], "c": [0.0]},
        1,
    )
    a = np.linspace(0.5, 0.7, ROWS)
    got = run_onnx(model, a[:, None])[:, 0].astype(np.float64)
    w, v = (float(np.float32(c)) for c in (1e-42, 1e38))
    exact = v * (w * a.astype(np.float32).astype(np.float64))
    i = int(np.argmax(got - exact))
    assert got[i] > exact[i] * (1 + 1e-4)  # far beyond float32's relative rounding
    threshold = float(got[i] + exact[i]) / 2  # the runtime's value is above, the exact below
    a_one = np.full(ROWS, a[i])
    for where in (f"m(a) > {threshold!r}", f"m(a) <= {threshold!r}"):
        on, off, _ = counts(tmp_path, model, {"a": a_one}, where)
        assert on == off, where


def test_partial_sum_overflow(tmp_path):
    """a + b - c with every input 2e38: the exact value is 2e38, the runtime gives inf."""
    model = gemm_then(None, [[1.0, 1.0, -1.0]])
    v = np.full(ROWS, 2e38)
    assert np.isinf(run_onnx(model, np.stack([v, v, v], 1))[0, 0])
    cols = {"a": v, "b": v, "c": v}
    for where in ("m(a, b, c) < 1e39", "m(a, b, c) > 1e39", "m(a, b, c) BETWEEN 1e38 AND 3e38"):
        on, off, _ = counts(tmp_path, model, cols, where)
        assert on == off, where


def test_eval_error_terms():
    """The float32 error bound has an absolute floor per operation and is infinite where
    a partial sum or an input may overflow."""
    net = Network.mlp([(np.array([[1.0, 1.0, -1.0]]), np.zeros(1))])
    lo, hi = np.full((1, 3), 1.0), np.full((1, 3), 2.0)
    e = eval_error(net, lo, hi)
    assert np.isfinite(e).all() and (e >= 8 * TINY["float32"]).all()
    big = np.full((1, 3), 2e38)
    assert np.isinf(eval_error(net, big, big)).all()
    assert np.isinf(eval_error(net, np.full((1, 3), 3.5e38), np.full((1, 3), 3.5e38))).all()
    # a weight subnormal in float32 counts in full (a runtime may read it as zero)
    sub = Network.mlp([(np.array([[float(np.float32(1e-42))]]), np.zeros(1))])
    e = eval_error(sub, np.full((1, 1), 1e38), np.full((1, 1), 1e38))
    assert e[0, 0] >= 1e-42 * 1e38 * (1 - 1e-6)
    assert UNIT["float32"] == 2.0**-24


def dropout_model(training) -> bytes:
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1)]
    inits = {"W": [[1.0, 2.0]], "b": [0.0]}
    if training is None:
        nodes.append(helper.make_node("Dropout", ["z"], ["y"]))
    else:
        nodes.append(helper.make_node("Dropout", ["z", "r", "t"], ["y"]))
        inits["r"] = np.float32(0.5)
    model = onnx_model(nodes, inits, 2)
    if training is None:
        return model
    from onnx import load_model_from_string

    proto = load_model_from_string(model)
    proto.graph.initializer.append(numpy_helper.from_array(np.array(training), "t"))
    return proto.SerializeToString()


def test_dropout_in_training_mode_is_not_read_as_identity():
    load_onnx(dropout_model(None))
    load_onnx(dropout_model(False))
    with pytest.raises(UnsupportedModelError, match="training mode"):
        load_onnx(dropout_model(True))
    con = mlskip.connect()
    con.register_model("m", dropout_model(True), inputs=["a", "b"])
    assert con.models["m"].network is None  # still usable in SQL, never for skipping
    assert "training" in con.models["m"].unverifiable


@pytest.mark.parametrize(
    "node, message",
    [
        (helper.make_node("Relu", ["z"], ["y"], domain="com.example"), "domain"),
        (helper.make_node("Softmax", ["z"], ["y"], axis=-1, extra=3), "extra"),
        (helper.make_node("LeakyRelu", ["z"], ["y"], alpha=1.5), "alpha"),
        (helper.make_node("LeakyRelu", ["z"], ["y"], alpha=-0.1), "alpha"),
    ],
)
def test_attributes_that_change_semantics_are_refused(node, message):
    model = onnx_model(
        [helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1), node],
        {"W": [[1.0, 2.0], [0.5, 1.0]], "b": [0.0, 0.0]},
        2,
        2,
    )
    with pytest.raises(UnsupportedModelError, match=message):
        load_onnx(model)


def test_batch_normalization_and_gemm_scalings_stay_within_the_margin(tmp_path):
    """Folded arithmetic (BN statistics, Gemm alpha/beta) against the runtime on inputs
    where the float32 error is largest relative to the result."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1, alpha=0.3, beta=7.0),
        helper.make_node("BatchNormalization", ["z", "s", "o", "mu", "var"], ["y"]),
    ]
    inits = {
        "W": rng.normal(0, 1, (3, 4)),
        "b": rng.normal(0, 1, 3),
        "s": rng.uniform(0.5, 2, 3),
        "o": rng.normal(0, 1, 3),
        "mu": rng.normal(1e4, 1, 3),
        "var": rng.uniform(1e-3, 1, 3),
    }
    model = onnx_model(nodes, inits, 4, 3)
    net = load_onnx(model)
    x = rng.uniform(-1e5, 1e5, (4096, 4))
    got = run_onnx(model, x).astype(np.float64)
    exact = net.evaluate(x.astype(np.float32).astype(np.float64))
    x32 = x.astype(np.float32).astype(np.float64)
    e = eval_error(net, x32, x32)
    assert (np.abs(got - exact) <= e).all()


def test_predicate_truth_reads_one_output():
    """``m(x)[j] > t`` reads output j alone: infinities in other outputs do not make it NaN."""
    from mlskip.verifier import Predicate

    y = np.array([[1.0, np.inf, -np.inf], [-1.0, np.inf, np.nan]], dtype=np.float32)
    assert Predicate.gt(0.0, output=0).holds(y).tolist() == [True, False]
    assert Predicate.lt(0.0, output=0).holds(y).tolist() == [False, True]
    assert Predicate.gt(0.0, output=2).holds(y).tolist() == [False, True]  # NaN above all


def test_margin_campaign_slice():
    """A slice of ``mlskip selfcheck --margin``: random ONNX models against ONNX Runtime."""
    from mlskip.testing.marginfuzz import run_campaign

    result = run_campaign(16, seed=0)
    assert result.ok, "\n".join(result.violations[:5] + result.errors[:5])
    assert result.models >= 12 and result.decided > result.checks // 4


@pytest.mark.slow
def test_margin_campaign():
    from mlskip.testing.marginfuzz import run_campaign

    result = run_campaign(1_500, seed=100_000, workers=2)
    assert result.ok, "\n".join(result.violations[:5] + result.errors[:5])


def test_gemm_sums_before_alpha(tmp_path):
    """Gemm computes A B, then scales by alpha: A B may overflow although alpha A B is
    small (found by the margin campaign, seed 200164: NaN outputs after a softmax)."""
    model = onnx_model(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1, alpha=1e-3)],
        {"W": [[1.0, 1.0]], "b": [0.0]},
        2,
    )
    v = np.full(ROWS, 2e38)
    assert np.isinf(run_onnx(model, np.stack([v, v], 1))[0, 0])
    for where in ("m(a, b) < 1e36", "m(a, b) > 1e36"):
        on, off, _ = counts(tmp_path, model, {"a": v, "b": v}, where)
        assert on == off, where


def test_margin_trial_101008_with_milp():
    """Found by the slow margin campaign (session 11): a linear model with weights near
    1e-8 on inputs near 1e6. HiGHS accepted any vertex as optimal (reduced costs below its
    1e-7 dual tolerance), and the MILP step decided ALL/NONE with ONNX Runtime's outputs
    up to 0.08 past the threshold."""
    from mlskip.testing.marginfuzz import run_trial

    result = run_trial(101008)
    assert result.decided > 0 and not result.violations, result.violations[:3]


@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e4])
def test_milp_objective_of_any_scale(scale):
    """The MILP's bounds hold whatever the size of the objective's coefficients against
    the inputs' ranges: a linear model's exact range is its vertices' values."""
    from mlskip.verifier import RegionBatch
    from mlskip.verifier.crown import crown_layers
    from mlskip.verifier.milp import build_model, solve

    net = Network.mlp([(np.array([[-1.17802204, -4.90220806]]) * scale, np.array([-0.0443]))])
    regions = RegionBatch.boxes(
        np.array([[528773.5, -352295.9]]), np.array([[1173241.6, 1324308.6]])
    )
    bounds, _ = crown_layers(net, regions)
    model = build_model(net, regions, 0, bounds)
    corners = np.array([[x, y] for x in (528773.5, 1173241.6) for y in (-352295.9, 1324308.6)])
    values = net.evaluate(corners)[:, 0]
    low = solve(model, model.out_expr[0], model.out_const[0], False, 5.0)
    high = solve(model, model.out_expr[0], model.out_const[0], True, 5.0)
    assert low.bound - low.tolerance <= values.min() and high.bound + high.tolerance >= values.max()
    assert np.isclose(low.value, values.min(), rtol=1e-12)
    assert np.isclose(high.value, values.max(), rtol=1e-12)
    width = values.max() - values.min()
    assert low.tolerance < 1e-6 * width and high.tolerance < 1e-6 * width  # not vacuous
    assert np.allclose(net.evaluate(low.x[None])[0, 0], values.min(), rtol=1e-9)

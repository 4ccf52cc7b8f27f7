"""ONNX / torch loaders of mlskip.verifier: every supported op, agreement with
onnxruntime and torch, and a clear error for everything unsupported."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlskip.errors import MlskipError, ModelInputError, UnsupportedModelError
from mlskip.verifier import Network, load_model
from mlskip.verifier.onnx_loader import to_onnx

RNG = np.random.default_rng(7)


def _f32(a):
    return np.asarray(a, dtype=np.float32)


def _model(nodes, inits, d=3, k=2, inputs=None, props=None, opset=17):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d])]
    g = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])],
        [numpy_helper.from_array(_f32(v), name) for name, v in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    if props:
        helper.set_model_props(m, props)
    return m


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: _f32(x)})[0]


def _agree(model, d=3, atol=1e-5):
    net = load_model(model)
    x = RNG.normal(size=(200, d))
    ref = _ort(model, x)
    np.testing.assert_allclose(net.evaluate(x), ref, atol=atol, rtol=1e-4)
    np.testing.assert_allclose(net.evaluate(x, dtype=np.float32), ref, atol=atol, rtol=1e-4)
    return net


@pytest.mark.parametrize("transB", [0, 1])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0)])
def test_gemm_variants_agree_with_onnxruntime(transB, alpha, beta):
    W = RNG.normal(size=(4, 3)) if transB else RNG.normal(size=(3, 4))
    nodes = [
        helper.make_node(
            "Gemm", ["x", "W", "b"], ["h"], name="g0", transB=transB, alpha=alpha, beta=beta
        ),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="g1"),
    ]
    net = _agree(
        _model(
            nodes,
            {"W": W, "b": RNG.normal(size=4), "W2": RNG.normal(size=(4, 2)), "b2": [0.1, -0.2]},
        )
    )
    assert net.is_piecewise_linear and net.hidden_sizes == (4,)


def test_normalisation_ops_fold_into_affine_maps():
    nodes = [
        helper.make_node("Sub", ["x", "mu"], ["a"], name="center"),
        helper.make_node("Div", ["a", "sd"], ["b_"], name="scale"),
        helper.make_node("Mul", ["k", "b_"], ["c"], name="mul_left"),
        helper.make_node("Add", ["c", "off"], ["d"], name="shift"),
        helper.make_node("MatMul", ["d", "W"], ["e"], name="mm"),
        helper.make_node("Add", ["e", "bias"], ["f"], name="bias"),
        helper.make_node(
            "BatchNormalization", ["f", "g", "be", "m", "v"], ["h"], name="bn", epsilon=1e-3
        ),
        helper.make_node("LeakyRelu", ["h"], ["i"], name="lrelu", alpha=0.1),
        helper.make_node("Flatten", ["i"], ["j"], name="flat", axis=1),
        helper.make_node("Reshape", ["j", "shape"], ["jj"], name="resh"),
        helper.make_node("Tanh", ["jj"], ["t"], name="tanh"),
        helper.make_node("Identity", ["t"], ["t2"], name="id"),
        helper.make_node("Sub", ["one", "t2"], ["t3"], name="rsub"),
        helper.make_node("Gemm", ["t3", "W2", "b2"], ["y"], name="out", transB=1),
    ]
    inits = {
        "mu": RNG.normal(size=3),
        "sd": RNG.uniform(0.5, 2, size=3),
        "k": [2.0],
        "off": RNG.normal(size=(1, 3)),
        "W": RNG.normal(size=(3, 5)),
        "bias": RNG.normal(size=5),
        "g": RNG.uniform(0.5, 1.5, 5),
        "be": RNG.normal(size=5),
        "m": RNG.normal(size=5),
        "v": RNG.uniform(0.5, 2, 5),
        "one": [1.0],
        "W2": RNG.normal(size=(2, 5)),
        "b2": RNG.normal(size=2),
    }
    m = _model(nodes, inits)
    m.graph.initializer.append(numpy_helper.from_array(np.array([-1, 5], dtype=np.int64), "shape"))
    net = _agree(m)
    # Sub/Div/Mul/Add/MatMul/Add/BN compose into one affine map; then LeakyReLU, Tanh, affine
    assert len(net.affines) == 3 and [a.name for a in net.activations] == ["leaky_relu", "tanh"]
    assert not net.is_piecewise_linear
    assert len(net.fp_steps) > len(net.affines) + len(net.activations)  # unfolded ops kept


@pytest.mark.parametrize("final", ["Sigmoid", "Softmax"])
def test_final_monotone_op_is_recorded(final):
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="g0", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="r"),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["z"], name="g1", transB=1),
        helper.make_node(final, ["z"], ["y"], name="fin"),
    ]
    m = _model(
        nodes,
        {
            "W": RNG.normal(size=(6, 3)),
            "b": RNG.normal(size=6),
            "W2": RNG.normal(size=(2, 6)),
            "b2": RNG.normal(size=2),
        },
    )
    net = _agree(m)
    assert net.final == final.lower()


def test_input_names_from_metadata_and_roundtrip_export():
    net = Network.mlp(
        [(RNG.normal(size=(4, 2)), RNG.normal(size=4)), (RNG.normal(size=(1, 4)), [0.0])],
        input_names=("a", "b"),
    )
    back = load_model(to_onnx(net))
    assert back.input_names == ("a", "b")
    x = RNG.normal(size=(50, 2))
    np.testing.assert_allclose(back.evaluate(x), net.evaluate(x), atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_sequential_agrees_with_torch_forward():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Sequential(nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Dropout(0.1)),
        nn.Linear(8, 8),
        nn.Tanh(),
        nn.Linear(8, 8),
        nn.Sigmoid(),
        nn.Identity(),
        nn.Linear(8, 3),
        nn.Softmax(dim=-1),
    )
    with torch.no_grad():
        model[2].running_mean.normal_()
        model[2].running_var.uniform_(0.5, 2)
    model.eval()
    net = load_model(model, input_names=["a", "b", "c", "d"])
    x = np.random.default_rng(1).normal(size=(100, 4))
    with torch.no_grad():
        ref = model(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(net.evaluate(x), ref, atol=1e-5)
    assert net.final == "softmax" and net.input_names == ("a", "b", "c", "d")
    # and through ONNX export: the loader of the exported file agrees too
    import io

    buf = io.BytesIO()
    torch.onnx.export(
        model,
        torch.zeros(2, 4),
        buf,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
        dynamo=False,
    )
    net2 = load_model(buf.getvalue())
    np.testing.assert_allclose(net2.evaluate(x), ref, atol=1e-5)


def test_torch_unsupported_layer_names_it():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ELU(), torch.nn.Linear(4, 1))
    # read through its ONNX export: the error names the module and the exported node of layer 1
    with pytest.raises(UnsupportedModelError, match=r"torch module Sequential.*Elu node '/1/Elu'"):
        load_model(model.eval())


UNSUPPORTED = ["Exp", "Abs", "Softplus", "Elu", "Cos"]


@pytest.mark.parametrize("op", UNSUPPORTED)
def test_unsupported_op_error_names_op_and_node(op):
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="g0", transB=1),
        helper.make_node(op, ["h"], ["r"], name="the_bad_node"),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="g1", transB=1),
    ]
    m = _model(
        nodes,
        {
            "W": RNG.normal(size=(4, 3)),
            "b": np.zeros(4),
            "W2": RNG.normal(size=(2, 4)),
            "b2": np.zeros(2),
        },
    )
    with pytest.raises(UnsupportedModelError, match=rf"{op} node 'the_bad_node'"):
        load_model(m)


def test_structural_errors_are_mlskip_errors(tmp_path):
    base = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="g0", transB=1)]
    inits = {"W": RNG.normal(size=(2, 3)), "b": np.zeros(2)}
    # two inputs
    two = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
        helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 3]),
    ]
    with pytest.raises(ModelInputError, match="exactly one input"):
        load_model(_model(base, inits, inputs=two))
    # wrong rank
    r3 = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 1])]
    with pytest.raises(ModelInputError, match=r"\[N, d\]"):
        load_model(_model(base, inits, inputs=r3))
    # NaN weights
    with pytest.raises(UnsupportedModelError, match="NaN"):
        load_model(_model(base, {"W": np.full((2, 3), np.nan), "b": np.zeros(2)}))
    # huge declared initializer (declared dims only; no data is allocated)
    m = _model(base, inits)
    big = onnx.TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[100_000, 100_000])
    m.graph.initializer.append(big)
    with pytest.raises(UnsupportedModelError, match="huge"):
        load_model(m)
    # garbage bytes, missing file, wrong column-name count, a non-model object
    with pytest.raises(UnsupportedModelError, match="not a valid ONNX"):
        load_model(b"\x00\x01garbage\xff" * 10)
    with pytest.raises(ModelInputError, match="does not exist"):
        load_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelInputError, match="input column"):
        load_model(_model(base, inits, props={"mlskip.input_columns": json.dumps(["a"])}))
    with pytest.raises(UnsupportedModelError):
        load_model(42)
    # an op on two live tensors (a residual connection) is not a chain
    res = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="g0", transB=1),
        helper.make_node("Add", ["h", "h"], ["y"], name="double"),
    ]
    with pytest.raises(MlskipError):
        load_model(_model(res, {"W": RNG.normal(size=(2, 3)), "b": np.zeros(2)}))


def test_onnx_path_input(tmp_path):
    net = Network.mlp([(RNG.normal(size=(3, 2)), np.zeros(3)), (RNG.normal(size=(1, 3)), [0.5])])
    p = tmp_path / "m.onnx"
    p.write_bytes(to_onnx(net))
    assert load_model(p).num_inputs == 2 and load_model(str(p)).num_outputs == 1

"""Models as users export them (issue 17): torch modules read through an export of what
``forward`` computes, ONNX files with external ``.data``, and fixed batch dimensions.

Whatever the format, the SQL function must compute what the user's model computes, or
registration must fail with a clear ``MlskipError``; skipping never changes a result.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlskip
from mlskip.errors import MlskipError, ModelInputError, UnsupportedModelError
from mlskip.verifier import Network, load_model
from mlskip.verifier.onnx_loader import read_onnx_file, to_onnx

torch = pytest.importorskip("torch")
nn = torch.nn

N_ROWS = 10_000


class ConstantForward(nn.Sequential):
    """Its children compute the identity; its own forward returns 3 for every row."""

    def forward(self, x):
        return super().forward(x) * 0.0 + 3.0


class Residual(nn.Sequential):
    """forward(x) = x + children(x): a graph the verifier cannot read (two live operands)."""

    def forward(self, x):
        return x + super().forward(x)


class Branching(nn.Module):
    """A branch on the input's values: a trace keeps one side only."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.linear(x)
        return -self.linear(x)


class ExportDiffers(nn.Module):
    """Computes something else while being exported, without any tracer warning."""

    def forward(self, x):
        return x * (2.0 if torch.onnx.is_in_onnx_export() else 3.0)


class BatchStatistics(nn.Module):
    """Each row's output depends on the other rows of its batch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x):
        return self.linear(x - x.mean(dim=0, keepdim=True))


class Squeezed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


class NoOnnxOp(nn.Module):
    """Uses an op torch's ONNX exporter has no translation for."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x):
        return torch.special.erfcx(self.linear(x))


def identity_children() -> ConstantForward:
    linear = nn.Linear(1, 1)
    with torch.no_grad():
        linear.weight.fill_(1.0)
        linear.bias.zero_()
    return ConstantForward(linear).eval()


def module_output(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(x, dtype=torch.float32)).numpy()


# ----------------------------------------------------------------------------- torch


def test_sequential_subclass_runs_its_own_forward():
    module = identity_children()
    assert module_output(module, np.array([[80.0]]))[0, 0] == 3.0  # its children give 80
    con = mlskip.connect()
    model = con.register_model("m", module, inputs=["a"])
    assert con.sql("SELECT m(80.0)").fetchall() == [(3.0,)]
    # the verifier reads the same export: it bounds what forward computes
    assert model.network is not None
    np.testing.assert_allclose(model.network.evaluate(np.array([[80.0], [-5.0]])), [[3.0], [3.0]])
    np.testing.assert_allclose(load_model(module, ["a"]).evaluate(np.array([[80.0]])), [[3.0]])


def test_forward_the_verifier_cannot_read_still_runs_in_sql():
    torch.manual_seed(0)
    module = Residual(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    con = mlskip.connect()
    model = con.register_model("r", module, inputs=["a", "b"])
    assert model.network is None and model.unverifiable  # says why it is not bounded
    x = np.array([[1.5, -2.0]])
    got = con.sql("SELECT r(1.5, -2.0)").fetchall()[0][0]
    np.testing.assert_allclose(got, module_output(module, x)[0], rtol=1e-6)


@pytest.mark.parametrize(
    "module, message",
    [
        (Branching(), r"cannot be traced faithfully.*Python boolean"),
        (ExportDiffers(), r"traced export of forward\(\) gives \S+ where the module gives \S+"),
        (BatchStatistics(), r"each row on its own"),
        (Squeezed(), r"returns shape \[1\].*\[N, k\]"),
    ],
    ids=["data-dependent branch", "export differs", "batch statistics", "squeezed output"],
)
def test_forward_sql_cannot_reproduce_is_refused(module, message):
    """A model whose SQL function would differ from the module is never registered."""
    con = mlskip.connect()
    with pytest.raises(UnsupportedModelError, match=message) as caught:
        con.register_model("m", module.eval(), inputs=["a", "b"])
    assert type(module).__name__ in str(caught.value) and "\n" not in str(caught.value)
    assert "m" not in con.models
    with pytest.raises(MlskipError, match=message):
        load_model(module, ["a", "b"])


def test_export_failure_is_one_clear_line(capfd):
    with pytest.raises(
        UnsupportedModelError, match=r"NoOnnxOp.*cannot be exported.*erfcx"
    ) as caught:
        mlskip.connect().register_model("m", NoOnnxOp().eval())
    assert "\n" not in str(caught.value) and caught.value.__cause__ is None
    out, _ = capfd.readouterr()
    assert "graph" not in out  # torch's IR dump is not printed


def test_module_without_linear_needs_inputs():
    with pytest.raises(UnsupportedModelError, match=r"inputs="):
        mlskip.connect().register_model("m", nn.Sequential(nn.ReLU()).eval())
    model = mlskip.connect().register_model("m", nn.Sequential(nn.ReLU()).eval(), inputs=["a", "b"])
    assert model.num_inputs == 2


def _every_layer(fresh_batchnorm: bool) -> nn.Module:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(3, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Linear(8, 8, bias=False),
        nn.LeakyReLU(0.1),
        nn.Dropout(0.2),
        nn.Tanh(),
        nn.Identity(),
        nn.Linear(8, 8),
        nn.Sigmoid(),
        nn.Linear(8, 3),
        nn.Softmax(dim=-1),
    )
    if not fresh_batchnorm:
        with torch.no_grad():
            model[2].running_mean.normal_()
            model[2].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("fresh_batchnorm", [True, False])
def test_exported_layers_are_read_by_the_verifier(fresh_batchnorm):
    """Each layer kind torch's exporter emits (Gemm, BatchNormalization, Flatten, ...) is
    read; a fresh BatchNorm1d exports aliases of equal initializers (Identity nodes)."""
    module = _every_layer(fresh_batchnorm)
    con = mlskip.connect()
    model = con.register_model("c", module, inputs=["a", "b", "e"])
    assert model.network is not None, model.unverifiable
    assert model.network.final == "softmax" and model.num_outputs == 3
    x = np.random.default_rng(2).normal(size=(64, 3)) * 3
    np.testing.assert_allclose(model.network.evaluate(x), module_output(module, x), atol=1e-5)
    row = con.sql("SELECT c(1.0, -2.0, 0.5)").fetchall()[0][0]
    np.testing.assert_allclose(row, module_output(module, np.array([[1.0, -2.0, 0.5]]))[0], 1e-5)


def test_training_mode_warns_and_runs_in_eval_mode():
    torch.manual_seed(3)
    module = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 1))
    assert module.training
    with pytest.warns(UserWarning, match="training mode"):
        model = mlskip.connect().register_model("m", module, inputs=["a", "b"])
    assert module.training  # the user's module is left as it was
    x = np.random.default_rng(4).normal(size=(20, 2))
    np.testing.assert_allclose(
        model.network.evaluate(x), module_output(module.eval(), x), atol=1e-5
    )


# ----------------------------------------------------------------------------- external data


def _net(d: int = 2) -> Network:
    rng = np.random.default_rng(5)
    return Network.mlp(
        [(rng.normal(size=(8, d)), rng.normal(size=8)), (rng.normal(size=(1, 8)), [0.5])],
        input_names=tuple("ab"[:d]),
    )


def _save_external(net: Network, folder: Path, location: str = "w.data") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.onnx"
    model = onnx.load_model_from_string(to_onnx(net))
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
    )
    return path


def test_external_data_loads_from_beside_the_file(tmp_path):
    net = _net()
    path = _save_external(net, tmp_path / "model")
    assert (tmp_path / "model" / "w.data").stat().st_size > 0
    data = read_onnx_file(path)
    assert not any(
        t.data_location == TensorProto.EXTERNAL
        for t in onnx.load_model_from_string(data).graph.initializer
    )
    x = np.random.default_rng(6).normal(size=(30, 2))
    np.testing.assert_allclose(load_model(path).evaluate(x), net.evaluate(x), atol=1e-5)
    con = mlskip.connect()
    model = con.register_model("m", str(path))
    assert model.network is not None and model.input_names == ("a", "b")
    got = con.sql("SELECT m(0.25, -1.5)").fetchall()[0][0]
    np.testing.assert_allclose(got, net.evaluate(np.array([[0.25, -1.5]]))[0, 0], rtol=1e-5)


def test_external_data_without_its_file_is_refused(tmp_path):
    path = _save_external(_net(), tmp_path / "model")
    as_bytes = path.read_bytes()
    for src in (as_bytes, onnx.load(str(path), load_external_data=False)):
        with pytest.raises(MlskipError, match=r"external file 'w.data'.*file path"):
            mlskip.connect().register_model("m", src)
        with pytest.raises(MlskipError, match=r"external file 'w.data'"):
            load_model(src)
    data_file = tmp_path / "model" / "w.data"
    with open(data_file, "r+b") as handle:
        handle.truncate(10)
    with pytest.raises(ModelInputError, match=r"w\.data.*outside the data file"):
        mlskip.connect().register_model("m", path)
    data_file.unlink()
    with pytest.raises(ModelInputError, match=r"w\.data.* is missing"):
        load_model(path)


@pytest.mark.parametrize("location", ["../w.data", "sub/../../w.data", "/tmp/w.data"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    path = _save_external(_net(), tmp_path / "model")
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    (tmp_path / "w.data").write_bytes((tmp_path / "model" / "w.data").read_bytes())
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelInputError, match=r"in the model's folder"):
        read_onnx_file(path)
    with pytest.raises(ModelInputError, match=r"in the model's folder"):
        mlskip.connect().register_model("m", path)


# ----------------------------------------------------------------------------- fixed batch


def _fixed_batch_model(batch: int, reshape: bool = False) -> bytes:
    """m(a, b) = a + b / 1000 through a hidden ReLU layer, input [batch, 2], output [batch, 1];
    with ``reshape``, the hidden layer is reshaped to the fixed shape [batch, 2]."""
    w1 = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    w2 = np.array([[1.0, 0.001]], np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="gemm0", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
    ]
    inits = [
        numpy_helper.from_array(w1, "W1"),
        numpy_helper.from_array(np.zeros(2, np.float32), "b1"),
        numpy_helper.from_array(w2, "W2"),
        numpy_helper.from_array(np.zeros(1, np.float32), "b2"),
    ]
    last = "r"
    if reshape:
        inits.append(numpy_helper.from_array(np.array([batch, 2], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["r", "shape"], ["rs"], name="reshape"))
        last = "rs"
    nodes.append(helper.make_node("Gemm", [last, "W2", "b2"], ["y"], name="gemm1", transB=1))
    graph = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def table_path(tmp_path_factory) -> Path:
    rng = np.random.default_rng(8)
    a = rng.uniform(0, 100, N_ROWS)
    b = rng.uniform(0, 100, N_ROWS)
    path = tmp_path_factory.mktemp("formats") / "t.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlskip.write_parquet(
            pa.table({"id": np.arange(N_ROWS), "a": a, "b": b}),
            path,
            row_group_size=500,
            cluster_by=["a"],
        )
    return path


def _counts(model, sql: str) -> tuple[int, int, object]:
    on, off = mlskip.connect(), mlskip.connect(skipping=False)
    for con in (on, off):
        con.register_model("m", model, inputs=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = on.sql(sql).fetchall()[0][0], off.sql(sql).fetchall()[0][0]
        report = on.explain_skipping(sql)
    on.close()
    off.close()
    return counts[0], counts[1], report


@pytest.mark.parametrize("batch", [1, 4])
def test_fixed_batch_is_redimensioned(table_path, batch):
    data = _fixed_batch_model(batch)
    model = mlskip.connect().register_model("m", data, inputs=["a", "b"])
    dims = onnx.load_model_from_string(model.onnx_bytes).graph.input[0].type.tensor_type.shape
    assert dims.dim[0].dim_param == "N" and model.network is not None
    sql = f"SELECT count(*) FROM '{table_path}' WHERE m(a, b) > 90"
    on, off, report = _counts(data, sql)
    assert on == off and 0 < off < N_ROWS
    assert report.pruned > 0  # skipping was used, and kept the result
    # every row through the SQL function: a full scan runs batches of thousands of rows
    total = f"SELECT count(*), sum(m(a, b)) FROM '{table_path}'"
    con = mlskip.connect(skipping=False)
    con.register_model("m", data, inputs=["a", "b"])
    n, s = con.sql(total).fetchall()[0]
    assert n == N_ROWS and np.isfinite(s)


def test_torch_export_without_dynamic_axes_is_redimensioned(table_path):
    """torch.onnx.export without dynamic_axes fixes the batch to the dummy input's size."""
    torch.manual_seed(9)
    module = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 2),), buffer, dynamo=False)
    data = buffer.getvalue()
    shape = onnx.load_model_from_string(data).graph.input[0].type.tensor_type.shape
    assert shape.dim[0].dim_value == 1
    with torch.no_grad():
        y = module(torch.rand(N_ROWS, 2) * 100).numpy()
    t = float(np.quantile(y, 0.999))
    on, off, _ = _counts(data, f"SELECT count(*) FROM '{table_path}' WHERE m(a, b) > {t!r}")
    assert on == off


def test_fixed_batch_with_fixed_internal_shape_is_refused():
    with pytest.raises(
        ModelInputError,
        match=r"fixes its batch dimension to 1 and cannot be re-dimensioned .*"
        r"dynamic_axes=\{'x': \{0: 'N'\}, 'y': \{0: 'N'\}\}",
    ):
        mlskip.connect().register_model("m", _fixed_batch_model(1, reshape=True))

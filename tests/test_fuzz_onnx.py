"""Fuzzing the ONNX loader (``mlskip.verifier.load_model``) and ``con.register_model``.

A model mlskip cannot use must give a clear error (an ``MlskipError``: the
verifier's ``UnsupportedModelError``, ``ModelInputError``, ...), or be
registered as unverifiable (never used for skipping, results still correct).
Never another exception, a hang or a large allocation: each case runs under a
time limit and the peak RSS (``resource.getrusage``) may not grow by more than
``RSS_LIMIT_MB`` over a whole loop. Cases: hand-built models (unsupported ops,
wrong input counts, NaN/inf weights, dynamic shapes, initializers declaring
1 GB or 2^62 elements in a tiny file, external data pointing nowhere, a
declared output shape that lies), protobuf truncated at every length, random
bytes, and random byte overwrites of a real exported model.
"""

from __future__ import annotations

import contextlib
import resource
import time
import traceback
import warnings

import numpy as np
import onnx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import mlskip
from mlskip.errors import MlskipError, ModelInputError
from mlskip.verifier import Network, load_model
from mlskip.verifier.onnx_loader import to_onnx
from tests.limits import CaseTimeout, time_limit

CASE_SECONDS = 10.0
RSS_LIMIT_MB = 256

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def bounded_rss(limit_mb: float = RSS_LIMIT_MB):
    before = peak_rss_mb()
    yield
    grown = peak_rss_mb() - before
    if grown >= limit_mb:  # not an AssertionError: xfail(raises=AssertionError) must not hide it
        pytest.fail(f"peak RSS grew by {grown:.0f} MB")


# ----------------------------------------------------------------------------- outcomes


def load_outcome(data) -> tuple[str, str]:
    """("ok", "") / ("clear", message) / ("leak", exception) for ``load_model``."""
    try:
        with time_limit(CASE_SECONDS):
            load_model(data)
    except CaseTimeout:
        pytest.fail("load_model hung")
    except MlskipError as error:
        return "clear", str(error)
    except Exception as error:  # anything else is a bug
        where = "verifier/onnx_loader.py: " if _from_loader(error) else ""
        return "leak", f"{where}{type(error).__module__}.{type(error).__name__}: {error}"[:300]
    return "ok", ""


def _from_onnxruntime(error: BaseException) -> bool:
    return any("onnxruntime" in f.filename for f in traceback.extract_tb(error.__traceback__))


def _from_loader(error: BaseException) -> bool:
    return any(
        f.filename.endswith("onnx_loader.py") for f in traceback.extract_tb(error.__traceback__)
    )


def register_outcome(con, data) -> tuple[str, str]:
    """("verifiable" | "unverifiable" | "clear" | "leak" | "ort-leak", detail) for
    ``con.register_model``; "ort-leak": an exception raised inside onnxruntime escaped."""
    try:
        with time_limit(CASE_SECONDS):
            model = con.register_model("m", data, replace=True)
    except CaseTimeout:
        pytest.fail("register_model hung")
    except MlskipError as error:
        return "clear", str(error)
    except Exception as error:
        kind = "ort-leak" if _from_onnxruntime(error) else "leak"
        where = "verifier/onnx_loader.py: " if _from_loader(error) else ""
        return kind, f"{where}{type(error).__module__}.{type(error).__name__}: {error}"[:300]
    if model.network is None:
        assert model.unverifiable, "a model without a network must say why"
        return "unverifiable", model.unverifiable
    return "verifiable", ""


# ----------------------------------------------------------------------------- builders


def _model(nodes, inits, in_shape=("N", 2), out_shape=("N", 1), inputs=None) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        inputs
        if inputs is not None
        else [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(out_shape))],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _gemm(out: str = "output", weight: str = "W") -> onnx.NodeProto:
    return helper.make_node("Gemm", ["input", weight, "b"], [out], name="gemm0", transB=1)


def _w(a) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(a, np.float32), "W")


def _b(n: int = 1) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(n, np.float32), "b")


def _lying_tensor(dims, raw: bytes = b"", external: str | None = None) -> onnx.TensorProto:
    t = onnx.TensorProto()
    t.name, t.data_type = "W", TensorProto.FLOAT
    t.dims.extend(dims)
    if raw:
        t.raw_data = raw
    if external is not None:
        t.data_location = TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", external
    return t


def _retyped(t: onnx.TensorProto, data_type: int) -> onnx.TensorProto:
    t.data_type = data_type
    return t


def _untyped_attribute(node: onnx.NodeProto) -> onnx.NodeProto:
    node.attribute[0].type = onnx.AttributeProto.UNDEFINED  # transB=1 of undefined type
    return node


def _unary(op: str, **attrs) -> bytes:
    node = helper.make_node(op, ["z"], ["output"], name=f"{op.lower()}_node", **attrs)
    return _model([_gemm("z"), node], [_w([[1.0, 2.0]]), _b()])


HUGE = {  # an initializer declaring far more than the file holds
    "external data pointing nowhere (1 GB)": lambda: _model(
        [_gemm()], [_lying_tensor([1, 2**28], external="nowhere.bin"), _b()]
    ),
    "raw_data shorter than 1 GB dims": lambda: _model(
        [_gemm()], [_lying_tensor([16384, 16384], raw=b"\0" * 16), _b()]
    ),
    "dims product 2^62": lambda: _model(
        [_gemm()], [_lying_tensor([2**31, 2**31], raw=b"\0" * 8), _b()]
    ),
}

CASES = {
    # name: (builder, allowed register outcomes)
    "valid 2-layer ReLU": (
        lambda: to_onnx(Network.mlp([(np.ones((4, 2)), np.zeros(4)), (np.ones((1, 4)), [0.0])])),
        {"verifiable"},
    ),
    "unsupported op Abs": (lambda: _unary("Abs"), {"unverifiable"}),
    "unsupported op Exp": (lambda: _unary("Exp"), {"unverifiable"}),
    "unsupported op Softplus": (lambda: _unary("Softplus"), {"unverifiable"}),
    "op unknown to ONNX": (lambda: _unary("FooBar"), {"clear", "unverifiable"}),
    "NaN weight": (lambda: _model([_gemm()], [_w([[np.nan, 1.0]]), _b()]), {"unverifiable"}),
    "inf weight": (lambda: _model([_gemm()], [_w([[np.inf, 1.0]]), _b()]), {"unverifiable"}),
    "dynamic feature dim": (
        lambda: _model([_gemm()], [_w([[1.0, 2.0]]), _b()], in_shape=("N", "d")),
        {"clear"},
    ),
    "1-D input": (lambda: _model([_gemm()], [_w([[1.0, 2.0]]), _b()], in_shape=(2,)), {"clear"}),
    "two inputs": (
        lambda: _model(
            [_gemm()],
            [_w([[1.0, 2.0]]), _b()],
            inputs=[
                helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2]),
                helper.make_tensor_value_info("other", TensorProto.FLOAT, ["N", 2]),
            ],
        ),
        {"clear"},
    ),
    "no input": (
        lambda: _model(
            [
                helper.make_node(
                    "Constant",
                    [],
                    ["output"],
                    value=numpy_helper.from_array(np.zeros((1, 1), np.float32)),
                )
            ],
            [],
            inputs=[],
        ),
        {"clear"},
    ),  # fmt: skip
    "weight width lies": (lambda: _model([_gemm()], [_w([[1.0, 2.0, 3.0]]), _b()]), {"clear"}),
    "weight name missing": (lambda: _model([_gemm(weight="nope")], [_b()]), {"clear"}),
    "raw_data too short": (
        lambda: _model([_gemm()], [_lying_tensor([1, 2], raw=b"\0" * 4), _b()]),
        {"clear"},
    ),
    "unknown tensor data type": (
        lambda: _model([_gemm()], [_retyped(_w([[1.0, 2.0]]), 91), _b()]),
        {"clear"},
    ),
    "node without output": (
        lambda: _model(
            [_gemm("z"), helper.make_node("Identity", ["z"], [], name="out")],
            [_w([[1.0, 2.0]]), _b()],
        ),
        {"clear"},
    ),
    "attribute of undefined type": (
        lambda: _model([_untyped_attribute(_gemm())], [_w([[1.0, 2.0]]), _b()]),
        {"clear"},
    ),
    "negative dims": (
        lambda: _model([_gemm()], [_lying_tensor([-1, 2], raw=b"\0" * 8), _b()]),
        {"clear"},
    ),
    **{name: (build, {"clear"}) for name, build in HUGE.items()},
}


def _params():
    for name in CASES:
        yield pytest.param(name, id=name)


@pytest.fixture(scope="module")
def con():
    c = mlskip.connect()
    yield c
    c.close()


@pytest.mark.parametrize("name", list(_params()))
def test_handcrafted_models(con, name):
    build, allowed = CASES[name]
    data = build()
    with bounded_rss():
        loaded, message = load_outcome(data)
        registered, detail = register_outcome(con, data)
    assert loaded != "leak", f"load_model: {message}"
    assert registered != "leak", f"register_model: {detail}"
    assert registered in allowed, (registered, detail)
    if name.startswith("unsupported op"):
        op = name.split()[-1]
        for text in (message, detail):  # the error names the op and the node
            assert op in text and f"{op.lower()}_node" in text, text
    if registered == "verifiable":
        assert loaded == "ok"


def test_onnxruntime_errors_are_wrapped(con):
    """Whatever onnxruntime raises while loading a model reaches the user as an MlskipError."""
    data = _base_model()
    blobs = [(name, build()) for name, (build, _) in CASES.items()]
    blobs += [(f"cut at {n}", data[:n]) for n in range(0, len(data), 3)]
    escaped = [
        f"{label}: {detail}"
        for label, blob in blobs
        for registered, detail in [register_outcome(con, blob)]
        if registered == "ort-leak"
    ]
    assert not escaped, f"{len(escaped)} of {len(blobs)} escape: {escaped[:3]}"


@pytest.mark.parametrize("name", list(HUGE))
def test_huge_initializers_allocate_nothing(con, name):
    """The 1 GB / 2^62-element declarations are refused quickly and without allocating."""
    data = HUGE[name]()
    assert len(data) < 1000
    start = time.perf_counter()
    with bounded_rss(64):
        assert load_outcome(data)[0] == "clear"
        register_outcome(con, data)
    assert time.perf_counter() - start < CASE_SECONDS


# ----------------------------------------------------------------------------- fuzz loops


def _base_model(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return to_onnx(
        Network.mlp(
            [(rng.normal(size=(8, 3)), rng.normal(size=8)), (rng.normal(size=(1, 8)), [0.5])]
        )
    )


def run_fuzz(con, blobs) -> dict[str, list]:
    found: dict[str, list] = {"leak": [], "ort-leak": [], "verifiable": [], "other": []}
    with bounded_rss():
        for label, data in blobs:
            loaded, message = load_outcome(data)
            registered, detail = register_outcome(con, data)
            if loaded == "leak":
                found["leak"].append(f"{label}: load_model: {message}")
            if registered in ("leak", "ort-leak"):
                found[registered].append(f"{label}: register_model: {detail}")
            elif registered == "verifiable":
                found["verifiable"].append((label, data))
            else:
                found["other"].append(label)
    return found


def test_truncated_protobuf_every_length(con):
    data = _base_model()
    found = run_fuzz(con, ((f"cut at {n}", data[:n]) for n in range(len(data))))
    assert not found["leak"] and not found["ort-leak"], (found["leak"] + found["ort-leak"])[:5]
    assert len(found["other"]) >= len(data) - 2  # every cut refused


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes(con, data):
    found = run_fuzz(con, [("random", data)])
    assert not found["leak"] and not found["ort-leak"] and not found["verifiable"], found


def _mutations(rng: np.random.Generator, n: int):
    base = _base_model()
    for i in range(n):
        d = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            d[int(rng.integers(0, len(d)))] = int(rng.integers(0, 256))
        yield f"mutation {i}", bytes(d)


def test_byte_mutations_give_clear_errors(con):
    found = run_fuzz(con, _mutations(np.random.default_rng(0), 150))
    escaped = found["leak"] + found["ort-leak"]
    assert not escaped, f"{len(escaped)} of 150 escape: {escaped[:4]}"


@pytest.mark.slow
def test_byte_mutations_many(con):
    """3,000 mutations: no hang, no memory growth, every failure a clear MlskipError."""
    for seed in range(1, 11):
        found = run_fuzz(con, _mutations(np.random.default_rng(seed), 300))
        escaped = found["leak"] + found["ort-leak"]
        assert not escaped, f"seed {seed}: {escaped[:3]}"


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3000, 3))
    path = tmp_path_factory.mktemp("onnx-e2e") / "t.parquet"
    table = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "rid": np.arange(3000)})
    mlskip.write_parquet(table, path, row_group_size=100, cluster_by=["a", "b"])
    return path


def _answers(data: bytes, sql: str) -> tuple[list, list, object]:
    out = []
    report = None
    for skipping in (False, True):
        con = mlskip.connect(skipping=skipping)
        con.register_model("m", data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(sorted(r[0] for r in con.sql(sql).fetchall()))
            if skipping:
                report = con.explain_skipping(sql)
        con.close()
    return out[0], out[1], report


def test_mutated_models_that_load_give_unchanged_results(table_path):
    """Mutated models that still register as verifiable: skipping never changes results."""
    found = run_fuzz(mlskip.connect(), _mutations(np.random.default_rng(3), 120))
    checked = 0
    for label, data in found["verifiable"][:12]:
        con = mlskip.connect(skipping=False)
        model = con.register_model("m", data)
        if model.num_inputs != 3 or model.num_outputs != 1:
            continue
        rows = con.sql(f"SELECT m(a, b, c) FROM '{table_path}'").fetchall()
        y = np.array([r[0] for r in rows], dtype=np.float64)
        con.close()
        y = y[np.isfinite(y)]
        if not y.size:
            continue
        t = float(np.quantile(y, 0.99))
        sql = f"SELECT rid FROM '{table_path}' WHERE m(a, b, c) > {t!r}"
        off, on, _ = _answers(data, sql)
        assert on == off, label
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name", ["unsupported op Abs", "NaN weight", "inf weight"])
def test_unverifiable_models_run_unskipped(table_path, name):
    data = CASES[name][0]()
    sql = f"SELECT rid FROM '{table_path}' WHERE m(a, b) > 0.5"
    off, on, report = _answers(data, sql)
    assert on == off
    assert report.pruned == 0 and report.all_match == 0


@pytest.mark.parametrize("declared, computed", [(3, 1), (1, 3)])
def test_declared_output_shape_that_lies(declared, computed):
    """A declared output width that differs from what the graph computes is refused at
    registration (a classifier that is not one would break ``m_class`` with skipping)."""
    w = np.arange(2.0 * computed).reshape(computed, 2)
    data = _model([_gemm()], [_w(w), _b(computed)], out_shape=("N", declared))
    with pytest.raises(ModelInputError, match="declare"):
        mlskip.connect().register_model("m", data)

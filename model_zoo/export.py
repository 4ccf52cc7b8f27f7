"""ONNX export of zoo models, per docs/CONTRACTS.md, and ONNX Runtime checks and timing.

Graphs are written by hand with ``onnx.helper`` (Gemm + Relu per layer), which
keeps them minimal and independent of torch's exporter. One input ``input``
[N, d] float32, one output ``output`` [N, k] float32, metadata_props
``mlskip.input_columns`` (JSON) and ``mlskip.task``. Models with other ops
(DOT-MoE) provide ``onnx_nodes()`` themselves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.nets import linears, predict

OPSET = 17
INPUT, OUTPUT = "input", "output"


def sequential_nodes(model: nn.Sequential, prefix: str = "", x: str = INPUT, out: str = OUTPUT):
    """Gemm/Relu nodes and initializers computing ``model`` from tensor ``x`` into ``out``."""
    nodes, inits = [], []
    ls = linears(model)
    for i, lin in enumerate(ls):
        w = numpy_helper.from_array(lin.weight.detach().numpy().astype(np.float32), f"{prefix}W{i}")
        b = numpy_helper.from_array(lin.bias.detach().numpy().astype(np.float32), f"{prefix}b{i}")
        inits += [w, b]
        y = out if i == len(ls) - 1 else f"{prefix}z{i}"
        nodes.append(
            helper.make_node("Gemm", [x, w.name, b.name], [y], transB=1, name=f"{prefix}gemm{i}")
        )
        if i < len(ls) - 1:
            x = f"{prefix}h{i}"
            nodes.append(helper.make_node("Relu", [y], [x], name=f"{prefix}relu{i}"))
    return nodes, inits


def to_onnx(
    model: nn.Module,
    input_columns: Sequence[str] | None = None,
    task: str | None = None,
    name: str = "mlskip_zoo",
    input_types: Sequence[str] | None = None,
) -> onnx.ModelProto:
    """The ONNX model of a plain MLP (or of any module with ``onnx_nodes()``);
    ``input_types`` (DOUBLE, DATE, TIMESTAMP per input) are stored for SQL registration."""
    if hasattr(model, "onnx_nodes"):
        nodes, inits = model.onnx_nodes(INPUT, OUTPUT)
        d_in, d_out = model.in_features, model.out_features
    else:
        ls = linears(model)
        nodes, inits = sequential_nodes(model)
        d_in, d_out = ls[0].in_features, ls[-1].out_features
    if input_columns is not None and len(input_columns) != d_in:
        raise ModelInputError(
            f"{name}: {len(input_columns)} input columns for a model with {d_in} inputs"
        )
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", d_in])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", d_out])],
        inits,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mlskip.model_zoo"
    )
    proto.ir_version = 8
    props = {}
    if input_columns is not None:
        props["mlskip.input_columns"] = json.dumps(list(input_columns))
    if task is not None:
        props["mlskip.task"] = task
    if input_types is not None and any(t != "DOUBLE" for t in input_types):
        props["mlskip.input_types"] = json.dumps(list(input_types))
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    return proto


def save_onnx(
    model: nn.Module, path: str | Path, input_columns=None, task=None, input_types=None
) -> int:
    """Write the ONNX file; returns its size in bytes."""
    proto = to_onnx(model, input_columns, task, name=Path(path).stem, input_types=input_types)
    data = proto.SerializeToString()
    Path(path).write_bytes(data)
    return len(data)


def session(proto_or_path, threads: int = 1):
    """An ONNX Runtime CPU session (single-threaded by default, for stable timings)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    src = (
        proto_or_path.SerializeToString()
        if isinstance(proto_or_path, onnx.ModelProto)
        else str(proto_or_path)
    )
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_onnx(proto_or_path, x: np.ndarray) -> np.ndarray:
    """Evaluate an exported model on ``x`` [N, d]."""
    return session(proto_or_path).run(None, {INPUT: np.asarray(x, dtype=np.float32)})[0]


def max_rel_diff(model: nn.Module, proto: onnx.ModelProto, x: np.ndarray) -> float:
    """max |onnx - torch| / max(1, max |torch|): the export check (should be <= 1e-5).

    Relative to the output's scale over ``x``: raw-unit outputs reach 1e5 and
    both runtimes round in float32 with different summation orders.
    """
    ref = predict(model, x)
    got = run_onnx(proto, x)
    return float(np.max(np.abs(got - ref)) / max(1.0, float(np.max(np.abs(ref)))))


def rows_per_second(
    proto_or_path, d_in: int, batch: int = 2048, seconds: float = 0.3, seed: int = 0
) -> float:
    """ONNX Runtime throughput at a fixed batch size (best of 5 timed rounds, 1 thread)."""
    sess = session(proto_or_path)
    double = sess.get_inputs()[0].type == "tensor(double)"  # trees that compare doubles
    x = (
        np.random.default_rng(seed)
        .normal(size=(batch, d_in))
        .astype(np.float64 if double else np.float32)
    )
    feed = {INPUT: x}
    sess.run(None, feed)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds / 5:
        sess.run(None, feed)
        n += 1
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            sess.run(None, feed)
        best = max(best, n * batch / (time.perf_counter() - t))
    return best


def metadata_props(proto: onnx.ModelProto) -> dict[str, str]:
    """The model's metadata_props as a dict (for tests and the report)."""
    return {p.key: p.value for p in proto.metadata_props}

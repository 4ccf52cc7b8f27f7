"""Read an ONNX model into a ``Network``.

Accepted: one input [N, d], one output [N, k], a chain of Gemm / MatMul /
Add / Sub / Mul / Div by constants, BatchNormalization, Relu, LeakyRelu,
Sigmoid, Tanh, Identity, Flatten / Reshape of row vectors, Dropout
(inference), and a final Softmax or Sigmoid. Anything else raises
``UnsupportedModelError`` naming the op type and node, so callers can treat
the model as unverifiable (no skipping, still correct). This module reads files
(external data, size limits) and the graph's input and output; ``onnx_ops`` holds
the rule of each operator.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from mlskip.errors import MlskipError, ModelInputError, UnsupportedModelError

from .layers import Affine, Sigmoid
from .network import Network, Step
from .onnx_ops import chain
from .tree_onnx import from_onnx as tree_from_onnx
from .tree_onnx import has_tree_ops
from .trees import TreeEnsemble

MAX_INITIALIZER_ELEMENTS = 50_000_000  # ~200 MB of float32: far beyond any filter model


def _check_initializers(graph: Any, where: str) -> None:
    for init in graph.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        if n > MAX_INITIALIZER_ELEMENTS:
            raise UnsupportedModelError(
                f"{where}: initializer {init.name!r} declares {n:,} elements "
                f"(limit {MAX_INITIALIZER_ELEMENTS:,}); not a filter-sized model"
            )
    external = external_tensors(graph)
    if external:
        raise UnsupportedModelError(f"{where}: {external_data_message(external[0])}")


def _as_model(src: Any) -> tuple[Any, str]:
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(src, onnx.ModelProto):
        return _fold_constant_identities(src), "ONNX model"
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, where = bytes(src), "ONNX bytes"
    else:
        where = f"ONNX file {os.fspath(src)!r}"
        data = read_onnx_file(src)  # with its external data, read from beside the file
    try:
        return _fold_constant_identities(onnx.load_model_from_string(data)), where
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise UnsupportedModelError(f"{where}: not a valid ONNX model ({exc})") from None


def _fold_constant_identities(model: Any) -> Any:
    """``model`` with each Identity of an initializer replaced by a copy of that initializer.

    torch's exporter stores equal parameters once and aliases the others with
    such nodes (a fresh BatchNorm1d's weight and running variance are both
    ones); they compute nothing from the input. A ModelProto passed in is
    copied, never changed.
    """
    from onnx import ModelProto

    def alias_of(node: Any, inits: dict[str, Any]) -> Any:
        if node.op_type == "Identity" and len(node.input) == 1 and len(node.output) == 1:
            return inits.get(node.input[0])
        return None

    names = {i.name: i for i in model.graph.initializer}
    if all(alias_of(n, names) is None for n in model.graph.node):
        return model
    copy = ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    inits = {i.name: i for i in graph.initializer}
    keep = []
    for node in graph.node:
        source = alias_of(node, inits)
        if source is None:
            keep.append(node)
            continue
        alias = graph.initializer.add()
        alias.CopyFrom(source)
        alias.name = node.output[0]
        inits[alias.name] = alias
    del graph.node[:]
    graph.node.extend(keep)
    return copy


def external_tensors(graph: Any) -> list[Any]:
    """Every tensor of ``graph`` (initializers, tensor attributes, subgraphs) whose
    data lives in an external file."""
    from onnx import AttributeProto, TensorProto

    found: list[Any] = []
    pending = [graph]
    while pending:
        g = pending.pop()
        tensors = list(g.initializer)
        for node in g.node:
            for a in node.attribute:
                if a.type == AttributeProto.TENSOR:
                    tensors.append(a.t)
                elif a.type == AttributeProto.TENSORS:
                    tensors += list(a.tensors)
                elif a.type == AttributeProto.GRAPH:
                    pending.append(a.g)
                elif a.type == AttributeProto.GRAPHS:
                    pending += list(a.graphs)
        found += [t for t in tensors if t.data_location == TensorProto.EXTERNAL]
    return found


def external_data_message(tensor: Any) -> str:
    """Why a model held as bytes or a ModelProto cannot use ``tensor``'s external data."""
    location = {e.key: e.value for e in tensor.external_data}.get("location", "?")
    return (
        f"tensor {tensor.name!r} keeps its data in the external file {location!r}, which "
        "ONNX bytes and ModelProtos do not carry; pass the model's file path (its data is "
        "read from beside it) or save the model as one file"
    )


# bytes per element of the tensor types whose external data is read (onnx.TensorProto codes)
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}
MAX_MODEL_BYTES = 2**31 - 2**20  # protobuf's 2 GB limit on one serialized model


def read_onnx_file(path: str | os.PathLike[str]) -> bytes:
    """One self-contained serialized ONNX model read from ``path``.

    Tensors kept in external files (``onnx.save(..., save_as_external_data=True)``,
    large torch exports) are read from beside the model and stored inline, so
    the SQL function and the verifier see the same complete bytes. Every
    external reference is checked before anything is read: its file must lie in
    the model's folder (no absolute path, no ``..``) and hold all the bytes its
    tensor needs. A model without external data is returned byte for byte.
    """
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import TensorProto

    path = os.fspath(path)
    where = f"ONNX file {path!r}"
    if not os.path.exists(path):
        raise ModelInputError(f"{where} does not exist")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ModelInputError(f"cannot read {where}: {error.strerror or error}") from None
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise UnsupportedModelError(f"{where}: not a valid ONNX model ({exc})") from None
    external = external_tensors(model.graph)
    if not external:
        return data
    folder = os.path.dirname(os.path.abspath(path))
    sizes: dict[str, int] = {}
    total = len(data)
    reads = []
    for tensor in external:
        tensor_file, offset, need = _external_read(tensor, folder, where, sizes)
        total += need
        if total > MAX_MODEL_BYTES:
            raise UnsupportedModelError(f"{where}: with its external data it exceeds 2 GB")
        reads.append((tensor, tensor_file, offset, need))
    for tensor, file, offset, need in reads:
        try:
            with open(file, "rb") as handle:
                handle.seek(offset)
                raw = handle.read(need)
        except OSError as error:
            raise ModelInputError(
                f"{where}: cannot read the data file {file!r}: {error.strerror or error}"
            ) from None
        if len(raw) != need:
            raise ModelInputError(f"{where}: the data file {file!r} changed while it was read")
        tensor.raw_data = raw
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT
    return model.SerializeToString()


def _external_read(
    tensor: Any, folder: str, where: str, sizes: dict[str, int]
) -> tuple[str, int, int]:
    """Where an external tensor's bytes lie (file, offset, byte count), checked before any
    read: a file in the model's folder, a supported type, and a range inside the file.
    ``sizes`` caches file sizes across tensors."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    label = f"{where}: tensor {tensor.name!r} (external data {location!r})"
    if (
        not location
        or os.path.isabs(location)
        or location[0] in "/\\"
        or ".." in location.replace("\\", "/").split("/")
    ):
        raise ModelInputError(
            f"{label}: the data must be a file in the model's folder (no absolute path, no '..')"
        )
    if tensor.data_type not in _ITEMSIZE:
        raise UnsupportedModelError(
            f"{label}: external data of tensor type {tensor.data_type} is not supported"
        )
    if any(d < 0 for d in tensor.dims):
        raise UnsupportedModelError(f"{label}: negative dimension in {list(tensor.dims)}")
    n = 1
    for d in tensor.dims:
        n *= int(d)
    if n > MAX_INITIALIZER_ELEMENTS:
        raise UnsupportedModelError(
            f"{label}: declares {n:,} elements (limit {MAX_INITIALIZER_ELEMENTS:,}); "
            "not a filter-sized model"
        )
    need = n * _ITEMSIZE[tensor.data_type]
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise ModelInputError(f"{label}: its offset or length is not an integer") from None
    if length is not None and length != need:
        raise ModelInputError(
            f"{label}: declares {length} bytes where its shape {list(tensor.dims)} needs {need}"
        )
    file = os.path.join(folder, location)
    if file not in sizes:
        sizes[file] = os.path.getsize(file) if os.path.isfile(file) else -1
    if sizes[file] < 0:
        raise ModelInputError(f"{label}: the data file {file!r} is missing")
    if offset < 0 or offset + need > sizes[file]:
        raise ModelInputError(
            f"{label}: bytes {offset} to {offset + need} lie outside the data file "
            f"{file!r} ({sizes[file]} bytes): it is truncated or belongs to another model"
        )
    return file, offset, need


def _dims(value_info: Any) -> list[int | None]:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def load_onnx(
    src: Any, input_names: list[str] | tuple[str, ...] | None = None
) -> Network | TreeEnsemble:
    """Load an ONNX path, bytes or ``ModelProto`` into a ``Network``, or a
    ``TreeEnsemble`` for mlskip's canonical tree graph (tree_onnx.py)."""
    model, where = _as_model(src)
    try:
        if has_tree_ops(model.graph):
            return _trees(model, where, input_names)
        return _network(model, where, input_names)
    except MlskipError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        # a malformed proto (tensor data that does not match its dims, unknown data
        # types, nodes without outputs, attributes of undefined type) is not a crash
        raise UnsupportedModelError(
            f"{where}: malformed ONNX model ({type(error).__name__}: {error})"
        ) from None


def _graph_input(graph: Any, where: str, consts: dict[str, np.ndarray]) -> tuple[str, int]:
    """The one input tensor (name, features) of a one-input, one-output graph."""
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise ModelInputError(f"{where}: expected exactly one input tensor, found {len(inputs)}")
    if len(graph.output) != 1:
        raise UnsupportedModelError(
            f"{where}: expected exactly one output tensor, found {len(graph.output)}"
        )
    dims = _dims(inputs[0])
    if len(dims) != 2 or dims[1] is None or dims[1] <= 0:
        raise ModelInputError(
            f"{where}: input {inputs[0].name!r} must have shape [N, d] with a fixed d, got {dims}"
        )
    return inputs[0].name, int(dims[1])


def _network(model: Any, where: str, input_names: Any) -> Network:
    from onnx import numpy_helper

    graph = model.graph
    _check_initializers(graph, where)
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    current, width = _graph_input(graph, where, consts)
    steps, final, current = chain(graph, where, consts, current, width)
    if current != graph.output[0].name:
        raise UnsupportedModelError(
            f"{where}: the output {graph.output[0].name!r} is not the end of the op chain"
        )
    if final is None and steps and isinstance(steps[-1], Sigmoid):
        steps.pop()
        final = "sigmoid"  # a trailing sigmoid is handled through its monotonicity
    names = _input_names(model, where, width_in=_first_width(steps), given=input_names)
    try:
        return Network.from_steps(steps, final, names)
    except (ValueError, FloatingPointError) as exc:
        raise UnsupportedModelError(f"{where}: {exc}") from None


def _trees(model: Any, where: str, input_names: Any) -> TreeEnsemble:
    graph = model.graph
    _check_initializers(graph, where)
    from onnx import numpy_helper

    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    _, width = _graph_input(graph, where, consts)
    names = _input_names(model, where, width_in=width, given=input_names)
    return tree_from_onnx(model, names, where)


def _first_width(steps: list[Step]) -> int:
    for st in steps:
        if isinstance(st, Affine):
            return st.in_features
    raise UnsupportedModelError("the model has no Gemm/MatMul layer")


def _input_names(model: Any, where: str, width_in: int, given: Any) -> tuple[str, ...]:
    if given is not None:
        names = tuple(given)
    else:
        props = {p.key: p.value for p in model.metadata_props}
        raw = props.get("mlskip.input_columns")
        if raw is None:
            return ()
        try:
            names = tuple(json.loads(raw))
        except (ValueError, TypeError):
            raise ModelInputError(
                f"{where}: metadata mlskip.input_columns is not a JSON list: {raw!r}"
            ) from None
    if len(names) != width_in or not all(isinstance(n, str) for n in names):
        raise ModelInputError(
            f"{where}: {len(names)} input column names given for a model with {width_in} inputs"
        )
    return names


def to_onnx(net: Network, opset: int = 17) -> bytes:
    """Export a ``Network`` as float32 ONNX (Gemm + activations); used by tests and adapters."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    cur = "input"
    for i, (a, s) in enumerate(zip(net.affines, (*net.activations, None), strict=True)):
        inits += [
            numpy_helper.from_array(a.W.astype(np.float32), f"W{i}"),
            numpy_helper.from_array(a.b.astype(np.float32), f"b{i}"),
        ]
        nodes.append(
            helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [f"z{i}"], name=f"gemm{i}", transB=1)
        )
        cur = f"z{i}"
        if s is not None:
            op = {"relu": "Relu", "leaky_relu": "LeakyRelu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[
                s.name
            ]
            kw = {"alpha": float(s.alpha)} if op == "LeakyRelu" else {}
            nodes.append(helper.make_node(op, [cur], [f"a{i}"], name=f"act{i}", **kw))
            cur = f"a{i}"
    if net.final:
        op = "Softmax" if net.final == "softmax" else "Sigmoid"
        kw = {"axis": -1} if op == "Softmax" else {}
        nodes.append(helper.make_node(op, [cur], ["final"], name="final", **kw))
        cur = "final"
    nodes.append(helper.make_node("Identity", [cur], ["output"], name="out"))
    graph = helper.make_graph(
        nodes,
        "mlskip_net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", net.num_inputs])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", net.num_outputs])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    helper.set_model_props(model, {"mlskip.input_columns": json.dumps(list(net.input_names))})
    onnx.checker.check_model(model)
    return model.SerializeToString()

"""A model ready for SQL: what the UDF runs (ONNX bytes) and what the verifier bounds.

Every model (ONNX file or bytes, torch module, verifier ``Network``) becomes
ONNX bytes, because that is what the SQL function evaluates. The verifier's
``Network`` is then read back from those same bytes, so its float32 error
analysis follows exactly the operations the UDF performs. A model the
verifier cannot read still works in SQL; it is just never used for skipping.
A torch module becomes the export of what its ``forward`` computes, checked
against the module; a fixed batch dimension is made symbolic (or refused).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

from mlskip.errors import MlskipError, ModelInputError, UnsupportedModelError
from mlskip.skipper.models import SqlModel
from mlskip.verifier import Network


def _given_as_onnx(src: Any) -> bool:
    """Whether ``src`` is an ONNX graph from elsewhere (path, bytes or ModelProto)."""
    import onnx

    return isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview, onnx.ModelProto))


def _onnx_bytes(src: Any, inputs: Sequence[str] | None = None) -> bytes:
    """Self-contained ONNX bytes for a path, bytes, ModelProto, torch module or Network.

    A path is read with its external data (``read_onnx_file``); a torch module
    becomes the checked export of its ``forward`` (``torch_to_onnx``), so SQL
    runs exactly that graph. Bytes or a ModelProto whose tensors live in
    external files are refused: their data cannot be found.
    """
    import onnx
    from google.protobuf.message import DecodeError

    from mlskip.verifier.onnx_loader import (
        external_data_message,
        external_tensors,
        read_onnx_file,
        to_onnx,
    )
    from mlskip.verifier.torch_loader import is_torch_module, torch_to_onnx

    if isinstance(src, (str, os.PathLike)):
        return read_onnx_file(src)
    if isinstance(src, Network):
        return to_onnx(src)
    from mlskip.verifier.estimators import is_estimator
    from mlskip.verifier.trees import TreeEnsemble

    if isinstance(src, TreeEnsemble) or is_estimator(src):
        from mlskip.udf.estimator_onnx import estimator_onnx, model_onnx

        return model_onnx(src) if isinstance(src, TreeEnsemble) else estimator_onnx(src, inputs)
    if is_torch_module(src):
        return torch_to_onnx(src, inputs)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        try:
            model = onnx.load_model_from_string(data)
        except (DecodeError, ValueError, RuntimeError):
            return data  # _onnx_signature says why it is not a model
    elif isinstance(src, onnx.ModelProto):
        model, data = src, b""
    else:
        raise ModelInputError(
            f"cannot use a {type(src).__name__} as a model; pass an ONNX path, ONNX bytes, "
            "an onnx.ModelProto, a torch nn.Module, a fitted scikit-learn, XGBoost or "
            "LightGBM model, or an mlskip Network"
        )
    external = external_tensors(model.graph)
    if external:
        raise ModelInputError(external_data_message(external[0]))
    return data or model.SerializeToString()


def _onnx_signature(
    data: bytes, where: str
) -> tuple[int, int, tuple[str, ...] | None, tuple[str, ...] | None]:
    """(inputs d, outputs k, column names and input types from metadata) of a one-input
    ONNX model. Without stored column names, a one-column input is bound by its tensor's
    name (``torch.onnx.export(..., input_names=["price"])``)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ModelInputError(f"{where}: not a valid ONNX model ({error})") from None
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelInputError(
            f"{where}: a SQL model needs one input tensor [N, d] and one output [N, k]; "
            f"this one has {len(inputs)} inputs and {len(graph.output)} outputs"
        )

    def last_dim(value_info) -> int:
        dims = value_info.type.tensor_type.shape.dim
        if len(dims) != 2 or not dims[1].dim_value:
            raise ModelInputError(
                f"{where}: tensor {value_info.name!r} must have shape [N, fixed width]"
            )
        return int(dims[1].dim_value)

    props = {p.key: p.value for p in model.metadata_props}

    def listed(key: str) -> tuple[str, ...] | None:
        try:
            return tuple(str(n) for n in json.loads(props[key])) if key in props else None
        except (ValueError, TypeError):
            return None

    names, types = listed("mlskip.input_columns"), listed("mlskip.input_types")
    d = last_dim(inputs[0])
    if names is None and d == 1:  # a one-column model (plain torch.onnx.export): its name
        names = (inputs[0].name,)
    return d, last_dim(graph.output[0]), names, types


BATCH_CHECK_ROWS = 7  # rows a re-dimensioned model is checked on, also one at a time


def _batch_dim(value_info: Any) -> int | None:
    """The fixed first dimension of a tensor, or None when it is symbolic or absent."""
    dims = value_info.type.tensor_type.shape.dim
    if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        return int(dims[0].dim_value)
    return None


def _session(data: bytes) -> Any:
    """A one-thread ONNX Runtime session that logs nothing (its errors are raised)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _dynamic_batch(data: bytes, where: str) -> bytes:
    """``data`` with a batch dimension SQL can use: any number of rows per call.

    Exporters may fix the first dimension of the input or output to 1 (or B);
    ONNX Runtime would then refuse every batch of another size, so every query
    would fail. The first dimension of input and output is made symbolic
    ("N") and the result is kept only if, on sample rows, it gives per row
    what the original gives in batches of its fixed size (and each row alone
    gives the same). Otherwise the model is refused with the fix.
    """
    import numpy as np
    import onnx

    model = onnx.load_model_from_string(data)
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    x_info = next(i for i in graph.input if i.name not in initializers)
    y_info = graph.output[0]
    fixed = _batch_dim(x_info) or _batch_dim(y_info)
    if fixed is None:
        return data
    for info in (x_info, y_info):
        info.type.tensor_type.shape.dim[0].Clear()
        info.type.tensor_type.shape.dim[0].dim_param = "N"
    del graph.value_info[:]  # inferred shapes of the fixed batch; ONNX Runtime infers them again
    redimensioned = model.SerializeToString()
    d = x_info.type.tensor_type.shape.dim[1].dim_value
    n = BATCH_CHECK_ROWS if fixed != BATCH_CHECK_ROWS else BATCH_CHECK_ROWS + 1
    rng = np.random.default_rng(17)
    x = (rng.standard_normal((n, d)) * np.array([1.0, 10.0, 100.0] * n)[:n, None]).astype(
        np.float32
    )
    padded = np.zeros((-(-n // fixed) * fixed, d), np.float32)
    padded[:n] = x
    try:
        original = _session(data)
        name = original.get_inputs()[0].name
        want = np.concatenate(
            [original.run(None, {name: padded[i : i + fixed]})[0] for i in range(0, n, fixed)]
        )[:n]
    except Exception:  # the model does not run as it is: make_runner reports why
        return data
    problem = None
    try:
        session = _session(redimensioned)
        together = session.run(None, {name: x})[0]
        alone = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(n)])
    except Exception as error:  # onnxruntime's own classes (Fail, InvalidArgument, ...)
        text = " ".join(str(error).split())  # its end says what failed
        problem = f"ONNX Runtime: {type(error).__name__}: {text if len(text) < 300 else '...' + text[-300:]}"
    else:
        tol = 1e-4 * (1 + np.abs(want) + np.abs(x).max(axis=1, keepdims=True))
        for label, y in ((f"a batch of {n} rows", together), ("each row alone", alone)):
            if y.shape != want.shape:
                problem = f"{label} gives shape {list(y.shape)}, not {list(want.shape)}"
            elif not ((np.abs(y - want) <= tol) | (y == want) | np.isnan(y) & np.isnan(want)).all():
                problem = f"{label} gives other values than batches of {fixed} rows"
            if problem:
                break
    if problem is not None:
        raise ModelInputError(
            f"{where}: fixes its batch dimension to {fixed} and cannot be re-dimensioned "
            f"({problem}); export it with dynamic_axes="
            f"{{{x_info.name!r}: {{0: 'N'}}, {y_info.name!r}: {{0: 'N'}}}}"
        )
    return redimensioned


def prepare_model(
    src: Any,
    inputs: Sequence[str] | None = None,
    name: str = "model",
    input_types: Sequence[str] | None = None,
) -> SqlModel:
    """Turn ``src`` into a ``SqlModel``; ``inputs`` names the model's inputs
    (default: the names stored in the model, else x0, x1, ...); ``input_types`` gives
    each input's DuckDB type, DOUBLE, DATE or TIMESTAMP (default: the types stored in the
    model, else DOUBLE)."""
    from mlskip.udf import model_cache
    from mlskip.udf.inputs import check_input_types
    from mlskip.udf.onnx_ml import ml_graph_onnx
    from mlskip.verifier import load_model

    raw = _raw_model_bytes(src) if model_cache.enabled() else None
    given = (
        None if inputs is None else tuple(inputs),
        None if input_types is None else tuple(str(t).upper() for t in input_types),
    )
    cache_key = model_cache.key(raw, given) if raw is not None else None
    if cache_key is not None:
        cached = model_cache.load(cache_key)
        if isinstance(cached, SqlModel):
            return cached
    where = f"model {name!r}"
    try:
        data = _onnx_bytes(src, inputs)
        if _given_as_onnx(src):  # graphs built here are canonical already
            data = ml_graph_onnx(data, inputs, "its ONNX-ML graph")
    except MlskipError as error:
        raise type(error)(f"{where}: {error}") from None
    self_contained = raw is not None and data == raw  # no weights in external files
    d, k, stored, stored_types = _onnx_signature(data, where)
    names = tuple(inputs) if inputs is not None else stored or tuple(f"x{i}" for i in range(d))
    if len(names) != d:
        raise ModelInputError(f"{where} takes {d} inputs, but {len(names)} input names were given")
    types = check_input_types(input_types if input_types is not None else stored_types, d, where)
    data = _dynamic_batch(data, where)
    network, reason = None, None
    try:
        network = load_model(data, input_names=list(names))
    except UnsupportedModelError as error:
        reason = str(error)
    except MlskipError as error:
        reason = f"the verifier cannot read it: {error}"
    if network is not None and network.num_outputs != k:
        raise ModelInputError(
            f"{where} declares an output of width {k}, but its graph computes "
            f"{network.num_outputs}: its declared output shape is wrong"
        )
    digest = hashlib.sha256(data).hexdigest()
    prepared = SqlModel(data, names, k, network, reason, digest, types, _input_dtype(data))
    if cache_key is not None and self_contained:
        model_cache.store(cache_key, prepared)
    return prepared


def _input_dtype(data: bytes) -> str:
    """The element type the graph reads its input in: ``float64`` for DOUBLE inputs
    (LightGBM-style tree ensembles, which compare doubles), else ``float32``."""
    import onnx

    model = onnx.load_model_from_string(data)
    initializers = {init.name for init in model.graph.initializer}
    x = next(i for i in model.graph.input if i.name not in initializers)
    double = x.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    return "float64" if double else "float32"


def _raw_model_bytes(src: Any) -> bytes | None:
    """The bytes an ONNX path or bytes source holds (None for other sources, or a path
    that cannot be read: preparing it reports why)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if isinstance(src, (str, os.PathLike)):
        try:
            with open(src, "rb") as handle:
                return handle.read()
        except OSError:
            return None
    return None

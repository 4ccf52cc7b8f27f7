"""A model ready for SQL: what the UDF runs (ONNX bytes) and what the verifier bounds.

Every model (ONNX file or bytes, torch module, verifier ``Network``) becomes
ONNX bytes, because that is what the SQL function evaluates. The verifier's
``Network`` is then read back from those same bytes, so its float32 error
analysis follows exactly the operations the UDF performs. A model the
verifier cannot read still works in SQL; it is just never used for skipping.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlskip.errors import MlskipError, ModelInputError, UnsupportedModelError
from mlskip.verifier import Network


@dataclass(frozen=True, eq=False)
class SqlModel:
    """A model as SQL sees it.

    ``network`` is None when the verifier cannot bound the model
    (``unverifiable`` says why); ``digest`` identifies the exact bytes run.
    """

    onnx_bytes: bytes
    input_names: tuple[str, ...]
    num_outputs: int
    network: Network | None
    unverifiable: str | None
    digest: str

    @property
    def num_inputs(self) -> int:
        return len(self.input_names)

    @property
    def is_classifier(self) -> bool:
        return self.num_outputs > 1


def _onnx_bytes(src: Any) -> bytes:
    """ONNX bytes for a path, bytes, ModelProto, torch module or Network."""
    from mlskip.verifier import load_model
    from mlskip.verifier.onnx_loader import to_onnx

    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as error:
            raise ModelInputError(f"cannot read model file {path!r}: {error.strerror}") from None
    if type(src).__name__ == "ModelProto":
        return src.SerializeToString()
    network = src if isinstance(src, Network) else load_model(src)
    return to_onnx(network)


def _onnx_signature(data: bytes, where: str) -> tuple[int, int, tuple[str, ...] | None]:
    """(inputs d, outputs k, column names from metadata) of a one-input ONNX model."""
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
    names = None
    if "mlskip.input_columns" in props:
        try:
            names = tuple(str(n) for n in json.loads(props["mlskip.input_columns"]))
        except (ValueError, TypeError):
            names = None
    return last_dim(inputs[0]), last_dim(graph.output[0]), names


def prepare_model(src: Any, inputs: Sequence[str] | None = None, name: str = "model") -> SqlModel:
    """Turn ``src`` into a ``SqlModel``; ``inputs`` names the model's inputs
    (default: the names stored in the model, else x0, x1, ...)."""
    from mlskip.verifier import load_model

    where = f"model {name!r}"
    data = _onnx_bytes(src)
    d, k, stored = _onnx_signature(data, where)
    names = tuple(inputs) if inputs is not None else stored or tuple(f"x{i}" for i in range(d))
    if len(names) != d:
        raise ModelInputError(f"{where} takes {d} inputs, but {len(names)} input names were given")
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
    return SqlModel(data, names, k, network, reason, digest)

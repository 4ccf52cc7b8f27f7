"""Backends that evaluate a model on a float32 batch [n, d] -> [n, k].

ONNX Runtime is the default; torch is an alternative (the paper's baseline).
Both run the same ONNX-derived computation in float32, the precision the
verifier's error margins are derived for.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mlskip.errors import ModelInputError
from mlskip.udf.model import SqlModel

BACKENDS = ("onnx", "torch")


class Runner(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class OnnxRunner:
    """ONNX Runtime session on the CPU; thread-safe, so DuckDB may call it from any thread."""

    def __init__(self, model: SqlModel, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            model.onnx_bytes, options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: x})[0]


class TorchRunner:
    """The model as a torch module, one forward pass per batch (the paper's UDF baseline)."""

    def __init__(self, model: SqlModel, threads: int = 1) -> None:
        import torch

        from mlskip.udf.torch_module import network_to_torch

        if model.network is None:
            raise ModelInputError(
                f"the torch backend needs a model the verifier can read ({model.unverifiable})"
            )
        self._torch = torch
        self._module = network_to_torch(model.network).eval()
        self._threads = threads

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            return self._module(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def make_runner(model: SqlModel, backend: str = "onnx", threads: int = 1) -> Runner:
    """A runner for ``model`` on ``backend`` (``onnx`` or ``torch``)."""
    if backend == "onnx":
        return OnnxRunner(model, threads)
    if backend == "torch":
        return TorchRunner(model, threads)
    raise ModelInputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")

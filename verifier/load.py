"""``load_model``: one entry point for every model source the verifier reads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mlskip.errors import UnsupportedModelError

from .network import Network
from .trees import TreeEnsemble


def load_model(src: Any, input_names: Sequence[str] | None = None) -> Network | TreeEnsemble:
    """A ``Network`` from an ONNX path / bytes / ``onnx.ModelProto``, a torch module, or a
    Network; a ``TreeEnsemble`` from a tree-ensemble graph or a TreeEnsemble.

    Raises ``UnsupportedModelError`` (op or layer named) or ``ModelInputError``.
    """
    if isinstance(src, (Network, TreeEnsemble)):
        return src
    from .torch_loader import is_torch_module

    if is_torch_module(src):
        from .torch_loader import load_torch

        return load_torch(src, input_names)
    if (
        isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview))
        or type(src).__name__ == "ModelProto"
    ):
        from .onnx_loader import load_onnx

        return load_onnx(src, input_names)
    raise UnsupportedModelError(
        f"cannot load a model from {type(src).__name__}; pass an ONNX path, ONNX bytes, "
        "an onnx.ModelProto or a torch nn.Module"
    )

"""Read a torch ``nn.Module`` (a Sequential of supported layers) into a ``Network``.

torch is imported lazily: ``import mlskip.verifier`` never loads it.
Supported: Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Identity, Flatten,
Dropout (as in inference), BatchNorm1d (running statistics, folded) and a
final Softmax / Sigmoid, nested Sequentials flattened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlskip.errors import UnsupportedModelError

from .layers import Affine, LeakyReLU, ReLU, Sigmoid, Tanh
from .network import Network, Step


def is_torch_module(obj: Any) -> bool:
    """True for torch modules, checked without importing torch."""
    return any(
        c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__
    )


def _flatten(module: Any, prefix: str) -> list[tuple[str, Any]]:
    import torch.nn as nn

    if isinstance(module, nn.Sequential):
        out: list[tuple[str, Any]] = []
        for name, child in module.named_children():
            out += _flatten(child, f"{prefix}.{name}" if prefix else name)
        return out
    return [(prefix or type(module).__name__, module)]


def _arr(t: Any) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def load_torch(module: Any, input_names: Sequence[str] | None = None) -> Network:
    """Convert a torch module into a ``Network`` (weights copied as float64)."""
    import torch.nn as nn

    steps: list[Step] = []
    final: str | None = None
    layers = _flatten(module, "")
    for idx, (path, m) in enumerate(layers):
        label = f"torch module {path!r} ({type(m).__name__})"
        if final is not None:
            raise UnsupportedModelError(f"{label}: no layer may follow the final {final}")
        if isinstance(m, nn.Linear):
            b = _arr(m.bias) if m.bias is not None else np.zeros(m.out_features)
            steps.append(Affine(_arr(m.weight), b))
        elif isinstance(m, nn.ReLU):
            steps.append(ReLU())
        elif isinstance(m, nn.LeakyReLU):
            steps.append(LeakyReLU(float(m.negative_slope)))
        elif isinstance(m, nn.Tanh):
            steps.append(Tanh())
        elif isinstance(m, nn.Sigmoid):
            if idx == len(layers) - 1:
                final = "sigmoid"
            else:
                steps.append(Sigmoid())
        elif isinstance(m, nn.Softmax):
            if m.dim not in (-1, 1, None):
                raise UnsupportedModelError(f"{label}: softmax must act on the feature dimension")
            if idx != len(layers) - 1:
                raise UnsupportedModelError(
                    f"{label}: softmax is only supported as the final layer"
                )
            final = "softmax"
        elif isinstance(m, (nn.Identity, nn.Dropout, nn.Flatten)):
            continue
        elif isinstance(m, nn.BatchNorm1d):
            if m.running_mean is None or m.running_var is None:
                raise UnsupportedModelError(
                    f"{label}: BatchNorm1d without running statistics cannot be folded"
                )
            k = 1.0 / np.sqrt(_arr(m.running_var) + float(m.eps))
            w = _arr(m.weight) if m.affine else np.ones_like(k)
            b = _arr(m.bias) if m.affine else np.zeros_like(k)
            scale = w * k
            steps.append(Affine(np.diag(scale), b - scale * _arr(m.running_mean)))
        else:
            raise UnsupportedModelError(
                f"{label}: layer type {type(m).__name__} is not supported by the verifier; "
                "use a Sequential of Linear/ReLU/LeakyReLU/Sigmoid/Tanh/BatchNorm1d layers"
            )
    try:
        return Network.from_steps(steps, final, tuple(input_names or ()))
    except ValueError as exc:
        raise UnsupportedModelError(f"torch module: {exc}") from None

"""LoRP-style depth pruning: remove the most redundant hidden layer of a deep MLP.

Redundancy is the linear CKA between a hidden layer's input and its output
representation on calibration rows. The chosen layer (Linear + ReLU) is
replaced by the least-squares affine map h_l ~ A h_{l-1} + c, folded into the
next Linear (W' = W_{l+1} A, b' = W_{l+1} c + b_{l+1}), so the model loses one
layer and stays a plain MLP. A layer that acts as the identity on its
(non-negative) inputs is removed exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.nets import (
    dense_map,
    from_weights,
    get_weights,
    hidden_activations,
    set_dense_map,
)


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear centered kernel alignment of two representations [n, p], [n, q] (1 = same up to rotation/scale)."""
    a = a.double() - a.double().mean(0)
    b = b.double() - b.double().mean(0)
    num = (b.T @ a).norm() ** 2
    den = (a.T @ a).norm() * (b.T @ b).norm()
    return float(num / den) if den > 0 else 0.0


def layer_redundancy(model: nn.Module, x_calib: np.ndarray) -> dict[int, float]:
    """CKA(h_{l-1}, h_l) for each hidden layer l >= 1 (whose input is a hidden layer)."""
    with torch.no_grad():
        hs, _ = hidden_activations(model, torch.as_tensor(x_calib, dtype=torch.float32))
    return {layer: linear_cka(hs[layer - 1], hs[layer]) for layer in range(1, len(hs))}


def remove_layer(
    model: nn.Module, layer: int, x_calib: np.ndarray, ridge: float = 1e-8
) -> nn.Sequential:
    """Drop hidden layer ``layer`` (>= 1) and fold its least-squares affine replacement forward."""
    ws = get_weights(model)
    if not 1 <= layer < len(ws) - 1:
        raise ModelInputError(f"can remove hidden layers 1..{len(ws) - 2}, not {layer}")
    with torch.no_grad():
        hs, _ = hidden_activations(model, torch.as_tensor(x_calib, dtype=torch.float32))
    src = torch.cat([hs[layer - 1].double(), torch.ones(len(x_calib), 1, dtype=torch.float64)], 1)
    dst = hs[layer].double()
    gram = src.T @ src + ridge * torch.eye(src.shape[1], dtype=torch.float64)
    coef = torch.linalg.solve(gram, src.T @ dst)  # [p+1, q]
    a, c = coef[:-1].T, coef[-1]  # h_l ~ a @ h_{l-1} + c
    wn, bn = (t.double() for t in ws[layer + 1])
    ws[layer + 1] = ((wn @ a).float(), (wn @ c + bn).float())
    del ws[layer]
    maps = dense_map(model)
    del maps[layer]
    return set_dense_map(from_weights(ws), maps)


def lorp_prune(model: nn.Module, x_calib: np.ndarray, n_remove: int = 1) -> nn.Sequential:
    """Remove ``n_remove`` hidden layers, each time the one with the highest CKA redundancy."""
    out = model
    for _ in range(n_remove):
        red = layer_redundancy(out, x_calib)
        if not red:
            raise ModelInputError("LoRP needs at least two hidden layers")
        out = remove_layer(out, max(red, key=red.get), x_calib)
    return out

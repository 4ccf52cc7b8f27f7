"""Wanda pruning: drop weights with the smallest |W_ij| * ||X_j||_2 in each output row.

X_j is the j-th input of the layer over calibration rows, so the score is
invariant to the raw units of the columns and needs no retraining.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.nets import clone, linears


def layer_inputs(model: nn.Sequential, x: np.ndarray) -> list[torch.Tensor]:
    """The input tensor of every Linear layer on calibration rows ``x``."""
    h = torch.as_tensor(x, dtype=torch.float32)
    inputs = []
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                inputs.append(h)
            h = m(h)
    return inputs


def wanda_prune(model: nn.Module, x_calib: np.ndarray, sparsity: float) -> nn.Module:
    """Zero ``sparsity`` of each output row's weights by Wanda score (biases kept)."""
    if not 0.0 <= sparsity < 1.0:
        raise ModelInputError(f"sparsity must be in [0, 1), got {sparsity}")
    out = clone(model)
    with torch.no_grad():
        for lin, inp in zip(linears(out), layer_inputs(model, x_calib), strict=True):
            norms = inp.norm(dim=0)  # [in]
            score = lin.weight.abs() * norms.reshape(1, -1)
            k = int(round(sparsity * lin.in_features))
            if k == 0:
                continue
            drop = torch.argsort(score, dim=1)[:, :k]
            lin.weight.scatter_(1, drop, 0.0)
    return out

"""Unstructured magnitude pruning, global or per layer.

Zeroes the smallest weights; shapes stay, so a dense ONNX Runtime kernel is
no faster (`remove_dead_neurons` in structured.py then drops neurons whose
rows or columns became all zero, which does shrink the matrices).

Zoo models work in raw column units, so raw weight magnitudes are not
comparable across layers (the first layer is scaled by 1/std of each input,
the last by the target's std). Given calibration rows, scores are taken in the
standardised parameterisation instead: first-layer columns times the input's
std, last-layer weights divided by the output's std.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.nets import clone, linears, predict


def _scores(model: nn.Module, x_calib: np.ndarray | None) -> list[torch.Tensor]:
    ls = linears(model)
    scores = [lin.weight.detach().abs().clone() for lin in ls]
    if x_calib is not None:
        scores[0] *= torch.as_tensor(x_calib.std(0) + 1e-12, dtype=torch.float32)
        out_std = predict(model, x_calib).std(0) + 1e-12
        scores[-1] /= torch.as_tensor(out_std, dtype=torch.float32).reshape(-1, 1)
    return scores


def magnitude_prune(
    model: nn.Module, sparsity: float, scope: str = "global", x_calib: np.ndarray | None = None
) -> nn.Module:
    """Zero the fraction ``sparsity`` of weights with the smallest magnitude.

    ``scope="global"`` ranks all weights together, ``"layer"`` prunes each Linear
    to the same sparsity. Biases are kept. ``x_calib`` (optional) makes scores
    scale-aware, see the module docstring.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ModelInputError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in ("global", "layer"):
        raise ModelInputError(f"scope must be 'global' or 'layer', got {scope!r}")
    out = clone(model)
    scores = _scores(model, x_calib)
    if scope == "global":
        flat = torch.cat([s.flatten() for s in scores])
        k = int(round(sparsity * flat.numel()))
        thresholds = [torch.kthvalue(flat, k).values if k > 0 else torch.tensor(-1.0)] * len(scores)
        masks = [s > t for s, t in zip(scores, thresholds, strict=True)]
    else:
        masks = []
        for s in scores:
            k = int(round(sparsity * s.numel()))
            mask = torch.ones_like(s, dtype=torch.bool)
            if k > 0:
                mask.view(-1)[torch.argsort(s.flatten())[:k]] = False
            masks.append(mask)
    with torch.no_grad():
        for lin, mask in zip(linears(out), masks, strict=True):
            lin.weight.mul_(mask)
    return out


def sparsity_of(model: nn.Module) -> float:
    """Fraction of weight entries (biases excluded) that are exactly zero."""
    ws = [lin.weight for lin in linears(model)]
    return float(sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws))

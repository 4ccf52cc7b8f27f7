"""STARFISH healing: re-align a compressed model's hidden representations with the dense model's.

On a tiny unlabeled calibration set, minimise, over the compressed model's
weights, the per-hidden-layer cosine misalignment ``1 - cos(h_c, M h_d)``
(M from the model's dense map: identity for unstructured pruning, a selection
for structured pruning, the lumping matrix for lumped models) plus an output
MSE term (a 1-D output has no useful cosine). Weights that are exactly zero
stay zero (pruning masks are fixed).

Raw-unit zoo models are healed in standardised units (inputs and outputs
scaled by calibration statistics, folded back afterwards) so one learning rate
suits every layer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.nets import clone, dense_map, hidden_activations, linears, predict
from mlskip.model_zoo.train import fold_normalisation


def _targets(model: nn.Module, dense: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        hd, _ = hidden_activations(dense, x)
    maps = dense_map(model)
    if len(maps) != len(linears(model)) - 1:
        raise ModelInputError("dense map does not match the compressed model's hidden layers")
    return [hd[src] if m is None else hd[src] @ m.T for src, m in maps]


def alignment(model: nn.Module, dense: nn.Module, x_rows: np.ndarray) -> float:
    """Mean over hidden layers and rows of cos(h_compressed, M h_dense) (1 = aligned)."""
    x = torch.as_tensor(x_rows, dtype=torch.float32)
    with torch.no_grad():
        hc, _ = hidden_activations(model, x)
        tgt = _targets(model, dense, x)
        cos = [
            nn.functional.cosine_similarity(a, b, dim=1, eps=1e-8).mean()
            for a, b in zip(hc, tgt, strict=True)
        ]
    return float(torch.stack(cos).mean())


def _standardise(model: nn.Module, x_mean, x_std, y_mean, y_std) -> nn.Module:
    """Inverse of `fold_normalisation`: the same function on standardised inputs/outputs."""
    ls = linears(model)
    with torch.no_grad():
        first = ls[0]
        mean = torch.as_tensor(x_mean, dtype=torch.float64)
        std = torch.as_tensor(x_std, dtype=torch.float64)
        w = first.weight.double()
        first.bias.copy_(first.bias.double() + w @ mean)
        first.weight.copy_(w * std)
        last = ls[-1]
        last.weight.div_(torch.as_tensor(y_std, dtype=torch.float32).reshape(-1, 1))
        last.bias.copy_(
            (last.bias - torch.as_tensor(y_mean, dtype=torch.float32))
            / torch.as_tensor(y_std, dtype=torch.float32)
        )
    return model


def heal(
    model: nn.Module,
    dense: nn.Module,
    x_calib: np.ndarray,
    steps: int = 400,
    lr: float = 1e-3,
    output_weight: float = 0.3,
    seed: int = 0,
) -> nn.Module:
    """A healed copy of ``model`` (pruned, lumped or structured), aligned with ``dense``."""
    torch.manual_seed(seed)
    x_mean, x_std = x_calib.mean(0), x_calib.std(0) + 1e-9
    y_dense = predict(dense, x_calib).astype(np.float64)
    y_mean, y_std = y_dense.mean(0), y_dense.std(0) + 1e-9
    x_raw = torch.as_tensor(x_calib, dtype=torch.float32)
    x_std_t = torch.as_tensor((x_calib - x_mean) / x_std, dtype=torch.float32)
    targets = _targets(model, dense, x_raw)
    y_t = torch.as_tensor((y_dense - y_mean) / y_std, dtype=torch.float32)

    work = _standardise(clone(model), x_mean, x_std, y_mean, y_std)
    params = [p for lin in linears(work) for p in (lin.weight, lin.bias)]
    masks = [(p != 0).float() if p.dim() == 2 else None for p in params]
    opt = torch.optim.Adam(params, lr=lr)
    work.train()
    for _ in range(steps):
        opt.zero_grad()
        hc, out = hidden_activations(work, x_std_t)
        loss = output_weight * nn.functional.mse_loss(out, y_t)
        for a, b in zip(hc, targets, strict=True):
            loss = loss + (1 - nn.functional.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()
        loss.backward()
        for p, m in zip(params, masks, strict=True):
            if m is not None:
                p.grad.mul_(m)
        opt.step()
        with torch.no_grad():
            for p, m in zip(params, masks, strict=True):
                if m is not None:
                    p.mul_(m)
    work.eval()
    healed = fold_normalisation(work, x_mean, x_std, 0.0, 1.0)
    with torch.no_grad():  # output de-standardisation per output column
        last = linears(healed)[-1]
        last.weight.mul_(torch.as_tensor(y_std, dtype=torch.float32).reshape(-1, 1))
        last.bias.copy_(
            last.bias * torch.as_tensor(y_std, dtype=torch.float32)
            + torch.as_tensor(y_mean, dtype=torch.float32)
        )
    return healed

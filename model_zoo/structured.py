"""Structured neuron pruning: removed neurons shrink the weight matrices.

- `prune_neurons` keeps chosen neurons of chosen hidden layers (exact surgery);
- `remove_dead_neurons` drops neurons that provably contribute a constant
  (all-zero incoming weights: folded into the next bias) or nothing (all-zero
  outgoing weights) -- the model computes the same function;
- `l2_prune` keeps the neurons with the largest L2 norm per layer;
- `sensitivity` + `psvit_prune`: per-layer sensitivity analysis picks each
  layer's pruning ratio (PSViT);
- `primesvt_prune`: prioritized, memory-aware policy that prunes layers from
  the largest to the smallest while the loss budget allows and until the
  memory-saving target is met (PrimeSVT).

Losses are measured without labels, as fidelity to the dense model on
calibration rows (R2 against its outputs, or argmax agreement).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.nets import (
    compose_maps,
    dense_map,
    from_weights,
    get_weights,
    linears,
    n_params,
    set_dense_map,
)
from mlskip.model_zoo.train import fidelity
from mlskip.model_zoo.wanda import layer_inputs

DEFAULT_RATIOS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)


def prune_neurons(model: nn.Module, keep: Mapping[int, Sequence[int]]) -> nn.Sequential:
    """Keep only neurons ``keep[l]`` of hidden layer ``l`` (0-based); other layers untouched.

    Row l of W_l / b_l and column l of W_{l+1} are cut; the dense map records
    the selection so healing can align against the dense neurons kept.
    """
    ws = get_weights(model)
    n_hidden = len(ws) - 1
    maps: list[torch.Tensor | None] = [None] * n_hidden
    for layer, idx in keep.items():
        if not 0 <= layer < n_hidden:
            raise ModelInputError(f"hidden layer {layer} does not exist (model has {n_hidden})")
        idx_t = torch.as_tensor(sorted(idx), dtype=torch.long)
        if len(idx_t) == 0:
            raise ModelInputError(f"cannot remove every neuron of hidden layer {layer}")
        w, b = ws[layer]
        ws[layer] = (w[idx_t], b[idx_t])
        wn, bn = ws[layer + 1]
        ws[layer + 1] = (wn[:, idx_t], bn)
        sel = torch.zeros(len(idx_t), w.shape[0])
        sel[torch.arange(len(idx_t)), idx_t] = 1.0
        maps[layer] = sel
    out = from_weights(ws)
    return set_dense_map(out, compose_maps(dense_map(model), maps))


def remove_dead_neurons(model: nn.Module, x_calib: np.ndarray | None = None) -> nn.Sequential:
    """Drop neurons that cannot matter; exact unless ``x_calib`` is given.

    Exact: incoming row all zero (the neuron outputs the constant relu(b),
    folded into the next bias) or outgoing column all zero. With ``x_calib``,
    neurons never active on those rows are dropped too (approximate).
    """
    ws = get_weights(model)
    keep: dict[int, list[int]] = {}
    acts = None
    if x_calib is not None:
        acts = layer_inputs(model, x_calib)[1:]
    for layer in range(len(ws) - 1):
        w, b = ws[layer]
        wn, bn = ws[layer + 1]
        const = (w == 0).all(1)
        silent = (wn == 0).all(0)
        never = torch.zeros_like(const)
        if acts is not None:
            never = (acts[layer] <= 0).all(0)
        with torch.no_grad():
            folded = torch.relu(b) * (const & ~silent & ~never)
            ws[layer + 1] = (wn, bn + wn @ folded)
        kept = [i for i in range(w.shape[0]) if not (const[i] or silent[i] or never[i])]
        if not kept:  # keep one neuron with zero output weight so shapes stay valid
            kept = [0]
            ws[layer + 1][0][:, 0] = 0.0
        keep[layer] = kept
    folded_model = set_dense_map(from_weights(ws), dense_map(model))
    return prune_neurons(folded_model, keep)


def neuron_scores(model: nn.Module, layer: int, x_calib: np.ndarray | None = None) -> torch.Tensor:
    """L2 norm of each neuron's incoming weights (and bias) of hidden layer ``layer``.

    With ``x_calib``, each input column is scaled by the RMS of that layer's
    input, i.e. the norm in units where every input has unit size (raw zoo
    models otherwise rank first-layer neurons by the columns' units).
    """
    lin = linears(model)[layer]
    w = lin.weight.detach()
    if x_calib is not None:
        rms = layer_inputs(model, x_calib)[layer].pow(2).mean(0).sqrt()
        w = w * rms.reshape(1, -1)
    return torch.cat([w, lin.bias.detach().reshape(-1, 1)], 1).norm(dim=1)


def _keep_top(scores: torch.Tensor, ratio: float) -> list[int]:
    n_keep = max(1, int(round(len(scores) * (1.0 - ratio))))
    return torch.argsort(scores, descending=True)[:n_keep].tolist()


def l2_prune(
    model: nn.Module, ratios: Mapping[int, float] | float, x_calib: np.ndarray | None = None
) -> nn.Sequential:
    """Remove the fraction ``ratios[l]`` of neurons with the smallest L2 score in each hidden layer."""
    n_hidden = len(linears(model)) - 1
    if isinstance(ratios, float | int):
        ratios = {layer: float(ratios) for layer in range(n_hidden)}
    keep = {
        layer: _keep_top(neuron_scores(model, layer, x_calib), r)
        for layer, r in ratios.items()
        if r > 0
    }
    return prune_neurons(model, keep)


def sensitivity(
    model: nn.Module, x_calib: np.ndarray, task: str, ratios: Sequence[float] = DEFAULT_RATIOS
) -> dict[int, list[tuple[float, float]]]:
    """Per hidden layer: fidelity loss (1 - fidelity) after pruning only that layer at each ratio."""
    n_hidden = len(linears(model)) - 1
    base = fidelity(model, model, x_calib, task)
    return {
        layer: [
            (r, base - fidelity(l2_prune(model, {layer: r}, x_calib), model, x_calib, task))
            for r in ratios
        ]
        for layer in range(n_hidden)
    }


def psvit_prune(
    model: nn.Module,
    x_calib: np.ndarray,
    task: str,
    max_loss: float = 0.01,
    ratios: Sequence[float] = DEFAULT_RATIOS,
) -> nn.Sequential:
    """PSViT-style: each layer gets the largest ratio whose own loss fits an equal share of
    ``max_loss``; if the joint loss still exceeds it, the most pruned layer backs off a step."""
    sens = sensitivity(model, x_calib, task, ratios)
    share = max_loss / max(1, len(sens))
    chosen = {
        layer: max([r for r, loss in curve if loss <= share], default=0.0)
        for layer, curve in sens.items()
    }
    while True:
        pruned = l2_prune(model, chosen, x_calib)
        loss = 1.0 - fidelity(pruned, model, x_calib, task)
        if loss <= max_loss or not any(chosen.values()):
            return pruned
        worst = max(chosen, key=chosen.get)
        lower = [r for r in ratios if r < chosen[worst]]
        chosen[worst] = max(lower, default=0.0)


def primesvt_prune(
    model: nn.Module,
    x_calib: np.ndarray,
    task: str,
    max_loss: float = 0.01,
    min_saving: float = 0.5,
    step: float = 0.0625,
) -> nn.Sequential:
    """PrimeSVT-style prioritized, memory-aware neuron pruning.

    Hidden layers are visited from the largest (most parameters in and out) to
    the smallest; each is pruned in ``step`` increments while the fidelity loss
    stays within ``max_loss``, and pruning stops once parameters have shrunk by
    ``min_saving``. Warns if the saving target cannot be met within the budget.
    """
    ws = linears(model)
    n_hidden = len(ws) - 1
    total = n_params(model)
    size = {
        layer: ws[layer].weight.numel() + ws[layer].bias.numel() + ws[layer + 1].weight.numel()
        for layer in range(n_hidden)
    }
    order = sorted(size, key=size.get, reverse=True)
    chosen = {layer: 0.0 for layer in range(n_hidden)}
    current = model
    for layer in order:
        r = chosen[layer]
        while r + step < 1.0 - 1e-9:
            trial = {**chosen, layer: r + step}
            cand = l2_prune(model, trial, x_calib)
            if 1.0 - fidelity(cand, model, x_calib, task) > max_loss:
                break
            r, chosen, current = r + step, trial, cand
            if 1.0 - n_params(current) / total >= min_saving:
                return current
    saving = 1.0 - n_params(current) / total
    if saving < min_saving:
        warnings.warn(
            f"PrimeSVT: saving {saving:.1%} < target {min_saving:.1%} within loss budget {max_loss}",
            stacklevel=2,
        )
    return current

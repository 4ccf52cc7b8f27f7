"""Neuron lumping by approximate forward differential equivalence.

ReLU is positively homogeneous: relu(s * r.x) = s * relu(r.x) for s > 0. Two
neurons whose incoming rows [W_i, b_i] point in the same direction are thus
the same neuron up to a positive scale, and can be merged: one neuron with the
(unit) direction, outgoing weights summed times each member's scale. With
``eps = 0`` the merged model computes the same function; a larger ``eps``
merges neurons whose unit directions are within ``eps`` (Euclidean), trading
accuracy for size.

Directions are compared in standardised units when calibration rows are given
(first-layer columns times each input's RMS), so ``eps`` does not depend on the
columns' raw units. Equal directions stay equal under that scaling.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.nets import compose_maps, dense_map, from_weights, get_weights, set_dense_map
from mlskip.model_zoo.wanda import layer_inputs

EXACT_TOL = 1e-6  # eps=0 still merges directions equal up to float rounding


def cluster_directions(u: torch.Tensor, s: torch.Tensor, eps: float) -> list[list[int]]:
    """Greedy clusters of unit rows ``u``: largest-norm neuron first, members within ``eps``."""
    tol = max(eps, EXACT_TOL)
    order = torch.argsort(s, descending=True).tolist()
    free = torch.ones(len(u), dtype=torch.bool)
    clusters = []
    for i in order:
        if not free[i]:
            continue
        near = ((u - u[i]).norm(dim=1) <= tol) & free
        members = near.nonzero().flatten().tolist()
        free[members] = False
        clusters.append(members)
    return clusters


def lump_neurons(
    model: nn.Module, eps: float = 0.0, x_calib: np.ndarray | None = None
) -> nn.Sequential:
    """Merge, layer by layer, hidden neurons whose normalised incoming rows agree within ``eps``.

    Neurons with an all-zero row (constant 0) are dropped. The dense map of
    each lumped neuron c is h_c ~ mean over members j of h_j / s_j.
    """
    if eps < 0:
        raise ModelInputError(f"eps must be >= 0, got {eps}")
    ws = get_weights(model)
    maps: list[torch.Tensor | None] = []
    for layer in range(len(ws) - 1):
        w, b = (t.double() for t in ws[layer])
        wn, bn = ws[layer + 1]
        scale = torch.ones(w.shape[1], dtype=torch.float64)
        if x_calib is not None:  # RMS of this layer's inputs in the model lumped so far
            inp = layer_inputs(from_weights(ws), x_calib)[layer]
            scale = inp.double().pow(2).mean(0).sqrt().clamp_min(1e-12)
        rows = torch.cat([w * scale, b.reshape(-1, 1)], 1)
        s = rows.norm(dim=1)
        alive = (s > 0).nonzero().flatten()
        u = rows[alive] / s[alive].reshape(-1, 1)
        clusters = cluster_directions(u, s[alive], eps)
        new_w, new_b, out_cols = [], [], []
        p = torch.zeros(len(clusters), w.shape[0], dtype=torch.float64)
        for c, members in enumerate(clusters):
            idx = alive[members]
            direction = (u[members] * s[idx].reshape(-1, 1)).sum(0)
            direction = direction / direction.norm()
            new_w.append(direction[:-1] / scale)
            new_b.append(direction[-1])
            out_cols.append((wn[:, idx].double() * s[idx].reshape(1, -1)).sum(1))
            p[c, idx] = 1.0 / (s[idx] * len(idx))
        if not clusters:  # every neuron constant zero: keep one silent neuron
            new_w, new_b = (
                [torch.zeros(w.shape[1], dtype=torch.float64)],
                [torch.tensor(0.0, dtype=torch.float64)],
            )
            out_cols = [torch.zeros(wn.shape[0], dtype=torch.float64)]
            p = torch.zeros(1, w.shape[0], dtype=torch.float64)
        ws[layer] = (torch.stack(new_w).float(), torch.stack(new_b).float())
        ws[layer + 1] = (torch.stack(out_cols, 1).float(), bn)
        maps.append(p.float())
    out = from_weights(ws)
    return set_dense_map(out, compose_maps(dense_map(model), maps))

"""Plain ReLU MLPs (``nn.Sequential`` of Linear/ReLU) and helpers shared by every method.

Zoo models stay plain Sequentials so the verifier can load them. A compressed
model may carry ``dense_map``: for each of its hidden layers, the index of the
dense model's hidden layer it descends from and a matrix M with
``h_compressed ~ M @ h_dense`` (None = identity). STARFISH healing uses it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mlskip.errors import UnsupportedModelError

LayerMap = tuple[int, "torch.Tensor | None"]


def make_mlp(
    d_in: int, hidden: Sequence[int], d_out: int, seed: int | None = None
) -> nn.Sequential:
    """A ReLU MLP ``d_in -> hidden... -> d_out`` (no activation on the output)."""
    if seed is not None:
        torch.manual_seed(seed)
    layers: list[nn.Module] = []
    widths = [d_in, *hidden]
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], d_out))
    return nn.Sequential(*layers)


def linears(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a plain MLP, in order; raises for anything but Linear/ReLU."""
    if not isinstance(model, nn.Sequential):
        raise UnsupportedModelError(
            f"expected nn.Sequential of Linear/ReLU, got {type(model).__name__}"
        )
    out = []
    for i, m in enumerate(model):
        if isinstance(m, nn.Linear):
            out.append(m)
        elif not isinstance(m, nn.ReLU):
            raise UnsupportedModelError(
                f"layer {i} is {type(m).__name__}; only Linear and ReLU are supported"
            )
    return out


def widths(model: nn.Module) -> list[int]:
    """Input width, hidden widths and output width."""
    ls = linears(model)
    return [ls[0].in_features, *[lin.out_features for lin in ls]]


def from_weights(weights: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> nn.Sequential:
    """An MLP with the given (W [out, in], b [out]) per Linear layer (ReLU between)."""
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(weights):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def get_weights(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Detached copies of (W, b) per Linear layer."""
    return [(lin.weight.detach().clone(), lin.bias.detach().clone()) for lin in linears(model)]


def n_params(model: nn.Module, nonzero: bool = False) -> int:
    """Parameter count (or count of nonzero parameters)."""
    ps = list(model.parameters())
    if nonzero:
        return int(sum(int((p != 0).sum()) for p in ps))
    return int(sum(p.numel() for p in ps))


def hidden_activations(
    model: nn.Sequential, x: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Post-ReLU activation of every hidden layer, and the output."""
    hs = []
    h = x
    for m in model:
        h = m(h)
        if isinstance(m, nn.ReLU):
            hs.append(h)
    return hs, h


def predict(model: nn.Module, x: np.ndarray, batch: int = 65536) -> np.ndarray:
    """Run a torch model on a float array in raw column units (float32, no grad)."""
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.as_tensor(x[i : i + batch], dtype=torch.float32)).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 1), np.float32)


def clone(model: nn.Module) -> nn.Module:
    """A deep copy (keeps ``dense_map``)."""
    return copy.deepcopy(model)


def dense_map(model: nn.Module, n_hidden_dense: int | None = None) -> list[LayerMap]:
    """The model's map to its dense ancestor's hidden layers (identity by default)."""
    maps = getattr(model, "dense_map", None)
    if maps is not None:
        return list(maps)
    n = len(linears(model)) - 1
    return [(i, None) for i in range(n)]


def set_dense_map(model: nn.Module, maps: list[LayerMap]) -> nn.Module:
    """Attach a dense map (plain attribute, survives deepcopy; ignored by export)."""
    model.__dict__["dense_map"] = maps
    return model


def compose_maps(old: list[LayerMap], new_per_layer: list[torch.Tensor | None]) -> list[LayerMap]:
    """Maps after a step that maps each current hidden layer by ``new_per_layer[i]``."""
    out = []
    for (src, m_old), m_new in zip(old, new_per_layer, strict=True):
        if m_new is None:
            out.append((src, m_old))
        elif m_old is None:
            out.append((src, m_new))
        else:
            out.append((src, m_new @ m_old))
    return out

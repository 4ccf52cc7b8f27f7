"""Build a float32 torch module that computes a verifier ``Network`` step by step."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlskip.verifier import Network


def network_to_torch(network: Network) -> Any:
    """``nn.Sequential`` of Linear and activation modules following ``network.fp_steps``."""
    import torch
    from torch import nn

    from mlskip.verifier import Affine

    modules: list[nn.Module] = []
    for step in network.fp_steps:
        if isinstance(step, Affine):
            linear = nn.Linear(step.in_features, step.out_features)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.asarray(step.W, dtype=np.float32)))
                linear.bias.copy_(torch.from_numpy(np.asarray(step.b, dtype=np.float32)))
            modules.append(linear)
        elif step.name == "relu":
            modules.append(nn.ReLU())
        elif step.name == "leaky_relu":
            modules.append(nn.LeakyReLU(float(step.alpha)))
        elif step.name == "sigmoid":
            modules.append(nn.Sigmoid())
        elif step.name == "tanh":
            modules.append(nn.Tanh())
        elif step.name != "identity":
            raise ValueError(f"no torch module for step {step.name!r}")
    if network.final == "sigmoid":
        modules.append(nn.Sigmoid())
    elif network.final == "softmax":
        modules.append(nn.Softmax(dim=-1))
    return nn.Sequential(*modules)

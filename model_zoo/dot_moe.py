"""DOT-MoE: turn one hidden layer of a dense MLP into a top-1 mixture of experts.

Neurons are split into E equal groups (experts) by balanced optimal transport:
each neuron is described by its activation pattern on calibration rows, and a
Sinkhorn plan with uniform marginals, rounded to an exactly balanced
assignment, clusters co-activating neurons (a balanced k-means). A linear
router on the layer's input, trained on calibration rows, picks the expert
whose neurons contribute most to the next layer; the other experts are
replaced by their mean contribution given that routing (a per-expert bias).

The result is not a plain Linear/ReLU MLP: its ONNX graph uses ArgMax, Gather
and Mul. It is piecewise linear, but only given the router's decision, so a
Linear/ReLU bound propagator cannot load it; a verifier must case-split on the
router (or bound h * mask by [min(0, lb), max(0, ub)]). Every expert is
computed and masked, so it is not faster in a batched dense runtime either.
"""

from __future__ import annotations

import numpy as np
import torch
from onnx import helper, numpy_helper
from scipy.optimize import linear_sum_assignment
from torch import nn

from mlskip.errors import ModelInputError
from mlskip.model_zoo.export import sequential_nodes
from mlskip.model_zoo.nets import from_weights, get_weights, hidden_activations, linears
from mlskip.model_zoo.wanda import layer_inputs


def sinkhorn(
    cost: np.ndarray,
    row_mass: np.ndarray,
    col_mass: np.ndarray,
    tau: float = 0.05,
    iters: int = 200,
) -> np.ndarray:
    """Entropic optimal-transport plan with the given marginals (log-domain Sinkhorn)."""
    log_k = -cost / tau
    f = np.zeros(len(row_mass))
    g = np.zeros(len(col_mass))
    for _ in range(iters):
        f = np.log(row_mass) - _logsumexp(log_k + g[None, :], axis=1)
        g = np.log(col_mass) - _logsumexp(log_k + f[:, None], axis=0)
    return np.exp(log_k + f[:, None] + g[None, :])


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def balanced_assignment(plan: np.ndarray) -> np.ndarray:
    """Round a transport plan [m, E] to an assignment with exactly m/E neurons per expert."""
    m, e = plan.shape
    if m % e:
        raise ModelInputError(f"{m} neurons cannot be split into {e} equal experts")
    cost = -np.log(np.repeat(plan, m // e, axis=1) + 1e-300)
    _, cols = linear_sum_assignment(cost)
    return cols // (m // e)


def assign_experts(
    features: np.ndarray, n_experts: int, iters: int = 10, seed: int = 0
) -> np.ndarray:
    """Balanced clustering of neuron feature rows [m, n] into ``n_experts`` equal groups."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    f = features / np.maximum(norms, 1e-12)
    rng = np.random.default_rng(seed)
    cent = f[rng.choice(len(f), n_experts, replace=False)]
    m = len(f)
    labels = np.zeros(m, dtype=np.int64)
    for _ in range(iters):
        cost = ((f[:, None, :] - cent[None, :, :]) ** 2).sum(-1)
        cost = cost / max(cost.max(), 1e-12)
        plan = sinkhorn(cost, np.full(m, 1.0 / m), np.full(n_experts, 1.0 / n_experts))
        labels = balanced_assignment(plan)
        cent = np.stack([f[labels == e].mean(0) for e in range(n_experts)])
    return labels


class MoEMLP(nn.Module):
    """pre -> [expert layer masked by the router's top-1 expert] -> next Linear + expert bias -> rest."""

    def __init__(
        self, pre, expert, router, nxt, rest, mask_table, bias_table, in_features, out_features
    ):
        super().__init__()
        self.pre, self.expert, self.router, self.nxt, self.rest = pre, expert, router, nxt, rest
        self.register_buffer("mask_table", mask_table)
        self.register_buffer("bias_table", bias_table)
        self.in_features, self.out_features = in_features, out_features

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.pre(x)) if self.pre is not None else x

    def route(self, x: torch.Tensor) -> torch.Tensor:
        """The chosen expert per row."""
        return self.router(self._z(x)).argmax(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self._z(x)
        g = self.router(z).argmax(1)
        h = torch.relu(self.expert(z)) * self.mask_table[g]
        out = self.nxt(h) + self.bias_table[g]
        return self.rest(out) if self.rest is not None else out

    def onnx_nodes(self, x: str, out: str):
        """ONNX nodes with the real ops: Gemm, Relu, ArgMax, Gather, Mul, Add."""
        nodes, inits = [], []
        z = x
        if self.pre is not None:
            n, i = sequential_nodes(self.pre, "pre_", x, "pre_out")
            nodes += n + [helper.make_node("Relu", ["pre_out"], ["z"])]
            inits += i
            z = "z"
        tensors = {
            "Wr": self.router.weight, "br": self.router.bias, "We": self.expert.weight,
            "be": self.expert.bias, "Wn": self.nxt.weight, "bn": self.nxt.bias,
            "mask_table": self.mask_table, "bias_table": self.bias_table,
        }  # fmt: skip
        inits += [
            numpy_helper.from_array(t.detach().numpy().astype(np.float32), k)
            for k, t in tensors.items()
        ]
        nxt_out = "zn" if self.rest is not None else out
        nodes += [
            helper.make_node("Gemm", [z, "Wr", "br"], ["logits"], transB=1),
            helper.make_node("ArgMax", ["logits"], ["g"], axis=1, keepdims=0),
            helper.make_node("Gemm", [z, "We", "be"], ["ze"], transB=1),
            helper.make_node("Relu", ["ze"], ["he"]),
            helper.make_node("Gather", ["mask_table", "g"], ["mask"], axis=0),
            helper.make_node("Mul", ["he", "mask"], ["hm"]),
            helper.make_node("Gemm", ["hm", "Wn", "bn"], ["zn0"], transB=1),
            helper.make_node("Gather", ["bias_table", "g"], ["eb"], axis=0),
            helper.make_node("Add", ["zn0", "eb"], [nxt_out]),
        ]
        if self.rest is not None:
            nodes.append(helper.make_node("Relu", ["zn"], ["rest_in"]))
            n, i = sequential_nodes(self.rest_linear(), "rest_", "rest_in", out)
            nodes += n
            inits += i
        return nodes, inits

    def rest_linear(self) -> nn.Sequential:
        """``rest`` without its leading ReLU (a plain MLP)."""
        return nn.Sequential(*list(self.rest)[1:])


def _fit_router(
    z: torch.Tensor, labels: torch.Tensor, n_experts: int, epochs: int = 300, seed: int = 0
) -> nn.Linear:
    torch.manual_seed(seed)
    mean, std = z.mean(0), z.std(0) + 1e-6
    router = nn.Linear(z.shape[1], n_experts)
    opt = torch.optim.Adam(router.parameters(), lr=1e-2)
    zs = (z - mean) / std
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(router(zs), labels).backward()
        opt.step()
    with torch.no_grad():  # fold the standardisation into the router
        router.weight.div_(std)
        router.bias.sub_(router.weight @ mean)
    return router


def to_moe(
    model: nn.Module, x_calib: np.ndarray, layer: int = 0, n_experts: int = 4, seed: int = 0
) -> MoEMLP:
    """DOT-MoE conversion of hidden layer ``layer`` of a plain MLP into ``n_experts`` experts."""
    ws = get_weights(model)
    if not 0 <= layer < len(ws) - 1:
        raise ModelInputError(f"hidden layer {layer} does not exist")
    x = torch.as_tensor(x_calib, dtype=torch.float32)
    with torch.no_grad():
        hs, _ = hidden_activations(model, x)
    h = hs[layer]  # [n, m]
    labels = assign_experts(h.T.numpy().astype(np.float64), n_experts, seed=seed)
    mask = torch.as_tensor(np.eye(n_experts)[labels].T, dtype=torch.float32)  # [E, m]
    wn, bn = ws[layer + 1]
    contrib = torch.stack([(h * mask[e]) @ wn.T for e in range(n_experts)], 1)  # [n, E, out]
    best = contrib.norm(dim=2).argmax(1)
    z = layer_inputs(model, x_calib)[layer]
    router = _fit_router(z, best, n_experts, seed=seed)
    with torch.no_grad():
        g = router(z).argmax(1)
        total = contrib.sum(1)
        bias = torch.zeros(n_experts, wn.shape[0])
        for e in range(n_experts):
            rows = g == e
            if rows.any():
                bias[e] = (total[rows] - contrib[rows, e]).mean(0)
    pre = from_weights(ws[:layer]) if layer > 0 else None
    expert = from_weights([ws[layer]])[0]
    nxt = from_weights([ws[layer + 1]])[0]
    rest = None
    if layer + 2 < len(ws):
        rest = nn.Sequential(nn.ReLU(), *from_weights(ws[layer + 2 :]))
    d_in, d_out = linears(model)[0].in_features, ws[-1][0].shape[0]
    return MoEMLP(pre, expert, router, nxt, rest, mask, bias, d_in, d_out)

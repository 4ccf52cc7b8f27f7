"""mlskip's bounds next to auto_LiRPA's on the same networks and boxes.

The networks are the shapes of issue 22 (2-32-1 to 4-32-32-32-32-1), random
(He-scaled weights) and trained (a few hundred Adam steps on a smooth target,
so that weights have the structure of real models); the boxes are
row-group-like (widths over two orders of magnitude). ``compare`` gives, per
box, the output width of each side for IBP, CROWN and alpha-CROWN, so a test
can require that mlskip is never wider and the bench can print both rates.
Everything is float64 and deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlskip.testing.networks import make_net, make_regions
from mlskip.verifier.adapters.auto_lirpa import auto_lirpa_bounds
from mlskip.verifier.alpha_crown import alpha_crown_bounds
from mlskip.verifier.crown import crown_bounds
from mlskip.verifier.ibp import ibp_bounds
from mlskip.verifier.network import Network
from mlskip.verifier.regions import RegionBatch

SHAPES: tuple[tuple[int, ...], ...] = (
    (2, 32, 1),
    (3, 32, 1),
    (4, 32, 1),
    (4, 32, 32, 1),
    (8, 64, 64, 1),
    (4, 32, 32, 32, 32, 1),
)
METHODS = ("IBP", "CROWN", "alpha-CROWN")
_LIRPA_NAMES = {"IBP": "IBP", "CROWN": "CROWN", "alpha-CROWN": "CROWN-Optimized"}


def random_net(sizes: tuple[int, ...], seed: int) -> Network:
    """He-scaled Gaussian weights, small biases (the verifier bench's networks)."""
    return make_net(np.random.default_rng(seed), sizes)


def trained_net(sizes: tuple[int, ...], seed: int, steps: int = 300) -> Network:
    """A ReLU MLP fitted (Adam, float64) to a smooth function of its inputs."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if k:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(i, o, dtype=torch.float64))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    x = torch.rand(2048, sizes[0], generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(2 * x[:, :1]) * x[:, -1:] + 0.5 * (x**2).sum(1, keepdim=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return Network.mlp([(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in linears])


def boxes(n: int, d: int, seed: int) -> RegionBatch:
    """Boxes in [-1, 1]^d with per-column half-widths from 0.01 to 0.5 (the verifier
    bench's boxes)."""
    return make_regions(np.random.default_rng(seed), n, d, polygons=False)


def ours(net: Network, regions: RegionBatch, method: str) -> tuple[np.ndarray, np.ndarray]:
    """mlskip's bounds ``[n, k]`` by ``method`` (one of METHODS)."""
    if method == "IBP":
        return ibp_bounds(net, regions)
    if method == "CROWN":
        return crown_bounds(net, regions)
    if method == "alpha-CROWN":
        return alpha_crown_bounds(net, regions)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def theirs(net: Network, regions: RegionBatch, method: str) -> tuple[np.ndarray, np.ndarray]:
    """auto_LiRPA's bounds by the same method, with the same float64 margin added."""
    return auto_lirpa_bounds(net, regions, method=_LIRPA_NAMES[method])


@dataclass
class Comparison:
    """Per-box output widths (first output) of both sides."""

    method: str
    ours: np.ndarray
    theirs: np.ndarray

    @property
    def excess(self) -> np.ndarray:
        """How much wider mlskip is than auto_LiRPA, relative to auto_LiRPA's width."""
        return (self.ours - self.theirs) / np.maximum(np.abs(self.theirs), 1e-300)

    def wider(self, tol: float = 1e-9) -> int:
        """Boxes on which mlskip is more than ``tol`` (relative) wider."""
        return int((self.excess > tol).sum())

    @property
    def mean_ratio(self) -> float:
        """Mean of mlskip's width over auto_LiRPA's (below 1: mlskip tighter on average)."""
        return float(np.mean(self.ours / np.maximum(self.theirs, 1e-300)))


def compare(net: Network, regions: RegionBatch, method: str) -> Comparison:
    """Both sides' widths over the same boxes."""
    lo, hi = ours(net, regions, method)
    tlo, thi = theirs(net, regions, method)
    return Comparison(method, hi[:, 0] - lo[:, 0], thi[:, 0] - tlo[:, 0])


def network(sizes: tuple[int, ...], kind: str, seed: int) -> Network:
    """``kind`` "random" or "trained" (see the module doc)."""
    if kind not in ("random", "trained"):
        raise ValueError(f"kind must be 'random' or 'trained', got {kind!r}")
    return random_net(sizes, seed) if kind == "random" else trained_net(sizes, seed)

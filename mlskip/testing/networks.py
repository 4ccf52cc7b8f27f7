"""Random networks and row-group-like regions for benchmarks and side-by-side checks."""

from __future__ import annotations

import numpy as np

from mlskip.verifier.network import Network
from mlskip.verifier.regions import RegionBatch


def make_net(rng: np.random.Generator, sizes: tuple[int, ...]) -> Network:
    """A ReLU MLP of layer ``sizes`` with He-scaled Gaussian weights and small biases."""
    ws = [
        (rng.normal(size=(o, i)) * np.sqrt(2.0 / i), rng.normal(size=o) * 0.1)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return Network.mlp(ws)


def make_regions(rng: np.random.Generator, n: int, d: int, polygons: bool) -> RegionBatch:
    """``n`` boxes in about [-1, 1]^d, half-widths from 0.01 to 0.5 per column; with
    ``polygons``, an 8-gon on inputs (0, 1) per box, like a hull summary."""
    c = rng.uniform(-1, 1, size=(n, d))
    r = 10 ** rng.uniform(-2.0, -0.3, size=(n, d))
    lo, hi = c - r, c + r
    if not polygons:
        return RegionBatch(lo, hi)
    # an 8-gon circumscribing an ellipse inside the (0, 1) face, like a hull summary
    ang = np.arange(8) * (np.pi / 4) + rng.uniform(0, np.pi / 4, size=(n, 1))
    A = np.stack([np.cos(ang), np.sin(ang)], -1)
    b = np.einsum("nmt,nt->nm", A, c[:, :2]) + 0.7 * np.einsum("nmt,nt->nm", np.abs(A), r[:, :2])
    return RegionBatch(lo, hi, pairs=((0, 1),), halfspaces=((A, b),))

"""Interval bound propagation: the cheapest sound method.

Each layer's ``ibp`` rule maps a box to a box; the first affine map is
minimised exactly over the region (polygons included). Every affine output
is widened by the float64 bound margin of fp_margin.py.
"""

# ruff: noqa: E741 -- l / u are the standard names for lower / upper bounds

from __future__ import annotations

import numpy as np

from .concretize import region_min
from .fp_margin import bound_margin, margin_magnitudes
from .network import Network
from .regions import RegionBatch


def first_layer_bounds(net: Network, regions: RegionBatch) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of the first affine map over each region (box or box ∩ polygons)."""
    a0 = net.affines[0]
    if not regions.has_polygons:
        return a0.ibp(regions.lower, regions.upper)
    n = regions.n
    rows = np.concatenate([a0.W, -a0.W])
    A = np.broadcast_to(rows, (n, *rows.shape))
    c = np.broadcast_to(np.concatenate([a0.b, -a0.b]), (n, rows.shape[0]))
    m = region_min(A, c, regions)
    h = a0.out_features
    return m[:, :h], -m[:, h:]


def ibp_layers(net: Network, regions: RegionBatch) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sound bounds ``(l, u)`` of every affine output (last = network output)."""
    mags = margin_magnitudes(net, regions.lower, regions.upper)
    out = []
    with np.errstate(over="ignore", invalid="ignore"):
        l, u = first_layer_bounds(net, regions)
        for i, a in enumerate(net.affines):
            if i:
                pl, pu = net.activations[i - 1].ibp(l, u)
                l, u = a.ibp(pl, pu)
            m = bound_margin(net, mags, i)
            l, u = l - m, u + m
            out.append((l, u))
    return out


IBP_CHUNK = 2048  # regions per pass over plain boxes: work arrays stay in cache


def ibp_bounds(net: Network, regions: RegionBatch) -> tuple[np.ndarray, np.ndarray]:
    """Sound output bounds ``[n, k]`` of ``net`` over ``regions`` by IBP."""
    n = regions.n
    if regions.has_polygons or n <= IBP_CHUNK:
        return ibp_layers(net, regions)[-1]
    parts = [
        ibp_layers(
            net, RegionBatch(regions.lower[s : s + IBP_CHUNK], regions.upper[s : s + IBP_CHUNK])
        )[-1]
        for s in range(0, n, IBP_CHUNK)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

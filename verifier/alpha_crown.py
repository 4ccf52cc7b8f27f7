"""alpha-CROWN: CROWN with lower ReLU slopes optimised by projected gradient.

Any lower slope in ``[alpha, 1]`` of an unstable (Leaky)ReLU gives a valid
relaxation, so the bound is sound for every slope vector; we optimise the
slopes of the final backward pass, separately per region and output row,
with Adam in torch (float64, batched over regions), keep the CROWN
intermediate bounds, and recompute the final bound with the optimised
slopes in numpy (over box ∩ polygons, with the float64 margin). The result
is intersected with CROWN's, so it is never looser. S-shaped activations
keep their CROWN relaxation. torch is imported only when this runs.
"""

from __future__ import annotations

import time

import numpy as np

from .concretize import region_min
from .crown import Bounds, Relaxation, _bias_dot, crown_layers
from .fp_margin import bound_margin, scalar_magnitudes
from .network import Network
from .regions import RegionBatch


def _backward_alpha(
    net: Network, rows: np.ndarray, relax: list[Relaxation], alphas: list, regions: RegionBatch
) -> np.ndarray:
    """Lower bounds of ``rows @ z_L`` with per-row lower slopes ``alphas[j] [n, m, h]``."""
    n = regions.n
    last = net.affines[-1]
    lam = np.broadcast_to(rows @ last.W, (n, rows.shape[0], last.W.shape[1])).copy()
    bias = np.broadcast_to(rows @ last.b, (n, rows.shape[0])).copy()
    for j in range(len(net.activations) - 1, -1, -1):
        al, bl, au, bu = relax[j]
        slope_l = alphas[j] if alphas[j] is not None else al[:, None, :]
        pos = lam > 0
        bias += _bias_dot(np.where(pos, 0.0, lam), bu)
        if bl is not None:
            bias += _bias_dot(np.where(pos, lam, 0.0), bl)
        lam = lam * np.where(pos, slope_l, au[:, None, :])
        W, b = net.affines[j].W, net.affines[j].b
        bias += lam @ b
        lam = lam @ W
    with np.errstate(invalid="ignore", over="ignore"):
        out = region_min(lam, bias, regions)
    return np.where(np.isnan(out), -np.inf, out)


def alpha_crown_bounds(
    net: Network,
    regions: RegionBatch,
    iters: int = 20,
    lr: float = 0.2,
    deadline: float | None = None,
) -> Bounds:
    """Sound output bounds ``[n, k]``, at least as tight as CROWN's."""
    import torch

    bounds, relax = crown_layers(net, regions)
    cl, cu = bounds[-1]
    if not net.activations:
        return cl, cu
    n, k = regions.n, net.num_outputs
    rows = np.concatenate([np.eye(k), -np.eye(k)])
    m = rows.shape[0]
    finite = (
        np.isfinite(regions.lower).all()
        and np.isfinite(regions.upper).all()
        and all(np.isfinite(r[3]).all() for r in relax)
    )
    if not finite:
        return cl, cu
    dt = torch.float64
    tl = torch.tensor(np.array(regions.lower), dtype=dt)
    tu = torch.tensor(np.array(regions.upper), dtype=dt)
    c, r = (tl + tu) / 2, (tu - tl) / 2
    params, ranges = [], []
    for j, act in enumerate(net.activations):
        rng_ = act.lower_slope_range(*bounds[j])
        if rng_ is None:
            params.append(None)
            ranges.append(None)
            continue
        init = np.broadcast_to(relax[j][0][:, None, :], (n, m, relax[j][0].shape[1]))
        params.append(torch.tensor(init.copy(), dtype=dt, requires_grad=True))
        ranges.append(
            (
                torch.as_tensor(rng_[0], dtype=dt)[:, None, :],
                torch.as_tensor(rng_[1], dtype=dt)[:, None, :],
            )
        )
    opt_params = [p for p in params if p is not None]
    if not opt_params:
        return cl, cu
    T = [
        (torch.tensor(np.array(a.W), dtype=dt), torch.tensor(np.array(a.b), dtype=dt))
        for a in net.affines
    ]
    R = [tuple(None if x is None else torch.as_tensor(x, dtype=dt) for x in rel) for rel in relax]
    trows = torch.as_tensor(rows, dtype=dt)
    opt = torch.optim.Adam(opt_params, lr=lr)
    best = None
    best_val = torch.full((n, m), -torch.inf, dtype=dt)
    for it in range(iters):
        if it and deadline is not None and time.perf_counter() >= deadline:
            break  # the best slopes so far are valid
        lam = (trows @ T[-1][0]).expand(n, m, -1)
        bias = (trows @ T[-1][1]).expand(n, m)
        for j in range(len(net.activations) - 1, -1, -1):
            al, bl, au, bu = R[j]
            sl = params[j] if params[j] is not None else al[:, None, :]
            lp, ln = lam.clamp(min=0), lam.clamp(max=0)
            bias = bias + (ln * bu[:, None, :]).sum(-1)
            if bl is not None:
                bias = bias + (lp * bl[:, None, :]).sum(-1)
            lam = lp * sl + ln * au[:, None, :]
            bias = bias + lam @ T[j][1]
            lam = lam @ T[j][0]
        lower = (lam @ c[:, :, None]).squeeze(-1) - (lam.abs() @ r[:, :, None]).squeeze(-1) + bias
        with torch.no_grad():
            better = lower > best_val
            if best is None:
                best = [None if p is None else p.detach().clone() for p in params]
            for p, bp in zip(params, best, strict=True):
                if p is not None:
                    bp[better] = p.detach()[better]
            best_val = torch.where(better, lower.detach(), best_val)
        opt.zero_grad()
        (-lower.sum()).backward()
        opt.step()
        with torch.no_grad():
            for p, rg in zip(params, ranges, strict=True):
                if p is not None:
                    p.copy_(torch.maximum(torch.minimum(p, rg[1]), rg[0]))
    alphas = [None if b is None else b.numpy() for b in best]
    lo = _backward_alpha(net, rows, relax, alphas, regions)
    mags = scalar_magnitudes(net, regions.lower, regions.upper)
    mg = bound_margin(net, mags, len(net.affines) - 1)
    al_, au_ = lo[:, :k] - mg, -lo[:, k:] + mg
    return np.maximum(al_, cl), np.minimum(au_, cu)

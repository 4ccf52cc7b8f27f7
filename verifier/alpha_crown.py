"""alpha-CROWN: CROWN with the lower ReLU slopes optimised by projected gradient.

Any lower slope in ``[alpha, 1]`` gives a valid lower line of a (Leaky)ReLU
with negative slope ``alpha`` on the *whole* real line (``max(x, alpha x) >=
s x`` for every x), so a bound is sound for every slope vector; only the
upper chord depends on the pre-activation bounds. Modes:

- ``"full"`` (default, the alpha-CROWN paper): every hidden layer's bounds
  are recomputed by a backward pass with its *own* free slopes for every
  unstable neuron below it, and the output bound uses free slopes in every
  layer; tighter intermediate bounds give tighter chords. All slopes are
  optimised jointly for the output bound (gradients flow through the
  intermediate bounds into the chords).
- ``"final"``: intermediate bounds stay CROWN's; the output bound's backward
  pass has free slopes in every layer.
- ``"last"``: only the last hidden layer's slopes are free.

Each output row (lower bound of ``y_k`` and of ``-y_k``) is optimised as its
own problem (regions are replicated per row), with Adam in torch (float64,
batched over regions, box concretisation) and projection onto ``[alpha,
1]``; stable neurons keep their exact slope. The best slopes are then
replayed in numpy in float64 (over box ∩ polygons, every intermediate and
final bound widened by the margin of fp_margin.py and intersected with
CROWN's), so the optimisation itself needs no soundness. Sigmoid/tanh keep
their CROWN relaxations (recomputed from the tighter bounds in the replay).
torch is imported only when this runs.
"""

# ruff: noqa: E741 -- l / u are the standard names for lower / upper bounds

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np

from .concretize import region_min
from .crown import Bounds, Relaxation, _bias_dot, crown_layers
from .deadline import Deadline
from .fp_margin import bound_margin, scalar_magnitudes
from .layers import LeakyReLU
from .network import Network
from .regions import RegionBatch

MODES = ("full", "final", "last")


def _free_slopes(net: Network, mode: str) -> set[tuple[int, int]]:
    """``(i, j)``: the pass bounding affine output ``i`` has free slopes at activation ``j``."""
    L = len(net.affines)
    leaky = [j for j, a in enumerate(net.activations) if isinstance(a, LeakyReLU)]
    if mode == "last":
        return {(L - 1, L - 2)} if (L - 2) in leaky else set()
    targets = range(1, L) if mode == "full" else [L - 1]
    return {(i, j) for i in targets for j in leaky if j < i}


def _slope(act: Any, l: np.ndarray, u: np.ndarray, al: np.ndarray, free: np.ndarray | None):
    """Lower slopes ``[n, R, h]`` (or ``[n, 1, h]``): the free ones clipped to
    ``[alpha, 1]`` where the neuron is unstable, the relaxation's elsewhere."""
    if free is None:
        return al[:, None, :]
    a = float(act.alpha)
    unstable = ((l < 0) & (u > 0))[:, None, :]
    return np.where(unstable, np.clip(np.nan_to_num(free, nan=1.0), a, 1.0), al[:, None, :])


def _backward_np(
    net: Network,
    upto: int,
    lam: np.ndarray,
    bias: np.ndarray,
    bounds: list[Bounds],
    relax: list[Relaxation],
    alphas: dict[tuple[int, int], np.ndarray],
    regions: RegionBatch,
    overlap_lp: bool = False,
) -> np.ndarray:
    """Lower bounds ``[n, R]`` of ``lam_top . a_{upto-1} + bias`` (``lam [n, R, h]``,
    already multiplied into affine ``upto``) with the given lower slopes
    (``overlap_lp``: concretised over box ∩ all polygons, concretize.region_min)."""
    for j in range(upto - 1, -1, -1):
        al, bl, au, bu = relax[j]
        sl = _slope(net.activations[j], *bounds[j], al, alphas.get((upto, j)))
        pos = lam > 0
        bias = bias + _bias_dot(np.where(pos, 0.0, lam), bu)
        if bl is not None:
            bias = bias + _bias_dot(np.where(pos, lam, 0.0), bl)
        lam = lam * np.where(pos, sl, au[:, None, :])
        W, b = net.affines[j].W, net.affines[j].b
        bias = bias + lam @ b
        n, R, h = lam.shape
        lam = (lam.reshape(n * R, h) @ W).reshape(n, R, W.shape[1])
    with np.errstate(invalid="ignore", over="ignore"):
        out = region_min(lam, bias, regions, overlap_lp)
    return np.where(np.isnan(out), -np.inf, out)


def replay(
    net: Network,
    regions: RegionBatch,
    crown: list[Bounds],
    final_rows: np.ndarray,
    alphas: dict[tuple[int, int], np.ndarray],
    overlap_lp: bool = False,
) -> np.ndarray:
    """Sound float64 lower bounds ``[n]`` of ``final_rows[r] . z_L`` with the slopes ``alphas``.

    Intermediate bounds are recomputed (for targets that have slopes in
    ``alphas``) by backward passes over box ∩ polygons, widened by the float64
    margin and intersected with CROWN's ``crown``; relaxations are rebuilt
    from them (valid for any slopes, see the module doc).
    """
    L = len(net.affines)
    mags = scalar_magnitudes(net, regions.lower, regions.upper)
    bounds: list[Bounds] = [crown[0]]
    relax: list[Relaxation] = []
    n = regions.n
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(1, L):
            relax.append(net.activations[i - 1].relax(*bounds[i - 1]))
            a = net.affines[i]
            if i < L - 1:
                l, u = crown[i]
                if any(t == i for t, _ in alphas):
                    h = a.out_features
                    rows = np.concatenate([np.eye(h), -np.eye(h)])
                    lam = np.broadcast_to(rows @ a.W, (n, 2 * h, a.in_features)).copy()
                    bias = np.broadcast_to(rows @ a.b, (n, 2 * h)).copy()
                    lo = _backward_np(net, i, lam, bias, bounds, relax, alphas, regions)
                    mg = bound_margin(net, mags, i)
                    l = np.maximum(l, lo[:, :h] - mg)
                    u = np.minimum(u, -lo[:, h:] + mg)
                bounds.append((l, u))
            else:
                lam = final_rows @ a.W  # [n, 1, h]
                bias = final_rows @ a.b  # [n, 1]
                lo = _backward_np(net, i, lam, bias, bounds, relax, alphas, regions, overlap_lp)
                lo = lo[:, 0]
                # rows are +-unit vectors: the per-neuron margin of the output layer
                return lo - bound_margin(net, mags, i)[:, 0]
    raise AssertionError("unreachable")  # pragma: no cover


def alpha_crown_bounds(
    net: Network,
    regions: RegionBatch,
    iters: int = 20,
    lr: float = 0.2,
    deadline: Deadline | None = None,
    mode: str = "full",
    overlap_lp: bool = False,
) -> Bounds:
    """Sound output bounds ``[n, k]``, at least as tight as CROWN's (see the module doc).

    ``overlap_lp``: the replayed output bound is minimised over box ∩ all polygons
    by certified LP where pairs overlap (concretize.lp_min)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    bounds, relax = crown_layers(net, regions)
    cl, cu = bounds[-1]
    if len(net.affines) >= 3:  # plain CROWN's final bound may be tighter (crown_bounds)
        pl, pu = crown_layers(net, regions, ibp_clip=False)[0][-1]
        with np.errstate(invalid="ignore"):
            cl, cu = np.fmax(cl, pl), np.fmin(cu, pu)
    if not net.activations:
        return cl, cu
    finite = (
        np.isfinite(regions.lower).all()
        and np.isfinite(regions.upper).all()
        and all(np.isfinite(b[0]).all() and np.isfinite(b[1]).all() for b in bounds)
        and all(np.isfinite(r[3]).all() for r in relax)
    )
    free = _free_slopes(net, mode)
    if not finite or not free or regions.n == 0:
        return cl, cu
    n, k = regions.n, net.num_outputs
    rows = np.concatenate([np.eye(k), -np.eye(k)])
    m = rows.shape[0]
    rep = np.repeat(np.arange(n), m)  # replica q bounds row q % m of region q // m
    RR = regions.subset(rep)
    B = [(l[rep], u[rep]) for l, u in bounds]
    REL = [tuple(None if x is None else x[rep] for x in r) for r in relax]
    final_rows = rows[np.tile(np.arange(m), n)][:, None, :]  # [N, 1, k]
    with _torch_single_thread():
        alphas = _optimise(net, RR, B, REL, final_rows, free, iters, lr, deadline)
    lo = replay(net, RR, B, final_rows, alphas, overlap_lp).reshape(n, m)
    return np.maximum(cl, lo[:, :k]), np.minimum(cu, -lo[:, k:])


@contextmanager
def _torch_single_thread():
    """torch single-threaded for the slope optimisation: its thread pool on small
    tensors on a shared 2-core machine was measured 10x slower (0.43 s vs 7.3 s at load 9)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _optimise(
    net: Network,
    regions: RegionBatch,
    bounds: list[Bounds],
    relax: list[Relaxation],
    final_rows: np.ndarray,
    free: set[tuple[int, int]],
    iters: int,
    lr: float,
    deadline: Deadline | None,
) -> dict[tuple[int, int], np.ndarray]:
    """Projected Adam on the free slopes (torch, float64, box concretisation);
    returns the best slopes per replica (any values are sound, see ``replay``)."""
    import torch

    dt = torch.float64
    N = regions.n
    L = len(net.affines)
    acts = net.activations

    def T(x: np.ndarray | None):
        return None if x is None else torch.tensor(np.asarray(x), dtype=dt)

    tl, tu = T(regions.lower), T(regions.upper)
    c, r = (tl + tu) / 2, (tu - tl) / 2
    W = [(T(a.W), T(a.b)) for a in net.affines]
    crown_t = [(T(l), T(u)) for l, u in bounds]
    rel_t = [tuple(T(x) for x in rel) for rel in relax]
    targets = sorted({i for i, _ in free})
    params: dict[tuple[int, int], Any] = {}
    for i, j in sorted(free):
        R = 2 * net.affines[i].out_features if i < L - 1 else 1
        init = np.broadcast_to(relax[j][0][:, None, :], (N, R, relax[j][0].shape[1]))
        params[(i, j)] = torch.tensor(init, dtype=dt, requires_grad=True)
    lows = {j: float(a.alpha) for j, a in enumerate(acts) if isinstance(a, LeakyReLU)}

    def leaky_relax(j: int, l, u):
        a = lows[j]
        up, q = u.clamp(min=0), (-l).clamp(min=0)
        ch = up / (up + q).clamp(min=1e-300)
        al = a + (1 - a) * (up > q).to(dt)
        return al, None, a + (1 - a) * ch, (1 - a) * ch * q

    def backward(i: int, lam, bias, tb, tr):
        for j in range(i - 1, -1, -1):
            al, bl, au, bu = tr[j]
            p = params.get((i, j))
            if p is None:
                sl = al[:, None, :]
            else:
                l, u = tb[j]
                a = lows[j]
                sl = torch.where((l >= 0)[:, None, :], 1.0, torch.where((u <= 0)[:, None, :], a, p))
            lp, ln = lam.clamp(min=0), lam.clamp(max=0)
            bias = bias + (ln * bu[:, None, :]).sum(-1)
            if bl is not None:
                bias = bias + (lp * bl[:, None, :]).sum(-1)
            lam = lp * sl + ln * au[:, None, :]
            bias = bias + lam @ W[j][1]
            lam = lam @ W[j][0]
        return (lam @ c[:, :, None]).squeeze(-1) - (lam.abs() @ r[:, :, None]).squeeze(-1) + bias

    frows = T(final_rows)

    def objective():
        tb = [crown_t[0]]
        tr = []
        for i in range(1, L):
            j = i - 1
            if j in lows and j in targets:
                tr.append(leaky_relax(j, *tb[j]))  # chords follow the tightened bounds
            else:
                tr.append(rel_t[j])
            if i < L - 1:
                l, u = crown_t[i]
                if i in targets:
                    h = net.affines[i].out_features
                    eye = torch.eye(h, dtype=dt)
                    rows = torch.cat([eye, -eye])
                    lam = (rows @ W[i][0]).expand(N, -1, -1)
                    low = backward(i, lam, (rows @ W[i][1]).expand(N, -1), tb, tr)
                    # clipped to the CROWN bound in value, but the gradient passes
                    # straight through to the optimised bound (torch.maximum would stop
                    # it wherever the clip binds, and the slopes would stall there)
                    lo_opt, hi_opt = low[:, :h], -low[:, h:]
                    l = lo_opt + (torch.maximum(l, lo_opt) - lo_opt).detach()
                    u = hi_opt + (torch.minimum(u, hi_opt) - hi_opt).detach()
                tb.append((l, u))
            else:
                low = backward(i, frows @ W[i][0], (frows @ W[i][1]), tb, tr)
                return low[:, 0]
        raise AssertionError("unreachable")  # pragma: no cover

    opt = torch.optim.Adam(list(params.values()), lr=lr)
    best = {key: p.detach().clone() for key, p in params.items()}
    best_val = torch.full((N,), -torch.inf, dtype=dt)
    for it in range(iters):
        if it and deadline is not None and deadline.passed():
            break  # the best slopes so far are valid
        lower = objective()
        with torch.no_grad():
            better = lower > best_val
            for key, p in params.items():
                best[key][better] = p.detach()[better]
            best_val = torch.where(better, lower.detach(), best_val)
        opt.zero_grad()
        (-lower.sum()).backward()
        opt.step()
        with torch.no_grad():
            for (_, j), p in params.items():
                p.clamp_(min=lows[j], max=1.0)
    return {key: b.numpy() for key, b in best.items()}

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
own problem (regions are replicated per row), with Adam in torch (float32
unless the magnitudes need float64, batched over regions, box concretisation;
auto_LiRPA's rate and decay) and projection onto ``[alpha, 1]``; stable neurons
keep their exact slope, and an intermediate layer gets rows and slopes only for
neurons unstable in some replica (one slope serves a neuron's upper and lower
row where the two meet the layer below with opposite signs). With two or more hidden layers, a second start (auto_LiRPA's: plain
CROWN bounds, optimised intermediate bounds not clipped) runs in the same
batch, and each box keeps the tighter result. The best slopes are then
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
from .fp_margin import bound_margin, margin_magnitudes
from .layers import LeakyReLU
from .network import Network
from .regions import RegionBatch
from .slope_search import LR, SlopeSearch

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
    mags = margin_magnitudes(net, regions.lower, regions.upper)
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
                # rows are +-unit vectors: the largest per-neuron margin of the output layer
                return lo - bound_margin(net, mags, i).max(axis=1)
    raise AssertionError("unreachable")  # pragma: no cover


def alpha_crown_bounds(
    net: Network,
    regions: RegionBatch,
    iters: int = 20,
    lr: float = LR,
    deadline: Deadline | None = None,
    mode: str = "full",
    overlap_lp: bool = False,
) -> Bounds:
    """Sound output bounds ``[n, k]``, at least as tight as CROWN's (see the module doc).

    With two or more hidden layers and ``mode="full"``, two starts are optimised side by
    side and each box keeps the tighter bound: ours (from the IBP-clipped CROWN bounds,
    optimised intermediate bounds clipped to them) and auto_LiRPA's default recipe (from
    plain CROWN bounds, intermediate bounds not clipped). Neither dominates: tighter
    intermediate bounds can lead to a looser optimum. The learning rate and its decay
    are auto_LiRPA's. ``overlap_lp``: the replayed output bound is minimised over
    box ∩ all polygons by certified LP where pairs overlap (concretize.lp_min)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    bounds, relax = crown_layers(net, regions)
    cl, cu = bounds[-1]
    starts = [(bounds, relax, True)]
    if len(net.affines) >= 3:  # plain CROWN's bounds differ (crown_bounds' clip="both")
        plain, plain_relax = crown_layers(net, regions, ibp_clip=False)
        pl, pu = plain[-1]
        with np.errstate(invalid="ignore"):
            cl, cu = np.fmax(cl, pl), np.fmin(cu, pu)
        if mode == "full":
            starts.append((plain, plain_relax, False))
    if not net.activations or regions.n == 0:
        return cl, cu
    lo = _optimised(net, regions, starts, mode, iters, lr, deadline, overlap_lp)
    if lo is None:
        return cl, cu
    k = net.num_outputs
    return np.maximum(cl, lo[:, :k]), np.minimum(cu, -lo[:, k:])


def _optimised(
    net: Network,
    regions: RegionBatch,
    starts: list[tuple[list[Bounds], list[Relaxation], bool]],
    mode: str,
    iters: int,
    lr: float,
    deadline: Deadline | None,
    overlap_lp: bool,
) -> np.ndarray | None:
    """The best replayed lower bounds ``[n, 2k]`` of ``+y`` and ``-y`` over the ``starts``
    (layer bounds, relaxations, whether optimised intermediate bounds are clipped to
    them), optimised in one batch; None when nothing can be optimised (no free slope, or
    infinite bounds)."""
    free = _free_slopes(net, mode)
    finite_regions = np.isfinite(regions.lower).all() and np.isfinite(regions.upper).all()
    starts = [
        st
        for st in starts
        if all(np.isfinite(b[0]).all() and np.isfinite(b[1]).all() for b in st[0])
        and all(np.isfinite(r[3]).all() for r in st[1])
    ]
    if not free or not finite_regions or not starts:
        return None
    n, k = regions.n, net.num_outputs
    rows = np.concatenate([np.eye(k), -np.eye(k)])
    m = rows.shape[0]
    S = len(starts)
    # replica q bounds row q % m of region (q // m) % n, from start q // (n m)
    one = np.repeat(np.arange(n), m)
    RR = regions.subset(np.tile(one, S))

    def stacked(parts: list) -> np.ndarray | None:
        return None if parts[0] is None else np.concatenate([p[one] for p in parts])

    B = [
        tuple(stacked([st[0][i][t] for st in starts]) for t in range(2))
        for i in range(len(starts[0][0]))
    ]
    REL = [
        tuple(stacked([st[1][j][t] for st in starts]) for t in range(4))
        for j in range(len(starts[0][1]))
    ]
    clip = np.repeat(np.array([st[2] for st in starts]), n * m)
    final_rows = rows[np.tile(np.arange(m), n * S)][:, None, :]  # [N, 1, k]
    with _torch_search_mode():
        search = SlopeSearch(net, RR, B, REL, final_rows, free, clip)
        alphas = search.dense(search.run(iters, lr, deadline))
    lo = replay(net, RR, B, final_rows, alphas, overlap_lp).reshape(S, n, m)
    return lo.max(axis=0)


@contextmanager
def _torch_search_mode():
    """torch single-threaded for the slope optimisation: its thread pool on small
    tensors on a shared 2-core machine was measured 10x slower (0.43 s vs 7.3 s at load 9).
    Subnormals flush to zero meanwhile (Adam's second moments of tiny gradients are
    subnormal and slow); the replay that makes the bounds runs after, with IEEE
    arithmetic restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(before)

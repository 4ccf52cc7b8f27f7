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

MODES = ("full", "final", "last")
# auto_LiRPA's defaults (optimized_bounds.py: lr_alpha 0.5, lr_decay 0.98 per iteration)
LR = 0.5
LR_DECAY = 0.98


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
        alphas = _optimise(net, RR, B, REL, final_rows, free, iters, lr, deadline, clip)
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


# float32 resolves an optimisation whose inputs, weights and layer bounds stay well inside
# its range and whose boxes are not narrow against their centres (a box 1e-3 of its
# magnitude wide keeps ~14 bits of its width); it halves the memory traffic
F32_MAX = 1e30
F32_MIN_RELATIVE_WIDTH = 1e-3


def _search_in_float32(net: Network, regions: RegionBatch, bounds: list[Bounds]) -> bool:
    """Whether the slope search may run in float32. Only the search: the bounds are
    replayed in float64 with margins, so this choice moves tightness, never soundness."""
    lo, hi = regions.lower, regions.upper
    width, size = hi - lo, np.maximum(np.abs(lo), np.abs(hi))
    if np.any((width > 0) & (width < F32_MIN_RELATIVE_WIDTH * size)):
        return False
    arrays = [lo, hi, *(x for a in net.affines for x in (a.W, a.b))]
    arrays += [x for b in bounds for x in b]
    return all(np.all(np.abs(x) < F32_MAX) for x in arrays)


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
    clip: np.ndarray,
) -> dict[tuple[int, int], np.ndarray]:
    """Projected Adam on the free slopes (torch, box concretisation; float32 where it
    resolves the problem, see ``_search_in_float32``); returns the best slopes per
    replica (any values are sound, see ``replay``)."""
    import torch

    dt = torch.float32 if _search_in_float32(net, regions, bounds) else torch.float64
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
    # an intermediate layer's optimised bounds only matter at neurons that are unstable
    # in some replica (elsewhere the relaxation is exact): rows and slopes for those only
    unstable = {
        i: np.flatnonzero(((bounds[i][0] < 0) & (bounds[i][1] > 0)).any(axis=0))
        for i in targets
        if i < L - 1
    }
    # The first step down from an intermediate target i (to activation i - 1) meets the
    # rows +-W_i[u]: row +u takes its lower slope where W_i[u] > 0, row -u where
    # W_i[u] < 0, so one slope per (neuron u, neuron below) serves both rows ("shared").
    shared = {(i, j) for i, j in free if i < L - 1 and j == i - 1}
    params: dict[tuple[int, int], Any] = {}
    for i, j in sorted(free):
        R = (1 if (i, j) in shared else 2) * len(unstable[i]) if i < L - 1 else 1
        if R == 0:
            continue
        init = np.broadcast_to(relax[j][0][:, None, :], (N, R, relax[j][0].shape[1]))
        params[(i, j)] = torch.tensor(init, dtype=dt, requires_grad=True)
    lows = {j: float(a.alpha) for j, a in enumerate(acts) if isinstance(a, LeakyReLU)}
    # activation j's bounds stay fixed while optimising unless layer j is a target:
    # there the stable neurons' slopes are constants, chosen by masks made once
    static = {}
    for j, a in lows.items():
        if j not in targets:
            l, u = crown_t[j]
            fixed = torch.where(l >= 0, 1.0, torch.where(u <= 0, a, 0.0))
            static[j] = (((l < 0) & (u > 0)).to(dt)[:, None, :], fixed[:, None, :])

    def leaky_relax(j: int, l, u):
        a = lows[j]
        up, q = u.clamp(min=0), (-l).clamp(min=0)
        ch = up / (up + q).clamp(min=1e-300)
        al = a + (1 - a) * (up > q).to(dt)
        return al, None, a + (1 - a) * ch, (1 - a) * ch * q

    def slopes(j: int, p, tb):
        """Lower slopes of activation j: the free ``p`` where the neuron is unstable."""
        if j in static:
            unstable_mask, fixed = static[j]
            return p * unstable_mask + fixed
        l, u = tb[j]
        return torch.where((l >= 0)[:, None, :], 1.0, torch.where((u <= 0)[:, None, :], lows[j], p))

    def first_step(i: int, U, tb, tr):
        """``lam`` and ``bias`` after the shared step from the rows +-e_u (u in U) of
        target i down through activation i - 1 and affine i - 1."""
        j = i - 1
        al, bl, au, bu = tr[j]
        Wu, bu_i = W[i][0][U], W[i][1][U]
        P, Ng = Wu.clamp(min=0), Wu.clamp(max=0)
        sl = slopes(j, params[(i, j)], tb)
        au3 = au[:, None, :]
        lam = torch.cat([P * sl + Ng * au3, -(Ng * sl + P * au3)], dim=1)
        bias = torch.cat([bu @ Ng.T + bu_i, -(bu @ P.T) - bu_i], dim=1)
        if bl is not None:
            bias = bias + torch.cat([bl @ P.T, -(bl @ Ng.T)], dim=1)
        bias = bias + lam @ W[j][1]
        return lam @ W[j][0], bias

    def backward(i: int, lam, bias, tb, tr, start: int | None = None):
        for j in range(i - 1 if start is None else start, -1, -1):
            al, bl, au, bu = tr[j]
            p = params.get((i, j))
            sl = al[:, None, :] if p is None else slopes(j, p, tb)
            lp, ln = lam.clamp(min=0), lam.clamp(max=0)
            bias = bias + (ln * bu[:, None, :]).sum(-1)
            if bl is not None:
                bias = bias + (lp * bl[:, None, :]).sum(-1)
            lam = lp * sl + ln * au[:, None, :]
            bias = bias + lam @ W[j][1]
            lam = lam @ W[j][0]
        return (lam @ c[:, :, None]).squeeze(-1) - (lam.abs() @ r[:, :, None]).squeeze(-1) + bias

    frows = T(final_rows)
    clipped = torch.tensor(np.asarray(clip, dtype=bool))[:, None]  # per replica

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
                if i in targets and len(unstable[i]):
                    U = torch.tensor(unstable[i])
                    if (i, i - 1) in params:
                        lam, bias = first_step(i, U, tb, tr)
                        low = backward(i, lam, bias, tb, tr, start=i - 2)
                    else:
                        eye = torch.eye(net.affines[i].out_features, dtype=dt)[U]
                        rows = torch.cat([eye, -eye])
                        lam = (rows @ W[i][0]).expand(N, -1, -1)
                        low = backward(i, lam, (rows @ W[i][1]).expand(N, -1), tb, tr)
                    # clipped to the starting bound in value where the replica's start
                    # says so, but the gradient passes straight through to the optimised
                    # bound (torch.maximum would stop it wherever the clip binds, and the
                    # slopes would stall there)
                    nu = len(U)
                    lo_opt, hi_opt = low[:, :nu], -low[:, nu:]
                    lu, uu = l[:, U], u[:, U]
                    lo_opt = torch.where(
                        clipped, lo_opt + (torch.maximum(lu, lo_opt) - lo_opt).detach(), lo_opt
                    )
                    hi_opt = torch.where(
                        clipped, hi_opt + (torch.minimum(uu, hi_opt) - hi_opt).detach(), hi_opt
                    )
                    l, u = l.index_copy(1, U, lo_opt), u.index_copy(1, U, hi_opt)
                tb.append((l, u))
            else:
                low = backward(i, frows @ W[i][0], (frows @ W[i][1]), tb, tr)
                return low[:, 0]
        raise AssertionError("unreachable")  # pragma: no cover

    opt = torch.optim.Adam(list(params.values()), lr=lr, fused=True)
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, LR_DECAY)
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
        schedule.step()
    dense = {}
    for (i, j), b in best.items():
        if i < L - 1:  # back to a row per bound of every neuron, as replay reads them
            h = net.affines[i].out_features
            full = np.repeat(relax[j][0][:, None, :], 2 * h, axis=1)
            b = b.numpy()
            if (i, j) in shared:  # the same slopes for both rows of a neuron (see above)
                b = np.concatenate([b, b], axis=1)
            full[:, np.concatenate([unstable[i], h + unstable[i]])] = b
            dense[(i, j)] = full
        else:
            dense[(i, j)] = b.numpy()
    return dense

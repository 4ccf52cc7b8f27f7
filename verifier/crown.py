"""CROWN: backward linear relaxation, batched over regions.

For an affine output ``z_i`` we propagate linear coefficients ``Lam``
backwards: through an affine map ``Lam <- Lam W`` (bias ``+= Lam b``);
through an activation, each neuron is replaced by its lower relaxation
where the coefficient is positive and by its upper one where it is
negative (for a lower bound). The result ``Lam x + c`` is minimised over
the region (concretize.py; exact over boxes and box ∩ polygons). Upper
bounds are lower bounds of the negated rows, computed in the same pass.

Intermediate pre-activation bounds come from CROWN itself (layer by
layer), intersected with IBP on the tightened boxes so that CROWN is never
looser than IBP. Every bound is widened by the float64 margin of
fp_margin.py before it is used to build a relaxation.

Speed: everything is matmul/einsum over the region axis. The first step
of each backward pass has coefficients shared by all regions, so it is
folded into the next weight matrix as one large GEMM instead of
materialising ``[n, m, h]`` arrays. Regions are processed in chunks.
"""

# ruff: noqa: E741 -- l / u are the standard names for lower / upper bounds

from __future__ import annotations

import weakref

import numpy as np

from .concretize import region_min
from .fp_margin import bound_margin, scalar_magnitudes
from .ibp import first_layer_bounds
from .layers import LeakyReLU
from .network import Network
from .regions import RegionBatch

Bounds = tuple[np.ndarray, np.ndarray]
Relaxation = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
CHUNK_ELEMENTS = 1_000_000


def _bias_dot(coef: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``sum_h coef[n, m, h] * beta[n, h]`` treating 0 * inf as 0."""
    if np.isfinite(beta).all():
        return np.einsum("nmh,nh->nm", coef, beta)
    fin = np.where(np.isfinite(beta), beta, 0.0)
    out = np.einsum("nmh,nh->nm", coef, fin)
    hit = (coef != 0) & ~np.isfinite(beta)[:, None, :]
    with np.errstate(invalid="ignore"):
        inf_part = np.where(
            hit, coef * np.where(np.isfinite(beta), 0.0, beta)[:, None, :], 0.0
        ).sum(-1)
    return out + inf_part


def _bias_dot_shared(beta: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``beta [n, h] @ coef.T`` for shared ``coef [m, h]``, treating 0 * inf as 0."""
    if np.isfinite(beta).all():
        return beta @ coef.T
    fin = np.where(np.isfinite(beta), beta, 0.0)
    out = fin @ coef.T
    pinf = (beta == np.inf).astype(np.float64)
    ninf = (beta == -np.inf).astype(np.float64)
    up = pinf @ (coef > 0).T + ninf @ (coef < 0).T
    down = pinf @ (coef < 0).T + ninf @ (coef > 0).T
    with np.errstate(invalid="ignore"):
        out = np.where(up > 0, np.inf, out)
        out = np.where(down > 0, np.where(up > 0, np.nan, -np.inf), out)
    return out


def _shared_step(lam: np.ndarray, rel: Relaxation, W: np.ndarray, b: np.ndarray, n: int):
    """One backward step through an activation and the affine map before it,
    for coefficients ``lam [m, h]`` shared by all regions -> ``([n, m, hin], bias [n, m])``.

    ``sum_h lam+[m,h] al[n,h] W[h,:]`` is ``al @ T+`` with ``T+`` built once
    from weights only, so no ``[n, m, h]`` array is ever formed.
    """
    al, bl, au, bu = rel
    m, h = lam.shape
    hin = W.shape[1]
    lp, ln = np.maximum(lam, 0.0), np.minimum(lam, 0.0)
    Tp = np.concatenate(
        [(lp[:, :, None] * W[None]).transpose(1, 0, 2).reshape(h, m * hin), (lp * b).T], axis=1
    )
    Tn = np.concatenate(
        [(ln[:, :, None] * W[None]).transpose(1, 0, 2).reshape(h, m * hin), (ln * b).T], axis=1
    )
    out = al @ Tp
    out += au @ Tn
    bias = out[:, m * hin :]
    bias += _bias_dot_shared(bu, ln)
    if bl is not None:
        bias += _bias_dot_shared(bl, lp)
    return out[:, : m * hin].reshape(n, m, hin), bias


def _batched_step(lam: np.ndarray, rel: Relaxation, W: np.ndarray, b: np.ndarray):
    """The same step for per-region coefficients ``lam [n, m, h]``."""
    al, bl, au, bu = rel
    n, m, h = lam.shape
    pos = lam > 0
    bias = _bias_dot(np.where(pos, 0.0, lam), bu)
    if bl is not None:
        bias += _bias_dot(np.where(pos, lam, 0.0), bl)
    lam = lam * np.where(pos, al[:, None, :], au[:, None, :])
    bias += lam @ b
    return (lam.reshape(n * m, h) @ W).reshape(n, m, W.shape[1]), bias


def backward_lower(
    net: Network,
    upto: int,
    rows: np.ndarray,
    row_bias: np.ndarray,
    relax: list[Relaxation],
    regions: RegionBatch,
    final_relax: Relaxation | None = None,
) -> np.ndarray:
    """Lower bounds ``[n, m]`` of ``rows @ z_upto + row_bias`` over the regions.

    ``rows [m, h_upto]`` are shared by all regions; ``relax[j]`` is the
    relaxation ``(al, bl, au, bu)`` of activation ``j`` for these regions.
    ``final_relax`` (alpha-CROWN style) overrides the relaxation of the
    activation just below ``upto`` with per-row slopes ``[n, m, h]``.
    """
    n = regions.n
    a_top = net.affines[upto]
    lam = rows @ a_top.W  # [m, h_{upto-1}], shared by all regions
    bias = np.broadcast_to(rows @ a_top.b + row_bias, (n, rows.shape[0])).copy()
    if upto == 0:
        lam = np.broadcast_to(lam, (n, *lam.shape))
    for j in range(upto - 1, -1, -1):
        W, b = net.affines[j].W, net.affines[j].b
        if j == upto - 1:
            lam, db = _shared_step(lam, relax[j], W, b, n)
        else:
            lam, db = _batched_step(lam, relax[j], W, b)
        bias += db
    with np.errstate(invalid="ignore", over="ignore"):
        out = region_min(lam, bias, regions)
    return np.where(np.isnan(out), -np.inf, out)


def _pair_bounds(net, upto, rows, bias, relax, regions) -> Bounds:
    both = np.concatenate([rows, -rows])
    bb = np.concatenate([bias, -bias])
    lo = backward_lower(net, upto, both, bb, relax, regions)
    m = rows.shape[0]
    return lo[:, :m], -lo[:, m:]


def crown_layers(
    net: Network,
    regions: RegionBatch,
    polygon_intermediate: bool = True,
) -> tuple[list[Bounds], list[Relaxation]]:
    """Sound bounds of every affine output and the relaxations used, for one chunk."""
    mags = scalar_magnitudes(net, regions.lower, regions.upper)
    inter = regions if polygon_intermediate else RegionBatch(regions.lower, regions.upper)
    bounds: list[Bounds] = []
    relax: list[Relaxation] = []
    L = len(net.affines)
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(L):
            a = net.affines[i]
            if i == 0:
                l, u = first_layer_bounds(net, inter if i < L - 1 else regions)
            else:
                pl, pu = net.activations[i - 1].ibp(*bounds[-1])
                il, iu = a.ibp(pl, pu)
                rows = np.eye(a.out_features)
                cl, cu = _pair_bounds(
                    net, i, rows, np.zeros(a.out_features), relax, inter if i < L - 1 else regions
                )
                l, u = np.maximum(il, cl), np.minimum(iu, cu)
            m = bound_margin(net, mags, i)
            l, u = l - m, u + m
            bounds.append((l, u))
            if i < L - 1:
                relax.append(net.activations[i].relax(l, u))
    return bounds, relax


def _chunks(net: Network, n: int) -> int:
    """Regions per chunk: keeps the largest per-region work array near CHUNK_ELEMENTS."""
    sizes = [net.num_inputs] + [a.out_features for a in net.affines]
    per = max(2 * sizes[i + 1] * sizes[i] for i in range(len(sizes) - 1))
    if len(sizes) > 3:  # deeper nets form [n, 2h, h] coefficient arrays
        per = max(per, max(2 * h * h for h in sizes[1:-1]))
    return max(64, min(n, CHUNK_ELEMENTS // per))


class _OneHidden:
    """Weights-only quantities of the one-hidden-layer fast path, built once per network.

    For rows ``[W2; -W2]`` (lower bounds of the outputs and of their
    negations) the backward step through the activation and the first affine
    map is ``al @ Tp + au @ Tn`` (coefficients on x, then the bias), plus
    ``bu @ Bn`` for the upper intercepts: exactly ``_shared_step``.
    """

    def __init__(self, net: Network) -> None:
        a0, a1 = net.affines
        self.W0T = np.ascontiguousarray(a0.W.T)
        self.absW0T = np.abs(self.W0T)
        self.b0 = a0.b
        m, h = a1.W.shape
        d = a0.in_features
        lam = np.concatenate([a1.W, -a1.W])  # [2m, h]
        lp, ln = np.maximum(lam, 0.0), np.minimum(lam, 0.0)

        def fold(c: np.ndarray) -> np.ndarray:  # [2m, h] -> [h, 2m*d + 2m]
            coef = (c[:, :, None] * a0.W[None]).transpose(1, 0, 2).reshape(h, 2 * m * d)
            return np.ascontiguousarray(np.concatenate([coef, (c * a0.b).T], axis=1))

        self.Tp, self.Tn = fold(lp), fold(ln)
        self.Bn = np.ascontiguousarray(ln.T)  # [h, 2m]
        self.const = np.concatenate([a1.b, -a1.b])  # [2m]
        W1p, W1n = np.maximum(a1.W, 0.0), np.minimum(a1.W, 0.0)
        # IBP of the last map from post-activation bounds pl, pu:
        # [lo | hi] = pl @ [W1p | W1n].T + pu @ [W1n | W1p].T + b1
        self.Pl = np.ascontiguousarray(np.concatenate([W1p, W1n]).T)  # [h, 2m]
        self.Pu = np.ascontiguousarray(np.concatenate([W1n, W1p]).T)
        self.b1 = a1.b
        self.m, self.d = m, d


_ONE_HIDDEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
FAST_CHUNK = 2048  # regions per chunk: [chunk, h] work arrays stay in L2


def _one_hidden_ok(net: Network, regions: RegionBatch, polygon_intermediate: bool) -> bool:
    return (
        len(net.affines) == 2
        and isinstance(net.activations[0], LeakyReLU)
        and not (polygon_intermediate and regions.has_polygons)
        and bool(np.isfinite(regions.lower).all() and np.isfinite(regions.upper).all())
    )


def _crown_one_hidden(net: Network, regions: RegionBatch) -> Bounds:
    """``crown_layers(net, regions)[0][-1]`` for ``affine . (Leaky)ReLU . affine`` on finite boxes.

    The same bounds by the same rules (first layer exact over the box,
    the activation's relaxation, one backward step, IBP intersected, the
    same float64 margins), organised for speed: weight-only products are
    precomputed, every work array is ``[chunk, h]`` and stays in cache, and
    the final linear bound is concretised once for the whole batch.
    Where a first-layer bound is not finite (overflow on huge boxes) the
    general path is used for the chunk.
    """
    fp = _ONE_HIDDEN.get(net)
    if fp is None:
        fp = _ONE_HIDDEN[net] = _OneHidden(net)
    act = net.activations[0]
    n, d, m = regions.n, fp.d, fp.m
    lo_all, hi_all = regions.lower, regions.upper
    mags = scalar_magnitudes(net, lo_all, hi_all)
    m0 = bound_margin(net, mags, 0)  # [n, 1]
    m1 = bound_margin(net, mags, 1)
    G = np.empty((n, fp.Tp.shape[1]))  # coefficients on x, then intercepts (2m rows)
    ibp = np.empty((n, 2 * m))  # IBP [lo | hi] of the outputs
    cut = 2 * m * d
    slow: list[tuple[int, int]] = []
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, n, FAST_CHUNK):
            e = min(n, s + FAST_CHUNK)
            lo, hi = lo_all[s:e], hi_all[s:e]
            c = lo + hi
            c *= 0.5
            r = hi - lo
            r *= 0.5
            mid = c @ fp.W0T
            mid += fp.b0
            rad = r @ fp.absW0T
            rad += m0[s:e]  # the float64 margin of the first layer
            l = mid - rad
            u = np.add(mid, rad, out=mid)
            if not np.isfinite(l.sum() + u.sum()):  # overflow somewhere: general path
                slow.append((s, e))
                G[s:e] = 0.0
                ibp[s:e] = 0.0
                continue
            al, _, au, bu = act.relax_finite(l, u)
            g = np.matmul(al, fp.Tp, out=G[s:e])
            g += au @ fp.Tn
            g[:, cut:] += bu @ fp.Bn
            t = np.matmul(act.forward(l), fp.Pl, out=ibp[s:e])
            t += act.forward(u) @ fp.Pu
            t[:, :m] += fp.b1
            t[:, m:] += fp.b1
        lam = G[:, :cut].reshape(n, 2 * m, d)
        bias = G[:, cut:] + fp.const
        cl = region_min(lam, bias, regions)
    cl = np.where(np.isnan(cl), -np.inf, cl)
    l = np.maximum(ibp[:, :m], cl[:, :m])
    u = np.minimum(ibp[:, m:], -cl[:, m:])
    l -= m1
    u += m1
    for s, e in slow:
        l[s:e], u[s:e] = crown_layers(net, regions.subset(np.arange(s, e)), False)[0][-1]
    return l, u


def crown_bounds(
    net: Network, regions: RegionBatch, polygon_intermediate: bool = False, fast: bool = True
) -> Bounds:
    """Sound output bounds ``[n, k]`` of ``net`` over ``regions`` by CROWN.

    Polygons always shape the final bound; ``polygon_intermediate`` also uses
    them for hidden-layer bounds (tighter, several times slower). ``fast``
    uses the one-hidden-layer fast path where it applies (same bounds).
    """
    n = regions.n
    if fast and n and _one_hidden_ok(net, regions, polygon_intermediate):
        return _crown_one_hidden(net, regions)
    step = _chunks(net, n)
    if step >= n:
        return crown_layers(net, regions, polygon_intermediate)[0][-1]
    los, his = [], []
    for s in range(0, n, step):
        b = crown_layers(net, regions.subset(np.arange(s, min(n, s + step))), polygon_intermediate)[
            0
        ][-1]
        los.append(b[0])
        his.append(b[1])
    return np.concatenate(los), np.concatenate(his)

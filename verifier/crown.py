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
One-hidden-layer (Leaky)ReLU networks on finite boxes (the common filter
model) take ``_crown_one_hidden``: the same rules and margins, with the
single backward step folded into precomputed weight products and the work
laid out with regions on the last axis (tested equal to the general path).
"""

# ruff: noqa: E741 -- l / u are the standard names for lower / upper bounds

from __future__ import annotations

import weakref

import numpy as np

from .concretize import region_min
from .fp_margin import bound_margin, margin_magnitudes, row_max, scalar_magnitudes
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
    overlap_lp: bool = False,
) -> np.ndarray:
    """Lower bounds ``[n, m]`` of ``rows @ z_upto + row_bias`` over the regions.

    ``rows [m, h_upto]`` are shared by all regions; ``relax[j]`` is the
    relaxation ``(al, bl, au, bu)`` of activation ``j`` for these regions.
    ``final_relax`` (alpha-CROWN style) overrides the relaxation of the
    activation just below ``upto`` with per-row slopes ``[n, m, h]``.
    ``overlap_lp``: concretise over box ∩ all polygons by LP where pairs overlap.
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
        out = region_min(lam, bias, regions, overlap_lp)
    return np.where(np.isnan(out), -np.inf, out)


def _pair_bounds(net, upto, rows, bias, relax, regions, overlap_lp: bool = False) -> Bounds:
    both = np.concatenate([rows, -rows])
    bb = np.concatenate([bias, -bias])
    lo = backward_lower(net, upto, both, bb, relax, regions, overlap_lp=overlap_lp)
    m = rows.shape[0]
    return lo[:, :m], -lo[:, m:]


def crown_layers(
    net: Network,
    regions: RegionBatch,
    polygon_intermediate: bool = True,
    overlap_lp: bool = False,
    ibp_clip: bool = True,
) -> tuple[list[Bounds], list[Relaxation]]:
    """Sound bounds of every affine output and the relaxations used, for one chunk.

    ``overlap_lp``: the final bound is also minimised over box ∩ all polygons by
    LP where pairs overlap (concretize.lp_min); intermediate bounds are not.
    ``ibp_clip``: each layer's CROWN bound is intersected with the interval bound from
    the layer before (tighter in most regions, but tighter intermediate bounds change the
    relaxations and can make a later linear bound looser: ``crown_bounds`` takes both).
    """
    mags = margin_magnitudes(net, regions.lower, regions.upper)
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
                last = i == L - 1
                cl, cu = _pair_bounds(
                    net,
                    i,
                    rows,
                    np.zeros(a.out_features),
                    relax,
                    regions if last else inter,
                    overlap_lp and last,
                )
                l, u = (np.maximum(il, cl), np.minimum(iu, cu)) if ibp_clip else (cl, cu)
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

    The fast path works transposed (regions on the last axis, so every
    per-region quantity is a contiguous row). For rows ``[W2; -W2]`` (lower
    bounds of the outputs and of their negations) the backward step through
    the activation and the first affine map is ``TpT @ al + TnT @ au``
    (coefficients on x, then the intercepts), plus ``BnT @ bu`` for the
    upper intercepts: exactly ``_shared_step``.
    """

    def __init__(self, net: Network) -> None:
        a0, a1 = net.affines
        m, h = a1.W.shape
        d = a0.in_features
        # [mid; rad] = Wcr @ [c; 1; r; m0]: the first layer's centre and radius over
        # the box, its bias and the float64 margin of its bounds folded in
        self.Wcr = np.zeros((2 * h, 2 * d + 2))
        self.Wcr[:h, :d] = a0.W
        self.Wcr[:h, d] = a0.b
        self.Wcr[h:, d + 1 : 2 * d + 1] = np.abs(a0.W)
        self.Wcr[h:, 2 * d + 1] = 1.0
        lam = np.concatenate([a1.W, -a1.W])  # [2m, h]
        lp, ln = np.maximum(lam, 0.0), np.minimum(lam, 0.0)

        def fold(c: np.ndarray) -> np.ndarray:  # [2m, h] -> [2m*d + 2m, h]
            coef = (c[:, :, None] * a0.W[None]).transpose(0, 2, 1).reshape(2 * m * d, h)
            return np.ascontiguousarray(np.concatenate([coef, c * a0.b]))

        self.TpT, self.TnT = fold(lp), fold(ln)
        self.BnT = np.ascontiguousarray(ln)  # [2m, h]
        self.const = np.concatenate([a1.b, -a1.b])  # [2m]
        W1p, W1n = np.maximum(a1.W, 0.0), np.minimum(a1.W, 0.0)
        # IBP of the last map from post-activation bounds pl, pu:
        # [lo; hi] = [W1p; W1n] @ pl + [W1n; W1p] @ pu + b1
        self.PlT = np.ascontiguousarray(np.concatenate([W1p, W1n]))  # [2m, h]
        self.PuT = np.ascontiguousarray(np.concatenate([W1n, W1p]))
        self.b1 = a1.b
        self.m, self.d, self.h = m, d, h
        self.chunk = int(min(4096, max(256, 16384 // h)))  # [h, chunk] work arrays in cache


_ONE_HIDDEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
SAFE_MAGNITUDE = 1e300  # below this, no first-layer quantity of the fast path can overflow


def _one_hidden_ok(net: Network, regions: RegionBatch, polygon_intermediate: bool) -> bool:
    return (
        len(net.affines) == 2
        and isinstance(net.activations[0], LeakyReLU)
        and not (polygon_intermediate and regions.has_polygons)
        and bool(np.isfinite(regions.lower).all() and np.isfinite(regions.upper).all())
    )


def _crown_one_hidden(net: Network, regions: RegionBatch, overlap_lp: bool = False) -> Bounds:
    """``crown_layers(net, regions)[0][-1]`` for ``affine . (Leaky)ReLU . affine`` on finite boxes.

    The same bounds by the same rules (first layer exact over the box, the
    activation's relaxation, one backward step, IBP intersected, the same
    float64 margins), organised for speed: weight-only products are
    precomputed, the work runs transposed in chunks that stay in cache, and
    the final linear bound is concretised once for the whole batch on
    contiguous rows. Regions whose magnitudes could overflow (``|x|`` or the
    first layer's magnitude bound above ``SAFE_MAGNITUDE``) take the general
    path.
    """
    fp = _ONE_HIDDEN.get(net)
    if fp is None:
        fp = _ONE_HIDDEN[net] = _OneHidden(net)
    lo_all, hi_all = regions.lower, regions.upper
    n, d, m, h = regions.n, fp.d, fp.m, fp.h
    mags = scalar_magnitudes(net, lo_all, hi_all)
    with np.errstate(over="ignore", invalid="ignore"):
        xmax = row_max(np.maximum(np.abs(lo_all), np.abs(hi_all)))[:, 0]
        safe = (xmax < SAFE_MAGNITUDE) & (mags[0][:, 0] < SAFE_MAGNITUDE)
    if not safe.all():
        out_l = np.empty((n, m))
        out_u = np.empty((n, m))
        ok = np.flatnonzero(safe)
        bad = np.flatnonzero(~safe)
        if len(ok):
            out_l[ok], out_u[ok] = _crown_one_hidden(net, regions.subset(ok), overlap_lp)
        out_l[bad], out_u[bad] = crown_layers(net, regions.subset(bad), False, overlap_lp)[0][-1]
        return out_l, out_u
    m0 = bound_margin(net, mags, 0)[:, 0]
    m1 = bound_margin(net, mags, 1)  # [n, 1]
    CR = np.empty((2 * d + 2, n))  # rows: centre, 1, radius, first-layer margin
    np.add(lo_all.T, hi_all.T, out=CR[:d])
    CR[:d] *= 0.5
    CR[d] = 1.0
    np.subtract(hi_all.T, lo_all.T, out=CR[d + 1 : 2 * d + 1])
    CR[d + 1 : 2 * d + 1] *= 0.5
    CR[2 * d + 1] = m0
    cut = 2 * m * d
    GT = np.empty((cut + 2 * m, n))  # coefficients on x (row k*d + j), then intercepts
    IB = np.empty((2 * m, n))  # IBP [lo; hi] of the outputs
    act = net.activations[0]
    step = fp.chunk
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, n, step):
            e = min(n, s + step)
            MR = fp.Wcr @ CR[:, s:e]  # [2h, c]: [mid; rad + margin]
            mid, rad = MR[:h], MR[h:]
            l = mid - rad
            u = np.add(mid, rad, out=mid)
            al, au, bu, pl, pu = act.relax_and_image(l, u)
            g = fp.TpT @ al
            g += fp.TnT @ au
            g[cut:] += fp.BnT @ bu
            GT[:, s:e] = g
            t = fp.PlT @ pl
            t += fp.PuT @ pu
            IB[:, s:e] = t
        IB[:m] += fp.b1[:, None]
        IB[m:] += fp.b1[:, None]
        bias = GT[cut:]
        bias += fp.const[:, None]
        if regions.has_polygons:
            lam = GT[:cut].T.reshape(n, 2 * m, d)
            cl = region_min(lam, np.ascontiguousarray(bias.T), regions, overlap_lp).T
        else:  # min over the box, row by row: sum_j lam_j c_j - |lam_j| r_j
            cl = bias.copy()
            tmp = np.empty(n)
            for k in range(2 * m):
                acc = cl[k]
                for j in range(d):
                    coef = GT[k * d + j]
                    acc += np.multiply(coef, CR[j], out=tmp)
                    acc -= np.multiply(np.abs(coef, out=tmp), CR[d + 1 + j], out=tmp)
        cl = np.where(np.isnan(cl), -np.inf, cl)
    l = np.maximum(IB[:m], cl[:m]).T
    u = np.minimum(IB[m:], np.negative(cl[m:])).T
    l -= m1
    u += m1
    return l, u


def crown_bounds(
    net: Network,
    regions: RegionBatch,
    polygon_intermediate: bool = False,
    fast: bool = True,
    overlap_lp: bool = False,
    clip: str = "both",
) -> Bounds:
    """Sound output bounds ``[n, k]`` of ``net`` over ``regions`` by CROWN.

    ``clip``: hidden-layer bounds intersected with interval bounds (``"ibp"``), plain
    CROWN's (``"plain"``, as auto_LiRPA computes them), or the tighter final bound of
    the two (``"both"``: never looser than either; twice the work with two or more
    hidden layers, where they differ).

    Polygons always shape the final bound; ``polygon_intermediate`` also uses
    them for hidden-layer bounds (tighter, several times slower). ``fast``
    uses the one-hidden-layer fast path where it applies (same bounds).
    ``overlap_lp`` also minimises the final linear bound over box ∩ all
    polygons by LP where pairs overlap (an LP per region: for regions still
    UNKNOWN after the cheap pass).
    """
    n = regions.n
    if fast and n and _one_hidden_ok(net, regions, polygon_intermediate):
        return _crown_one_hidden(net, regions, overlap_lp)
    step = _chunks(net, n)
    if step >= n:
        return _final_bounds(net, regions, polygon_intermediate, overlap_lp, clip)
    los, his = [], []
    for s in range(0, n, step):
        sub = regions.subset(np.arange(s, min(n, s + step)))
        b = _final_bounds(net, sub, polygon_intermediate, overlap_lp, clip)
        los.append(b[0])
        his.append(b[1])
    return np.concatenate(los), np.concatenate(his)


def _final_bounds(
    net: Network, regions: RegionBatch, polygon_intermediate: bool, overlap_lp: bool, clip: str
) -> Bounds:
    """The output bounds of one chunk (see ``crown_bounds``' ``clip``)."""
    if clip not in ("both", "ibp", "plain"):
        raise ValueError(f"clip must be 'both', 'ibp' or 'plain', got {clip!r}")
    deep = len(net.affines) >= 3  # with one hidden layer the two coincide
    if clip == "plain" and deep:
        return crown_layers(net, regions, polygon_intermediate, overlap_lp, ibp_clip=False)[0][-1]
    l, u = crown_layers(net, regions, polygon_intermediate, overlap_lp)[0][-1]
    if clip == "both" and deep:
        l2, u2 = crown_layers(net, regions, polygon_intermediate, overlap_lp, ibp_clip=False)[0][-1]
        with np.errstate(invalid="ignore"):
            l, u = np.fmax(l, l2), np.fmin(u, u2)
    return l, u

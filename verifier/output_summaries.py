"""Verdicts from summaries of a model's outputs, for that model and for models near it.

A model-aware summary says where a model f's outputs, as the runtime computed them when
the file was written, lie in a row group: intervals of output values (value models) or
the classes within a tolerance of the top score (classifiers). A query's runtime may sum
in another order, so its outputs differ from the summarized ones by at most twice the
evaluation error bound (``output_error``: each evaluation is within it of the exact
value). For another model g over the same inputs (a compressed variant, a retrained
version), ``deviation_bounds`` bounds ``f - g`` over the row group's region, and g's
outputs lie in f's intervals shifted by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .fp_margin import UNIT, eval_error, final_op_error
from .layers import Affine, LeakyReLU, linear_box_range
from .network import Network
from .predicate import ALL, NONE, UNKNOWN, Predicate
from .regions import RegionBatch
from .trees import TreeEnsemble

# how much a final op can move an output per unit of change in its inputs (max norm):
# sigmoid' <= 1/4; a softmax output moves at most half the largest change of a logit
FINAL_LIPSCHITZ = {None: 1.0, "sigmoid": 0.25, "softmax": 0.5}


def output_error(model: Network | TreeEnsemble, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Bound ``[n, k]`` on ``|computed - exact|`` of each output as SQL returns it (final op
    included), for any IEEE evaluation order, at every input of the boxes."""
    if isinstance(model, TreeEnsemble):
        from .tree_reach import eval_margin

        raw = np.broadcast_to(eval_margin(model), (lower.shape[0], model.num_outputs)).copy()
    else:
        raw = eval_error(model, lower, upper, "float32")
    return _through_final(raw, model.final)


def _through_final(raw: np.ndarray, final: str | None) -> np.ndarray:
    if final is None:
        return raw
    lip = FINAL_LIPSCHITZ[final]
    if final == "softmax":
        raw = np.broadcast_to(raw.max(axis=1, keepdims=True), raw.shape)
    with np.errstate(invalid="ignore"):
        return lip * raw + final_op_error("float32")


def _outward(v: np.ndarray, direction: float) -> np.ndarray:
    return np.nextafter(v, direction)


def value_verdicts(
    intervals: Sequence[np.ndarray],
    below: np.ndarray,
    above: np.ndarray,
    predicate: Predicate,
) -> np.ndarray:
    """Verdicts per row group whose outputs lie in ``[a - below, b + above]`` for one of
    its ``intervals`` ``[m, 2]`` of ``(a, b)``; UNKNOWN where a widening is not finite or
    the predicate is not a comparison of the single output."""
    n = len(intervals)
    out = np.full(n, UNKNOWN, dtype=np.int8)
    if predicate.op == "argmax" or predicate.coef is not None or predicate.output != 0:
        return out
    t, h, op = predicate.threshold, predicate.high, predicate.op
    for r, iv in enumerate(intervals):
        if not (np.isfinite(below[r]) and np.isfinite(above[r])) or not len(iv):
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            a = _outward(iv[:, 0] - below[r], -np.inf)
            b = _outward(iv[:, 1] + above[r], np.inf)
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        lo, hi = float(a.min()), float(b.max())
        if op == ">":
            meets, inside = b > t, lo > t
        elif op == ">=":
            meets, inside = b >= t, lo >= t
        elif op == "<":
            meets, inside = a < t, hi < t
        elif op == "<=":
            meets, inside = a <= t, hi <= t
        else:  # between
            meets, inside = (a <= h) & (b >= t), lo >= t and hi <= h
        if not np.any(meets):
            out[r] = NONE
        elif inside:
            out[r] = ALL
    return out


def class_verdicts(classes: Sequence[frozenset[int]], predicate: Predicate) -> np.ndarray:
    """Verdicts per row group of ``argmax = label`` from its possible classes."""
    out = np.full(len(classes), UNKNOWN, dtype=np.int8)
    if predicate.op != "argmax":
        return out
    for r, cs in enumerate(classes):
        if predicate.label not in cs:
            out[r] = NONE
        elif cs == {predicate.label}:
            out[r] = ALL
    return out


def _meets_inside(lo: np.ndarray, hi: np.ndarray, p: Predicate) -> tuple[np.ndarray, np.ndarray]:
    """Whether each interval ``[lo, hi]`` meets the predicate's set, and lies inside it."""
    t, h = p.threshold, p.high
    if p.op == ">":
        return hi > t, lo > t
    if p.op == ">=":
        return hi >= t, lo >= t
    if p.op == "<":
        return lo < t, hi < t
    if p.op == "<=":
        return lo <= t, hi <= t
    return (lo <= h) & (hi >= t), (lo >= t) & (hi <= h)


def final_bounds(
    model: Network | TreeEnsemble, regions: RegionBatch
) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds ``[n]`` on a single-output model's exact output (final op included)
    over each region: CROWN for networks, reachable leaves for tree ensembles."""
    if isinstance(model, TreeEnsemble):
        from .tree_reach import interval, reachable_leaves

        lo, hi = interval(model, np.eye(1), reachable_leaves(model, regions))
    else:
        from .crown import crown_bounds

        lo, hi = crown_bounds(model, regions)
    lo, hi = lo[:, 0], hi[:, 0]
    if model.final == "sigmoid":  # monotone; a few ulps for the float64 evaluation
        with np.errstate(over="ignore"):
            lo = np.nextafter(1.0 / (1.0 + np.exp(-lo)) - 4e-16, -np.inf)
            hi = np.nextafter(1.0 / (1.0 + np.exp(-hi)) + 4e-16, np.inf)
    return lo, hi


def reference_verdicts(
    f: Network | TreeEnsemble,
    g: Network | TreeEnsemble,
    intervals: Sequence[np.ndarray],
    e_f: np.ndarray,
    e_g: np.ndarray,
    regions: RegionBatch,
    predicate: Predicate,
    pieces: int,
    max_pieces: int | None = None,
) -> np.ndarray:
    """Verdicts for ``g`` from summaries of ``f``'s outputs.

    Each region is cut into ``pieces`` pieces. A piece matters only if ``f``'s bounds
    there (widened by ``e_f``) meet one of the region's ``intervals``: every row lies in
    such a piece, since its summarized output is in a bin. A piece that matters says
    *no* (``g``, widened by ``e_g``, misses the predicate), *yes* (holds on all of it) or
    *maybe*; maybe pieces are split in two (input-domain branch and bound) while the
    region has pieces left of ``max_pieces``. The region is pruned when every piece that
    matters says no, all-match when every one says yes."""
    n = regions.n
    out = np.full(n, UNKNOWN, dtype=np.int8)
    if predicate.op == "argmax" or predicate.coef is not None or predicate.output != 0:
        return out
    if f is None or g is None or f.num_outputs != 1 or g.num_outputs != 1:
        return out
    if f.final not in (None, "sigmoid") or g.final not in (None, "sigmoid"):
        return out
    usable = np.array([len(iv) > 0 for iv in intervals], bool) & np.isfinite(e_f)
    usable &= np.isfinite(e_g)
    limit = max(pieces, max_pieces or pieces)
    sub, owner = _grid_pieces(regions, pieces)
    keep = usable[owner]
    sub, owner = sub.subset(np.flatnonzero(keep)), owner[keep]
    spent = np.bincount(owner, minlength=n)
    no, yes, left_open = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    hit, miss = np.zeros(n, bool), np.zeros(n, bool)  # sampled rows: where to stop splitting
    width = np.where(np.isfinite(regions.upper - regions.lower), regions.upper - regions.lower, 0)
    joint = combinable(f, g)
    while sub.n:
        fl, fh = final_bounds(f, sub)
        gl, gh = final_bounds(g, sub)
        with np.errstate(invalid="ignore", over="ignore"):
            gl, gh = _down(gl - e_g[owner]), _up(gh + e_g[owner])
        dev = _deviation(f, g, sub) if joint else None
        matters, meets, inside = _piece_sides(
            (fl, fh), (gl, gh), dev, intervals, owner, (e_f, e_g), g.final, predicate
        )
        np.logical_or.at(no, owner[matters & ~meets], True)
        np.logical_or.at(yes, owner[matters & inside], True)
        maybe = matters & meets & ~inside
        _sample_centres(f, g, sub, owner, maybe, intervals, predicate, hit, miss)
        # a region with a row on each side (proven or sampled) cannot be decided
        hopeless = (no | miss) & (yes | hit)
        finite = np.isfinite(sub.lower).all(axis=1) & np.isfinite(sub.upper).all(axis=1)
        split = maybe & finite & ~hopeless[owner]
        wanted = np.bincount(owner[split], minlength=n)
        affords = spent + 2 * wanted <= limit
        split &= affords[owner]
        np.logical_or.at(left_open, owner[maybe & ~split], True)
        spent += 2 * np.bincount(owner[split], minlength=n)
        if not split.any():
            break
        sub, owner = _halves(regions, sub, owner[split], np.flatnonzero(split), width)
    decided = usable & ~left_open
    out[decided & no & ~yes] = NONE
    out[decided & yes & ~no] = ALL
    return out


def _piece_sides(
    f_bounds, g_bounds, dev, intervals: Sequence[np.ndarray], owner, errors, final, predicate
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per piece: whether it matters (``f``'s exact bounds there meet one of the region's
    intervals widened by ``f``'s error bound), whether ``g`` as the query computes it can
    meet the predicate there, and whether it holds throughout. ``g`` lies within its own
    bounds ``g_bounds`` (widened by its error bound already) and, where ``dev`` bounds
    ``f - g`` on the pieces, within the part of each interval that ``f`` reaches there,
    shifted by it (``g = f - d``; through a sigmoid by its Lipschitz bound) and widened by
    ``g``'s error bound."""
    fl, fh = f_bounds
    gl, gh = g_bounds
    e_f, e_g = errors
    n = len(fl)
    known = np.isfinite(fl) & np.isfinite(fh) & np.isfinite(gl) & np.isfinite(gh)
    matters, meets, inside = ~known, ~known, np.zeros(n, bool)
    if dev is not None:
        dl, dh = dev
        with np.errstate(invalid="ignore", over="ignore"):
            if final is None:
                below, above = _up(dh + e_g[owner]), _up(e_g[owner] - dl)  # g = f - d
            else:
                shift = _up(FINAL_LIPSCHITZ[final] * np.maximum(np.abs(dl), np.abs(dh)))
                below = above = _up(shift + e_g[owner])
        usable = dl <= dh  # NaN or an empty reach: no use
        below = np.where(usable, below, np.inf)
        above = np.where(usable, above, np.inf)
    order = np.argsort(owner, kind="stable")
    cuts = np.searchsorted(owner[order], np.arange(len(intervals) + 1))
    for r in np.unique(owner):
        mine = order[cuts[r] : cuts[r + 1]]
        mine = mine[known[mine]]
        if not len(mine):
            continue
        iv = intervals[r]
        with np.errstate(invalid="ignore", over="ignore"):
            lo = np.maximum(_down(iv[None, :, 0] - e_f[r]), fl[mine, None])  # [p, m]
            hi = np.minimum(_up(iv[None, :, 1] + e_f[r]), fh[mine, None])
            glo = np.broadcast_to(gl[mine, None], lo.shape)
            ghi = np.broadcast_to(gh[mine, None], lo.shape)
            if dev is not None:
                glo = np.fmax(_down(lo - below[mine, None]), glo)
                ghi = np.fmin(_up(hi + above[mine, None]), ghi)
        reach = (lo <= hi) & ~(glo > ghi)  # a part f reaches where g can be
        unknown = np.isnan(glo) | np.isnan(ghi)
        m_in, i_in = _meets_inside(glo, ghi, predicate)
        matters[mine] = reach.any(axis=1)
        meets[mine] = (reach & (m_in | unknown)).any(axis=1)
        inside[mine] = matters[mine] & (i_in & ~unknown | ~reach).all(axis=1)
    return matters, meets, inside


def _sample_centres(f, g, sub, owner, maybe, intervals, predicate, hit, miss) -> None:
    """Marks regions where the centre of an open piece has ``f`` strictly inside a bin and
    ``g`` on one side of the predicate: such a region likely holds rows on that side, so
    splitting cannot prove the other side. Guides the search only, never a verdict."""
    idx = np.flatnonzero(maybe)
    if not len(idx):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        c = 0.5 * sub.lower[idx] + 0.5 * sub.upper[idx]
        if not np.isfinite(c).all():
            idx, c = idx[np.isfinite(c).all(axis=1)], c[np.isfinite(c).all(axis=1)]
        fc = np.asarray(f.evaluate(c), dtype=np.float64)[:, 0]
        holds = predicate.holds(np.asarray(g.evaluate(c), dtype=np.float64))
    for k, r in zip(range(len(idx)), owner[idx], strict=True):
        iv = intervals[r]
        if ((fc[k] > iv[:, 0]) & (fc[k] < iv[:, 1])).any():
            if holds[k]:
                hit[r] = True
            else:
                miss[r] = True


def _halves(
    regions: RegionBatch, sub: RegionBatch, owner, idx, width
) -> tuple[RegionBatch, np.ndarray]:
    """Pieces ``idx`` of ``sub`` cut in two along the input widest relative to its region,
    each half's box shrunk to its part inside the region's polygons (halves without a
    point of the region dropped)."""
    lo, hi = sub.lower[idx], sub.upper[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(width[owner] > 0, (hi - lo) / width[owner], 0.0)
    dim = np.argmax(rel, axis=1)
    rows = np.arange(len(idx))
    mid = 0.5 * lo[rows, dim] + 0.5 * hi[rows, dim]
    hi_a, lo_b = hi.copy(), lo.copy()
    hi_a[rows, dim] = mid
    lo_b[rows, dim] = mid  # both halves hold the cut: every point stays covered
    out = regions.with_boxes(
        np.vstack([lo, lo_b]), np.vstack([hi_a, hi]), np.concatenate([owner, owner])
    )
    owners = np.concatenate([owner, owner])
    if out.has_polygons:
        from .concretize import tighten_or_empty

        out, empty = tighten_or_empty(out, np.concatenate([dim, dim]))
        live = np.flatnonzero(~empty)
        out, owners = out.subset(live), owners[live]
    return out, owners


# ---------------------------------------------------------------------- deviation
def deviation_bounds(
    f: Network | TreeEnsemble,
    g: Network | TreeEnsemble,
    regions: RegionBatch,
    pieces: int = 1,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Sound bounds ``[n]`` on ``f - g`` before their final ops (single-output models of
    the same inputs and final op) over each region, or None where this module cannot
    combine the two models (then g is verified on its own). ``pieces``: each region's box
    is cut into about that many equal pieces, those outside its polygons dropped, and
    bounded one by one (the bounds of small boxes are far tighter)."""
    if not combinable(f, g):
        return None
    if pieces > 1 and regions.n:
        sub, owner = _grid_pieces(regions, pieces)
        got = _deviation(f, g, sub)
        if got is None:
            return None
        lo, hi = np.full(regions.n, np.inf), np.full(regions.n, -np.inf)
        np.minimum.at(lo, owner, got[0])
        np.maximum.at(hi, owner, got[1])
        return lo, hi  # lo > hi: no piece survived (an empty region)
    return _deviation(f, g, regions)


def combinable(f: Network | TreeEnsemble | None, g: Network | TreeEnsemble | None) -> bool:
    """Whether ``deviation_bounds`` can bound ``f - g``: single-output models of the same
    inputs, kind and final op; ReLU networks, or tree ensembles of one precision."""
    if f is None or g is None:  # a model the verifier cannot read
        return False
    if f.num_inputs != g.num_inputs or f.num_outputs != 1 or g.num_outputs != 1:
        return False
    if f.final != g.final or type(f) is not type(g):
        return False
    if isinstance(f, TreeEnsemble):
        return f.precision == g.precision and f.num_features == g.num_features
    return _relu_only(f) and _relu_only(g)


def _grid_pieces(regions: RegionBatch, pieces: int) -> tuple[RegionBatch, np.ndarray]:
    """Each region's box cut into ``k`` equal parts along every finite input (``k^d`` about
    ``pieces``), pieces that provably miss the polygons dropped; and each piece's region."""
    from .concretize import tighten_or_empty

    n, d = regions.lower.shape
    k = max(1, int(np.floor(pieces ** (1.0 / d) + 1e-9)))
    grid = np.array(np.meshgrid(*[np.arange(k)] * d, indexing="ij")).reshape(d, -1).T  # [p, d]
    lo, hi = regions.lower, regions.upper
    finite = np.isfinite(lo) & np.isfinite(hi)
    with np.errstate(over="ignore", invalid="ignore"):
        step = np.where(finite, (hi - lo) / k, 0.0)
    p_lo = lo[:, None, :] + grid[None, :, :] * step[:, None, :]
    p_hi = lo[:, None, :] + (grid[None, :, :] + 1) * step[:, None, :]
    # cut points are rounded: neighbouring pieces overlap by a step; the outer ends are exact
    p_lo = np.where(grid[None] == 0, lo[:, None, :], np.nextafter(p_lo, -np.inf))
    p_hi = np.where(grid[None] == k - 1, hi[:, None, :], np.nextafter(p_hi, np.inf))
    # inputs that cannot be cut keep their whole range (and only their first slice)
    keep = (finite[:, None, :] | (grid[None] == 0)).all(axis=2)  # [n, p]
    p_lo = np.where(finite[:, None, :], p_lo, lo[:, None, :])
    p_hi = np.where(finite[:, None, :], p_hi, hi[:, None, :])
    owner = np.repeat(np.arange(n), grid.shape[0])[keep.ravel()]
    sub = regions.with_boxes(p_lo.reshape(-1, d)[keep.ravel()], p_hi.reshape(-1, d)[keep.ravel()],
                             owner)  # fmt: skip
    if sub.has_polygons:
        sub, empty = tighten_or_empty(sub)
        live = np.flatnonzero(~empty)
        sub, owner = sub.subset(live), owner[live]
    return sub, owner


def _deviation(f, g, regions: RegionBatch) -> tuple[np.ndarray, np.ndarray] | None:
    if isinstance(f, TreeEnsemble):
        return _tree_deviation(f, g, regions)
    diff = difference_network(f, g)
    if diff is None:
        return None
    from .crown import crown_bounds

    lo, hi = crown_bounds(diff, regions)
    lo, hi = lo[:, 0], hi[:, 0]
    if _aligned(f, g):
        alo, ahi = aligned_difference(f, g, regions)
        lo, hi = np.fmax(lo, alo), np.fmin(hi, ahi)
    return lo, hi


def _aligned(f: Network, g: Network) -> bool:
    """Same layers and widths, ReLU between them: neuron i of f matches neuron i of g
    (pruned weights, healed or fine-tuned copies)."""
    return (
        len(f.affines) == len(g.affines)
        and all(a.W.shape == b.W.shape for a, b in zip(f.affines, g.affines, strict=True))
        and _relu_only(f)
        and _relu_only(g)
    )


def _affine_interval(W: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Sound float64 bounds of ``W x + b`` over boxes: the exact range widened by the
    rounding of its sums (and of ``W``, ``b`` themselves when they are differences)."""
    from .fp_margin import gamma

    with np.errstate(over="ignore", invalid="ignore"):
        low, high = linear_box_range(W, b, lo, hi)
        mag = np.maximum(np.abs(lo), np.abs(hi)) @ np.abs(W).T + np.abs(b)
        m = 2.0 * gamma(W.shape[1] + 4, UNIT["float64"]) * mag + 1e-300
    return low - m, high + m


def aligned_difference(
    f: Network, g: Network, regions: RegionBatch
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``[n]`` on ``f - g`` for aligned ReLU networks, propagating the difference
    layer by layer (as ReluDiff, Paulsen et al. 2020, does with intervals): where the two
    differ little, their difference stays small even over wide boxes."""
    from .ibp import ibp_layers

    box = RegionBatch(regions.lower, regions.upper)
    zf, zg = ibp_layers(f, box), ibp_layers(g, box)
    fa, ga = f.affines, g.affines
    dl, dh = _affine_interval(fa[0].W - ga[0].W, fa[0].b - ga[0].b, box.lower, box.upper)
    for i in range(1, len(fa)):
        (lf, uf), (lg, ug) = zf[i - 1], zg[i - 1]
        dl, dh = np.fmax(dl, _down(lf - ug)), np.fmin(dh, _up(uf - lg))  # both sound
        relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
        # relu(a) - relu(b): monotone and 1-Lipschitz, exact where both are active
        hl = np.fmax(np.minimum(dl, 0.0), _down(relu(lf) - relu(ug)))
        hh = np.fmin(np.maximum(dh, 0.0), _up(relu(uf) - relu(lg)))
        both = (lf >= 0) & (lg >= 0)
        hl, hh = np.where(both, dl, hl), np.where(both, dh, hh)
        off = (uf <= 0) & (ug <= 0)
        hl, hh = np.where(off, 0.0, hl), np.where(off, 0.0, hh)
        Wd, bd = fa[i].W - ga[i].W, fa[i].b - ga[i].b
        zero = np.zeros_like(bd)
        # f - g = Wg (hf - hg) + (Wf - Wg) hf + (bf - bg) = Wf (hf - hg) + (Wf - Wg) hg + ...
        a_l, a_h = _affine_interval(ga[i].W, zero, hl, hh)
        b_l, b_h = _affine_interval(Wd, bd, relu(lf), relu(uf))
        c_l, c_h = _affine_interval(fa[i].W, zero, hl, hh)
        d_l, d_h = _affine_interval(Wd, bd, relu(lg), relu(ug))
        with np.errstate(invalid="ignore"):
            dl = np.fmax(_down(a_l + b_l), _down(c_l + d_l))
            dh = np.fmin(_up(a_h + b_h), _up(c_h + d_h))
    (lf, uf), (lg, ug) = zf[-1], zg[-1]
    dl, dh = np.fmax(dl, _down(lf - ug)), np.fmin(dh, _up(uf - lg))
    return dl[:, 0], dh[:, 0]


def _down(v: np.ndarray) -> np.ndarray:
    """One float64 step down: a rounded difference or sum becomes a lower bound."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.nextafter(v, -np.inf)


def _up(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.nextafter(v, np.inf)


def _relu_only(net: Network) -> bool:
    return all(isinstance(a, LeakyReLU) and a.alpha == 0.0 for a in net.activations)


def difference_network(f: Network, g: Network) -> Network | None:
    """One ReLU network computing ``f - g`` (pre-final), or None unless both are ReLU
    networks: the shallower one is carried through the extra layers as
    ``x = relu(x) - relu(-x)``."""
    if not (_relu_only(f) and _relu_only(g)):
        return None
    fa, ga = list(f.affines), list(g.affines)
    depth = max(len(fa), len(ga))
    fa, ga = _padded(fa, depth), _padded(ga, depth)
    layers = []
    for i, (a, b) in enumerate(zip(fa, ga, strict=True)):
        if i == 0:
            W = np.vstack([a.W, b.W])
        else:
            W = np.block(
                [
                    [a.W, np.zeros((a.W.shape[0], b.W.shape[1]))],
                    [np.zeros((b.W.shape[0], a.W.shape[1])), b.W],
                ]
            )
        layers.append((W, np.concatenate([a.b, b.b])))
    W, b = layers[-1]
    k = fa[-1].W.shape[0]
    last = np.hstack([np.eye(k), -np.eye(k)])
    layers[-1] = (last @ W, last @ b)  # exact: rows of +-1 picking one entry each
    return Network.mlp(layers, input_names=f.input_names)


def _padded(affines: list[Affine], depth: int) -> list[Affine]:
    """``affines`` extended to ``depth`` maps with ReLU between them, same function."""
    if len(affines) == depth:
        return affines
    last = affines[-1]
    k = last.W.shape[0]
    out = affines[:-1]
    # last map split as relu(z) and relu(-z), then identity pairs, then recombined
    out.append(Affine(np.vstack([last.W, -last.W]), np.concatenate([last.b, -last.b])))
    for _ in range(depth - len(affines) - 1):
        out.append(Affine(np.eye(2 * k), np.zeros(2 * k)))
    out.append(Affine(np.hstack([np.eye(k), -np.eye(k)]), np.zeros(k)))
    return out


def _tree_deviation(
    f: TreeEnsemble, g: TreeEnsemble, regions: RegionBatch
) -> tuple[np.ndarray, np.ndarray] | None:
    if f.precision != g.precision or f.num_features != g.num_features:
        return None
    from .tree_reach import interval, reachable_leaves
    from .trees import concatenate

    from_f, from_g = f.tree_dicts(), g.tree_dicts()
    diff = concatenate(
        from_f + [dict(t, value=-t["value"]) for t in from_g],
        base=f.base - g.base, num_features=f.num_features, final=None,
        precision=f.precision, input_names=f.input_names,
    )  # fmt: skip
    reach = reachable_leaves(diff, regions)
    lo, hi = interval(diff, np.eye(1), reach)
    return lo[:, 0], hi[:, 0]


__all__ = [
    "FINAL_LIPSCHITZ",
    "UNIT",
    "class_verdicts",
    "combinable",
    "deviation_bounds",
    "difference_network",
    "output_error",
    "value_verdicts",
]

"""alpha-CROWN's slope search: projected Adam on the free lower slopes of the
(Leaky)ReLUs, in torch, with box concretisation.

Any slopes are sound (alpha_crown.replay makes the bounds from them in float64 with
margins), so the search itself needs no soundness: it runs in float32 where the
magnitudes allow (``search_in_float32``). Intermediate targets get rows and slopes only
for neurons unstable in some replica; one slope serves a neuron's upper and lower row on
the first step below it ("shared": the rows +-W_i[u] take lower slopes on opposite sign
sets of the layer below). Where a replica's start says so, optimised intermediate bounds
are clipped to the start's bounds in value, with the gradient passing straight through.
torch is imported only when a search is built.
"""

# ruff: noqa: E741 -- l / u are the standard names for lower / upper bounds

from __future__ import annotations

from typing import Any

import numpy as np

from .crown import Bounds, Relaxation
from .deadline import Deadline
from .layers import LeakyReLU
from .network import Network
from .regions import RegionBatch

# auto_LiRPA's defaults (optimized_bounds.py: lr_alpha 0.5, lr_decay 0.98 per iteration)
LR = 0.5
LR_DECAY = 0.98
# float32 resolves a search whose inputs, weights and layer bounds stay well inside its
# range and whose boxes are not narrow against their centres (a box 1e-3 of its
# magnitude wide keeps ~14 bits of its width); it halves the memory traffic
SEARCH_F32_LIMIT = 1e30
F32_MIN_RELATIVE_WIDTH = 1e-3


def search_in_float32(net: Network, regions: RegionBatch, bounds: list[Bounds]) -> bool:
    """Whether the slope search may run in float32. Only the search: the bounds are
    replayed in float64 with margins, so this choice moves tightness, never soundness."""
    lo, hi = regions.lower, regions.upper
    width, size = hi - lo, np.maximum(np.abs(lo), np.abs(hi))
    if np.any((width > 0) & (width < F32_MIN_RELATIVE_WIDTH * size)):
        return False
    arrays = [lo, hi, *(x for a in net.affines for x in (a.W, a.b))]
    arrays += [x for b in bounds for x in b]
    return all(np.all(np.abs(x) < SEARCH_F32_LIMIT) for x in arrays)


class SlopeSearch:
    """The free slopes ``(i, j)`` (the pass bounding affine output i, activation j) of
    every replica, and the lower bound they give on each replica's final row."""

    def __init__(
        self,
        net: Network,
        regions: RegionBatch,
        bounds: list[Bounds],
        relax: list[Relaxation],
        final_rows: np.ndarray,
        free: set[tuple[int, int]],
        clip: np.ndarray,
    ) -> None:
        import torch

        self.torch = torch
        self.net, self.relax, self.free = net, relax, free
        self.dt = torch.float32 if search_in_float32(net, regions, bounds) else torch.float64
        self.N, self.L = regions.n, len(net.affines)
        tl, tu = self.tensor(regions.lower), self.tensor(regions.upper)
        self.c, self.r = (tl + tu) / 2, (tu - tl) / 2
        self.W = [(self.tensor(a.W), self.tensor(a.b)) for a in net.affines]
        self.crown = [(self.tensor(l), self.tensor(u)) for l, u in bounds]
        self.rel = [tuple(self.tensor(x) for x in rel) for rel in relax]
        self.final_rows = self.tensor(final_rows)
        self.clipped = torch.tensor(np.asarray(clip, dtype=bool))[:, None]  # per replica
        self.targets = sorted({i for i, _ in free})
        self.unstable = {
            i: np.flatnonzero(((bounds[i][0] < 0) & (bounds[i][1] > 0)).any(axis=0))
            for i in self.targets
            if i < self.L - 1
        }
        self.shared = {(i, j) for i, j in free if i < self.L - 1 and j == i - 1}
        self.lows = {
            j: float(a.alpha) for j, a in enumerate(net.activations) if isinstance(a, LeakyReLU)
        }
        self.params = self._initial_slopes()
        self.static = self._static_masks()

    def tensor(self, x: np.ndarray | None) -> Any:
        return None if x is None else self.torch.tensor(np.asarray(x), dtype=self.dt)

    def _initial_slopes(self) -> dict[tuple[int, int], Any]:
        """CROWN's lower slopes, as leaf tensors: a row per bound of each unstable neuron
        of an intermediate target (one per neuron where shared), one for the final row."""
        params = {}
        for i, j in sorted(self.free):
            if i == self.L - 1:
                R = 1
            else:
                R = len(self.unstable[i]) * (1 if (i, j) in self.shared else 2)
            if R == 0:
                continue
            al = self.relax[j][0]
            init = np.broadcast_to(al[:, None, :], (self.N, R, al.shape[1]))
            params[(i, j)] = self.torch.tensor(init, dtype=self.dt, requires_grad=True)
        return params

    def _static_masks(self) -> dict[int, tuple[Any, Any]]:
        """For activations whose bounds stay fixed (not a target): which neurons are
        unstable, and the constant slopes of the stable ones."""
        torch, static = self.torch, {}
        for j, a in self.lows.items():
            if j not in self.targets:
                l, u = self.crown[j]
                fixed = torch.where(l >= 0, 1.0, torch.where(u <= 0, a, 0.0))
                static[j] = (((l < 0) & (u > 0)).to(self.dt)[:, None, :], fixed[:, None, :])
        return static

    def _leaky_relax(self, j: int, l: Any, u: Any) -> tuple:
        a = self.lows[j]
        up, q = u.clamp(min=0), (-l).clamp(min=0)
        # a neuron with l = u = 0 has up + q = 0: its chord slope is 0, not 0 / 0 (in float32
        # 1e-300 is 0, so the floor is the dtype's smallest normal number there)
        floor = 1e-300 if self.dt == self.torch.float64 else self.torch.finfo(self.dt).tiny
        ch = up / (up + q).clamp(min=floor)
        al = a + (1 - a) * (up > q).to(self.dt)
        return al, None, a + (1 - a) * ch, (1 - a) * ch * q

    def _slopes(self, j: int, p: Any, tb: list) -> Any:
        """Lower slopes of activation j: the free ``p`` where the neuron is unstable."""
        if j in self.static:
            unstable_mask, fixed = self.static[j]
            return p * unstable_mask + fixed
        l, u = tb[j]
        where = self.torch.where
        return where((l >= 0)[:, None, :], 1.0, where((u <= 0)[:, None, :], self.lows[j], p))

    def _first_step(self, i: int, U: Any, tb: list, tr: list) -> tuple[Any, Any]:
        """``lam`` and ``bias`` after the shared step from the rows +-e_u (u in U) of
        target i down through activation i - 1 and affine i - 1."""
        torch, W, j = self.torch, self.W, i - 1
        _, bl, au, bu = tr[j]
        Wu, bu_i = W[i][0][U], W[i][1][U]
        P, Ng = Wu.clamp(min=0), Wu.clamp(max=0)
        sl = self._slopes(j, self.params[(i, j)], tb)
        au3 = au[:, None, :]
        lam = torch.cat([P * sl + Ng * au3, -(Ng * sl + P * au3)], dim=1)
        bias = torch.cat([bu @ Ng.T + bu_i, -(bu @ P.T) - bu_i], dim=1)
        if bl is not None:
            bias = bias + torch.cat([bl @ P.T, -(bl @ Ng.T)], dim=1)
        bias = bias + lam @ W[j][1]
        return lam @ W[j][0], bias

    def _backward(self, i: int, lam: Any, bias: Any, tb: list, tr: list, start: int) -> Any:
        """Lower bounds of the rows ``lam`` (already through affine ``start + 1``) of
        target i, back through activations ``start .. 0``, concretised over the boxes."""
        W = self.W
        for j in range(start, -1, -1):
            al, bl, au, bu = tr[j]
            p = self.params.get((i, j))
            sl = al[:, None, :] if p is None else self._slopes(j, p, tb)
            lp, ln = lam.clamp(min=0), lam.clamp(max=0)
            bias = bias + (ln * bu[:, None, :]).sum(-1)
            if bl is not None:
                bias = bias + (lp * bl[:, None, :]).sum(-1)
            lam = lp * sl + ln * au[:, None, :]
            bias = bias + lam @ W[j][1]
            lam = lam @ W[j][0]
        c, r = self.c[:, :, None], self.r[:, :, None]
        return (lam @ c).squeeze(-1) - (lam.abs() @ r).squeeze(-1) + bias

    def _target_bounds(self, i: int, tb: list, tr: list) -> tuple[Any, Any]:
        """Affine output i's bounds with the current slopes, at its unstable neurons."""
        torch, l, u = self.torch, *self.crown[i]
        U = torch.tensor(self.unstable[i])
        if (i, i - 1) in self.params:
            lam, bias = self._first_step(i, U, tb, tr)
            low = self._backward(i, lam, bias, tb, tr, start=i - 2)
        else:
            eye = torch.eye(self.net.affines[i].out_features, dtype=self.dt)[U]
            rows = torch.cat([eye, -eye])
            lam = (rows @ self.W[i][0]).expand(self.N, -1, -1)
            low = self._backward(i, lam, (rows @ self.W[i][1]).expand(self.N, -1), tb, tr, i - 1)
        # clipped to the start's bound in value where the replica's start says so, the
        # gradient passing straight through (torch.maximum would stop it where the clip
        # binds, and the slopes would stall there)
        nu = len(U)
        lo_opt, hi_opt = low[:, :nu], -low[:, nu:]
        lo_clip = lo_opt + (torch.maximum(l[:, U], lo_opt) - lo_opt).detach()
        hi_clip = hi_opt + (torch.minimum(u[:, U], hi_opt) - hi_opt).detach()
        lo_opt = torch.where(self.clipped, lo_clip, lo_opt)
        hi_opt = torch.where(self.clipped, hi_clip, hi_opt)
        return l.index_copy(1, U, lo_opt), u.index_copy(1, U, hi_opt)

    def objective(self) -> Any:
        """Lower bound ``[N]`` of each replica's final row with the current slopes."""
        tb, tr = [self.crown[0]], []
        for i in range(1, self.L):
            j = i - 1
            if j in self.lows and j in self.targets:
                tr.append(self._leaky_relax(j, *tb[j]))  # chords follow the tightened bounds
            else:
                tr.append(self.rel[j])
            if i == self.L - 1:
                rows = self.final_rows
                return self._backward(i, rows @ self.W[i][0], rows @ self.W[i][1], tb, tr, j)[:, 0]
            if i in self.targets and len(self.unstable[i]):
                tb.append(self._target_bounds(i, tb, tr))
            else:
                tb.append(self.crown[i])
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, iters: int, lr: float, deadline: Deadline | None) -> dict[tuple[int, int], Any]:
        """Projected Adam (auto_LiRPA's rate decay); the best slopes seen per replica."""
        torch, params = self.torch, self.params
        opt = torch.optim.Adam(list(params.values()), lr=lr, fused=True)
        schedule = torch.optim.lr_scheduler.ExponentialLR(opt, LR_DECAY)
        best = {key: p.detach().clone() for key, p in params.items()}
        best_val = torch.full((self.N,), -torch.inf, dtype=self.dt)
        for it in range(iters):
            if it and deadline is not None and deadline.passed():
                break  # the best slopes so far are valid
            lower = self.objective()
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
                    p.clamp_(min=self.lows[j], max=1.0)
            schedule.step()
        return best

    def dense(self, slopes: dict[tuple[int, int], Any]) -> dict[tuple[int, int], np.ndarray]:
        """Slopes as ``replay`` reads them: a row per bound of every neuron of a target."""
        out = {}
        for (i, j), b in slopes.items():
            b = b.numpy()
            if i == self.L - 1:
                out[(i, j)] = b
                continue
            h = self.net.affines[i].out_features
            full = np.repeat(self.relax[j][0][:, None, :], 2 * h, axis=1)
            if (i, j) in self.shared:  # the same slopes for both rows of a neuron
                b = np.concatenate([b, b], axis=1)
            full[:, np.concatenate([self.unstable[i], h + self.unstable[i]])] = b
            out[(i, j)] = full
        return out

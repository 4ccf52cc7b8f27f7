"""Exact bounds of a tree ensemble over one region by MILP (Kantchelian et al., 2016).

Variables: a continuous ``lam`` per reachable leaf (tree_reach.py), one binary
``p[f, t]`` per split value ``t`` on feature ``f`` inside the region ("the input's
cast is <= t"), and, for inputs cut by polygons, the input itself. Constraints: each
tree's ``lam`` sum to 1; at each internal node the leaves of the left subtree carry at
most ``p`` and those of the right at most ``1 - p``; ``p`` is monotone in ``t``; an
input with polygons obeys their halfspaces and ``x <= m`` when ``p = 1``, ``x >= m``
when ``p = 0``, with ``m`` the float64 boundary between the two sides (the midpoint to
the next float32 for float32 ensembles; both sides closed, a relaxation). With ``p``
integral each tree has exactly one leaf consistent with it, so the optimum is the
ensemble's extreme over the region (up to that boundary relaxation).

Trust, as in milp.py: the solver's dual bound (valid after a time-out too), widened by
``margin``: binaries within 2e-6 of integral let at most that much mass per ancestor
onto a wrong leaf (twice the largest row value of the tree, per internal node of the
tree, capped at the tree's range), the LP's dual-feasibility allowance (2e-7 times the
largest objective coefficient per unit-range variable), and 1e-9 relative.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from .trees import TreeEnsemble, split_boundary

INTEGRALITY_EPS = 2e-6
DUAL_TOL = 2e-7
MAX_INPUT = 1e9  # inputs under polygons beyond this: no MILP (HiGHS's tolerances leak)
HIGHS_OPTIONS = {"mip_rel_gap": 1e-9, "disp": False, "simplex_scale_strategy": 0}


class TreeMilp:
    """The constraint system of one region; ``bound`` solves one objective row."""

    def __init__(
        self,
        ens: TreeEnsemble,
        reach: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        dlo: np.ndarray,
        dhi: np.ndarray,
        polygons: list[tuple[tuple[int, int], np.ndarray, np.ndarray]],
    ) -> None:
        self.ens = ens
        leaves = ens.leaves[reach]
        self.leaf_pos = np.flatnonzero(reach)
        n_lam = len(leaves)
        col_of_leaf = {int(node): k for k, node in enumerate(leaves)}
        # subtree leaf lists from the bottom up (children follow parents)
        below: dict[int, list[int]] = {}
        for node in range(ens.num_nodes - 1, -1, -1):
            if ens.feature[node] < 0:
                below[node] = [col_of_leaf[node]] if node in col_of_leaf else []
            else:
                below[node] = below[int(ens.left[node])] + below[int(ens.right[node])]
        # split values inside the region, per feature: "cast <= t" is not constant there
        split: dict[tuple[int, float], int] = {}
        cols = n_lam
        internal = np.flatnonzero(ens.feature >= 0)
        for node in internal:
            f, t = int(ens.feature[node]), float(ens.left_max[node])
            if dlo[f] <= t < dhi[f] and (f, t) not in split and below[int(node)]:
                split[(f, t)] = cols
                cols += 1
        pair_inputs = sorted({k for (i, j), _, _ in polygons for k in (i, j)})
        x_col = {f: cols + k for k, f in enumerate(pair_inputs)}
        cols += len(pair_inputs)
        self.nvar = cols
        rows, lb, ub = [], [], []
        r = 0

        def add(coefs: dict[int, float], lo: float, hi: float) -> None:
            nonlocal r
            for c, v in coefs.items():
                rows.append((r, c, v))
            lb.append(lo)
            ub.append(hi)
            r += 1

        starts = np.r_[np.flatnonzero(np.r_[True, np.diff(ens.leaf_tree[reach]) != 0]), n_lam]
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            add({k: 1.0 for k in range(a, b)}, 1.0, 1.0)
        for node in internal:
            f, t = int(ens.feature[node]), float(ens.left_max[node])
            left, right = below[int(ens.left[node])], below[int(ens.right[node])]
            if (f, t) not in split:
                continue  # constant in the region: the reach test already applied it
            p = split[(f, t)]
            if left:
                add({**{k: 1.0 for k in left}, p: -1.0}, -np.inf, 0.0)
            if right:
                add({**{k: 1.0 for k in right}, p: 1.0}, -np.inf, 1.0)
        by_feature: dict[int, list[tuple[float, int]]] = {}
        for (f, t), p in split.items():
            by_feature.setdefault(f, []).append((t, p))
        for items in by_feature.values():
            items.sort()
            for (_, p1), (_, p2) in zip(items[:-1], items[1:], strict=False):
                add({p1: 1.0, p2: -1.0}, -np.inf, 0.0)  # x <= t1 implies x <= t2
        # inputs under polygons: x = centre + half * u, u in [-1, 1]
        self.centre = (lower + upper) / 2
        self.half = np.maximum((upper - lower) / 2, 0.0)
        for f, c in x_col.items():
            cen, half = self.centre[f], self.half[f]
            for (g, t), p in split.items():
                if g != f:
                    continue
                m = float(split_boundary(ens.precision, np.array([t]))[0])
                # p = 1: x <= m  ->  half u + (upper - m) p <= upper - cen
                add({c: half, p: upper[f] - m}, -np.inf, upper[f] - cen)
                # p = 0: x >= m  ->  half u + (m - lower) p >= m - cen
                add({c: half, p: m - lower[f]}, m - cen, np.inf)
        for (i, j), A, b in polygons:
            for a_row, b_row in zip(A, b, strict=True):
                if not np.isfinite(b_row) or not a_row.any():
                    continue
                rhs = b_row - a_row[0] * self.centre[i] - a_row[1] * self.centre[j]
                add({x_col[i]: a_row[0] * self.half[i], x_col[j]: a_row[1] * self.half[j]},
                    -np.inf, rhs + 1e-9 * (abs(b_row) + 1))  # fmt: skip
        if rows:
            rr, cc, vv = zip(*rows, strict=True)
        else:
            rr, cc, vv = (), (), ()
        self.A = sparse.csr_matrix((vv, (rr, cc)), shape=(r, cols))
        self.lb_con, self.ub_con = np.array(lb), np.array(ub)
        self.lb = np.zeros(cols)
        self.ub = np.ones(cols)
        self.lb[n_lam + len(split) :] = -1.0
        self.integrality = np.zeros(cols)
        self.integrality[n_lam : n_lam + len(split)] = 1
        self.n_lam = n_lam
        self.tree_starts = starts
        self.internal_per_tree = np.array(
            [
                int(((ens.feature >= 0) & (ens.node_tree == t)).sum())
                for t in np.unique(ens.leaf_tree[reach])
            ]
        )

    def bound(self, w: np.ndarray, sense: int, time_limit: float) -> tuple[float, bool]:
        """A sound bound of ``sense * min(sense * w . lam)`` over the region, i.e. the
        minimum (sense=+1) or maximum (sense=-1) of the row with leaf values ``w``
        [reachable leaves]; and whether the solver ran out of time."""
        scale = float(np.abs(w).max()) or 1.0
        c = np.zeros(self.nvar)
        c[: self.n_lam] = sense * w / scale
        opts = {**HIGHS_OPTIONS, "time_limit": max(time_limit, 1e-3)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = milp(
                c,
                constraints=LinearConstraint(self.A, self.lb_con, self.ub_con)
                if self.A.shape[0]
                else None,
                integrality=self.integrality,
                bounds=Bounds(self.lb, self.ub),
                options=opts,
            )
        timed_out = res.status == 1
        dual = res.get("mip_dual_bound")
        # "infeasible" is never taken as an empty region: HiGHS's tolerances can declare
        # feasible systems infeasible (inputs near 1e64 under polygons: lost rows in the
        # self-check, seed 11539); emptiness is proven elsewhere, with certificates
        if dual is None or not np.isfinite(dual) or res.status not in (0, 1):
            return (-np.inf if sense > 0 else np.inf), timed_out
        value = sense * float(dual) * scale
        return value - sense * self.margin(w, value), timed_out

    def margin(self, w: np.ndarray, value: float) -> float:
        """The tolerance allowance of one bound (module docstring)."""
        spans = []
        for a, b in zip(self.tree_starts[:-1], self.tree_starts[1:], strict=True):
            seg = w[a:b]
            spans.append((seg.max() - seg.min(), np.abs(seg).max()))
        leak = 0.0
        for (span, mag), count in zip(spans, self.internal_per_tree, strict=True):
            leak += min(span, 2 * mag * INTEGRALITY_EPS * max(count, 1))
        dual = DUAL_TOL * float(np.abs(w).max()) * self.nvar * 2
        return (leak + dual + 1e-9 * abs(value)) * (1 + 1e-6) + 1e-300


def milp_bounds(
    ens: TreeEnsemble,
    C: np.ndarray,
    reach: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    polygons: list,
    time_limit: float,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sound bounds ``[m]`` of each row ``C z`` over one region, and whether time ran
    out (bounds are still sound then, just looser)."""
    t0 = time.perf_counter()
    m = C.shape[0]
    pair_inputs = sorted({k for (i, j), _, _ in polygons for k in (i, j)})
    if (
        pair_inputs
        and not (np.abs(np.r_[lower[pair_inputs], upper[pair_inputs]]) <= MAX_INPUT).all()
    ):
        # LP tolerances on inputs this large are not covered (as in decide_milp.py)
        return np.full(m, -np.inf), np.full(m, np.inf), False
    dlo, dhi = ens.cast(lower), ens.cast(upper)
    model = TreeMilp(ens, reach, lower, upper, dlo, dhi, polygons)
    S = ens.value[ens.leaves[reach]] @ C.T  # [reachable, m]
    const = C @ ens.base
    lo, hi = np.full(m, -np.inf), np.full(m, np.inf)
    capped = False
    for k in range(m):
        for sense in (1, -1):
            left = time_limit - (time.perf_counter() - t0)
            if left <= 0:
                return lo, hi, True
            v, out = model.bound(S[:, k], sense, left)
            capped |= out
            if sense > 0:
                lo[k] = v + const[k]
            else:
                hi[k] = v + const[k]
    return lo, hi, capped

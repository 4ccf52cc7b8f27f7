"""Decide regions with the complete MILP (milp.py), only the objectives needed.

For a threshold on one row: maximise first (NONE if the maximum cannot
qualify), then minimise (ALL if the minimum qualifies). For argmax:
``max_x min_j (z_k - z_j)`` decides NONE jointly over all other classes,
then one minimisation per class decides ALL. Other kinds bound every row.
A region whose extremes were found optimally and that is still UNKNOWN is
proven mixed.
"""

from __future__ import annotations

import time

import numpy as np

from mlskip.errors import UnsupportedModelError

from .crown import crown_layers
from .milp import MILP_TOL, build_model, solve
from .network import Network
from .predicate import NONE, UNKNOWN, Spec
from .regions import RegionBatch


def milp_verdicts(
    spec: Spec,
    snet: Network,
    regions: RegionBatch,
    mg: np.ndarray,
    precision: str,
    time_per_solve: float,
    deadline: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Verdicts and proven-mixed flags ``[n]`` by MILP, region by region."""
    n = regions.n
    out = np.full(n, UNKNOWN, dtype=np.int8)
    mixed = np.zeros(n, dtype=bool)
    if n == 0:
        return out, mixed
    bounds, _ = crown_layers(snet, regions)
    L0, U0 = bounds[-1]
    for r in range(n):
        if deadline is not None and time.perf_counter() >= deadline:
            break
        try:
            model = build_model(snet, regions, r, bounds)
        except UnsupportedModelError:
            continue
        L, U = L0[r].copy(), U0[r].copy()
        scale = 1.0 + np.nanmax(np.abs(np.concatenate([L, U])))
        tol = MILP_TOL * scale
        limit = time_per_solve
        if deadline is not None:
            limit = max(1e-3, min(limit, deadline - time.perf_counter()))
        exact = True

        def decide() -> np.int8:
            return spec.verdicts((L - mg[r])[None], (U + mg[r])[None], precision)[0]

        def bound_row(j: int, maximize: bool) -> None:
            nonlocal exact
            res = solve(model, model.out_expr[j], model.out_const[j], maximize, limit)
            exact &= res.optimal
            if maximize:
                U[j] = min(U[j], res.bound + tol)
            else:
                L[j] = max(L[j], res.bound - tol)

        if spec.kind == "linear":
            op = spec.predicate.op
            first_max = op in (">", ">=", "between")
            bound_row(0, maximize=first_max)
            v = decide()
            if v == UNKNOWN:
                bound_row(0, maximize=not first_max)
                v = decide()
        elif spec.kind == "argmax":
            res = solve(
                model,
                np.zeros(model.nvar),
                0.0,
                True,
                limit,
                extra=(model.out_expr, model.out_const),
            )
            exact &= res.optimal
            if res.infeasible or res.bound + tol + float(np.max(mg[r])) < 0:
                v = NONE
            else:
                for j in range(L.shape[0]):
                    bound_row(j, maximize=False)
                    if decide() != UNKNOWN:
                        break
                v = decide()
        else:
            for j in range(L.shape[0]):
                bound_row(j, maximize=True)
                bound_row(j, maximize=False)
            v = decide()
        out[r] = v
        mixed[r] = v == UNKNOWN and exact
    return out, mixed

"""Decide regions with the complete MILP (milp.py), only the objectives needed.

For a threshold on one row: maximise first (NONE if the maximum cannot
qualify), then minimise (ALL if the minimum qualifies). For argmax:
``max_x min_j (z_k - z_j)`` decides NONE jointly over all other classes,
then one minimisation per class decides ALL. Other kinds bound every row.
A region is proven mixed only with witnesses: among the solvers' optimal points
(evaluated concretely, inside the region), one that clearly qualifies and one that
clearly fails, with the float margins applied (witness.py's test). A region left
UNKNOWN otherwise (the solver's tolerance wider than the margin, a time limit) is
undecided, and reported as such.
"""

from __future__ import annotations

import time

import numpy as np

from mlskip.errors import UnsupportedModelError

from .crown import crown_layers
from .deadline import Deadline
from .fp_margin import scalar_magnitudes
from .milp import MILP_TOL, build_model, integrality_leak, solve
from .network import Network
from .predicate import NONE, UNKNOWN, Spec
from .regions import RegionBatch
from .witness import clear_points, inside_points, interior_point, pull_inside


def milp_verdicts(
    spec: Spec,
    snet: Network,
    regions: RegionBatch,
    mg: np.ndarray,
    precision: str,
    time_per_solve: float,
    deadline: Deadline | None,
    stats: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Verdicts and proven-mixed flags ``[n]`` by MILP, region by region
    (``stats["weights"]``: seconds per region)."""
    n = regions.n
    out = np.full(n, UNKNOWN, dtype=np.int8)
    mixed = np.zeros(n, dtype=bool)
    if n == 0:
        return out, mixed
    bounds, _ = crown_layers(snet, regions)
    L0, U0 = bounds[-1]
    # HiGHS's tolerances act on the model's intermediate values, not only on its output:
    # the answer's error grows with the largest magnitude inside the network
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.max(
            np.concatenate(scalar_magnitudes(snet, regions.lower, regions.upper), axis=1), axis=1
        )
    leak = integrality_leak(snet, bounds[:-1]) if len(bounds) > 1 else np.zeros_like(L0)
    secs = np.zeros(n)
    if stats is not None:
        stats["weights"] = secs
    for r in range(n):
        if deadline is not None and deadline.passed():
            break
        t0 = time.perf_counter()
        if not _solvable(regions, r, mg[r]) or not np.isfinite(leak[r]).all():
            continue
        try:
            model = build_model(snet, regions, r, bounds)
        except UnsupportedModelError:
            continue
        limit = time_per_solve
        if deadline is not None:
            limit = max(1e-3, min(limit, deadline.remaining()))
        region = _RegionMilp(
            spec, model, L0[r], U0[r], mg[r], precision, limit, float(scale[r]), leak[r]
        )
        out[r] = region.run()
        if out[r] == UNKNOWN:
            mixed[r] = _witnessed(spec, snet, regions, r, region.points, mg[r], precision)
        secs[r] = time.perf_counter() - t0
    return out, mixed


# Beyond this HiGHS's LP tolerances (not covered by integrality_leak's proof) made answers
# unreliable (lost rows at inputs near 1e12); the integrality leak itself is a margin now.
MAX_MILP_MAGNITUDE = 1e9


def _solvable(regions: RegionBatch, r: int, mg: np.ndarray) -> bool:
    """Whether region ``r`` can be decided by MILP soundly: finite float margins (the
    model does not overflow in the evaluation precision) and inputs of a size HiGHS
    handles reliably."""
    if not np.all(np.isfinite(mg)):
        return False
    box = np.concatenate([regions.lower[r], regions.upper[r]])
    return bool(np.all(np.abs(box[np.isfinite(box)]) <= MAX_MILP_MAGNITUDE))


class _RegionMilp:
    """The MILP decision of one region: solves only the objectives needed."""

    def __init__(
        self,
        spec: Spec,
        model,
        L: np.ndarray,
        U: np.ndarray,
        mg: np.ndarray,
        precision: str,
        limit: float,
        scale: float = 0.0,
        leak: np.ndarray | None = None,
    ) -> None:
        self.spec, self.model, self.mg, self.precision, self.limit = (
            spec,
            model,
            mg,
            precision,
            limit,
        )
        self.L, self.U = L.copy(), U.copy()
        # heuristic LP-tolerance margin plus the proven integrality leak per row
        self.leak = np.zeros_like(L) if leak is None else np.asarray(leak, dtype=np.float64)
        self.tol = MILP_TOL * (1.0 + max(np.nanmax(np.abs(np.concatenate([L, U]))), scale))
        self.points: list[np.ndarray] = []  # the solvers' best points: witness candidates

    def decide(self) -> np.int8:
        return self.spec.verdicts(
            (self.L - self.mg)[None], (self.U + self.mg)[None], self.precision
        )[0]

    def bound_row(self, j: int, maximize: bool) -> None:
        m = self.model
        res = solve(m, m.out_expr[j], m.out_const[j], maximize, self.limit)
        self._keep(res)
        tol = self.tol + self.leak[j] + res.tolerance
        if maximize:
            self.U[j] = min(self.U[j], res.bound + tol)
        else:
            self.L[j] = max(self.L[j], res.bound - tol)

    def _keep(self, res) -> None:
        if res.x is not None and np.isfinite(res.x).all():
            self.points.append(np.asarray(res.x, dtype=np.float64))

    def run(self) -> np.int8:
        spec = self.spec
        if spec.kind == "linear":
            first_max = spec.predicate.op in (">", ">=", "between")
            self.bound_row(0, maximize=first_max)
            v = self.decide()
            if v == UNKNOWN:
                self.bound_row(0, maximize=not first_max)
                v = self.decide()
        elif spec.kind == "argmax":
            m = self.model
            # t = min_j out_j lies within [min L, min U] (CROWN, sound): finite bounds keep
            # the dual-feasibility allowance finite
            lo, hi = float(np.min(self.L)), float(np.min(self.U))
            t_bounds = (lo - 1.0 - 1e-6 * abs(lo), hi + 1.0 + 1e-6 * abs(hi))
            res = solve(
                m, np.zeros(m.nvar), 0.0, True, self.limit, (m.out_expr, m.out_const), t_bounds
            )
            self._keep(res)
            # an "infeasible" answer is never trusted: the region holds data, so HiGHS
            # reporting no point means its numerics failed, not that no row qualifies
            # t = min_j out_j moves by at most the largest row leak
            tol = self.tol + float(np.max(self.leak)) + res.tolerance
            if not res.infeasible and res.bound + tol + float(np.max(self.mg)) < 0:
                v = NONE
            else:
                for j in range(self.L.shape[0]):
                    self.bound_row(j, maximize=False)
                    if self.decide() != UNKNOWN:
                        break
                v = self.decide()
        else:
            for j in range(self.L.shape[0]):
                self.bound_row(j, maximize=True)
                self.bound_row(j, maximize=False)
            v = self.decide()
        return v


def _witnessed(
    spec: Spec,
    snet: Network,
    regions: RegionBatch,
    r: int,
    points: list[np.ndarray],
    mg: np.ndarray,
    precision: str,
) -> bool:
    """Whether the solvers' points show region ``r`` mixed: evaluated concretely, one
    inside it clearly qualifies and one clearly fails (margins applied)."""
    if len(points) < 2:
        return False
    region = regions.subset(np.array([r]))
    x = np.clip(np.stack(points), regions.lower[r], regions.upper[r])[None]
    if region.has_polygons:  # solver points may sit a rounding error outside a polygon
        centre, ok = interior_point(region, region.lower, region.upper)
        x = pull_inside(region, x, centre, ok)
    x = x[0][inside_points(region, x)[0]]
    if len(x) < 2:
        return False
    z = snet.evaluate(x, final=False)
    qualifies, fails = clear_points(spec, z, np.broadcast_to(mg, z.shape), precision)
    return bool(qualifies.any() and fails.any())

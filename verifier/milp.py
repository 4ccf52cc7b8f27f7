"""Complete verification of piecewise-linear networks by MILP (scipy / HiGHS).

One region at a time: inputs bounded by the box and cut by every polygon
halfspace (overlapping pairs included), each unstable ReLU encoded with a
binary and big-M constants taken from sound CROWN pre-activation bounds,
stable ones fixed. LeakyReLU is ``alpha z + (1 - alpha) relu(z)``. The same
model serves every objective of the region (min / max of each spec row, or
``max_x min_j row_j`` for argmax).

Trust: HiGHS solves in floating point with tolerances (primal feasibility
1e-7, MIP feasibility 1e-6). We use the solver's *dual bound* (valid even
after a time-out); the caller widens it by two margins and intersects it
with the sound CROWN interval:

- ``integrality_leak`` (proven, given HiGHS's stated integrality tolerance):
  HiGHS accepts a binary ``d`` within ``eps`` of 0 or 1. With ``d in [0,
  eps]`` the constraints ``r >= z, r >= 0, r <= u d`` leave ``r`` within
  ``eps u`` of ``relu(z)``; with ``d in [1 - eps, 1]``, ``r >= z, r <= z -
  l (1 - d)`` leave it within ``eps |l|`` (``r >= 0`` and ``r <= z + eps |l|``
  when ``z < 0``). So every point HiGHS may treat as integer feasible is the
  network with an additive error ``|e_n| <= eps max(|l_n|, u_n)`` at each
  unstable ReLU ``n`` (LeakyReLU passes ``(1 - alpha) e``; stable neurons
  have no binary). (Leaky)ReLU is 1-Lipschitz and the affine maps are
  exact in the encoding, so the objective row ``c`` moves by at most
  ``sum_n |e_n| S_n`` with ``S = |c| |W_L| ... |W_{k+1}|`` the absolute
  weight chain from neuron ``n`` to the output: its value at any such point
  is within that sum of the true network's at the same ``x``, in both
  directions. ``eps`` is taken as twice HiGHS's default (1e-6).
- ``MILP_TOL * (1 + scale)`` (a stated tolerance, not a proof) for the LP
  primal feasibility tolerance, with ``scale`` the largest intermediate
  magnitude of the network over the box.
- ``MilpOutcome.tolerance`` (a stated tolerance, not a proof) for the LP dual
  feasibility tolerance: HiGHS accepts a basis as optimal while reduced costs
  are up to 1e-7 of the wrong sign, which can leave the objective up to
  ``1e-7 sum_j (ub_j - lb_j)`` from the optimum. Column scaling does not change
  that product, but the tolerance is absolute, so a tiny objective (weights of
  1e-8 on inputs near 1e6: seed 101008 of the margin campaign) is optimal at
  any vertex. So the model takes its inputs in [-1, 1] (``MilpModel``), HiGHS's
  own scaling is off (the allowance is stated for the model as built), and
  ``solve`` divides the objective by its largest coefficient and charges
  ``2e-7 * that coefficient * sum_j (ub_j - lb_j)``.

This is the one place where the verifier trusts a floating-point solver up
to a stated tolerance; decide_milp.py also skips inputs above 1e9, where the
LP tolerances (not covered by the proof) were seen to leak.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds as SpBounds
from scipy.optimize import LinearConstraint, milp

from mlskip.errors import UnsupportedModelError

from .layers import LeakyReLU
from .network import Network
from .regions import RegionBatch

MILP_TOL = 1e-6
DUAL_TOL_MARGIN = 2e-7  # twice HiGHS's dual_feasibility_tolerance default (1e-7)
# HiGHS's own scaling is off: the dual-feasibility allowance is stated for the model as
# built here (unit inputs, normalised objective); scipy passes these options verbatim
HIGHS_OPTIONS = {"mip_rel_gap": 1e-9, "disp": False, "simplex_scale_strategy": 0}
INTEGRALITY_EPS = 2e-6  # twice HiGHS's mip_feasibility_tolerance default (1e-6)


def integrality_leak(net: Network, pre: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Bound ``[n, k]`` on how far the MILP's objective row ``k`` can move at a point whose
    binaries are only within ``INTEGRALITY_EPS`` of integral (module doc, first margin).

    ``pre[i]`` are the pre-activation bounds the big-M constants come from (as in
    ``build_model``). The result is inflated by 1e-6 relative for its own rounding.
    """
    L = len(net.affines)
    n = pre[0][0].shape[0]
    k = net.affines[-1].out_features
    S = np.abs(net.affines[-1].W)  # [k, h_{L-2}]: |c| chain from layer L-2's outputs
    leak = np.zeros((n, k))
    with np.errstate(over="ignore", invalid="ignore"):
        for li in range(L - 2, -1, -1):
            act = net.activations[li]
            zl, zu = pre[li]
            unstable = (zl < 0) & (zu > 0)
            bigm = np.where(unstable, np.maximum(-zl, zu), 0.0)  # [n, h]
            gain = 1.0 - float(act.alpha) if isinstance(act, LeakyReLU) else 1.0
            leak += gain * INTEGRALITY_EPS * (bigm @ S.T)
            S = S @ np.abs(net.affines[li].W)  # through affine li to the previous layer
        leak *= 1.0 + 1e-6
    return np.where(np.isnan(leak), np.inf, leak)


@dataclass
class MilpModel:
    """The constraint system of one region; objectives are added per solve.

    Input ``k`` is the variable ``u_k`` in [-1, 1] with ``x_k = centre_k + half_k u_k``:
    unit ranges keep the dual-feasibility allowance (module doc) proportional to the
    network's size, not to the inputs' magnitude.
    """

    nvar: int
    A: sparse.csr_matrix
    lb_con: np.ndarray
    ub_con: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integrality: np.ndarray
    out_expr: np.ndarray  # [m, nvar] output rows as linear expressions
    out_const: np.ndarray  # [m]
    d: int
    centre: np.ndarray  # [d] inputs' centres
    half: np.ndarray  # [d] inputs' half widths

    def inputs(self, v: np.ndarray) -> np.ndarray:
        """The input point of a solution vector ``v``."""
        return self.centre + self.half * v[: self.d]


class _Builder:
    """Collects a MILP's variables (bounds, integrality) and sparse constraint rows."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.lcon: list[float] = []
        self.ucon: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integ: list[int] = []

    @property
    def nvar(self) -> int:
        return len(self.lb)

    def add_vars(self, lb: list[float], ub: list[float], integer: bool = False) -> int:
        """Append variables; returns the index of the first."""
        first = self.nvar
        self.lb += lb
        self.ub += ub
        self.integ += [int(integer)] * len(lb)
        return first

    def add_row(self, coefs: dict[int, float], lo: float, hi: float) -> None:
        """Append ``lo <= sum coefs[v] x_v <= hi`` (zero coefficients dropped)."""
        nrow = len(self.lcon)
        for c, v in coefs.items():
            if v != 0.0:
                self.rows.append(nrow)
                self.cols.append(c)
                self.vals.append(v)
        self.lcon.append(lo)
        self.ucon.append(hi)

    def matrix(self) -> sparse.csr_matrix:
        nrow = len(self.lcon)
        if not nrow:
            return sparse.csr_matrix((0, self.nvar))
        return sparse.csr_matrix((self.vals, (self.rows, self.cols)), shape=(nrow, self.nvar))


# a layer's outputs as linear expressions: one {variable: coefficient} per output
_Expressions = list[dict[int, float]]


def build_model(
    net: Network,
    regions: RegionBatch,
    r: int,
    pre: list[tuple[np.ndarray, np.ndarray]],
) -> MilpModel:
    """MILP for region ``r`` of ``regions``; ``pre[i]`` bounds the i-th affine output (all regions)."""
    if not net.is_piecewise_linear:
        raise UnsupportedModelError(
            "the MILP encoding needs a piecewise-linear network (ReLU/LeakyReLU)"
        )
    d = net.num_inputs
    lo, hi = regions.lower[r], regions.upper[r]
    centre = 0.5 * lo + 0.5 * hi
    half = np.maximum(hi - centre, centre - lo)  # covers [lo, hi] after rounding
    unit = np.where(half > 0, 1.0, 0.0)
    model = _Builder()
    model.add_vars(list(-unit), list(unit))
    _add_polygon_rows(model, regions, r, centre, half)
    # previous layer's output as expressions plus a constant
    prev: _Expressions = [{k: float(half[k])} for k in range(d)]
    prev_const = centre.copy()
    for li, act in enumerate(net.activations):
        affine = net.affines[li]
        bias = affine.b + affine.W @ prev_const
        prev = _add_layer(model, affine.W, bias, pre[li][0][r], pre[li][1][r], act, prev)
        prev_const = np.zeros(affine.W.shape[0])
    last = net.affines[-1]
    out = np.zeros((last.out_features, model.nvar))
    for o in range(last.out_features):
        for p_idx, expr in enumerate(prev):
            w = last.W[o, p_idx]
            for var, cv in expr.items():
                out[o, var] += w * cv
    return MilpModel(
        model.nvar,
        model.matrix(),
        np.array(model.lcon),
        np.array(model.ucon),
        np.array(model.lb, float),
        np.array(model.ub, float),
        np.array(model.integ),
        out,
        last.b + last.W @ prev_const,
        d,
        centre,
        half,
    )


def _add_polygon_rows(
    model: _Builder, regions: RegionBatch, r: int, centre: np.ndarray, half: np.ndarray
) -> None:
    """Each finite polygon halfspace of region ``r``, in the unit input variables."""
    for k, (i, j) in enumerate(regions.pairs):
        A, b = regions.halfspaces[k]
        for row in range(A.shape[1]):
            a0, a1 = A[r, row]
            if (a0 == 0 and a1 == 0) or not np.isfinite(b[r, row]):
                continue
            rhs = b[r, row] - a0 * centre[i] - a1 * centre[j]
            model.add_row(
                {i: a0 * half[i], j: a1 * half[j]} if i != j else {i: (a0 + a1) * half[i]},
                -np.inf,
                rhs,
            )


def _add_layer(
    model: _Builder,
    W: np.ndarray,
    bias: np.ndarray,
    zl: np.ndarray,
    zu: np.ndarray,
    act: object,
    prev: _Expressions,
) -> _Expressions:
    """One affine map and its (Leaky)ReLU: pre-activation z, ReLU output r and a binary d
    per neuron (stable neurons fixed); returns the activation outputs as expressions."""
    if not (np.isfinite(zl).all() and np.isfinite(zu).all() and np.isfinite(bias).all()):
        raise UnsupportedModelError("MILP needs finite pre-activation bounds (bounded inputs)")
    h = W.shape[0]
    z0 = model.add_vars(list(zl), list(zu))
    r0 = model.add_vars([0.0] * h, list(np.maximum(zu, 0.0)))
    d0 = model.add_vars([0.0] * h, [1.0] * h, integer=True)
    for n_ in range(h):
        # z = W prev + b
        coefs: dict[int, float] = {z0 + n_: 1.0}
        for p_idx, expr in enumerate(prev):
            w = W[n_, p_idx]
            if w != 0.0:
                for var, cv in expr.items():
                    coefs[var] = coefs.get(var, 0.0) - w * cv
        model.add_row(coefs, bias[n_], bias[n_])
        zv, rv, dv = z0 + n_, r0 + n_, d0 + n_
        l_, u_ = zl[n_], zu[n_]
        if l_ >= 0:  # active
            model.add_row({rv: 1.0, zv: -1.0}, 0.0, 0.0)
            model.ub[dv] = 0.0
        elif u_ <= 0:  # inactive
            model.ub[rv] = 0.0
            model.ub[dv] = 0.0
        else:
            model.add_row({zv: 1.0, rv: -1.0}, -np.inf, 0.0)  # r >= z
            model.add_row({rv: 1.0, zv: -1.0, dv: -l_}, -np.inf, -l_)  # r <= z - l (1 - d)
            model.add_row({rv: 1.0, dv: -u_}, -np.inf, 0.0)  # r <= u d
    alpha = float(act.alpha) if isinstance(act, LeakyReLU) else 1.0  # Identity is dropped
    if alpha:
        return [{z0 + n_: alpha, r0 + n_: 1.0 - alpha} for n_ in range(h)]
    return [{r0 + n_: 1.0} for n_ in range(h)]


@dataclass
class MilpOutcome:
    bound: float  # sound bound in the asked direction (before intersecting with CROWN)
    value: float  # objective at the best point found (nan if none)
    x: np.ndarray | None
    optimal: bool
    infeasible: bool
    seconds: float
    tolerance: float = 0.0  # the dual-feasibility allowance on ``bound`` (module doc)


def solve(
    model: MilpModel,
    obj: np.ndarray,
    const: float,
    maximize: bool,
    time_limit: float,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
    extra_bounds: tuple[float, float] = (-np.inf, np.inf),
) -> MilpOutcome:
    """Minimise (or maximise) ``obj . v + const``; ``extra`` adds one variable t (maxmin
    form: maximise t subject to t <= each row), bounded by ``extra_bounds``.

    The objective (or the rows of ``extra``) is divided by its largest coefficient before
    HiGHS sees it, and the outcome carries the dual-feasibility allowance (module doc).
    """
    t0 = time.perf_counter()
    A, lcon, ucon = model.A, model.lb_con, model.ub_con
    lb, ub, integ = model.lb, model.ub, model.integrality
    coefs = obj if extra is None else extra[0]
    scale = float(np.max(np.abs(coefs))) if coefs.size else 0.0
    if not np.isfinite(scale) or scale == 0.0:
        scale = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        spread = float(np.sum(ub - lb))
    constraints = [LinearConstraint(A, lcon, ucon)] if A.shape[0] else []
    if extra is None:
        c = (-obj if maximize else obj) / scale
    else:  # maximise t s.t. t <= out_j for all rows: variable t appended
        rows_expr, rows_const = extra
        m = rows_expr.shape[0]
        A2 = sparse.hstack([sparse.csr_matrix(rows_expr / scale), -np.ones((m, 1))]).tocsr()
        constraints = (
            [
                LinearConstraint(
                    sparse.hstack([A, sparse.csr_matrix((A.shape[0], 1))]).tocsr(), lcon, ucon
                )
            ]
            if A.shape[0]
            else []
        )
        constraints.append(LinearConstraint(A2, -rows_const / scale, np.inf))
        c = np.zeros(model.nvar + 1)
        c[-1] = -1.0
        t_lo, t_hi = (b / scale for b in extra_bounds)
        lb = np.append(lb, t_lo)
        ub = np.append(ub, t_hi)
        integ = np.append(integ, 0)
        maximize = True
        with np.errstate(over="ignore", invalid="ignore"):
            spread += t_hi - t_lo
    with warnings.catch_warnings():  # scipy warns that it passes HiGHS options verbatim
        warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
        res = milp(
            c,
            integrality=integ,
            bounds=SpBounds(lb, ub),
            constraints=constraints,
            options=HIGHS_OPTIONS | {"time_limit": max(time_limit, 1e-3)},
        )
    secs = time.perf_counter() - t0
    sign = -1.0 if maximize else 1.0
    tolerance = DUAL_TOL_MARGIN * scale * spread * (1.0 + 1e-6)
    if not np.isfinite(tolerance):
        tolerance = np.inf
    if res.status == 2:  # "infeasible" for a region that holds data: numerics failed, no bound
        return MilpOutcome(-sign * np.inf, np.nan, None, False, True, secs, np.inf)
    dual = getattr(res, "mip_dual_bound", None)
    if dual is None or not np.isfinite(dual):
        dual = res.fun if (res.status == 0 and res.fun is not None) else -np.inf
    if res.status == 0 and res.fun is not None:
        dual = min(dual, res.fun)
    offset = const if extra is None else 0.0
    value = sign * res.fun * scale + offset if res.fun is not None else np.nan
    bound = sign * dual * scale + offset
    x = None if res.x is None else model.inputs(res.x)
    return MilpOutcome(bound, value, x, res.status == 0, False, secs, tolerance)

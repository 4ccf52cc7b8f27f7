"""The cascade's methods, one function each, in a registry (``METHODS``).

A method takes the open regions of one cascade step (``MethodRun``) and returns
int8 verdicts per region (NONE / ALL / UNKNOWN) and, where it proves some regions
mixed, their flags (else None). Bound methods decide through the predicate's
specification widened by the float margins; complete methods decide directly.
Heavy dependencies (torch, HiGHS, Marabou, auto_LiRPA) are imported on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .deadline import Deadline
from .network import Network
from .predicate import UNKNOWN, Spec
from .regions import RegionBatch

if TYPE_CHECKING:
    from .cascade import Verifier

Outcome = tuple[np.ndarray, np.ndarray | None]  # verdicts [n], proven-mixed flags [n] or None
# seconds; alpha-CROWN is skipped under a tighter budget before torch is loaded
TORCH_IMPORT_RESERVE = 10.0
CHUNK = 256  # regions per alpha-CROWN / overlap-LP call, so that a deadline is checked often


@dataclass
class MethodRun:
    """One method's run over the open regions ``sub`` of a cascade step."""

    verifier: Verifier
    net: Network  # the model as given (Marabou reads it)
    spec: Spec
    snet: Network  # the network with the spec folded in, what the bound methods read
    sub: RegionBatch
    mg: np.ndarray  # float margins [n, rows] of the spec rows
    deadline: Deadline | None
    stats: dict[str, Any]

    def decide(self, L: np.ndarray, U: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Verdicts from spec-row bounds ``L, U`` (of the regions ``idx``, default all)."""
        mg = self.mg if idx is None else self.mg[idx]
        return self.spec.verdicts(L - mg, U + mg, self.verifier.precision)

    def undecided(self) -> np.ndarray:
        return np.full(self.sub.n, UNKNOWN, dtype=np.int8)

    def passed(self) -> bool:
        return self.deadline is not None and self.deadline.passed()


METHODS: dict[str, Callable[[MethodRun], Outcome]] = {}


def method(name: str) -> Callable[[Callable[[MethodRun], Outcome]], Callable[[MethodRun], Outcome]]:
    """Register a cascade method under ``name`` (the names of cascade.METHOD_NAMES)."""

    def register(fn: Callable[[MethodRun], Outcome]) -> Callable[[MethodRun], Outcome]:
        METHODS[name] = fn
        return fn

    return register


@method("ibp")
def ibp(run: MethodRun) -> Outcome:
    from .ibp import ibp_bounds

    run.stats["bounds"] = ibp_bounds(run.snet, run.sub)
    return run.decide(*run.stats["bounds"]), None


@method("crown")
def crown(run: MethodRun) -> Outcome:
    """CROWN intersected with IBP; with two or more hidden layers, plain CROWN too where
    the first left regions open (neither is always tighter)."""
    from .crown import crown_bounds

    L, U = crown_bounds(run.snet, run.sub, clip="ibp")
    v = run.decide(L, U)
    still = np.flatnonzero(v == UNKNOWN)
    if len(still) and len(run.snet.affines) >= 3:
        L2, U2 = crown_bounds(run.snet, run.sub.subset(still), clip="plain")
        L[still], U[still] = np.fmax(L[still], L2), np.fmin(U[still], U2)
        v[still] = run.decide(L[still], U[still], still)
    run.stats["bounds"] = (L, U)
    if "lp" not in run.verifier.methods:
        overlap_lp(run, v, L, U)
    return v, None


@method("lp")
def lp(run: MethodRun) -> Outcome:
    v = run.undecided()
    if run.verifier.overlap_lp and run.sub.has_overlap:
        from .crown import crown_bounds

        overlap_lp(run, v, *crown_bounds(run.snet, run.sub))
    return v, None


def overlap_lp(run: MethodRun, v: np.ndarray, L: np.ndarray, U: np.ndarray) -> None:
    """Re-decide the UNKNOWN entries of ``v`` with CROWN over box ∩ all polygons by
    certified LP (where polygons share an input), in chunks until the deadline;
    ``L, U``: CROWN's bounds without it, kept where tighter."""
    if not (run.verifier.overlap_lp and run.sub.has_overlap):
        return
    from .crown import crown_bounds

    todo = np.flatnonzero(v == UNKNOWN)
    for s in range(0, len(todo), CHUNK):
        if run.passed():
            break
        idx = todo[s : s + CHUNK]
        L2, U2 = crown_bounds(run.snet, run.sub.subset(idx), overlap_lp=True)
        L2, U2 = np.maximum(L2, L[idx]), np.minimum(U2, U[idx])
        v[idx] = run.decide(L2, U2, idx)


@method("alpha_crown")
def alpha_crown(run: MethodRun) -> Outcome:
    out = run.undecided()
    if (
        "torch" not in sys.modules
        and run.deadline is not None
        and run.deadline.remaining() < TORCH_IMPORT_RESERVE
    ):
        return out, None  # importing torch alone would overrun
    from .alpha_crown import alpha_crown_bounds

    ver = run.verifier
    for s in range(0, run.sub.n, CHUNK):
        if run.passed():
            break
        idx = np.arange(s, min(run.sub.n, s + CHUNK))
        L, U = alpha_crown_bounds(
            run.snet,
            run.sub.subset(idx),
            iters=ver.alpha_iters,
            deadline=run.deadline,
            mode=ver.alpha_mode,
            overlap_lp=ver.overlap_lp,
        )
        out[idx] = run.decide(L, U, idx)
    return out, None


@method("bab")
def bab(run: MethodRun) -> Outcome:
    """Input-splitting branch and bound; the piece limit follows the work budget."""
    from .bab import bab_verdicts

    ver = run.verifier
    budget = ver.bab_time_budget
    if run.deadline is not None:
        budget = min(budget, run.deadline.remaining())
    limit, pieces = ver.bab_max_pieces, None
    if ver.bab_pieces_per_region is not None:
        pieces = ver.bab_pieces_per_region * run.sub.n
        limit = max(limit, pieces)
    v = bab_verdicts(
        run.spec, run.snet, run.sub, run.mg, ver.precision, limit, budget, stats=run.stats,
        piece_budget=pieces, cost=run.stats.get("cost"),
    )  # fmt: skip
    return v, None


@method("milp")
def milp(run: MethodRun) -> Outcome:
    if not run.snet.is_piecewise_linear:
        return run.undecided(), None
    from .decide_milp import milp_verdicts

    ver = run.verifier
    return milp_verdicts(
        run.spec, run.snet, run.sub, run.mg, ver.precision, ver.milp_time_per_region,
        run.deadline, run.stats,
    )  # fmt: skip


@method("marabou")
def marabou(run: MethodRun) -> Outcome:
    from .adapters.marabou import marabou_verdicts

    ver = run.verifier
    v = marabou_verdicts(
        run.spec, run.net, run.sub, run.mg, ver.precision, ver.marabou_timeout, run.deadline
    )
    return v, None


@method("auto_lirpa")
def auto_lirpa(run: MethodRun) -> Outcome:
    from .adapters.auto_lirpa import auto_lirpa_bounds

    return run.decide(*auto_lirpa_bounds(run.snet, run.sub)), None

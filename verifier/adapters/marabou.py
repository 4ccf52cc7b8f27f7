"""maraboupy 2.0 adapter: a complete (but floating-point) verifier backend and test oracle.

The query is built from the ``Network`` directly: input variables with the
box as bounds, polygon halfspaces as linear inequalities, one equation per
affine neuron, Marabou's ReLU / LeakyReLU / Sigmoid constraints (tanh as
``2 sigmoid(2x) - 1``, as maraboupy's ONNX parser encodes it), and the
predicate's condition on the output as inequalities. Marabou is *not* a
perfect oracle in floating point (see docs/ARCHITECTURE.md): a SAT answer comes with an
input that callers should check by evaluating the model; an UNSAT answer is
trusted only with an outward margin (``delta``) on the tested condition and
only if Marabou answers SAT to the same query moved to hold at a point of the
region (``control_query``): maraboupy 2.0 answers UNSAT to everything on some
networks whose hidden values vary by ~1e-6.
On sigmoid / tanh networks Marabou linearizes the curves incrementally and
often answers UNKNOWN (status ``"unknown"``); ``marabou_verdicts``, which
the cascade may use to decide regions, stays with piecewise-linear networks.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import numpy as np

from mlskip.errors import UnsupportedModelError

from ..deadline import Deadline
from ..layers import Identity, LeakyReLU, Sigmoid, Tanh
from ..network import Network
from ..predicate import ALL, NONE, UNKNOWN, Spec
from ..regions import RegionBatch

Halfspace = tuple[int, int, np.ndarray, np.ndarray]  # pair (i, j), A [m, 2], b [m]
OutCon = tuple[np.ndarray, str, float]  # coef over outputs, ">=" or "<=", value


def available() -> bool:
    try:
        import maraboupy  # noqa: F401
    except ImportError:
        return False
    return True


def _maraboupy():
    """maraboupy's ``Marabou`` module and ``MarabouNetwork`` class, imported without its
    warning that the TensorFlow parser (which mlskip does not use) is unavailable."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tensorflow parser is unavailable")
        from maraboupy import Marabou
        from maraboupy.MarabouNetwork import MarabouNetwork
    return Marabou, MarabouNetwork


def supports(net: Network) -> bool:
    """Whether ``marabou_query`` can encode every activation of ``net`` (a network;
    tree ensembles are checked against their MILP and brute force instead)."""
    if not isinstance(net, Network):
        return False
    return all(isinstance(a, (LeakyReLU, Sigmoid, Tanh, Identity)) for a in net.activations)


def marabou_query(
    net: Network,
    lower: np.ndarray,
    upper: np.ndarray,
    halfspaces: Sequence[Halfspace],
    conditions: Sequence[OutCon],
    timeout: float = 5.0,
) -> tuple[str, np.ndarray | None]:
    """Is there an input in box ∩ halfspaces whose logits meet every condition?

    Returns ``("sat", x)``, ``("unsat", None)`` or ``("timeout" | "unknown" | "error", None)``
    (Marabou answers UNKNOWN when its sigmoid linearization gives up).
    """
    Marabou, MarabouNetwork = _maraboupy()
    if not supports(net):
        raise UnsupportedModelError(
            "the Marabou adapter supports ReLU / LeakyReLU / sigmoid / tanh networks only"
        )
    q = MarabouNetwork()
    d = net.num_inputs
    xs = [q.getNewVariable() for _ in range(d)]
    q.inputVars = [np.array(xs)]
    for v, lo, hi in zip(xs, lower, upper, strict=True):
        if np.isfinite(lo):
            q.setLowerBound(v, float(lo))
        if np.isfinite(hi):
            q.setUpperBound(v, float(hi))
    for i, j, A, b in halfspaces:
        for (a0, a1), bb in zip(A, b, strict=True):
            if (a0 != 0 or a1 != 0) and np.isfinite(bb):
                q.addInequality([xs[i], xs[j]], [float(a0), float(a1)], float(bb))
    prev = xs
    for li, aff in enumerate(net.affines):
        zs = [q.getNewVariable() for _ in range(aff.out_features)]
        for o, z in enumerate(zs):
            vars_ = [z] + [prev[k] for k in range(len(prev)) if aff.W[o, k] != 0]
            coefs = [1.0] + [-float(aff.W[o, k]) for k in range(len(prev)) if aff.W[o, k] != 0]
            q.addEquality(vars_, coefs, float(aff.b[o]))
        if li < len(net.activations):
            act = net.activations[li]
            outs = [q.getNewVariable() for _ in zs]
            for z, a in zip(zs, outs, strict=True):
                _activation(q, act, z, a)
            prev = outs
        else:
            prev = zs
    q.outputVars = [np.array(prev)]
    for coef, op, value in conditions:
        idx = [k for k in range(len(prev)) if coef[k] != 0]
        sign = 1.0 if op == "<=" else -1.0
        q.addInequality(
            [prev[k] for k in idx], [sign * float(coef[k]) for k in idx], sign * float(value)
        )
    opts = Marabou.createOptions(verbosity=0, timeoutInSeconds=max(1, int(np.ceil(timeout))))
    with tempfile.TemporaryDirectory() as tmp:  # Marabou may write logs
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            code, vals, _ = q.solve(options=opts, verbose=False)
        finally:
            os.chdir(cwd)
    code = code.lower()
    if code == "sat":
        return "sat", np.array([vals[v] for v in xs], dtype=np.float64)
    if code == "unsat":
        return "unsat", None
    if code == "unknown":
        return "unknown", None
    return ("timeout" if "timeout" in code else "error"), None


def _activation(q, act, z: int, a: int) -> None:
    """Constrain ``a = act(z)`` in the Marabou query ``q``."""
    if isinstance(act, Sigmoid):
        q.addSigmoid(z, a)
        q.setLowerBound(a, 0.0)
        q.setUpperBound(a, 1.0)
    elif isinstance(act, Tanh):  # tanh(z) = 2 sigmoid(2z) - 1
        z2, s = q.getNewVariable(), q.getNewVariable()
        q.addEquality([z, z2], [2.0, -1.0], 0.0)
        q.addSigmoid(z2, s)
        q.setLowerBound(s, 0.0)
        q.setUpperBound(s, 1.0)
        q.addEquality([s, a], [2.0, -1.0], 1.0)
        q.setLowerBound(a, -1.0)
        q.setUpperBound(a, 1.0)
    elif isinstance(act, Identity):
        q.addEquality([z, a], [1.0, -1.0], 0.0)
    elif act.alpha > 0:
        q.addLeakyRelu(z, a, float(act.alpha))
    else:
        q.addRelu(z, a)


def _conditions(spec: Spec, mg: np.ndarray, delta: float) -> tuple[list, list[list]]:
    """(NONE query, ALL queries): a NONE claim needs its query UNSAT, ALL needs every one UNSAT."""
    p = spec.predicate
    if spec.kind == "linear":
        c = p._c(spec.net.num_outputs)
        t, h, m = p.threshold, p.high, float(mg[0]) + delta * (1 + abs(p.threshold))
        if p.op in (">", ">="):
            return [(c, ">=", t - m)], [[(c, "<=", t + m)]]
        if p.op in ("<", "<="):
            return [(c, "<=", t + m)], [[(c, ">=", t - m)]]
        mh = float(mg[0]) + delta * (1 + abs(h))
        return [(c, ">=", t - m), (c, "<=", h + mh)], [[(c, "<=", t + m)], [(c, ">=", h - mh)]]
    if spec.kind == "argmax":
        none_q = [(spec.C[j], ">=", -float(mg[j]) - delta) for j in range(spec.C.shape[0])]
        all_q = [[(spec.C[j], "<=", float(mg[j]) + delta)] for j in range(spec.C.shape[0])]
        return none_q, all_q
    raise UnsupportedModelError(f"the Marabou adapter does not handle a final {spec.net.final}")


CONTROL_MARGIN = 1e-3  # relative slack of a control query at a point of the region


def control_query(net: Network, point: np.ndarray, query: Sequence[OutCon]) -> list[OutCon] | None:
    """``query`` with each bound moved so that it holds at ``point`` (with a margin):
    satisfiable by construction, so Marabou answering UNSAT to it shows that its UNSAT
    on this region and network is not to be trusted (maraboupy 2.0 answers UNSAT to
    everything on some networks whose hidden values vary by ~1e-6). None if the
    outputs at ``point`` are not finite."""
    with np.errstate(all="ignore"):
        y = net.evaluate(np.asarray(point, dtype=np.float64)[None, :], final=False)[0]
    if not np.isfinite(y).all():
        return None
    control = []
    for coef, op, _ in query:
        v = float(np.asarray(coef, dtype=np.float64) @ y)
        m = CONTROL_MARGIN * (1 + abs(v))
        control.append((coef, op, v - m if op == ">=" else v + m))
    return control


def _control_agrees(net, lo, hi, hs, query, point, timeout: float) -> bool:
    """Marabou answers SAT to ``query`` moved to hold at ``point`` (a point of the region)."""
    control = None if point is None else control_query(net, point, query)
    return control is not None and marabou_query(net, lo, hi, hs, control, timeout)[0] == "sat"


def marabou_verdicts(
    spec: Spec,
    net: Network,
    regions: RegionBatch,
    mg: np.ndarray,
    precision: str,
    timeout: float = 5.0,
    deadline: Deadline | None = None,
    delta: float = 1e-6,
) -> np.ndarray:
    """Verdicts by Marabou, region by region (UNKNOWN on time-out or unsupported kinds).

    An UNSAT decides only if Marabou also answers SAT to the same query moved to hold
    at a point of the region (``control_query``); otherwise the region stays UNKNOWN."""
    from ..witness import interior_point

    out = np.full(regions.n, UNKNOWN, dtype=np.int8)
    if not available() or spec.kind not in ("linear", "argmax") or not net.is_piecewise_linear:
        return out
    finite = np.isfinite(regions.lower) & np.isfinite(regions.upper)
    inner, inside = interior_point(
        regions, np.where(finite, regions.lower, 0.0), np.where(finite, regions.upper, 0.0)
    )
    for r in range(regions.n):
        if deadline is not None and deadline.passed():
            break
        hs = [
            (i, j, A[r], b[r])
            for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True)
        ]
        none_q, all_q = _conditions(spec, mg[r], delta)
        lo, hi = regions.lower[r], regions.upper[r]
        point = inner[r] if inside[r] else None
        status, _ = marabou_query(net, lo, hi, hs, none_q, timeout)
        if status == "unsat":
            if _control_agrees(net, lo, hi, hs, none_q, point, timeout):
                out[r] = NONE
            continue
        if status == "sat" and all(
            marabou_query(net, lo, hi, hs, q, timeout)[0] == "unsat"
            and _control_agrees(net, lo, hi, hs, q, point, timeout)
            for q in all_q
        ):
            out[r] = ALL
    return out

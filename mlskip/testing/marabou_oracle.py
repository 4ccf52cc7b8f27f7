"""The self-check campaign's complete-verifier oracle: Marabou checks NONE / ALL verdicts.

With ``oracle="marabou"`` a sample of each trial's NONE / ALL verdicts on
ReLU, sigmoid and tanh models is also put to Marabou (``verifier.adapters.marabou``;
sigmoid as Marabou's sigmoid constraint, tanh as ``2 sigmoid(2x) - 1``): it is
asked for an input of the verified region that refutes the verdict (with the
condition relaxed by ``ORACLE_DELTA``, so UNSAT is robust). Marabou is not a
perfect oracle in floating point (docs/ARCHITECTURE.md), so every point it returns is moved
into the region if it lies outside (towards the region's Chebyshev centre) and
the model evaluated there with the SQL function's runtime; only a point that
really refutes the verdict fails the trial. Marabou's UNSAT is not taken on
trust either: maraboupy 2.0 answers UNSAT even to "is there any output >= -100"
on some networks with tiny weights, whose values vary over ranges of ~1e-6 (the
campaign's weight scale 1e-3 does it; ReLU as well as sigmoid; e.g. a 2-2-1 ReLU
net with first-layer weights 1e-6 on [-1, 1]^2). So an UNSAT counts only if
the same query with its bounds moved to hold at the region's centre (a
*control*, satisfiable by construction) is not UNSAT too, and only if none of
``ORACLE_SAMPLE_POINTS`` points of the region, evaluated by the runtime,
satisfies the refuting condition. Sigmoid / tanh queries often end UNKNOWN
(Marabou's incremental linearization gives up): those are inconclusive; an
UNKNOWN control is accepted (Marabou did not find the encoding infeasible).
Counts: ``confirmed`` (every query UNSAT, controlled), ``refuted`` (a checked
counterexample: a soundness bug), ``false_sat`` (Marabou's point refutes
nothing: settled by evaluation in our favour), ``inconclusive`` (time-out,
UNKNOWN, error, or an UNSAT its control or a sampled point contradicts). The
counts are also kept per activation (``"sigmoid:confirmed"``, ...), with
``"<activation>:unsat_contradicted"`` for UNSATs the control or sampling refuted
and ``"<activation>:unsat_unchecked"`` for UNSATs no control could be built for
(no centre found, or non-finite outputs there).
"""

from __future__ import annotations

import numpy as np

from mlskip.verifier.predicate import KIND_OF_OP

ORACLE_SAMPLES = 4  # NONE/ALL verdicts per trial put to Marabou
ORACLE_TIMEOUT = 2.0  # seconds per Marabou query
ORACLE_DELTA = 1e-7  # relative relaxation of the refuting condition (proofs)
ORACLE_MARGIN = 1e-4  # relative tightening when looking for a counterexample
ORACLE_OUTCOMES = ("confirmed", "refuted", "false_sat", "inconclusive")
ORACLE_SAMPLE_POINTS = 32  # points of the region evaluated to cross-check an UNSAT


class RecordingVerifier:
    """Wraps a verifier (None: the planner's default for the batch size) and keeps
    every batch it decided, for the oracle."""

    def __init__(self, inner=None) -> None:
        self.inner = inner
        self.calls: list[tuple] = []

    def verify(self, net, regions, predicate, *args, **kwargs):
        inner = self.inner
        if inner is None:
            from mlskip.skipper.planner import Planner

            inner = Planner().verifier_for(regions.n)
        result = inner.verify(net, regions, predicate, *args, **kwargs)
        self.calls.append((net, regions, predicate, np.asarray(result.verdicts).copy()))
        return result


def refuting_queries(predicate, k: int, verdict: int, delta: float) -> list[list[tuple]]:
    """Marabou output conditions, one list per query: any SAT query refutes ``verdict``
    (0 NONE: some input qualifies; 1 ALL: some input does not). ``delta`` > 0 relaxes
    each condition by ``delta * (1 + |threshold|)`` (for proofs), < 0 tightens it
    (for counterexamples that survive rounding)."""
    if predicate.op == "argmax":
        label = predicate.label
        eye = np.eye(k)
        others = [j for j in range(k) if j != label]
        if verdict == 0:  # class `label` at least ties every other class
            return [[(eye[label] - eye[j], ">=", -delta) for j in others]]
        return [[(eye[j] - eye[label], ">=", -delta)] for j in others]
    c = predicate._c(k)
    t, h = predicate.threshold, predicate.high
    dt, dh = delta * (1 + abs(t)), delta * (1 + abs(h))
    if predicate.op in (">", ">="):
        return [[(c, ">=", t - dt)]] if verdict == 0 else [[(c, "<=", t + dt)]]
    if predicate.op in ("<", "<="):
        return [[(c, "<=", t + dt)]] if verdict == 0 else [[(c, ">=", t - dt)]]
    if verdict == 0:
        return [[(c, ">=", t - dt), (c, "<=", h + dh)]]
    return [[(c, "<=", t + dt)], [(c, ">=", h - dh)]]


def _inside(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, hs: list) -> bool:
    if not ((x >= lo) & (x <= hi)).all():
        return False
    return all((A @ x[[i, j]] <= b).all() for i, j, A, b in hs)


def _centre(lo: np.ndarray, hi: np.ndarray, hs: list) -> np.ndarray | None:
    """A point deep inside box ∩ halfspaces (Chebyshev centre by LP), or None."""
    from scipy.optimize import linprog

    d = len(lo)
    rows, rhs = [], []
    for i, j, A, b in hs:
        for a, bb in zip(A, b, strict=True):
            if (a != 0).any() and np.isfinite(bb):
                r = np.zeros(d + 1)
                r[i], r[j], r[d] = a[0], a[1], np.hypot(a[0], a[1])
                rows.append(r)
                rhs.append(bb)
    for k in range(d):  # box sides, also keeping the slack away from them
        for sign, bound in ((1.0, hi[k]), (-1.0, -lo[k])):
            if np.isfinite(bound):
                r = np.zeros(d + 1)
                r[k], r[d] = sign, 1.0
                rows.append(r)
                rhs.append(bound)
    cost = np.zeros(d + 1)
    cost[d] = -1.0
    bounds = [(None, None)] * d + [(0.0, 1.0)]
    if not rows:
        return np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0))
    try:
        res = linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds)
    except (ValueError, OverflowError):
        return None
    return np.asarray(res.x[:d]) if res.status == 0 else None


def settle_point(x, lo, hi, hs) -> np.ndarray | None:
    """Marabou's point if it is in the region, else the nearest point found on the
    segment towards the region's centre; None if none is found."""
    x = np.clip(np.asarray(x, dtype=np.float64), lo, hi)
    if _inside(x, lo, hi, hs):
        return x
    centre = _centre(lo, hi, hs)
    if centre is None:
        return None
    for t in (1e-12, 1e-9, 1e-6, 1e-4, 1e-2, 0.1, 0.5, 1.0):
        y = np.clip(x + t * (centre - x), lo, hi)
        if _inside(y, lo, hi, hs):
            return y
    return None


def _sample_points(lo, hi, hs, centre, count: int, rng: np.random.Generator) -> np.ndarray:
    """``centre`` (if given and inside) and up to ``count`` uniform points of box ∩ halfspaces."""
    points = []
    if centre is not None and _inside(centre, lo, hi, hs):
        points.append(centre)
    if np.isfinite(lo).all() and np.isfinite(hi).all():
        with np.errstate(all="ignore"):
            box = lo + rng.uniform(size=(count, len(lo))) * (hi - lo)
        points += [x for x in box if np.isfinite(x).all() and _inside(x, lo, hi, hs)]
    return np.array(points, dtype=np.float64).reshape(-1, len(lo))


def _holds(out: np.ndarray, query) -> np.ndarray:
    """Rows of logits ``out`` [n, k] that meet every condition of ``query``."""
    ok = np.ones(len(out), dtype=bool)
    with np.errstate(all="ignore"):
        for coef, op, value in query:
            v = out @ np.asarray(coef, dtype=np.float64)
            ok &= (v >= value) if op == ">=" else (v <= value)
    return ok


class _Refuter:
    """Marabou and the runtime, asked whether some point of one region refutes a verdict."""

    def __init__(self, net, regions, r: int, predicate, verdict: int, runner) -> None:
        self.net, self.runner, self.predicate, self.verdict = net, runner, predicate, verdict
        self.lo, self.hi = regions.lower[r], regions.upper[r]
        self.hs = [
            (i, j, A[r], b[r])
            for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True)
        ]
        self.kind = KIND_OF_OP[predicate.op]
        if self.kind == "argmax":
            self.values = (predicate.label,)
        elif self.kind == "between":
            self.values = (predicate.threshold, predicate.high)
        else:
            self.values = (predicate.threshold,)
        self.claim = "NONE" if verdict == 0 else "ALL"
        self.centre = _centre(self.lo, self.hi, self.hs)
        rng = np.random.default_rng([r, verdict])
        self.samples = _sample_points(
            self.lo, self.hi, self.hs, self.centre, ORACLE_SAMPLE_POINTS, rng
        )

    def _refuted(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``points`` the runtime's output says refute the verdict (and the outputs)."""
        from mlskip.udf.batch_eval import qualifies

        with np.errstate(all="ignore"):
            out = self.runner(points.astype(np.float32))
        return qualifies(out, self.kind, self.values) != (self.verdict == 1), out

    def ask(self, query) -> tuple[str, str | None]:
        """Marabou's status and, for SAT, whether its point (moved into the region)
        really refutes the verdict when the model is evaluated there."""
        from mlskip.verifier.adapters.marabou import marabou_query

        try:
            status, x = marabou_query(self.net, self.lo, self.hi, self.hs, query, ORACLE_TIMEOUT)
        except Exception as error:  # Marabou failing is no verdict either way
            return f"error {type(error).__name__}", None
        if status != "sat" or x is None:
            return status, None
        point = settle_point(x, self.lo, self.hi, self.hs)
        if point is None:
            return "outside", None
        bad, out = self._refuted(point[None, :])
        if bool(bad[0]):
            return "sat", (
                f"oracle: verdict {self.claim} refuted at {point.tolist()} (model output "
                f"{out[0].tolist()}, predicate {self.predicate})"
            )
        return "sat", None

    def sampled_refutation(self) -> str | None:
        """A message if the runtime's output at one of the sampled points refutes the verdict."""
        if not len(self.samples):
            return None
        bad, out = self._refuted(self.samples)
        bad = np.flatnonzero(bad)
        if not len(bad):
            return None
        i = int(bad[0])
        return (
            f"oracle: verdict {self.claim} refuted at sampled point {self.samples[i].tolist()} "
            f"(model output {out[i].tolist()}, predicate {self.predicate}; Marabou said UNSAT)"
        )

    def unsat_check(self, query) -> str:
        """ "stands" if Marabou's UNSAT on ``query`` survives the samples and its control,
        else "contradicted" or "unchecked" (no control could be built or answered)."""
        from mlskip.verifier.adapters.marabou import control_query, marabou_query

        with np.errstate(all="ignore"):
            logits = self.net.evaluate(self.samples, final=False)
        if _holds(logits, query).any():
            return "contradicted"
        control = None if self.centre is None else control_query(self.net, self.centre, query)
        if control is None:
            return "unchecked"
        try:
            status, _ = marabou_query(self.net, self.lo, self.hi, self.hs, control, ORACLE_TIMEOUT)
        except Exception:
            return "unchecked"
        if status == "unsat":
            return "contradicted"
        return "stands" if status in ("sat", "unknown") else "unchecked"


def check_verdict(
    net, regions, r: int, predicate, verdict: int, runner, notes: dict | None = None
) -> tuple[str, str]:
    """Ask Marabou to refute ``verdict`` on region ``r``; settle SAT answers by evaluation
    and cross-check UNSAT answers (control query, sampled points; module docstring).
    ``notes`` (optional) counts ``unsat_contradicted`` and ``unsat_unchecked``."""
    oracle = _Refuter(net, regions, r, predicate, verdict, runner)
    k = net.num_outputs
    outcome = "confirmed"
    relaxed = refuting_queries(predicate, k, verdict, ORACLE_DELTA)
    tight = refuting_queries(predicate, k, verdict, -ORACLE_MARGIN)
    for loose_query, tight_query in zip(relaxed, tight, strict=True):
        status, refutation = oracle.ask(loose_query)
        if status == "unsat":
            check = oracle.unsat_check(loose_query)
            if check != "stands":
                if notes is not None:
                    notes[f"unsat_{check}"] = notes.get(f"unsat_{check}", 0) + 1
                refutation = oracle.sampled_refutation()
                if refutation:
                    return "refuted", refutation
                outcome = "inconclusive"
            continue
        if refutation:
            return "refuted", refutation
        # a point on the boundary refutes nothing; look for one with a margin
        tight_status, refutation = oracle.ask(tight_query)
        if refutation:
            return "refuted", refutation
        if status == "sat" and tight_status in ("sat", "unsat"):
            outcome = "false_sat" if outcome == "confirmed" else outcome
        else:
            outcome = "inconclusive"
    return outcome, ""


def _activation_kind(net) -> str:
    return "+".join(sorted({a.name for a in net.activations})) or "linear"


def marabou_oracle(calls, runner, rng: np.random.Generator, samples: int):
    """Check up to ``samples`` NONE/ALL verdicts of ReLU / LeakyReLU / sigmoid / tanh
    models with Marabou. Counts per outcome, and per ``"<activation>:<outcome>"``."""
    from mlskip.verifier.adapters.marabou import supports

    counts = dict.fromkeys(ORACLE_OUTCOMES, 0)
    problems: list[str] = []
    candidates = [
        (c, r)
        for c, (net, _, _, verdicts) in enumerate(calls)
        if supports(net)
        for r in np.flatnonzero(verdicts != 2).tolist()
    ]
    if not candidates:
        return counts, problems
    pick = rng.choice(len(candidates), size=min(samples, len(candidates)), replace=False)
    for p in sorted(pick.tolist()):
        c, r = candidates[p]
        net, regions, predicate, verdicts = calls[c]
        notes: dict = {}
        outcome, message = check_verdict(
            net, regions, r, predicate, int(verdicts[r]), runner, notes
        )
        counts[outcome] += 1
        act = _activation_kind(net)
        for key, n in ((outcome, 1), *notes.items()):
            counts[f"{act}:{key}"] = counts.get(f"{act}:{key}", 0) + n
        if message:
            problems.append(message)
    return counts, problems

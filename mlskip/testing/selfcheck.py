"""``mlskip selfcheck``: a randomized end-to-end soundness campaign.

Each trial draws a table (numeric types, layouts, NULLs, NaN, infinities,
extreme magnitudes), writes it through the mlskip hook with random row-group
sizes, pairs and byte budgets, draws a model (ReLU / sigmoid / tanh MLP or a
classifier) and a predicate with its threshold near the outputs' extremes,
then checks:

1. the query returns the same multiset of rows with skipping (batch
   evaluation and SQL-function evaluation) as without it;
2. no row group the planner pruned holds a row that passes the WHERE clause;
3. every row of a row group judged all-match (that passes the ordinary
   conjuncts) satisfies the ML predicate.

Qualification is decided by brute force: the model is run on every row by the
same runtime the SQL function uses, with DuckDB's comparison semantics.

Footer keys: from a random stream of its own (the trial's other draws do not
change), 30% of trials write a signed footer and/or plan under a footer key
(``MLSKIP_FOOTER_KEY`` set while the trial queries): the right key (polygons
used), a wrong key or an unsigned file under a key (boxes only); the checks
are the same.

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

import contextlib
import decimal
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlskip.verifier.predicate import KIND_OF_OP, OP_OF_KIND

NUMERIC_TYPES = ("int8", "int16", "int32", "int64", "uint16", "float32", "float64", "decimal")
EXTRA_TYPES = ("date", "timestamp")


@dataclass
class TrialResult:
    seed: int
    sql: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    row_groups: int = 0
    pruned: int = 0
    all_match: int = 0
    details: dict = field(default_factory=dict, repr=False)  # network, report, path: for debugging
    oracle: dict = field(default_factory=dict)  # outcome -> count (oracle="marabou")


def _values(rng: np.random.Generator, n: int, kind: str, layout: str) -> np.ndarray:
    """float64 values of one column before casting to its type."""
    shape = rng.choice(["uniform", "normal", "constant", "duplicates", "wide", "tiny"])
    if shape == "uniform":
        v = rng.uniform(-100, 100, n)
    elif shape == "normal":
        v = rng.normal(rng.uniform(-50, 50), rng.uniform(0.01, 30), n)
    elif shape == "constant":
        v = np.full(n, rng.uniform(-10, 10))
    elif shape == "duplicates":
        v = rng.choice(rng.uniform(-20, 20, 3), n)
    elif shape == "wide":
        v = rng.uniform(-1, 1, n) * 10.0 ** rng.integers(3, 300)
    else:
        v = rng.uniform(-1, 1, n) * 10.0 ** -rng.integers(3, 300)
    if layout == "sorted":
        v = np.sort(v)
    elif layout == "clustered":
        v = np.sort(v).reshape(-1)[np.argsort(np.arange(n) // max(1, n // 7) + rng.random(n) * 0.5)]
    if kind.startswith(("int", "uint")):
        info = np.iinfo(kind)
        v = np.clip(
            np.round(v / (10.0 ** max(0, np.log10(np.abs(v).max() + 1) - 6))), info.min, info.max
        )
    return v


def _column(rng: np.random.Generator, n: int, kind: str, layout: str) -> pa.Array:
    v = _values(rng, n, kind, layout)
    mask = rng.random(n) < rng.choice([0.0, 0.0, 0.05, 0.5, 1.0])
    if kind in ("float32", "float64"):
        special = rng.random(n) < rng.choice([0.0, 0.0, 0.01])
        v = np.where(special, rng.choice([np.nan, np.inf, -np.inf], n), v)
        if kind == "float32":
            with np.errstate(over="ignore"):
                v = v.astype(np.float32)
        return pa.array(v, mask=mask)
    if kind == "decimal":
        scale = int(rng.integers(0, 4))
        q = decimal.Decimal(1).scaleb(-scale)
        values = [
            None if m else decimal.Decimal(repr(float(np.clip(x, -1e12, 1e12)))).quantize(q)
            for x, m in zip(v, mask, strict=True)
        ]
        return pa.array(values, type=pa.decimal128(18, scale))
    if kind == "date":
        days = np.clip(np.round(v), -100_000, 100_000).astype("int32")
        return pa.array(days, type=pa.int32(), mask=mask).cast(pa.date32())
    if kind == "timestamp":
        us = np.clip(np.round(v * 1e6), -1e15, 1e15).astype("int64")
        return pa.array(us, type=pa.int64(), mask=mask).cast(pa.timestamp("us"))
    return pa.array(v.astype(kind), mask=mask)


def random_table(rng: np.random.Generator, n: int) -> tuple[pa.Table, list[str]]:
    """A table of 2-5 numeric columns (model inputs) plus a date, a timestamp and a row id."""
    layout = rng.choice(["random", "sorted", "clustered"])
    columns: dict[str, pa.Array] = {}
    numeric: list[str] = []
    for i in range(int(rng.integers(2, 6))):
        kind = str(rng.choice(NUMERIC_TYPES))
        name = f"c{i}_{kind}"
        columns[name] = _column(rng, n, kind, str(layout))
        numeric.append(name)
    for kind in EXTRA_TYPES:
        columns[kind] = _column(rng, n, kind, "random")
    columns["rid"] = pa.array(np.arange(n, dtype=np.int64))
    return pa.table(columns), numeric


def random_network(rng: np.random.Generator, d: int, classes: int):
    from mlskip.verifier import Network, ReLU, Sigmoid, Tanh

    act = [ReLU(), ReLU(), Sigmoid(), Tanh()][int(rng.integers(0, 4))]
    widths = [d, *rng.integers(2, 12, size=int(rng.integers(1, 3))).tolist(), classes]
    scale = float(rng.choice([1e-3, 0.05, 0.5, 3.0]))
    weights = [
        (rng.normal(size=(widths[i + 1], widths[i])) * scale, rng.normal(size=widths[i + 1]))
        for i in range(len(widths) - 1)
    ]
    return Network.mlp(weights, act)


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


def check_verdict(
    net, regions, r: int, predicate, verdict: int, runner, notes: dict | None = None
) -> tuple[str, str]:
    """Ask Marabou to refute ``verdict`` on region ``r``; settle SAT answers by evaluation
    and cross-check UNSAT answers (control query, sampled points; module docstring).
    ``notes`` (optional) counts ``unsat_contradicted`` and ``unsat_unchecked``."""
    from mlskip.udf.batch_eval import qualifies
    from mlskip.verifier.adapters.marabou import control_query, marabou_query

    lo, hi = regions.lower[r], regions.upper[r]
    hs = [
        (i, j, A[r], b[r]) for (i, j), (A, b) in zip(regions.pairs, regions.halfspaces, strict=True)
    ]
    kind = KIND_OF_OP[predicate.op]
    values = (
        (predicate.label,)
        if kind == "argmax"
        else (predicate.threshold, predicate.high)
        if kind == "between"
        else (predicate.threshold,)
    )
    claim = "NONE" if verdict == 0 else "ALL"

    def ask(query) -> tuple[str, str | None]:
        """Marabou's status and, for SAT, whether its point (moved into the region)
        really refutes the verdict when the model is evaluated there."""
        try:
            status, x = marabou_query(net, lo, hi, hs, query, ORACLE_TIMEOUT)
        except Exception as error:  # Marabou failing is no verdict either way
            return f"error {type(error).__name__}", None
        if status != "sat" or x is None:
            return status, None
        point = settle_point(x, lo, hi, hs)
        if point is None:
            return "outside", None
        with np.errstate(all="ignore"):
            out = runner(point[None, :].astype(np.float32))
        if bool(qualifies(out, kind, values)[0]) != (verdict == 1):
            return "sat", (
                f"oracle: verdict {claim} refuted at {point.tolist()} (model output "
                f"{out[0].tolist()}, predicate {predicate})"
            )
        return "sat", None

    def refutes(points: np.ndarray) -> str | None:
        """A message if the runtime's output at one of ``points`` refutes the verdict."""
        if not len(points):
            return None
        with np.errstate(all="ignore"):
            out = runner(points.astype(np.float32))
        bad = np.flatnonzero(qualifies(out, kind, values) != (verdict == 1))
        if not len(bad):
            return None
        i = int(bad[0])
        return (
            f"oracle: verdict {claim} refuted at sampled point {points[i].tolist()} "
            f"(model output {out[i].tolist()}, predicate {predicate}; Marabou said UNSAT)"
        )

    def unsat_check(query) -> str:
        """ "stands" if Marabou's UNSAT on ``query`` survives the samples and its control,
        else "contradicted" or "unchecked" (no control could be built or answered)."""
        with np.errstate(all="ignore"):
            logits = net.evaluate(samples, final=False)
        if _holds(logits, query).any():
            return "contradicted"
        control = None if centre is None else control_query(net, centre, query)
        if control is None:
            return "unchecked"
        try:
            status, _ = marabou_query(net, lo, hi, hs, control, ORACLE_TIMEOUT)
        except Exception:
            return "unchecked"
        if status == "unsat":
            return "contradicted"
        return "stands" if status in ("sat", "unknown") else "unchecked"

    centre = _centre(lo, hi, hs)
    rng = np.random.default_rng([r, verdict])
    samples = _sample_points(lo, hi, hs, centre, ORACLE_SAMPLE_POINTS, rng)
    k = net.num_outputs
    outcome = "confirmed"
    relaxed = refuting_queries(predicate, k, verdict, ORACLE_DELTA)
    tight = refuting_queries(predicate, k, verdict, -ORACLE_MARGIN)
    for loose_query, tight_query in zip(relaxed, tight, strict=True):
        status, refutation = ask(loose_query)
        if status == "unsat":
            check = unsat_check(loose_query)
            if check != "stands":
                if notes is not None:
                    notes[f"unsat_{check}"] = notes.get(f"unsat_{check}", 0) + 1
                refutation = refutes(samples)
                if refutation:
                    return "refuted", refutation
                outcome = "inconclusive"
            continue
        if refutation:
            return "refuted", refutation
        # a point on the boundary refutes nothing; look for one with a margin
        tight_status, refutation = ask(tight_query)
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


class TrialSession:
    """Connections that consecutive trials share, as a long-lived application would: each
    trial re-registers model ``m`` (of any shape or kind) on them and queries a new file.

    ``probe`` computes the ground truth; ``off`` runs without skipping; ``batch`` and
    ``udf`` skip with batch evaluation and with the SQL function."""

    def __init__(self, verifier=None, oracle: str | None = None) -> None:
        import duckdb

        import mlskip

        self.probe = duckdb.connect()
        self.recorder = RecordingVerifier(verifier) if oracle == "marabou" else None
        self.cons = {
            "off": mlskip.connect(skipping=False),
            "batch": mlskip.connect(verifier=self.recorder or verifier),
            "udf": mlskip.connect(verifier=verifier, batch_evaluation=False),
        }

    def close(self) -> None:
        for con in self.cons.values():
            con.close()
        self.probe.close()


FOOTER_KEY_CASES = (  # (share, writer key, reader key)
    (0.70, None, None),
    (0.15, "campaign-key", "campaign-key"),
    (0.08, "campaign-key", "other-key"),
    (0.07, None, "campaign-key"),
)


def footer_keys(seed: int) -> tuple[str | None, str | None]:
    """(writer key, reader key) of trial ``seed``, from a stream of its own."""
    u = np.random.default_rng([seed, 0x6B6579]).random()
    for share, writer, reader in FOOTER_KEY_CASES:
        if u < share:
            return writer, reader
        u -= share
    return None, None


@contextlib.contextmanager
def footer_key_env(key: str | None):
    """``MLSKIP_FOOTER_KEY`` set to ``key`` (unset for None) inside the block."""
    from mlskip.metadata import KEY_ENV

    before = os.environ.get(KEY_ENV)
    try:
        if key is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = key
        yield
    finally:
        if before is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = before


def run_trial(
    seed: int,
    workdir: Path,
    verifier=None,
    oracle: str | None = None,
    oracle_samples: int = ORACLE_SAMPLES,
    session: TrialSession | None = None,
) -> TrialResult:
    """One random case end to end (see module docstring); ``oracle``: None or "marabou".

    ``session``: connections left by earlier trials to reuse (by default fresh ones)."""
    if oracle not in (None, "none", "marabou"):
        raise ValueError(f"unknown oracle {oracle!r}; use 'marabou' or None")
    if session is None:
        session = TrialSession(verifier, oracle)
        try:
            return run_trial(seed, workdir, verifier, oracle, oracle_samples, session)
        finally:
            session.close()
    import mlskip

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    table, numeric = random_table(rng, n)
    path = workdir / f"t{seed}.parquet"
    pairs = [(a, b) for i, a in enumerate(numeric) for b in numeric[i + 1 :]]
    hulls = [None, "auto", pairs[: int(rng.integers(1, len(pairs) + 1))]][int(rng.integers(0, 3))]
    cluster = None if rng.random() < 0.5 else [str(rng.choice(numeric))]
    writer_key, planner_key = footer_keys(seed)
    with warnings.catch_warnings(), footer_key_env(writer_key):
        warnings.simplefilter("ignore")
        mlskip.write_parquet(
            table, path, row_group_size=int(rng.integers(1, 600)), hulls=hulls,
            hull_bytes=int(rng.integers(12, 80)), cluster_by=cluster,
        )  # fmt: skip
    with footer_key_env(planner_key):
        return _query_and_check(
            seed, rng, table, numeric, path, verifier, oracle, oracle_samples, session,
            keys=(writer_key, planner_key),
        )  # fmt: skip


def _query_and_check(
    seed, rng, table, numeric, path, verifier, oracle, oracle_samples, session, keys
) -> TrialResult:
    """The rest of ``run_trial``: model, predicate, queries and checks on the written file."""
    from mlskip.skipper.rules.roundtrip import duckdb_double
    from mlskip.udf.batch_eval import qualifies
    from mlskip.udf.model import prepare_model
    from mlskip.udf.runtime import make_runner

    n = table.num_rows
    d = int(rng.integers(1, min(4, len(numeric)) + 1))
    inputs = [str(c) for c in rng.choice(numeric, size=d, replace=False)]
    classes = 1 if rng.random() < 0.7 else int(rng.integers(2, 5))
    net = random_network(rng, d, classes)
    model = prepare_model(net)
    runner = make_runner(model)

    probe = session.probe
    args_sql = ", ".join(f"CAST({c} AS DOUBLE)" for c in inputs)
    rows = probe.execute(
        f"SELECT file_row_number, {args_sql} FROM read_parquet('{path}', file_row_number = true) "
        "ORDER BY file_row_number"
    ).fetch_arrow_table()
    x = np.column_stack(
        [rows.column(j + 1).fill_null(0.0).to_numpy(zero_copy_only=False) for j in range(d)]
    ) if n else np.zeros((0, d))  # fmt: skip
    valid = np.ones(rows.num_rows, dtype=bool)
    for j in range(d):
        valid &= ~rows.column(j + 1).is_null().to_numpy(zero_copy_only=False)
    out = runner(x.astype(np.float32)) if n else np.zeros((0, classes), np.float32)

    call = f"m({', '.join(inputs)})"
    if classes > 1:
        kind, values = "argmax", (int(rng.integers(0, classes)),)
        condition = f"m_class({', '.join(inputs)}) = {values[0]}"
    else:
        y = out[valid & np.isfinite(out[:, 0]), 0].astype(np.float64) if n else np.zeros(0)
        base = [0.0] if y.size == 0 else np.quantile(y, [0, 0.001, 0.5, 0.999, 1]).tolist()
        t = float(rng.choice(base))
        if rng.random() < 0.3:  # one ulp away: where rounding bites
            nudged = float(np.nextafter(t, rng.choice([-np.inf, np.inf])))
            t = nudged if np.isfinite(nudged) else t
        kind = str(rng.choice(["gt", "ge", "lt", "le", "between"]))
        op = OP_OF_KIND[kind]
        if kind == "between":
            t2 = float(rng.choice(base))
            values = (min(t, t2), max(t, t2))
            condition = f"{call} BETWEEN {values[0]!r} AND {values[1]!r}"
        else:
            values = (t,)
            condition = f"{call} {op} {t!r}"
    if kind != "argmax":  # DuckDB reads the literal as DECIMAL: compare with its value
        values = tuple(duckdb_double(repr(v)) for v in values)
    holds = qualifies(out, kind, values) & valid if n else np.zeros(0, bool)
    extra, passes_extra = "", np.ones(rows.num_rows, dtype=bool)
    if rng.random() < 0.4 and n:
        col = str(rng.choice(numeric))
        values_col = probe.execute(f"SELECT CAST({col} AS DOUBLE) FROM '{path}'").fetchnumpy()
        finite = [
            v for v in next(iter(values_col.values())).tolist() if v is not None and np.isfinite(v)
        ]
        if finite:
            bound = float(np.median(finite))
            op = str(rng.choice(["<", "<=", ">", ">=", "="]))
            extra = f" AND {col} {op} {bound!r}"
            # DuckDB decides the conjunct itself (FLOAT columns compare in FLOAT, NaN is largest)
            passes = probe.execute(
                f"SELECT coalesce({col} {op} {bound!r}, false) FROM read_parquet('{path}', "
                "file_row_number = true) ORDER BY file_row_number"
            ).fetchnumpy()
            passes_extra = np.asarray(next(iter(passes.values())), dtype=bool)
    sql = f"SELECT rid FROM '{path}' WHERE {condition}{extra}"

    result = TrialResult(
        seed, sql, True, details={"network": net, "path": path, "footer_keys": keys}
    )
    recorder, cons = session.recorder, session.cons
    if recorder is not None:
        recorder.calls.clear()
    for con in cons.values():
        con.register_model("m", net, replace=True)  # one model per trial, same name
    answers = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, con in cons.items():
            answers[name] = sorted(r[0] for r in con.sql(sql).fetchall())
        report = cons["batch"].explain_skipping(sql)
    result.details["report"] = report
    for name in ("batch", "udf"):
        if answers[name] != answers["off"]:
            result.problems.append(
                f"{name}: {len(answers[name])} rows vs {len(answers['off'])} without skipping"
            )
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    counts = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(counts)])
    qualifying = holds & passes_extra
    for f in report.files:
        for g in f.pruned_groups:
            if qualifying[starts[g] : starts[g + 1]].any():
                result.problems.append(f"row group {g} pruned but holds a qualifying row")
        for g in f.all_match_groups:
            sl = slice(starts[g], starts[g + 1])
            if (passes_extra[sl] & ~holds[sl]).any():
                result.problems.append(
                    f"row group {g} judged all-match but a row fails the predicate"
                )
        result.row_groups += f.row_groups
        result.pruned += f.pruned
        result.all_match += f.all_match
    if oracle == "marabou":
        counts, refuted = marabou_oracle(
            recorder.calls, runner, np.random.default_rng([seed, 7]), oracle_samples
        )
        result.oracle = counts
        result.problems += refuted
    result.ok = not result.problems
    return result


CHUNK = 25  # trials that share one TrialSession


def _campaign_verifier():
    from mlskip.verifier.cascade import Verifier

    return Verifier(time_budget=0.2, milp_time_per_region=0.05, bab_time_budget=0.05)


def run_chunk(seeds: list[int], oracle: str | None = None) -> list[TrialResult]:
    """Consecutive trials on one shared session, each in a fresh working directory."""
    verifier = _campaign_verifier()
    session = TrialSession(verifier, oracle)
    results: list[TrialResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mlskip-selfcheck-") as tmp:
            for s in seeds:
                try:
                    r = run_trial(s, Path(tmp), verifier, oracle=oracle, session=session)
                except Exception as error:  # a crash is a failure to report, with its seed
                    r = TrialResult(s, "", False, [f"{type(error).__name__}: {error}"])
                if not r.ok and s != seeds[0]:
                    r.problems.append(
                        f"(after trials {seeds[0]}..{s - 1} on the same connections: "
                        f"rerun with --seed {seeds[0]} --trials {s - seeds[0] + 1})"
                    )
                r.details = {}  # networks and reports stay in the worker
                results.append(r)
                for leftover in Path(tmp).glob("*.parquet"):
                    leftover.unlink()
    finally:
        session.close()
    return results


def run_campaign(
    trials: int,
    seed: int = 0,
    progress: bool = True,
    oracle: str | None = None,
    workers: int = 1,
) -> list[TrialResult]:
    """Run ``trials`` trials with seeds ``seed .. seed + trials - 1``; returns the failures first.

    Trials run in chunks of ``CHUNK`` consecutive seeds sharing connections, on ``workers``
    processes. ``oracle="marabou"``: also check a sample of each trial's verdicts with Marabou."""
    seeds = list(range(seed, seed + trials))
    chunks = [seeds[i : i + CHUNK] for i in range(0, trials, CHUNK)]
    results: list[TrialResult] = []
    if workers <= 1:
        done = (run_chunk(c, oracle) for c in chunks)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        futures = [pool.submit(run_chunk, c, oracle) for c in chunks]
        done = (f.result() for f in as_completed(futures))
    if progress:
        from mlskip.progress import progress as make_progress

        with make_progress() as bar:
            task = bar.add_task("selfcheck", total=trials)
            for chunk in done:
                results += chunk
                bar.advance(task, len(chunk))
    else:
        for chunk in done:
            results += chunk
    if workers > 1:
        pool.shutdown()
    return sorted(results, key=lambda r: (r.ok, r.seed))


def summarize(results: list[TrialResult], seconds: float) -> str:
    failed = [r for r in results if not r.ok]
    groups = sum(r.row_groups for r in results)
    lines = [
        f"{len(results)} trials, {len(failed)} failed, {seconds:.1f} s; "
        f"{groups} row groups planned, {sum(r.pruned for r in results)} pruned, "
        f"{sum(r.all_match for r in results)} all-match"
    ]
    oracle = [r.oracle for r in results if r.oracle]
    if oracle:
        totals = {k: sum(o.get(k, 0) for o in oracle) for k in ORACLE_OUTCOMES}
        lines.append(
            f"oracle (marabou): {sum(totals.values())} verdicts checked in {len(oracle)} trials: "
            + ", ".join(f"{v} {k}" for k, v in totals.items())
        )
    for r in failed[:20]:
        lines.append(f"seed {r.seed}: {'; '.join(r.problems)}\n  {r.sql}")
    return "\n".join(lines)


def main(trials: int, seed: int, oracle: str | None = None, workers: int = 1) -> bool:
    start = time.perf_counter()
    results = run_campaign(trials, seed, oracle=oracle, workers=workers)
    print(summarize(results, time.perf_counter() - start))
    return all(r.ok for r in results)

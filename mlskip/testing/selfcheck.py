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

Skip indexes: every trial also plans through a skip index built for its file
(``mlskip index build``; connection ``index``), and from a stream of its own 30% of
trials write the file as plain Parquet (pyarrow, no mlskip footer), so the index
computes its summaries from the rows. The index's plan is checked like the footer's.
From another stream, 20% of trials also scan the file with ``mlskip.dask.read_parquet``
(planned from the index, Dask's threaded scheduler): its rows must be those where the
predicate holds on every row's model output, and no row group its plan prunes may hold one.

Footer keys: from a random stream of its own (the trial's other draws do not
change), 30% of trials write a signed footer and/or plan under a footer key
(``MLSKIP_FOOTER_KEY`` set while the trial queries): the right key (polygons
used), a wrong key or an unsigned file under a key (boxes only); the checks
are the same.

With ``oracle="marabou"`` a sample of each trial's NONE / ALL verdicts is also put to
Marabou (``marabou_oracle.py``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlskip.verifier.predicate import OP_OF_KIND

from .marabou_oracle import ORACLE_OUTCOMES, ORACLE_SAMPLES, RecordingVerifier, marabou_oracle
from .random_cases import random_ensemble, random_network, random_table


@dataclass
class TrialResult:
    seed: int
    sql: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    row_groups: int = 0
    pruned: int = 0
    all_match: int = 0
    by_summary: int = 0  # row groups decided by model-aware summaries
    details: dict = field(default_factory=dict, repr=False)  # network, report, path: for debugging
    oracle: dict = field(default_factory=dict)  # outcome -> count (oracle="marabou")


class TrialSession:
    """Connections that consecutive trials share, as a long-lived application would: each
    trial re-registers model ``m`` (of any shape or kind) on them and queries a new file.

    ``probe`` computes the ground truth; ``off`` runs without skipping; ``batch`` and
    ``udf`` skip with batch evaluation and with the SQL function."""

    def __init__(self, verifier=None, oracle: str | None = None) -> None:
        import duckdb

        import mlskip

        self.probe = duckdb.connect()
        self._folder = tempfile.TemporaryDirectory(prefix="mlskip-selfcheck-index-")
        self.index = str(Path(self._folder.name) / "trial.index.parquet")  # rebuilt per trial
        self.recorder = RecordingVerifier(verifier) if oracle == "marabou" else None
        self.cons = {
            "off": mlskip.connect(skipping=False),
            "batch": mlskip.connect(verifier=self.recorder or verifier),
            "udf": mlskip.connect(verifier=verifier, batch_evaluation=False),
            "index": mlskip.connect(verifier=verifier, index=self.index),
        }

    def close(self) -> None:
        for con in self.cons.values():
            con.close()
        self.probe.close()
        self._folder.cleanup()


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


PLAIN_SHARE = 0.3  # trials whose file is plain Parquet, summarized by the index alone
DASK_SHARE = 0.2  # trials whose file is also scanned by mlskip.dask (planned from the index)
TREE_SHARE = 0.3  # trials whose model is a random tree ensemble (random_cases.random_ensemble)
SUMMARY_SHARE = 0.3  # trials whose file (and index) also summarize a model's outputs


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
    from mlskip.skipper.skip_index import build_index

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    table, numeric = random_table(rng, n)
    path = workdir / f"t{seed}.parquet"
    pairs = [(a, b) for i, a in enumerate(numeric) for b in numeric[i + 1 :]]
    hulls = [None, "auto", pairs[: int(rng.integers(1, len(pairs) + 1))]][int(rng.integers(0, 3))]
    cluster = None if rng.random() < 0.5 else [str(rng.choice(numeric))]
    writer_key, planner_key = footer_keys(seed)
    row_group_size, hull_bytes = int(rng.integers(1, 600)), int(rng.integers(12, 80))
    plain = np.random.default_rng([seed, 0x706C61]).random() < PLAIN_SHARE

    def write(hooks=None) -> None:
        """The trial's file and index (``hooks``: model summaries in both)."""
        with warnings.catch_warnings(), footer_key_env(writer_key):
            warnings.simplefilter("ignore")
            if plain:
                import pyarrow.parquet as pq

                from mlskip.metadata import cluster_order

                ordered = table.take(cluster_order(table, cluster)) if cluster else table
                pq.write_table(ordered, path, row_group_size=row_group_size)
            else:
                mlskip.write_parquet(
                    table, path, row_group_size=row_group_size, hulls=hulls,
                    hull_bytes=hull_bytes, cluster_by=cluster, footer_hooks=hooks,
                )  # fmt: skip
            build_index(
                str(path), session.index, hulls=hulls, hull_bytes=hull_bytes, footer_hooks=hooks
            )

    write()
    with footer_key_env(planner_key):
        return _query_and_check(
            seed, rng, table, numeric, path, verifier, oracle, oracle_samples, session,
            keys=(writer_key, planner_key), write=write,
        )  # fmt: skip


def _query_and_check(
    seed, rng, table, numeric, path, verifier, oracle, oracle_samples, session, keys, write
) -> TrialResult:
    """The rest of ``run_trial``: model, predicate, queries and checks on the written file."""
    from mlskip.udf.batch_eval import qualifies
    from mlskip.udf.model import prepare_model
    from mlskip.udf.runtime import make_runner

    n = table.num_rows
    d = int(rng.integers(1, min(4, len(numeric)) + 1))
    inputs = [str(c) for c in rng.choice(numeric, size=d, replace=False)]
    classes = 1 if rng.random() < 0.7 else int(rng.integers(2, 5))
    net = random_network(rng, d, classes)
    trees = np.random.default_rng([seed, 0x7472]) if TREE_SHARE else None
    if trees is not None and trees.random() < TREE_SHARE:  # its own stream: same draws below
        from mlskip.udf.inputs import model_rows

        samples, _ = model_rows([table.column(c) for c in inputs])
        net = random_ensemble(trees, d, classes, samples)
    runner = make_runner(prepare_model(net))
    summarized = _summarize(seed, net, inputs, write)
    out, valid = _model_outputs(session.probe, path, inputs, runner, n, classes)
    kind, values, condition = _draw_predicate(rng, out, valid, inputs, classes)
    holds = qualifies(out, kind, values) & valid if n else np.zeros(0, bool)
    extra, passes_extra = _draw_conjunct(rng, session.probe, numeric, path, len(valid))
    sql = f"SELECT rid FROM '{path}' WHERE {condition}{extra}"

    result = TrialResult(
        seed, sql, True,
        details={"network": net, "path": path, "footer_keys": keys, "summarized": summarized},
    )  # fmt: skip
    recorder, cons = session.recorder, session.cons
    if recorder is not None:
        recorder.calls.clear()
    for con in cons.values():
        con.register_model("m", net, replace=True)  # one model per trial, same name
        if summarized is not None and summarized is not net:  # its summaries serve m
            con.register_model("ref", summarized, replace=True)
    answers = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, con in cons.items():
            answers[name] = sorted(r[0] for r in con.sql(sql).fetchall())
        report = cons["batch"].explain_skipping(sql)
        indexed = cons["index"].explain_skipping(sql)
    result.details["report"] = report
    for name in ("batch", "udf", "index"):
        if answers[name] != answers["off"]:
            result.problems.append(
                f"{name}: {len(answers[name])} rows vs {len(answers['off'])} without skipping"
            )
    _check_row_groups(result, report, path, holds, passes_extra)
    _check_row_groups(result, indexed, path, holds, passes_extra, "index: ", count=False)
    if np.random.default_rng([seed, 0x64736B]).random() < DASK_SHARE:
        result.problems += _dask_problems(path, net, kind, values, inputs, runner, session.index)
    if oracle == "marabou":
        counts, refuted = marabou_oracle(
            recorder.calls, runner, np.random.default_rng([seed, 7]), oracle_samples
        )
        result.oracle = counts
        result.problems += refuted
    result.ok = not result.problems
    return result


def _summarize(seed: int, net, inputs: list[str], write):
    """From a stream of its own, for SUMMARY_SHARE of the trials: re-write the file and
    index with summaries of the trial's model's outputs, or of a model near it (weights
    perturbed, or trees dropped), in a random byte budget; returns the summarized model."""
    from mlskip.udf.model import prepare_model
    from mlskip.udf.summarize_models import ModelHooks, SummarizedModel

    rng = np.random.default_rng([seed, 0x6D7331])
    if rng.random() >= SUMMARY_SHARE:
        return None
    model = net if rng.random() < 0.5 else _nearby(rng, net)
    prepared = prepare_model(model, inputs)
    if prepared.network is None:
        return None
    least = 1 + (prepared.num_outputs + 7) // 8 if prepared.is_classifier else 5
    budget = int(rng.integers(least, 64))
    write(ModelHooks((SummarizedModel("ref", prepared, tuple(inputs), budget),)))
    return model


def _nearby(rng, net):
    """A model near ``net``: its weights or leaf values perturbed by ~2%, or (trees) its
    last trees dropped."""
    import dataclasses

    from mlskip.verifier import Network
    from mlskip.verifier.trees import TreeEnsemble

    if isinstance(net, TreeEnsemble):
        if net.num_trees > 1 and rng.random() < 0.5:
            from mlskip.model_zoo.trees import drop_trees

            return drop_trees(net, 0.5, average=False)
        noise = 1 + 0.02 * rng.normal(size=net.value.shape)
        return dataclasses.replace(net, value=net.value * noise, _cache={})
    weights = [
        (a.W * (1 + 0.02 * rng.normal(size=a.W.shape)), a.b + 0.01 * rng.normal(size=a.b.shape))
        for a in net.affines
    ]
    act = net.activations[0] if net.activations else None
    return Network.mlp(weights, act, final=net.final)


def _dask_problems(path, net, kind, values, inputs, runner, index) -> list[str]:
    """``mlskip.dask.read_parquet`` of the file (planned from the index) against every
    row evaluated as the Arrow and Dask scans evaluate it; its plan's pruned row groups
    must hold no qualifying row."""
    import dask
    import pyarrow.parquet as pq

    import mlskip.dask
    from mlskip.udf.inputs import model_rows
    from mlskip.verifier import Predicate

    predicate = Predicate.argmax(values[0]) if kind == "argmax" else Predicate.comparison(
        kind, values
    )  # fmt: skip
    table = pq.read_table(path)
    x, valid = model_rows([table.column(c) for c in inputs])
    holds = np.asarray(predicate.holds(runner(x).astype(np.float64)), bool) & valid
    want = sorted(table.column("rid").to_numpy()[holds].tolist())
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = mlskip.dask.read_parquet(
            str(path), net, predicate, columns=["rid"], inputs=inputs, index=index
        )
        got = sorted(frame.compute()["rid"].tolist())
        plan = mlskip.dask.plan(str(path), net, predicate, inputs=inputs, index=index)
    problems = []
    if got != want:
        problems.append(f"dask: {len(got)} rows vs {len(want)} evaluated on every row")
    file = plan.files[0]
    starts = np.concatenate([[0], np.cumsum(file.num_rows)])
    for g in np.flatnonzero(file.pruned):
        if holds[starts[g] : starts[g + 1]].any():
            problems.append(f"dask: row group {g} pruned but holds a qualifying row")
    return problems


def _model_outputs(probe, path, inputs, runner, n: int, classes: int):
    """The model's outputs on every row of ``path`` in file order (the SQL function's
    runtime), and which rows have no NULL input."""
    d = len(inputs)
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
    out = runner(x) if n else np.zeros((0, classes), np.float32)  # it casts as the model reads
    return out, valid


def _draw_predicate(rng, out, valid, inputs, classes: int) -> tuple[str, tuple, str]:
    """A predicate on model ``m`` (kind, values as DuckDB reads them, SQL), its threshold
    at an extreme or the median of the outputs, sometimes one ulp away."""
    from mlskip.skipper.rules.roundtrip import duckdb_double

    call = f"m({', '.join(inputs)})"
    if classes > 1:
        label = int(rng.integers(0, classes))
        return "argmax", (label,), f"m_class({', '.join(inputs)}) = {label}"
    y = out[valid & np.isfinite(out[:, 0]), 0].astype(np.float64) if len(out) else np.zeros(0)
    base = [0.0] if y.size == 0 else np.quantile(y, [0, 0.001, 0.5, 0.999, 1]).tolist()
    t = float(rng.choice(base))
    if rng.random() < 0.3:  # one ulp away: where rounding bites
        nudged = float(np.nextafter(t, rng.choice([-np.inf, np.inf])))
        t = nudged if np.isfinite(nudged) else t
    kind = str(rng.choice(["gt", "ge", "lt", "le", "between"]))
    if kind == "between":
        t2 = float(rng.choice(base))
        values = (min(t, t2), max(t, t2))
        condition = f"{call} BETWEEN {values[0]!r} AND {values[1]!r}"
    else:
        values = (t,)
        condition = f"{call} {OP_OF_KIND[kind]} {t!r}"
    # DuckDB reads the literal as DECIMAL: compare with its value
    return kind, tuple(duckdb_double(repr(v)) for v in values), condition


def _draw_conjunct(rng, probe, numeric, path, num_rows: int) -> tuple[str, np.ndarray]:
    """Sometimes an ordinary conjunct (`` AND col op median``) and which rows pass it,
    as DuckDB decides (FLOAT columns compare in FLOAT, NaN is largest)."""
    passes_extra = np.ones(num_rows, dtype=bool)
    if not (rng.random() < 0.4 and num_rows):
        return "", passes_extra
    col = str(rng.choice(numeric))
    column = probe.execute(f"SELECT CAST({col} AS DOUBLE) FROM '{path}'").fetchnumpy()
    finite = [v for v in next(iter(column.values())).tolist() if v is not None and np.isfinite(v)]
    if not finite:
        return "", passes_extra
    bound = float(np.median(finite))
    op = str(rng.choice(["<", "<=", ">", ">=", "="]))
    passes = probe.execute(
        f"SELECT coalesce({col} {op} {bound!r}, false) FROM read_parquet('{path}', "
        "file_row_number = true) ORDER BY file_row_number"
    ).fetchnumpy()
    return f" AND {col} {op} {bound!r}", np.asarray(next(iter(passes.values())), dtype=bool)


def _check_row_groups(
    result: TrialResult, report, path, holds, passes_extra, label: str = "", count: bool = True
) -> None:
    """No pruned row group holds a qualifying row; every row of an all-match row group
    that passes the ordinary conjunct satisfies the ML predicate (``label`` names the plan
    in problems; ``count``: add its row groups to the trial's totals)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    counts = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(counts)])
    qualifying = holds & passes_extra
    for f in report.files:
        for g in f.pruned_groups:
            if qualifying[starts[g] : starts[g + 1]].any():
                result.problems.append(f"{label}row group {g} pruned but holds a qualifying row")
        for g in f.all_match_groups:
            sl = slice(starts[g], starts[g + 1])
            if (passes_extra[sl] & ~holds[sl]).any():
                result.problems.append(
                    f"{label}row group {g} judged all-match but a row fails the predicate"
                )
        if not count:
            continue
        result.row_groups += f.row_groups
        result.pruned += f.pruned
        result.all_match += f.all_match
        result.by_summary += sum(n for m, n in f.methods if m.startswith("summary"))


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
        f"{sum(r.all_match for r in results)} all-match, "
        f"{sum(r.by_summary for r in results)} decided by model summaries"
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

"""Trials and campaigns: run drawn queries on both connections and count the outcomes."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import Model, draw_dataset, draw_models
from .oracle import QUERY_TIMEOUT, CampaignResult, QueryResult, check_query
from .queries import QueryGen

QUERIES_PER_TRIAL = 5
CHUNK = 10  # trials per worker task


# ----------------------------------------------------------------------------- trials
def _error_line(error: Exception) -> str:
    """The error and where it was raised (innermost frame), on one line."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    here = Path(__file__).parent  # the fuzzer's own frames, else the innermost at all
    ours = [f for f in frames if Path(f.filename).parent == here] or frames
    where = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
    return f"{type(error).__name__}: {error}{where}"


def _fuzz_verifier():
    from mlskip.verifier.cascade import Verifier

    return Verifier(methods=("ibp", "crown"), sample_points=0)


INDEXED_SHARE = 0.5  # trials whose skipping connection plans from a skip index


def _connections(
    models: list[Model], threads: int, verifier, index: str | None = None
) -> tuple[Any, Any]:
    import mlskip

    on = mlskip.connect(verifier=verifier, index=index)
    off = mlskip.connect(skipping=False)
    for con in (on, off):
        con.execute(f"SET threads = {threads}")
        for m in models:
            con.register_model(m.name, m.obj, input_types=m.types or None)
    return on, off


def _recorder(con: Any) -> list:
    """Reports of the plans ``con`` ran (by wrapping its planning step, where it has one)."""
    reports: list = []
    inner = getattr(con, "_report", None)
    if inner is None:
        return reports

    def report(query, evaluate, *args, **kwargs):
        r = inner(query, evaluate, *args, **kwargs)
        if evaluate:
            reports.append(r)
        return r

    con._report = report
    return reports


def run_trial(
    seed: int,
    workdir: Path,
    queries: int = QUERIES_PER_TRIAL,
    only: int | None = None,
    threads: int = 1,
    timeout: float = QUERY_TIMEOUT,
    verifier=None,
    echo: Callable[[str], None] | None = None,
    errors: list[str] | None = None,
    notes: list[str] | None = None,
    forms: Sequence[str] | None = None,
) -> list[QueryResult]:
    """Trial ``seed``: a dataset, models, and ``queries`` queries checked (only query
    ``only`` when given; the others are still drawn, so it is the same query).
    ``forms``: only these query forms (``QueryGen.FORMS``; other forms, other queries)."""
    import logging

    import duckdb

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    rnd = random.Random(seed)
    nrng = np.random.default_rng(rnd.getrandbits(64))
    root = workdir / f"s{seed}"
    root.mkdir(parents=True, exist_ok=True)
    probe = duckdb.connect()
    probe.execute("SET threads = 1")
    on = off = None
    try:
        data = draw_dataset(rnd, nrng, root, probe)
        models = draw_models(rnd, nrng, seed, data.temporal)
        data.models = [m.description for m in models]
        if notes is not None:
            notes += [f"seed {seed}: {f}" for f in data.failures]
        if not data.sources:
            return []
        index = _index_of(seed, root, workdir, models, data)
        on, off = _connections(models, threads, verifier or _fuzz_verifier(), index)
        reports = _recorder(on)
        gen = QueryGen(rnd, data, models, off, forms)
        results = []
        for index in range(queries):
            try:
                query = gen.query()
            except Exception as error:  # the generator's own bug: reported, the trial goes on
                if errors is None:
                    raise
                errors.append(f"seed {seed} query {index}: {_error_line(error)}")
                continue
            if only is not None and index != only:
                continue
            reports.clear()
            result = check_query(on, off, query, timeout)
            result.seed, result.index = seed, index
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:  # newer connections bind parameters when planning
                        report = on.explain_skipping(query.sql, params=query.params)
                    except TypeError:
                        report = on.explain_skipping(query.sql)
                result.planned = bool(report.files)
                result.pruned = report.pruned > 0 or report.all_match > 0
                rewritten = report.rewritten
            except Exception as error:
                rewritten = False
                result.detail = (result.detail + "; " if result.detail else "") + (
                    f"explain_skipping raised {type(error).__name__}: {error}"
                )
            ran = [r for r in reports if getattr(r, "is_query", True)]
            if ran:
                rewritten = any(getattr(r, "rewritten", False) for r in ran)
                result.pruned |= any(getattr(r, "pruned", 0) > 0 for r in ran)
            result.as_written = not rewritten
            result.sql = query.sql.replace(str(root), "<root>")
            result.skipping = result.skipping.replace(str(root), "<root>")
            result.baseline = result.baseline.replace(str(root), "<root>")
            if result.status == "mismatch":
                result.layout = data.summary()
                if echo is not None:
                    echo(result.describe())
            results.append(result)
        return results
    finally:
        for con in (on, off, probe):
            if con is not None:
                with contextlib.suppress(Exception):
                    con.close()
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.remove(workdir / f"s{seed}.index")


def _index_of(
    seed: int, root: Path, workdir: Path, models: Sequence[Model] = (), data: Any = None
) -> str | None:
    """For INDEXED_SHARE of the trials (a stream of their own), a skip index of every
    Parquet file of the dataset, kept outside it so that no query's glob reads it; for
    SUMMARY_SHARE of those (another stream) it also summarizes the DOUBLE-input models'
    outputs over numeric columns of the first source (files lacking them get none)."""
    if np.random.default_rng([seed, 0x696478]).random() >= INDEXED_SHARE:
        return None
    from mlskip.skipper.skip_index import build_index

    index = str(workdir / f"s{seed}.index")
    try:
        build_index(str(root / "**" / "*.parquet"), index,
                    footer_hooks=_summary_hooks(seed, models, data))  # fmt: skip
    except Exception:  # no Parquet file in this dataset: plan from footers
        return None
    return index


SUMMARY_SHARE = 0.5  # of the indexed trials, those whose index also summarizes models


def _summary_hooks(seed: int, models: Sequence[Model], data: Any):
    from mlskip.udf.model import prepare_model
    from mlskip.udf.summarize_models import ModelHooks, SummarizedModel

    rng = np.random.default_rng([seed, 0x6D73])
    if rng.random() >= SUMMARY_SHARE or data is None or not data.sources:
        return None
    numeric = [c.name for c in data.sources[0].cols if c.numeric]
    chosen = []
    for m in models:
        if m.types or len(numeric) < m.inputs:
            continue
        prepared = prepare_model(m.obj)
        if prepared.network is None:
            continue
        cols = tuple(str(c) for c in rng.choice(numeric, size=m.inputs, replace=False))
        least = 1 + (m.classes + 7) // 8 if m.classes > 1 else 5
        chosen.append(SummarizedModel(m.name, prepared, cols, int(rng.integers(least, 48))))
    return ModelHooks(tuple(chosen), skip_missing=True) if chosen else None


def replay(seed: int, index: int, **options: Any) -> QueryResult | None:
    """Query ``index`` of trial ``seed`` checked again (printed when it mismatches)."""
    with tempfile.TemporaryDirectory(prefix="mlskip-sqlfuzz-") as tmp:
        results = run_trial(seed, Path(tmp), queries=index + 1, only=index, echo=print, **options)
    return results[0] if results else None


def run_chunk(
    seeds: list[int],
    queries: int,
    threads: int,
    timeout: float,
    echo: bool,
    forms: Sequence[str] | None = None,
) -> tuple[list[QueryResult], list[str], list[str]]:
    """Trials ``seeds`` one after the other: (query results, fuzzer errors, writer failures)."""
    results: list[QueryResult] = []
    errors: list[str] = []
    notes: list[str] = []
    verifier = _fuzz_verifier()
    with tempfile.TemporaryDirectory(prefix="mlskip-sqlfuzz-") as tmp:
        for s in seeds:
            try:
                results += run_trial(
                    s, Path(tmp), queries, threads=threads, timeout=timeout, verifier=verifier,
                    echo=print if echo else None, errors=errors, notes=notes, forms=forms,
                )  # fmt: skip
            except Exception as error:  # the fuzzer's own failure: reported with its seed
                errors.append(f"seed {s}: {_error_line(error)}")
    return results, errors, notes


def run_campaign(
    trials: int,
    seed: int = 0,
    workers: int = 1,
    queries_per_trial: int = QUERIES_PER_TRIAL,
    threads: int = 1,
    timeout: float = QUERY_TIMEOUT,
    echo: bool = False,
    forms: Sequence[str] | None = None,
    progress: bool = False,
) -> CampaignResult:
    """``trials`` trials with seeds ``seed .. seed + trials - 1``, ``queries_per_trial``
    queries each, on ``workers`` processes; ``echo`` prints mismatches as they are found;
    ``forms`` restricts the query forms (e.g. ``("join",)``) for a focused campaign;
    ``progress`` shows trials done (also as plain lines when piped)."""
    from mlskip.progress import progress as make_progress

    start = time.perf_counter()
    seeds = list(range(seed, seed + trials))
    chunks = [seeds[i : i + CHUNK] for i in range(0, trials, CHUNK)]
    campaign = CampaignResult(trials, seed)
    with contextlib.ExitStack() as stack:
        if workers <= 1:
            done = (
                run_chunk(chunk, queries_per_trial, threads, timeout, echo, forms)
                for chunk in chunks
            )
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=context))
            futures = [
                pool.submit(run_chunk, c, queries_per_trial, threads, timeout, echo, forms)
                for c in chunks
            ]
            done = (future.result() for future in futures)
        bar = stack.enter_context(make_progress(disable=not progress))
        task = bar.add_task("sql fuzz trials", total=trials)
        for chunk, (results, errors, notes) in zip(chunks, done, strict=True):
            campaign.queries += results
            campaign.errors += errors
            campaign.notes += notes
            bar.advance(task, len(chunk))
    campaign.queries.sort(key=lambda q: (q.seed, q.index))
    campaign.seconds = time.perf_counter() - start
    return campaign


def main(
    trials: int, seed: int, workers: int = 1, queries_per_trial: int = QUERIES_PER_TRIAL
) -> bool:
    """The CLI's ``selfcheck --sql``: run, print the summary; True when nothing mismatched."""
    campaign = run_campaign(trials, seed, workers, queries_per_trial, echo=True, progress=True)
    print(campaign.summary(mismatches=False))
    return campaign.ok

"""The planning part of ``mlskip bench index`` (the module docstring of
``mlskip.tpch.bench_index`` says what it measures): lakes, planners, S3 on moto."""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlskip.tpch.bench_index import (
    _COPIES,
    HULLS,
    INPUTS,
    MODEL_SEED,
    MODELS,
    PLANNING_SELECTIVITY,
    REPEAT_ALL_UP_TO,
    SPAN,
    PlanningConfig,
    _timed,
    bound_predicate,
    dask_client,
    model_outputs,
    onnx_model,
    random_mlp,
    threshold,
)

# ---------------------------------------------------------------- planning lakes


@dataclass
class Lake:
    """Files of a planning lake, its indexes (by ``hulls`` setting) and how it was made."""

    row_groups: int
    files: list[str]
    indexes: dict[str, str]
    synthetic: bool
    write_seconds: float
    index_seconds: dict[str, float] = field(default_factory=dict)
    index_bytes: dict[str, int] = field(default_factory=dict)


def lake_file(rng: np.random.Generator, i: int, n: int, rows: int) -> pa.Table:
    """File ``i`` of ``n``: ``x0`` in its own slice of [0, SPAN), sorted; ``x1`` follows
    ``x0`` (a correlated pair, which polygons summarize); ``x2``, ``x3`` anywhere."""
    lo = i * SPAN // n
    x0 = np.sort(rng.integers(lo, max((i + 1) * SPAN // n, lo + 1), rows))
    x1 = x0 + rng.integers(-SPAN // 50, SPAN // 50, rows)
    return pa.table({
        "x0": x0.astype(np.int32), "x1": x1.astype(np.int32),
        "x2": rng.integers(0, SPAN, rows).astype(np.int32),
        "x3": rng.integers(0, SPAN, rows).astype(np.int32),
    })  # fmt: skip


def write_lake(folder: Path, files: int, cfg: PlanningConfig) -> list[str]:
    """A real lake of ``files`` files written by plain pyarrow."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    rows = cfg.groups_per_file * cfg.rows_per_group
    paths = []
    for i in range(files):
        path = str(folder / f"f{i:06d}.parquet")
        pq.write_table(lake_file(rng, i, files, rows), path, row_group_size=cfg.rows_per_group)
        paths.append(path)
    return paths


def link_lake(folder: Path, real: Sequence[str], files: int) -> list[str]:
    """A synthetic lake of ``files`` copies of the files of ``real``, in folders (copies,
    not hard links: a link changes its file's change time, which makes every index entry
    of the real lake stale)."""
    paths = []
    for j in range(files):
        copy = folder / f"c{j // len(real):04d}"
        if j % len(real) == 0:
            copy.mkdir(parents=True, exist_ok=True)
        path = str(copy / os.path.basename(real[j % len(real)]))
        shutil.copyfile(real[j % len(real)], path)
        paths.append(path)
    return paths


def repath_index(
    index: str, paths: Sequence[str], real: Sequence[str], etags: Sequence[str] | None = None
) -> pa.Table:
    """The index of ``real`` turned into one of ``paths`` (``paths[j]`` has the bytes of
    ``real[j % len(real)]``); with ``etags``, entries of objects (ETag, no mtime)."""
    from mlskip.skipper.skip_index import index_key

    table = pq.read_table(index)
    old = pa.array([index_key(p) for p in real])
    rows = pc.index_in(table.column("path"), value_set=old).to_numpy(zero_copy_only=False)
    parts = []
    for copy in range(math.ceil(len(paths) / len(real))):
        names = [index_key(p) for p in paths[copy * len(real) : (copy + 1) * len(real)]]
        keep = np.flatnonzero(rows < len(names))
        part = table.take(pa.array(keep))
        part = part.set_column(0, "path", pa.array(names).take(pa.array(rows[keep])))
        if etags is None:  # copies: each has its own identity
            part = _with_identities(part, rows[keep], names)
        if etags is not None:
            etag = pa.array(etags[copy * len(real) : (copy + 1) * len(real)]).take(
                pa.array(rows[keep])
            )
            is_file = part.column("row_group").is_null()
            part = part.set_column(
                part.schema.get_field_index("etag"), "etag", pc.if_else(is_file, etag, None)
            )
            part = part.set_column(
                part.schema.get_field_index("mtime_ns"), "mtime_ns",
                pa.nulls(part.num_rows, pa.int64()),
            )  # fmt: skip
        parts.append(part)
    return pa.concat_tables(parts)


def _with_identities(part: pa.Table, rows: np.ndarray, names: Sequence[str]) -> pa.Table:
    """``part`` with each file row's identity columns those of its path now."""
    from mlskip.skipper.skip_index import local_file_identity

    ids = [local_file_identity(os.stat(n)) for n in names]
    is_file = part.column("row_group").is_null()
    for column in ("size", "mtime_ns", "ctime_ns", "inode", "device"):
        values = pa.array([getattr(i, column) for i in ids], pa.int64()).take(pa.array(rows))
        at = part.schema.get_field_index(column)
        part = part.set_column(at, column, pc.if_else(is_file, values, None))
    return part


def write_index(table: pa.Table, index: str) -> int:
    """Write an index table as ``build_index`` does; its size in bytes."""
    pq.write_table(table, index, compression="zstd", row_group_size=1 << 16)
    return os.path.getsize(index)


def real_lake(work: Path, size: int, cfg: PlanningConfig, say: Callable[[str], None]) -> Lake:
    """A lake of ``size`` row groups written by pyarrow, indexed by ``build_index``."""
    from mlskip.skipper.skip_index import build_index

    files = math.ceil(size / cfg.groups_per_file)
    say(f"lake of {size:,} row groups: writing {files:,} files")
    start = time.perf_counter()
    paths = write_lake(work / f"lake{size}", files, cfg)
    lake = Lake(size, paths, {}, False, time.perf_counter() - start)
    for hulls in cfg.hulls:
        lake.indexes[hulls] = str(work / f"lake{size}-{hulls}.idx")
        report = build_index(paths, lake.indexes[hulls], hulls=None if hulls == "none" else "auto")
        lake.index_seconds[hulls] = report.seconds
        lake.index_bytes[hulls] = report.index_bytes
    return lake


def synthetic_lake(
    work: Path, size: int, base: Lake, cfg: PlanningConfig, say: Callable[[str], None]
) -> Lake:
    """A lake of ``size`` row groups: copies of ``base``'s files, indexed by
    re-pathing ``base``'s indexes."""
    files = math.ceil(size / cfg.groups_per_file)
    say(f"lake of {size:,} row groups: {files:,} copies of {len(base.files):,} files")
    start = time.perf_counter()
    paths = link_lake(work / f"lake{size}", base.files, files)
    lake = Lake(size, paths, {}, True, time.perf_counter() - start)
    for hulls in cfg.hulls:
        lake.indexes[hulls] = str(work / f"lake{size}-{hulls}.idx")
        start = time.perf_counter()
        table = repath_index(base.indexes[hulls], paths, base.files)
        lake.index_bytes[hulls] = write_index(table, lake.indexes[hulls])
        lake.index_seconds[hulls] = time.perf_counter() - start
    return lake


def make_lakes(
    work: Path, cfg: PlanningConfig, say: Callable[[str], None]
) -> tuple[list[Lake], Lake]:
    """Every lake of ``cfg.row_groups`` (real up to ``cfg.real_row_groups`` row groups,
    synthetic above), and the real lake synthetic ones (and S3) copy: the largest."""
    sizes = sorted(set(cfg.row_groups))
    real = [r for r in sizes if r <= cfg.real_row_groups]
    if len(real) < len(sizes):
        real.append(cfg.real_row_groups)
    built = {size: real_lake(work, size, cfg, say) for size in sorted(set(real))}
    base = built[max(built)]
    lakes = [
        built[size] if size in built else synthetic_lake(work, size, base, cfg, say)
        for size in sizes
    ]
    return lakes, base


def lake_rows(lake: Lake, rows_per_file: int, limit: int = 500_000) -> np.ndarray:
    """Rows of a lake's files (every ``k``-th file: about ``limit`` rows at most), as the
    model's float32 inputs."""
    step = max(1, len(lake.files) * rows_per_file // limit)
    table = pq.read_table(lake.files[::step])
    return np.column_stack([table.column(c).to_numpy() for c in INPUTS]).astype(np.float32)


# ---------------------------------------------------------------- planning measures


def plan_counts(plans: Sequence[Any]) -> dict[str, int]:
    """Files and row groups, those left after file-level pruning, and the verdicts."""
    left = [p for p in plans if not all(m.startswith("file") for ms in p.methods for m in ms)]
    return {
        "files": len(plans),
        "row_groups": sum(p.num_row_groups for p in plans),
        "files_left": len(left),
        "row_groups_left": sum(p.num_row_groups for p in left),
        "pruned": sum(int(p.pruned.sum()) for p in plans),
        "all_match": sum(int(p.all_match_everywhere.sum()) for p in plans),
        "evaluated": sum(int(p.evaluated.sum()) for p in plans),
    }


def measure_planner(
    paths: Sequence[str], bound: Any, repeats: int, **options: Any
) -> dict[str, Any]:
    """Cold (median over ``repeats`` new ``Planner(**options)``, each keeping every file's
    facts and plans) and warm (the last one again)."""
    from mlskip.skipper.planner import Planner

    colds = []
    for _ in range(repeats):
        planner = Planner(cache_size=max(512, len(paths)), **options)
        cold, plans = _timed(lambda p=planner: p.plan_files(paths, [bound], {}))
        colds.append(cold)
    warm, _ = _timed(lambda: planner.plan_files(paths, [bound], {}))
    return {"cold_s": statistics.median(colds), "warm_s": warm, **plan_counts(plans)}


def measure_dask(lake: Lake, hulls: str, onnx: bytes, t: float, repeats: int) -> dict[str, Any]:
    """``mlskip.dask.plan`` on the current client: cold on a new copy of the index each
    time (a new planner in each worker: they are kept by index path, and their plans do
    not depend on it); warm on the last copy again, for lakes of at
    most ``REPEAT_ALL_UP_TO`` row groups (None above)."""
    import mlskip.dask

    def plan(index: str) -> Any:
        return mlskip.dask.plan(lake.files, onnx, f"> {t!r}", inputs=list(INPUTS), index=index)

    colds, copies = [], []
    for _ in range(repeats):
        copies.append(f"{lake.indexes[hulls]}.cold{next(_COPIES)}")
        shutil.copyfile(lake.indexes[hulls], copies[-1])
        cold, scan = _timed(lambda c=copies[-1]: plan(c))
        colds.append(cold)
    warm = _timed(lambda: plan(copies[-1]))[0] if lake.row_groups <= REPEAT_ALL_UP_TO else None
    for copy in copies:
        os.remove(copy)
    return {"cold_s": statistics.median(colds), "warm_s": warm, **plan_counts(scan.files)}


def _record(size: int, model: str, method: str, figures: dict[str, Any]) -> dict[str, Any]:
    out = {"lake_row_groups": size, "model": model, "method": method, **figures}
    if "cold_s" in out:
        out["us_per_row_group"] = 1e6 * out["cold_s"] / max(out["row_groups"], 1)
        out["us_per_row_group_left"] = 1e6 * out["cold_s"] / max(out["row_groups_left"], 1)
    return out


def _estimate(
    records: list[dict[str, Any]], model: str, method: str, size: int
) -> dict[str, Any] | None:
    """What ``method`` would take cold on ``size`` row groups, from its cost per row group
    on the largest lake it was measured on (None: not measured yet)."""
    done = [r for r in records if (r["model"], r["method"]) == (model, method) and "cold_s" in r]
    if not done:
        return None
    last = max(done, key=lambda r: r["row_groups"])
    return {
        "estimate_s": last["us_per_row_group"] * size / 1e6,
        "measured_us_per_row_group": last["us_per_row_group"],
        "measured_on": last["row_groups"],
    }


def _within_budget(
    records: list[dict[str, Any]], lake: Lake, model: str, method: str, budget: float,
    measure: Callable[[], dict[str, Any]], say: Callable[[str], None],
) -> None:  # fmt: skip
    """Append ``measure()``'s record, or a skipped one where the estimate exceeds ``budget``."""
    estimate = _estimate(records, model, method, lake.row_groups)
    if estimate is not None and estimate["estimate_s"] > budget:
        figures = {"skipped": True, **estimate}
    else:
        say(f"{lake.row_groups:,} row groups, {model}: {method}")
        figures = measure()
    records.append(_record(lake.row_groups, model, method, figures))


def _repeats(lake: Lake, cfg: PlanningConfig) -> int:
    return cfg.repeats if lake.row_groups <= REPEAT_ALL_UP_TO else 1


def plan_local(
    lakes: Sequence[Lake], models: dict[str, tuple[bytes, float]], cfg: PlanningConfig,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:  # fmt: skip
    """Footers and each index in this process, every lake and model."""
    records: list[dict[str, Any]] = []
    for lake in lakes:
        for name, (onnx, t) in models.items():
            bound = bound_predicate(onnx, t, INPUTS)
            for hulls, index in [(None, None), *lake.indexes.items()]:
                method = "footers" if hulls is None else HULLS[hulls]
                run = functools.partial(
                    measure_planner, lake.files, bound, _repeats(lake, cfg), index=index
                )
                _within_budget(records, lake, name, method, cfg.budget, run, say)
    return records


def plan_dask(
    lakes: Sequence[Lake], base: Lake, models: dict[str, tuple[bytes, float]],
    cfg: PlanningConfig, say: Callable[[str], None],
) -> list[dict[str, Any]]:  # fmt: skip
    """Each index on a two-worker ``LocalCluster``, after a warm-up plan of ``base``."""
    records: list[dict[str, Any]] = []
    with dask_client():
        onnx, t = next(iter(models.values()))
        for hulls in base.indexes:
            measure_dask(base, hulls, onnx, t, 1)  # workers import and compile
        for lake in lakes:
            for name, (onnx, t) in models.items():
                for hulls in lake.indexes:
                    method = f"{HULLS[hulls]} on Dask"
                    run = functools.partial(measure_dask, lake, hulls, onnx, t, _repeats(lake, cfg))
                    _within_budget(records, lake, name, method, cfg.budget, run, say)
    return records


# ---------------------------------------------------------------- S3 (moto)


def _serve_moto(port: Any) -> None:
    """A moto S3 server on loopback (run in a child process); its port goes to ``port``."""
    import logging

    from moto import server as moto_server
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    app = moto_server.DomainDispatcherApplication(moto_server.create_backend_app)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    port.put(httpd.server_address[1])
    httpd.serve_forever()


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[Any, Any]]:
    """(``S3Options``, a boto3 client) of a moto server in a child process, bucket
    ``lake`` made; the process is ended on exit."""
    import boto3

    from mlskip.skipper.remote import S3Options

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    server = context.Process(target=_serve_moto, args=(queue,), daemon=True)
    server.start()
    try:
        port = queue.get(timeout=60)
        endpoint = f"http://127.0.0.1:{port}"
        options = S3Options(access_key="bench", secret_key="bench", endpoint=endpoint)
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
        )  # fmt: skip
        client.create_bucket(Bucket="lake")
        yield options, client
    finally:
        server.terminate()
        server.join(10)


def upload_lake(client: Any, real: Sequence[str], objects: int) -> list[str]:
    """``objects`` objects under ``s3://lake/lake/``, copies of the files of ``real``."""
    from concurrent.futures import ThreadPoolExecutor

    data = [Path(p).read_bytes() for p in real]
    keys = [f"lake/c{j // len(real):04d}-{os.path.basename(real[j % len(real)])}"
            for j in range(objects)]  # fmt: skip

    def put(j: int) -> None:
        client.put_object(Bucket="lake", Key=keys[j], Body=data[j % len(real)])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(objects)))
    return [f"s3://lake/{k}" for k in keys]


def plan_s3(
    base: Lake, models: dict[str, tuple[bytes, float]], cfg: PlanningConfig,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:  # fmt: skip
    """Footers vs each index over ``cfg.s3_files`` objects (copies of ``base``'s files)."""
    from mlskip.skipper.remote import list_identities

    records: list[dict[str, Any]] = []
    with moto_s3() as (options, client):
        say(f"S3: uploading {cfg.s3_files:,} objects to moto")
        paths = upload_lake(client, base.files, cfg.s3_files)
        found = list_identities(options, paths)
        etags = [found[p][2] for p in paths]
        indexes = {}
        for hulls, local in base.indexes.items():
            table = repath_index(local, paths, base.files, etags)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd", row_group_size=1 << 16)
            client.put_object(
                Bucket="lake", Key=f"index-{hulls}.idx", Body=sink.getvalue().to_pybytes()
            )
            indexes[hulls] = f"s3://lake/index-{hulls}.idx"
        size = cfg.s3_files * cfg.groups_per_file
        for name, (onnx, t) in models.items():
            bound = bound_predicate(onnx, t, INPUTS)
            say(f"S3 {cfg.s3_files:,} objects, {name}: footers")
            got = measure_planner(paths, bound, 1, s3=options)
            records.append(_record(size, name, "S3 footers", got))
            for hulls, index in indexes.items():
                say(f"S3 {cfg.s3_files:,} objects, {name}: {HULLS[hulls]}")
                got = measure_planner(paths, bound, cfg.repeats, s3=options, index=index)
                records.append(_record(size, name, f"S3 {HULLS[hulls]}", got))
    return records


# ---------------------------------------------------------------- planning: run and print


def planning_models(base: Lake, cfg: PlanningConfig) -> dict[str, tuple[bytes, float]]:
    """Each model as ONNX bytes and its 1%-selectivity threshold on ``base``'s rows."""
    rows = lake_rows(base, cfg.groups_per_file * cfg.rows_per_group)
    out = {}
    for name in cfg.models:
        onnx = onnx_model(random_mlp(MODELS[name], MODEL_SEED, INPUTS, scale=np.full(4, SPAN)))
        out[name] = (onnx, threshold(model_outputs(onnx, rows), PLANNING_SELECTIVITY))
    return out


def _warm_up(lake: Lake, models: dict[str, tuple[bytes, float]]) -> None:
    """Plan ``lake`` once with every planner, so that imports and compiled kernels (for
    batches of more than 256 polygons) are loaded before anything is timed."""
    from mlskip.skipper.planner import Planner

    onnx, t = next(iter(models.values()))
    bound = bound_predicate(onnx, t, INPUTS)
    for index in [None, *lake.indexes.values()]:
        Planner(index=index).plan_files(lake.files, [bound], {})


def run_planning(
    cfg: PlanningConfig, work: Path, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Make the lakes, measure every planner; returns lakes and records."""
    lakes, base = make_lakes(work, cfg, say)
    models = planning_models(base, cfg)
    say("warming up: every planner once on the real lake of the most row groups")
    _warm_up(base, models)
    records = plan_local(lakes, models, cfg, say)
    if cfg.dask:
        records += plan_dask(lakes, base, models, cfg, say)
    if cfg.s3_files:
        records += plan_s3(base, models, cfg, say)
    _speedups(records)
    return {
        "lakes": [_lake_figures(x) for x in lakes],
        "thresholds": {name: t for name, (_, t) in models.items()},
        "records": records,
        "s3_speedups": _s3_speedups(records),
    }


def _lake_figures(lake: Lake) -> dict[str, Any]:
    return {
        "row_groups": lake.row_groups, "files": len(lake.files), "synthetic": lake.synthetic,
        "write_s": lake.write_seconds, "index_s": lake.index_seconds,
        "index_bytes": lake.index_bytes,
        "index_bytes_per_row_group": {h: b / lake.row_groups for h, b in lake.index_bytes.items()},
    }  # fmt: skip


def _speedups(records: list[dict[str, Any]]) -> None:
    """Each record's cold speedup over footers (same lake, model and store), or over their
    estimate where they were skipped (``vs_footers_estimate``)."""
    footers = {
        (r["lake_row_groups"], r["model"], r["method"].startswith("S3")): r
        for r in records if r["method"] in ("footers", "S3 footers")
    }  # fmt: skip
    for r in records:
        base = footers.get((r["lake_row_groups"], r["model"], r["method"].startswith("S3")))
        if base is None or "cold_s" not in r:
            continue
        if "cold_s" in base:
            r["vs_footers"] = base["cold_s"] / r["cold_s"]
        else:
            r["vs_footers_estimate"] = base["estimate_s"] / r["cold_s"]


def _s3_speedups(records: list[dict[str, Any]]) -> dict[str, float]:
    """Cold speedup of each index over footers on S3, by model and index."""
    s3 = [r for r in records if r["method"].startswith("S3 index") and "vs_footers" in r]
    return {f"{r['model']} {r['method']}": r["vs_footers"] for r in s3}


def _speedup_text(record: dict[str, Any]) -> str:
    if "vs_footers" in record:
        return f"{record['vs_footers']:.1f}"
    if "vs_footers_estimate" in record:
        return f"~{record['vs_footers_estimate']:.1f}"
    return ""


def print_planning(figures: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    lakes = Table(
        title="planning lakes (plain pyarrow files, clustered by x0)",
        caption="copies: the index is the real lake's with paths replaced (seconds: "
        "that rewrite; bytes: copies compress better than distinct files)",
    )
    for col in ("row groups", "files", "made", "seconds", "index build s", "index bytes / RG"):
        lakes.add_column(col, justify="right")
    for x in figures["lakes"]:
        lakes.add_row(
            f"{x['row_groups']:,}", f"{x['files']:,}",
            "copies" if x["synthetic"] else "written", f"{x['write_s']:.1f}",
            ", ".join(f"{HULLS[h]} {s:.1f}" for h, s in x["index_s"].items()),
            ", ".join(f"{HULLS[h]} {b:.0f}" for h, b in x["index_bytes_per_row_group"].items()),
        )  # fmt: skip
    console.print(lakes)
    t = Table(
        title="planning one 1%-selectivity ML predicate: cold = a new planner (median), "
        "warm = the same planner again",
        caption="left: files / row groups left after file-level pruning (footers: no "
        "file-level summaries); us/RG: cold time per row group of the lake, and per row "
        "group left; x: footers' cold time / this one's (same lake and store; ~: over "
        "footers' estimate); skipped: estimated seconds over --budget, from the cost per "
        "row group measured on the lake shown",
    )
    for col in ("RGs", "model", "method", "files left", "RGs left", "pruned", "cold s",
                "us/RG", "us/RG left", "warm s", "x"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("model", "method") else "right")
    for r in figures["records"]:
        if "skipped" in r:
            t.add_row(
                f"{r['lake_row_groups']:,}", r["model"], r["method"], *[""] * 3,
                f"skipped: ~{r['estimate_s']:.0f}",
                f"{r['measured_us_per_row_group']:.1f} at {r['measured_on']:,}", *[""] * 3,
            )  # fmt: skip
            continue
        t.add_row(
            f"{r['lake_row_groups']:,}", r["model"], r["method"],
            f"{r['files_left']:,} / {r['files']:,}",
            f"{r['row_groups_left']:,} / {r['row_groups']:,}", f"{r['pruned']:,}",
            f"{r['cold_s']:.3f}", f"{r['us_per_row_group']:.1f}",
            f"{r['us_per_row_group_left']:.1f}",
            "" if r["warm_s"] is None else f"{r['warm_s']:.3f}",
            _speedup_text(r),
        )  # fmt: skip
    console.print(t)
    for name, x in figures["s3_speedups"].items():
        console.print(f"S3: {name} plans {x:.1f}x faster than footers (goal >= 10x)")

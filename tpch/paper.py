"""``mlskip bench paper``: the MLSkip paper's experiment and beyond, in one command.

For every zoo regressor (1 and 2 hidden layers of 32), every range filter of
the sweep and every block size, it measures pruning effectiveness (pruned /
skippable row groups) of the product's cascade and the exact limit (MILP) for
five settings: min-max only, + 45-byte pair hulls, + an ordinary range
conjunct (SQL bounds), and layout-aware writing (clustered) with min-max and
with hulls. Writes DIR/results.json (one record per filter and setting),
DIR/REPORT.md and plots; every figure comes from the run.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import bench_data, bench_models, effectiveness, filters

SETTINGS = ("minmax", "hull", "hull+sql", "layout-minmax", "layout-hull")


@dataclass
class PaperConfig:
    """What one run covers; ``quick()`` and ``full()`` are the two presets."""

    sf: float = 1.0
    models: tuple[str, ...] = ()  # spec names; empty = every regressor
    hidden: tuple[tuple[int, ...], ...] = ((32,), (32, 32))
    block_sizes: tuple[int, ...] = (1000, 10_000, 122_880)
    max_blocks: int = 400
    starts: tuple[float, ...] = filters.FULL_STARTS
    widths: tuple[float, ...] = filters.FULL_WIDTHS
    exact_cap: int = 4
    milp_seconds: float = 0.5
    train_sf: float = 0.1
    epochs: int = 150
    e2e: bool = True
    e2e_repeats: int = 3
    e2e_queries_per_table: int = 2
    seed: int = 0
    quick: bool = False
    pairs: tuple = ()  # (spec, hidden) pairs to run instead of every spec x depth
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick_preset(cls, sf: float = 0.1) -> PaperConfig:
        return cls(
            sf=sf,
            models=("lineitem_disc_price", "store_sales_net_profit"),
            hidden=((32,), (32, 32)),
            pairs=(("lineitem_disc_price", (32,)), ("store_sales_net_profit", (32, 32))),
            block_sizes=(1000, 10_000),
            max_blocks=60,
            epochs=40,
            starts=filters.QUICK_STARTS,
            widths=filters.QUICK_WIDTHS,
            exact_cap=2,
            milp_seconds=0.3,
            e2e_repeats=2,
            e2e_queries_per_table=1,
            quick=True,
        )


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def machine_info() -> dict[str, Any]:
    """The machine and versions the run used."""
    import os

    import duckdb
    import onnxruntime
    import pyarrow

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _conjunct(data: bench_data.TableInputs, spec, corr: np.ndarray) -> tuple[str, float, float]:
    """The ordinary range conjunct: the interquartile range of the input least tied to the output."""
    j = int(np.argmin(corr))
    col = data.x[data.valid, j]
    a, b = np.quantile(col, 0.25, method="lower"), np.quantile(col, 0.75, method="higher")
    if a == b:
        a, b = np.quantile(col, 0.1, method="lower"), np.quantile(col, 0.9, method="higher")
    return spec.inputs[j], float(a), float(b)


def _setting_inputs(setting: str, groups, boxes, conj) -> tuple[list, dict]:
    bounds = {conj[0]: (conj[1], conj[2])} if setting == "hull+sql" else {}
    return (boxes if setting.endswith("minmax") else groups), bounds


def run_model(
    cfg: PaperConfig,
    spec,
    hidden: tuple[int, ...],
    work: Path,
    progress,
    task,
    draw: Path | None = None,
) -> list[dict[str, Any]]:
    """Every record of one trained model."""
    from mlskip.metadata import read_skip_metadata
    from mlskip.verifier import Predicate, load_model

    data = bench_data.load_inputs(spec.suite, spec.table, tuple(spec.inputs), cfg.sf)
    model = bench_models.train_model(spec, hidden, work, cfg.train_sf, cfg.epochs)
    network = load_model(str(model.onnx_path))
    y = bench_models.evaluate_rows(model.onnx_path, data.x)
    corr = bench_models.rank_correlations(data.x[data.valid], y[data.valid])
    cluster_col = spec.inputs[int(np.argmax(corr))]
    conj = _conjunct(data, spec, corr)
    conj_mask = (data.x[:, spec.inputs.index(conj[0])] >= conj[1]) & (
        data.x[:, spec.inputs.index(conj[0])] <= conj[2]
    )
    fs = filters.sweep_filters(y[data.valid], cfg.starts, cfg.widths)
    args = effectiveness.plain_args(spec.inputs)
    rng = np.random.default_rng(cfg.seed)
    records: list[dict[str, Any]] = []
    base = {
        "suite": spec.suite,
        "table": spec.table,
        "model": spec.name,
        "hidden": list(hidden),
        "model_key": model.key,
        "r2": model.score,
        "inputs": list(spec.inputs),
        "sf": cfg.sf,
        "table_rows": int(len(y)),
        "cluster_by": cluster_col,
        "rank_correlation": dict(zip(spec.inputs, map(float, corr), strict=True)),
    }
    progress.update(task, completed=0, total=len(fs) * 2 * len(cfg.block_sizes))
    drawn: dict[str, tuple] = {}
    for layout in (None, cluster_col):
        order = bench_data.layout_order(data, layout)
        settings = [s for s in SETTINGS if s.startswith("layout") == (layout is not None)]
        for block in cfg.block_sizes:
            blocks = bench_data.sample_blocks(len(order), block, cfg.max_blocks, cfg.seed)
            rows = bench_data.block_rows_index(order, blocks, block)
            tag = "natural" if layout is None else f"by-{layout}"
            name = f"{spec.table}-{'-'.join(spec.inputs)}-{tag}-b{block}-n{len(blocks)}.parquet"
            path = bench_data.write_blocks(data, rows, block, work / name)
            groups = read_skip_metadata(str(path)).row_groups
            boxes = effectiveness.without_hulls(groups)
            hb = bench_data.hull_bytes_per_pair(groups)
            if block == min(cfg.block_sizes):
                drawn[tag] = (groups, data.x[rows].reshape(len(blocks), block, -1))
            for f in fs:
                progress.update(task, description=f"{model.key} {tag} b={block} f{f.fid}")
                q_all = filters.qualifying(y, data.valid, f.lo, f.hi)
                for setting in settings:
                    q = q_all & conj_mask if setting == "hull+sql" else q_all
                    truth = filters.block_truth(q[rows], block)
                    use, bounds = _setting_inputs(setting, groups, boxes, conj)
                    rec = effectiveness.evaluate(
                        use, args, bounds, network, Predicate.between(f.lo, f.hi), truth,
                        data.x[q], cfg.exact_cap, cfg.milp_seconds, rng,
                    )  # fmt: skip
                    rec.update(base)
                    rec.update(
                        setting=setting,
                        layout=tag,
                        block_rows=block,
                        blocks_total=int(len(order) // block),
                        blocks_sampled=int(len(blocks)),
                        filter=asdict(f),
                        bin=f.bin,
                        setting_selectivity=float(q.sum() / max(1, data.valid.sum())),
                        conjunct=list(conj) if setting == "hull+sql" else None,
                        hull_bytes_per_pair=hb if "hull" in setting else 0.0,
                        hull_pairs=len(groups[0].hull_bytes) if groups and "hull" in setting else 0,
                    )
                    records.append(rec)
                progress.advance(task)
    if draw is not None:
        _draw(draw, drawn, network, spec, corr, fs)
    return records


def _draw(path: Path, drawn: dict[str, tuple], network, spec, corr: np.ndarray, fs) -> None:
    """Two natural-order and one clustered row group with the first most selective filter."""
    from mlskip.tpch import plots

    f = min(fs, key=lambda f: (f.bin != filters.BINS[0][0], -f.selectivity))
    top = np.argsort(-corr)[:2]
    panels = []
    for tag, (groups, rows) in drawn.items():
        picks = (0, 1) if tag == "natural" else (len(groups) // 2,)
        for g in picks:
            if g < len(groups):
                panels.append((f"{tag} row group {g}", groups[g], rows[g]))
    plots.plot_row_groups(
        path, panels, lambda p: network.evaluate(p)[:, 0], spec.inputs,
        (int(min(top)), int(max(top))), f.lo, f.hi,
    )  # fmt: skip


def run_paper(cfg: PaperConfig, out: Path, command: str = "") -> Path:
    """Run the benchmark, write results.json, REPORT.md and plots into ``out``; returns REPORT.md."""
    from rich.console import Console

    from mlskip.tpch import report

    console = Console()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    specs = bench_models.regressor_specs(cfg.models)
    started = time.perf_counter()
    info = machine_info()
    records: list[dict[str, Any]] = []
    results_path = out / "results.json"

    def save(e2e: list | None = None) -> None:
        payload = {
            "config": asdict(cfg),
            "command": command,
            "machine": info,
            "seconds": time.perf_counter() - started,
            "records": records,
            "e2e": e2e or [],
        }
        results_path.write_text(json.dumps(payload, indent=1, default=_jsonable))

    with _progress() as progress:
        n_models = len(cfg.pairs) or len(specs) * len(cfg.hidden)
        task_models = progress.add_task("models", total=n_models)
        task = progress.add_task("filters", total=None)
        for spec in specs:
            for hidden in cfg.hidden:
                if cfg.pairs and (spec.name, tuple(hidden)) not in cfg.pairs:
                    continue
                progress.update(task, description=f"training {spec.name} {hidden}")
                first = not records
                draw = out / "row_groups.png" if first else None
                records.extend(run_model(cfg, spec, hidden, work, progress, task, draw))
                progress.advance(task_models)
                save()
        e2e: list[dict[str, Any]] = []
        if cfg.e2e:
            from mlskip.tpch import e2e as e2e_mod

            e2e = e2e_mod.run_e2e(cfg, records, work, progress)
    save(e2e)
    path = report.write_report(out, json.loads(results_path.read_text()))
    console.print(f"[bold]results[/] {results_path}\n[bold]report[/] {path}")
    return path


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)

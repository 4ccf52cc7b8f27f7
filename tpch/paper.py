"""``mlskip bench paper``: the MLSkip paper's experiment and beyond, in one command.

For every regressor, every range filter and every block size, it measures
pruning effectiveness (pruned / skippable row groups) of the product's
cascade and the exact limit (MILP) for these settings: min-max only, + 45-byte
pair hulls, + an ordinary range conjunct (SQL bounds), and three layout-aware
writers, each with min-max and with hulls: sorted by the input most
correlated with the output (``layout-*``), Hilbert-clustered on the most
influential inputs (``hilbert-*``), and sorted by the model's own prediction
(``pred-*``, a writer that knows the model). Writes DIR/results.json (one
record per filter and setting), DIR/REPORT.md and plots; every figure comes
from the run.

Two protocols (``--protocol``): ``sweep`` (filters at output quantiles, random
blocks of the whole table at several block sizes) and ``reference`` (our
reading of MLSkip's: the first 100 blocks of 1,000 rows of each table, 2- to
4-input one-hidden-layer regressors, filters whose start points sweep the
output's value range; see ``PaperConfig.reference_preset``). Run it as
``python -m mlskip.tpch.paper --protocol reference --out DIR``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import bench_data, bench_models, effectiveness, filters

SETTINGS = (
    "minmax",
    "hull",
    "hull+sql",
    "layout-minmax",
    "layout-hull",
    "hilbert-minmax",
    "hilbert-hull",
    "pred-minmax",
    "pred-hull",
)
LAYOUTS = ("natural", "layout", "hilbert", "pred")  # setting prefix of each writer layout
PROTOCOLS = ("sweep", "reference")


def layout_of(setting: str) -> str:
    """The writer layout a setting uses (``natural`` for minmax, hull, hull+sql)."""
    head = setting.split("-", 1)[0]
    return head if head in LAYOUTS else "natural"


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
    protocol: str = "sweep"
    settings: tuple[str, ...] = SETTINGS
    max_selectivity: float = 1.0  # filters selecting more are dropped (reference: 1%)
    e2e_layouts: tuple[str, ...] = LAYOUTS  # natural, layout, hilbert, pred
    e2e_row_group: int = 122_880
    work_budgets: bool = (
        False  # True: deterministic cascade (work_budget_verifier), not the planner's
    )
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def reference_preset(cls, sf: float = 1.0) -> PaperConfig:
        """Our reading of the MLSkip protocol: the first 100 blocks of 1,000 rows of each
        table (natural order; layouts reorder those 100,000 rows), 2- to 4-input regressors
        with one hidden layer of 32, 20 filter start points evenly spaced over the output's
        [min, max] on those rows, widths 0.1%/1%/5% of that range, filters above 1%
        selectivity dropped; no e2e (100,000 rows are no table to time)."""
        return cls(
            sf=sf,
            models=bench_models.REFERENCE_MODELS,
            hidden=((32,),),
            block_sizes=(1000,),
            max_blocks=100,
            starts=filters.REFERENCE_STARTS,
            widths=filters.REFERENCE_WIDTHS,
            max_selectivity=filters.REFERENCE_MAX_SELECTIVITY,
            exact_cap=6,
            e2e=False,
            protocol="reference",
        )

    @classmethod
    def quick_preset(cls, sf: float = 0.1) -> PaperConfig:
        return cls(
            sf=sf,
            models=("lineitem_disc_price", "store_sales_net_profit"),
            hidden=((32,), (32, 32)),
            pairs=(("lineitem_disc_price", (32,)), ("store_sales_net_profit", (32, 32))),
            block_sizes=(1000, 10_000),
            max_blocks=40,
            epochs=40,
            starts=filters.QUICK_STARTS,
            widths=filters.QUICK_WIDTHS,
            exact_cap=2,
            milp_seconds=0.3,
            e2e_repeats=2,
            e2e_queries_per_table=1,
            quick=True,
            settings=(
                "minmax",
                "hull",
                "layout-minmax",
                "layout-hull",
                "hilbert-hull",
                "pred-hull",
            ),
            e2e_layouts=("natural", "pred"),
            work_budgets=True,
        )


def _progress():
    from mlskip.progress import progress

    return progress(remaining=True)


def _code_state() -> str:
    """HEAD of the source tree and the files modified in it when the run started."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            ).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "-uno").splitlines()]
    return f"HEAD {head}" + (f", uncommitted edits in {', '.join(dirty)}" if dirty else "")


def machine_info() -> dict[str, Any]:
    """The machine and versions the run used."""
    import duckdb
    import onnxruntime
    import pyarrow

    return {
        "code": _code_state(),
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


def _influential(influence: np.ndarray, inputs) -> list[str]:
    """The inputs a Hilbert layout clusters on: the 2 most influential (3 of 4 or more)."""
    k = 3 if len(inputs) >= 4 else min(2, len(inputs))
    return [inputs[j] for j in np.argsort(-influence, kind="stable")[:k]]


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

    full = bench_data.load_inputs(spec.suite, spec.table, tuple(spec.inputs), cfg.sf)
    model = bench_models.train_model(spec, hidden, work, cfg.train_sf, cfg.epochs)
    network = load_model(str(model.onnx_path))
    y_full = bench_models.evaluate_rows(model.onnx_path, full.x)
    verifier = effectiveness.work_budget_verifier() if cfg.work_budgets else None
    reference = cfg.protocol == "reference"
    if reference:  # the data set is the first max_blocks blocks of the smallest size
        n = min(len(y_full), cfg.max_blocks * min(cfg.block_sizes))
        data, y = bench_data.head(full, n), y_full[:n]
    else:
        data, y = full, y_full
    corr = bench_models.rank_correlations(data.x[data.valid], y[data.valid])
    influence = bench_models.permutation_influence(model.onnx_path, data.x[data.valid])
    cluster_col = spec.inputs[int(np.argmax(corr))]
    hilbert_by = _influential(influence, spec.inputs)
    conj = _conjunct(data, spec, corr)
    cj = spec.inputs.index(conj[0])
    conj_mask = (data.x[:, cj] >= conj[1]) & (data.x[:, cj] <= conj[2])
    if reference:
        fs = filters.value_sweep_filters(y[data.valid], cfg.starts, cfg.widths, cfg.max_selectivity)
    else:
        fs = filters.sweep_filters(y[data.valid], cfg.starts, cfg.widths)
        fs = [f for f in fs if f.selectivity <= cfg.max_selectivity]
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
        "protocol": cfg.protocol,
        "table_rows": int(len(y_full)),
        "data_rows": int(len(y)),
        "cluster_by": cluster_col,
        "hilbert_by": hilbert_by,
        "rank_correlation": dict(zip(spec.inputs, map(float, corr), strict=True)),
        "influence": dict(zip(spec.inputs, map(float, influence), strict=True)),
    }
    layouts = {
        "natural": ("natural", lambda: bench_data.layout_order(data, None)),
        "layout": (f"by-{cluster_col}", lambda: bench_data.layout_order(data, cluster_col)),
        "hilbert": (
            "hilbert-" + "-".join(hilbert_by),
            lambda: bench_data.layout_order(data, hilbert_by, "hilbert"),
        ),
        "pred": (f"by-prediction-{model.key.replace('/', '-')}",
                 lambda: bench_data.prediction_order(y, data.valid)),
    }  # fmt: skip
    todo = [k for k in LAYOUTS if any(layout_of(s) == k for s in cfg.settings)]
    progress.update(task, completed=0, total=len(fs) * len(todo) * len(cfg.block_sizes))
    drawn: dict[str, tuple] = {}
    for kind in todo:
        tag, make_order = layouts[kind]
        order = make_order()
        settings = [s for s in cfg.settings if layout_of(s) == kind]
        for block in cfg.block_sizes:
            blocks = bench_data.sample_blocks(len(order), block, cfg.max_blocks, cfg.seed)
            rows = bench_data.block_rows_index(order, blocks, block)
            name = (
                f"{cfg.protocol}-{spec.table}-{'-'.join(spec.inputs)}-{tag}-b{block}"
                f"-n{len(blocks)}-of{len(order)}.parquet"
            )
            path = bench_data.write_blocks(data, rows, block, work / name)
            groups = read_skip_metadata(str(path)).row_groups
            boxes = effectiveness.without_hulls(groups)
            hb = bench_data.hull_bytes_per_pair(groups)
            block_x = data.x[rows].reshape(len(blocks), block, -1)
            if block == min(cfg.block_sizes) and kind in ("natural", "pred"):
                drawn[tag] = (groups, block_x)
            exact_hulls = (
                effectiveness.exact_pair_hulls(block_x)
                if any("hull" in s for s in settings)
                else None
            )
            for f in fs:
                progress.update(task, description=f"{model.key} {tag} b={block} f{f.fid}")
                q_all = filters.qualifying(y, data.valid, f.lo, f.hi)
                # witnesses of the exact limit: qualifying rows of the whole table
                w_all = filters.qualifying(y_full, full.valid, f.lo, f.hi)
                for setting in settings:
                    q = q_all & conj_mask if setting == "hull+sql" else q_all
                    if setting == "hull+sql":
                        fj = full.x[:, cj]
                        w = full.x[w_all & (fj >= conj[1]) & (fj <= conj[2])]
                    else:
                        w = full.x[w_all]
                    truth = filters.block_truth(q[rows], block)
                    use, bounds = _setting_inputs(setting, groups, boxes, conj)
                    rec = effectiveness.evaluate(
                        use, args, bounds, network, Predicate.between(f.lo, f.hi), truth,
                        w, cfg.exact_cap, cfg.milp_seconds, rng, verifier,
                        exact_hulls if "hull" in setting else None,
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
    load_by_model: dict[str, tuple] = {}
    results_path = out / "results.json"

    def save(e2e: list | None = None) -> None:
        payload = {
            "config": asdict(cfg),
            "command": command,
            "machine": info,
            "seconds": time.perf_counter() - started,
            "records": records,
            "e2e": e2e or [],
            "load_average_at_end": os.getloadavg(),
            "load_by_model": load_by_model,
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
                load_by_model[f"{spec.name}/{'x'.join(map(str, hidden))}"] = os.getloadavg()
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


def merge_e2e(results: dict[str, Any], e2e: list[dict[str, Any]], stage: dict[str, Any]) -> None:
    """Put one e2e stage's records and command into ``results``: they replace those of an
    earlier stage on files of the same row-group size and keep the other sizes'."""
    size = stage["row_group"]
    kept = [e for e in results.get("e2e", []) if e.get("row_group_rows") != size]
    results["e2e"] = kept + e2e
    stages = [x for x in results.get("e2e_stages", []) if x["row_group"] != size]
    results["e2e_stages"] = [*stages, stage]


def run_e2e_only(
    out: Path,
    command: str,
    repeats: int | None = None,
    queries: int | None = None,
    row_group: int | None = None,
    layouts: tuple[str, ...] = (),
) -> Path:
    """Run the e2e stage on the records of ``out/results.json`` and re-render its report; the
    command is recorded next to the one that produced the records. E2E records of files
    with other row-group sizes (earlier ``--e2e-only`` runs) are kept, so one run can hold
    several sizes. Options not given come from the run's own config (never from an
    earlier ``--e2e-only`` stage)."""
    from mlskip.tpch import e2e as e2e_mod
    from mlskip.tpch import report

    path = out / "results.json"
    results = json.loads(path.read_text())
    cfg_dict = dict(results["config"])
    if repeats is not None:
        cfg_dict["e2e_repeats"] = repeats
    if queries is not None:
        cfg_dict["e2e_queries_per_table"] = queries
    if row_group is not None:
        cfg_dict["e2e_row_group"] = row_group
    if layouts:
        cfg_dict["e2e_layouts"] = tuple(k for k in LAYOUTS if k in layouts)
    cfg = PaperConfig(
        **{k: v for k, v in cfg_dict.items() if k in PaperConfig.__dataclass_fields__}
    )
    started = time.perf_counter()
    load_start = os.getloadavg()
    with _progress() as progress:
        e2e = e2e_mod.run_e2e(cfg, results["records"], out / "work", progress)
    # the run's config stays as it was: options given here apply to this stage only
    stage = {
        "command": command,
        "code": _code_state(),
        "row_group": cfg.e2e_row_group,
        "repeats": cfg.e2e_repeats,
        "queries_per_table": cfg.e2e_queries_per_table,
        "layouts": list(cfg.e2e_layouts),
        "seconds": time.perf_counter() - started,
        "load_average": [load_start, os.getloadavg()],
    }
    merge_e2e(results, e2e, stage)
    path.write_text(json.dumps(results, indent=1, default=_jsonable))
    return report.write_report(out, results)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def main(argv: list[str] | None = None, prog: str = "python -m mlskip.tpch.paper") -> Path:
    """The options of ``mlskip bench paper`` (which hands its arguments here)."""
    import argparse
    import dataclasses
    import json
    import shlex

    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default="sweep")
    p.add_argument("--quick", action="store_true", help="the CI preset (sweep, SF 0.1)")
    p.add_argument("--sf", type=float)
    p.add_argument("--model", action="append", default=[], help="regressor (repeatable)")
    p.add_argument("--hidden", action="append", default=[], help="e.g. 32 or 32x32 (repeatable)")
    p.add_argument("--block", action="append", type=int, default=[], help="row-group size")
    p.add_argument("--max-blocks", type=int)
    p.add_argument("--setting", action="append", default=[], choices=SETTINGS)
    p.add_argument("--exact-cap", type=int)
    p.add_argument("--milp-seconds", type=float)
    p.add_argument("--e2e-repeats", type=int)
    p.add_argument("--e2e-queries", type=int, help="queries per table")
    p.add_argument("--e2e-row-group", type=int, help="row-group size of the e2e files")
    p.add_argument("--e2e-layout", action="append", default=[], choices=LAYOUTS)
    p.add_argument("--no-e2e", action="store_true")
    p.add_argument(
        "--e2e-only",
        action="store_true",
        help="run only the e2e stage on OUT/results.json's records (its config, with the "
        "--e2e-* options given here) and re-render the report",
    )
    p.add_argument(
        "--report-only", action="store_true", help="re-render REPORT.md from OUT/results.json"
    )
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = f"{prog} " + shlex.join(argv)
    if a.report_only:
        from mlskip.tpch.report import write_report

        return write_report(a.out, json.loads((a.out / "results.json").read_text()))
    if a.e2e_only:
        return run_e2e_only(
            a.out, command, a.e2e_repeats, a.e2e_queries, a.e2e_row_group, tuple(a.e2e_layout)
        )
    if a.quick:
        cfg = PaperConfig.quick_preset()
    elif a.protocol == "reference":
        cfg = PaperConfig.reference_preset()
    else:
        cfg = PaperConfig()
    changes: dict[str, Any] = {}
    for name, value in (
        ("sf", a.sf),
        ("max_blocks", a.max_blocks),
        ("exact_cap", a.exact_cap),
        ("milp_seconds", a.milp_seconds),
        ("e2e_repeats", a.e2e_repeats),
        ("e2e_queries_per_table", a.e2e_queries),
        ("e2e_row_group", a.e2e_row_group),
    ):
        if value is not None:
            changes[name] = value
    if a.model:
        changes["models"] = tuple(a.model)
    if a.hidden:
        changes["hidden"] = tuple(tuple(int(h) for h in x.split("x")) for x in a.hidden)
    if a.model or a.hidden:
        changes["pairs"] = ()
    if a.block:
        changes["block_sizes"] = tuple(a.block)
    if a.setting:
        changes["settings"] = tuple(s for s in SETTINGS if s in a.setting)
    if a.e2e_layout:
        changes["e2e_layouts"] = tuple(k for k in LAYOUTS if k in a.e2e_layout)
    if a.no_e2e:
        changes["e2e"] = False
    cfg = dataclasses.replace(cfg, **changes)
    return run_paper(cfg, a.out, command=command)


if __name__ == "__main__":
    main()

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import bench_models

from .paper_config import E2E_LAYOUTS, LAYOUTS, PROTOCOLS, SETTINGS, PaperConfig, layout_of
from .paper_model import run_model

__all__ = ["LAYOUTS", "PROTOCOLS", "SETTINGS", "PaperConfig", "layout_of", "main", "run_paper"]


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
    tree_records: list[dict[str, Any]] = []  # --trees: their own figures (paper_trees.py)
    load_by_model: dict[str, tuple] = {}
    results_path = out / "results.json"

    def save(e2e: list | None = None, tree_e2e: list | None = None) -> None:
        payload = {
            "tree_records": tree_records,
            "tree_e2e": tree_e2e or [],
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
                trees = isinstance(hidden, str)
                if cfg.pairs and not trees and (spec.name, tuple(hidden)) not in cfg.pairs:
                    continue
                progress.update(task, description=f"training {spec.name} {hidden}")
                first = not records and not trees
                draw = out / "row_groups.png" if first else None
                got = run_model(cfg, spec, hidden, work, progress, task, draw)
                (tree_records if trees else records).extend(got)
                tag = hidden if isinstance(hidden, str) else "x".join(map(str, hidden))
                load_by_model[f"{spec.name}/{tag}"] = os.getloadavg()
                progress.advance(task_models)
                save()
        e2e: list[dict[str, Any]] = []
        tree_e2e: list[dict[str, Any]] = []
        if cfg.e2e:
            from mlskip.tpch import e2e as e2e_mod
            from mlskip.tpch.paper_trees import run_tree_e2e

            if records:
                e2e = e2e_mod.run_e2e(cfg, records, work, progress)
            if tree_records:
                tree_e2e = run_tree_e2e(cfg, tree_records, work, progress)
    save(e2e, tree_e2e)
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
        cfg_dict["e2e_layouts"] = tuple(k for k in E2E_LAYOUTS if k in layouts)
    cfg = PaperConfig(
        **{k: v for k, v in cfg_dict.items() if k in PaperConfig.__dataclass_fields__}
    )
    started = time.perf_counter()
    load_start = os.getloadavg()
    from mlskip.tpch.paper_trees import run_tree_e2e

    with _progress() as progress:
        e2e = e2e_mod.run_e2e(cfg, results["records"], out / "work", progress)
        if results.get("tree_records"):
            results["tree_e2e"] = run_tree_e2e(cfg, results["tree_records"], out / "work", progress)
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
    p.add_argument(
        "--trees", action="append", default=[], choices=bench_models.TREE_FAMILIES,
        help="also a tree-ensemble family per model (repeatable; needs mlskip[trees])",
    )  # fmt: skip
    p.add_argument("--no-networks", action="store_true", help="tree ensembles only")
    p.add_argument("--block", action="append", type=int, default=[], help="row-group size")
    p.add_argument("--max-blocks", type=int)
    p.add_argument("--setting", action="append", default=[], choices=SETTINGS)
    p.add_argument("--exact-cap", type=int)
    p.add_argument("--milp-seconds", type=float)
    p.add_argument("--e2e-repeats", type=int)
    p.add_argument("--e2e-queries", type=int, help="queries per table")
    p.add_argument("--e2e-row-group", type=int, help="row-group size of the e2e files")
    p.add_argument("--e2e-layout", action="append", default=[], choices=E2E_LAYOUTS)
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
    if a.trees or a.no_networks:
        nets = () if a.no_networks else changes.get("hidden", cfg.hidden)
        changes["hidden"] = (*nets, *a.trees)
    if a.block:
        changes["block_sizes"] = tuple(a.block)
    if a.setting:
        changes["settings"] = tuple(s for s in SETTINGS if s in a.setting)
    if a.e2e_layout:
        changes["e2e_layouts"] = tuple(k for k in E2E_LAYOUTS if k in a.e2e_layout)
    if a.no_e2e:
        changes["e2e"] = False
    cfg = dataclasses.replace(cfg, **changes)
    return run_paper(cfg, a.out, command=command)


if __name__ == "__main__":
    main()

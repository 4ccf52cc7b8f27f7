"""A run's REPORT.md: the sections of tables.py and goals.py in the run template."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

from mlskip.tpch import plots
from mlskip.tpch import summary as S

from .fmt import _load
from .goals import _breakdown, goals
from .records import _e2e_stages, _not_run, _protocol_lines
from .tables import (
    _bytes,
    _e2e,
    _gaps,
    _notes,
    _per_bin,
    _per_filter,
    _per_model,
    _shares,
    _timings,
)

TEMPLATES = Path(__file__).parent / "templates"


def template(name: str) -> Template:
    """The fixed prose of a report, with ``${...}`` where computed text goes."""
    return Template((TEMPLATES / name).read_text())


def _lines(lines: list[str]) -> str:
    """Lines for a template slot that stands at the start of a line."""
    return "".join(f"{line}\n" for line in lines)


def _header(results: dict[str, Any]) -> dict[str, str]:
    """Command, e2e stages, run time, machine and load lines."""
    recs, cfg = results["records"], results["config"]
    tables = sorted({f"{r['suite']}.{r['table']}" for r in recs})
    models = sorted({r["model_key"] for r in recs})
    stages = [
        f"End to end ({st['row_group']:,}-row row groups): `{st['command']}` ({st['seconds']:.0f} s, "
        + (f"code {st['code']}, " if st.get("code") else "")
        + f"load average at start and end {', '.join(_load(v) for v in st['load_average'])})  "
        for st in _e2e_stages(results)
    ]
    blocks = ", ".join(f"{b:,}" for b in cfg["block_sizes"])
    by_model = results.get("load_by_model", {}).items()
    return {
        "command": results["command"],
        "e2e_stages": _lines(stages),
        "run_line": f"Run time: {results['seconds']:.0f} s. Scale factor {cfg['sf']:g}; tables "
        f"{', '.join(tables)}; {len(models)} models ({', '.join(models)}); row groups of {blocks} rows.",
        "not_run": _not_run(results),
        "machine": str(results["machine"]),
        "load_line": f"Load average (1, 5, 15 min) at start "
        f"{_load(results['machine'].get('load_average_at_start'))}, at end "
        f"{_load(results.get('load_average_at_end'))}; per model at its end: "
        + ", ".join(f"{k} {_load(v)}" for k, v in by_model),
    }


def render(results: dict[str, Any], plot_names: list[str]) -> str:
    """The whole REPORT.md text."""
    recs, cfg = results["records"], results["config"]
    block = min(cfg["block_sizes"])
    sound = S.soundness(recs)
    return template("run.md").substitute(
        _header(results),
        protocol_lines=_lines(_protocol_lines(cfg)),
        milp_seconds=cfg["milp_seconds"],
        exact_cap=cfg["exact_cap"],
        goals=goals(recs, results.get("e2e", []), block)[0],
        breakdown=_breakdown(recs, block),
        records=sound["records"],
        lost=sound["lost_row_groups"],
        wrong=sound["wrong_all_match"],
        per_bin=_per_bin(recs),
        block=f"{block:,}",
        per_model=_per_model(recs, block),
        gaps=_gaps(recs),
        bytes=_bytes(recs),
        timings=_timings(recs),
        shares=_shares(recs),
        e2e=_e2e(results.get("e2e", [])),
        notes=_notes(recs),
        plots=_lines([f"![{p}]({p})" for p in plot_names]),
        per_filter=_per_filter(recs, block),
    )


def write_report(out: Path, results: dict[str, Any]) -> Path:
    """Render plots and REPORT.md into ``out``."""
    from mlskip.tpch.paper_trees import tree_section

    path = out / "REPORT.md"
    if not results["records"]:  # a run of tree ensembles only (--no-networks)
        head = f"# mlskip bench paper\n\nCommand: `{results.get('command', '')}`\n\n"
        path.write_text(head + tree_section(results))
        return path
    names = plots.write_plots(out, results)
    path.write_text(render(results, names) + tree_section(results))
    return path

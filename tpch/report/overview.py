"""The top-level REPORT.md over several runs: every goal per protocol, with the measured
reason of each miss, in the overview template."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import summary as S

from .fmt import (
    GOAL_E2E,
    GOAL_HULL,
    GOAL_LAYOUT,
    GOAL_MS,
    LAYOUT_NAMES,
    PAPER_E2E,
    PAPER_HULL,
    PAPER_MINMAX,
    REF_EXACT_HULL,
    _load,
    _pct,
    _table,
    _upper,
    _verdict,
    _x,
)
from .goals import _cell, _reason, _why, breakdown, goals
from .records import _e2e_by_layout, _e2e_groups, _e2e_label, _e2e_stages, _not_run, load_results
from .run import _lines, template, write_report
from .tables import _e2e, _per_model

Runs = dict[str, dict[str, Any]]


def _run_lines(runs: Runs) -> list[str]:
    """One line per run: its command, e2e stages, code and load."""
    out = []
    for n, res in runs.items():
        m = res["machine"]
        stages = "".join(
            f"e2e stage `{st['command']}`"
            + (f" (code {st['code']})" if st.get("code") else "")
            + "; "
            for st in _e2e_stages(res)
        )
        out.append(
            f"- **{n}** ([report]({n}/REPORT.md)): `{res['command']}`; {res['seconds']:.0f} s; "
            f"{stages}{_not_run(res)} code {m.get('code', 'n/a')}; load average at start "
            f"{_load(m.get('load_average_at_start'))}, at end "
            f"{_load(res.get('load_average_at_end'))} (2 cores, shared)."
        )
    return out


def _soundness(runs: Runs) -> str:
    parts = []
    for n, res in runs.items():
        x, es = S.soundness(res["records"]), res.get("e2e", [])
        text = (
            f"{n}: {x['lost_row_groups']} pruned row groups held a qualifying row, "
            f"{x['wrong_all_match']} all-match row groups held a non-qualifying row over "
            f"{x['records']} records"
        )
        if es:
            same = sum(e["same_result"] for e in es)
            text += f", e2e counts equal to the ONNX UDF's in {same} of {len(es)} queries"
        parts.append(text)
    return "; ".join(parts)


def _coverage_rows(names: list[str], gs: dict[str, Any]) -> list[list[Any]]:
    """Paper and hull goals: cascade / exact per run, and why each miss."""
    rows = []

    def row(label: str, target: float, setting: str) -> None:
        status = "; ".join(
            f"{n}: {_why(gs[n], setting, target)}" for n in names if setting in gs[n]["cascade"]
        )
        rows.append([label, _pct(target), *[_cell(gs[n], setting) for n in names], status])

    row("paper: min-max (27.4%)", PAPER_MINMAX, "minmax")
    row("paper: 45-byte hull (38.31%)", PAPER_HULL, "hull")
    has_hull = [n for n in names if "hull" in gs[n]["cascade"]]
    upper = {n: gs[n]["exact_hull_upper"].get("hull", float("nan")) for n in has_hull}
    rows.append(
        [
            "reference's exact limit with exact pair hulls (45.2%, docs/ARCHITECTURE.md): ours, "
            "no byte budget",
            _pct(REF_EXACT_HULL),
            *[_upper(upper[n]) if n in upper else "not run" for n in names],
            "; ".join(f"{n}: {_verdict(upper[n], REF_EXACT_HULL)} (upper bound)" for n in has_hull),
        ]
    )
    row("ours: hull <= 45 B/pair", GOAL_HULL, "hull")
    row("ours: hull + SQL range conjunct", GOAL_HULL, "hull+sql")
    return rows


def _layout_rows(names: list[str], gs: dict[str, Any]) -> list[list[Any]]:
    """Layout-aware writing: the better of min-max and hull per layout kind."""
    rows = []
    for kind, label in LAYOUT_NAMES.items():
        cells, status = [], []
        for n in names:
            pair = [s for s in (f"{kind}-minmax", f"{kind}-hull") if s in gs[n]["cascade"]]
            if not pair:
                cells.append("not run")
                continue
            best = max(pair, key=lambda k, n=n: np.nan_to_num(gs[n]["cascade"][k], nan=-1.0))
            cells.append(f"{_cell(gs[n], best)} (`{best}`)")
            status.append(f"{n}: {_why(gs[n], best, GOAL_LAYOUT)}")
        rows.append(
            [f"ours: layout-aware writing, {label}", _pct(GOAL_LAYOUT), *cells, "; ".join(status)]
        )
    return rows


def _timing_row(runs: Runs) -> list[Any]:
    cells, status = [], []
    for n, res in runs.items():
        t = S.timing(res["records"])
        cells.append(f"{t['mean'] * 1e3:.3f} ms wall, {t['cpu_mean'] * 1e3:.3f} ms CPU")
        status.append(f"{n}: {_verdict(t['mean'], GOAL_MS, higher=False)} (wall)")
    return ["ours: verification per row group (mean)", "< 1 ms", *cells, "; ".join(status)]


def _e2e_row(
    runs: Runs, label: str, target: float, pick: Callable[[list], list], by_median: bool, prefix=""
) -> list[list[Any]]:
    """One e2e goal row (or none): torch UDF / mlskip over the records ``pick`` takes."""
    cells, status = [], []
    for n, res in runs.items():
        es = pick(res.get("e2e", []))
        if not es:
            cells.append("not run")
            continue
        tor = [e["torch_over_mlskip"] for e in es]
        med = float(np.median(tor))
        cells.append(f"{prefix}min {_x(min(tor))}, median {_x(med)} ({len(es)} queries)")
        verdict = _verdict(med if by_median else min(tor), target, ratio=True)
        status.append(f"{n}: {verdict}" + (" (median)" if by_median else ""))
    return [[label, f"{target}x", *cells, "; ".join(status)]] if status else []


def _e2e_rows(runs: Runs) -> list[list[Any]]:
    """The paper's e2e goal on files as written, then ours per layout and row-group size."""
    rows = _e2e_row(
        runs,
        "paper: e2e torch UDF / mlskip (1.07x), files as written",
        PAPER_E2E,
        lambda e2e: _e2e_by_layout(e2e).get("natural", []),
        by_median=True,
        prefix="natural order: ",
    )
    keys = {k: None for res in runs.values() for k in _e2e_groups(res.get("e2e", []))}
    order = list(LAYOUT_NAMES)
    for key in sorted(keys, key=lambda k: (order.index(k[0]), -k[1])):
        rows += _e2e_row(
            runs,
            f"ours: e2e torch UDF / mlskip, {_e2e_label(*key)}",
            GOAL_E2E,
            lambda e2e, key=key: _e2e_groups(e2e).get(key, []),
            by_median=False,
        )
    return rows


def _budget_line(name: str, res: dict[str, Any]) -> str:
    """How many verify calls ran into the safety cap, wall vs CPU, MILP time-outs."""
    from mlskip.skipper.planner import Planner

    pl, recs = Planner(), res["records"]
    t = S.timing(recs)
    busy = sum(
        r.get("cascade_cpu_seconds", r["cascade_seconds"])
        >= 0.9 * (pl.safety_seconds + pl.seconds_per_row_group * r["row_groups"])
        for r in recs
    )
    smp = sum(r["exact_sampled"] for r in recs)
    und = sum(r["exact_milp_undetermined"] for r in recs)
    by_setting = sorted(
        ((k, S.timing(rs)) for k, rs in S.group(recs, "setting", "block_rows").items()),
        key=lambda kv: -kv[1]["mean"],
    )
    return (
        f"- {name}: {busy} of {len(recs)} verify calls ({_pct(busy / max(1, len(recs)))}) ran into "
        f"the planner's wall-clock safety cap (process CPU >= 90% of it); mean "
        f"{t['mean'] * 1e3:.3f} ms wall vs {t['cpu_mean'] * 1e3:.3f} ms process CPU per row group "
        f"(wall/CPU {t['mean'] / max(t['cpu_mean'], 1e-12):.1f}x); {und} of {smp} exact-limit MILP "
        f"solves hit their {res['config']['milp_seconds']} s wall-clock limit. Mean ms per row "
        "group by setting and row-group size, slowest first: "
        + ", ".join(f"{k[0]} ({k[1]:,}) {v['mean'] * 1e3:.2f}" for k, v in by_setting)
        + "."
    )


def _tail(runs: Runs, blocks: dict[str, int]) -> str:
    """Per-model tables of every run, then each run's e2e table."""
    parts = [""]
    for n, res in runs.items():
        parts += [f"**{n}**", "", _per_model(res["records"], blocks[n]), ""]
    for n, res in runs.items():
        if res.get("e2e"):
            parts += [f"## End to end ({n})", "", _e2e(res["e2e"]), ""]
    return "\n".join(parts)


def render_overview(runs: Runs) -> str:
    """The top-level REPORT.md: every goal per protocol, with the measured reason of each miss."""
    names = list(runs)
    blocks = {n: min(res["config"]["block_sizes"]) for n, res in runs.items()}
    gs = {n: goals(res["records"], res.get("e2e", []), blocks[n])[1] for n, res in runs.items()}
    head = ["goal", "target", *[f"{n}: cascade / exact" for n in names], "status"]
    rows = _coverage_rows(names, gs) + _layout_rows(names, gs) + [_timing_row(runs)]
    reasons = ""
    for n, res in runs.items():
        lines = [f"- `{k}`: {_reason(b)}" for k, b in breakdown(res["records"], blocks[n]).items()]
        reasons += "\n".join([f"**{n}**\n", *lines, ""]) + "\n"
    return template("overview.md").substitute(
        names=" ".join(names),
        run_lines=_lines(_run_lines(runs)),
        soundness=_soundness(runs),
        blocks=", ".join(f"{blocks[n]:,} rows ({n})" for n in names),
        goals_table=_table(head, rows + _e2e_rows(runs)),
        reasons=reasons,
        budget_lines=_lines([_budget_line(n, res) for n, res in runs.items()]),
        tail=_tail(runs, blocks),
    )


def write_overview(root: Path, names: list[str]) -> Path:
    """Re-render each run's report under ``root/<name>`` and the overview ``root/REPORT.md``."""
    runs = {}
    for n in names:
        runs[n] = load_results(root / n)
        write_report(root / n, runs[n])
    path = root / "REPORT.md"
    path.write_text(render_overview(runs))
    return path

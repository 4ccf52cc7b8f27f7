"""Reading a run's results: records, settings, e2e groups and the protocol it ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlskip.tpch.paper import SETTINGS

from .fmt import LAYOUT_NAMES


def load_results(path: Path) -> dict[str, Any]:
    """results.json or results.json.gz of a run directory."""
    import gzip
    import json

    plain, packed = path / "results.json", path / "results.json.gz"
    if plain.exists():
        return json.loads(plain.read_text())
    return json.loads(gzip.decompress(packed.read_bytes()))


def _settings(records: list[dict]) -> list[str]:
    present = {r["setting"] for r in records}
    return [x for x in SETTINGS if x in present]


def _e2e_by_layout(e2e: list[dict]) -> dict[str, list[dict]]:
    """E2E records per layout kind (``natural``, ``layout``, ``hilbert``, ``pred``)."""
    out: dict[str, list[dict]] = {}
    for e in e2e:
        tag = e["layout"]
        kind = (
            "natural"
            if tag == "natural"
            else "pred"
            if tag.startswith("by-prediction")
            else "hilbert"
            if tag.startswith("hilbert")
            else "layout"
        )
        out.setdefault(kind, []).append(e)
    return out


def _e2e_groups(e2e: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """E2E records per (layout kind other than natural, rows per row group), in layout order."""
    out: dict[tuple[str, int], list[dict]] = {}
    for kind, es in _e2e_by_layout(e2e).items():
        for e in es:
            if kind != "natural":
                out.setdefault((kind, int(e.get("row_group_rows", 122_880))), []).append(e)
    order = list(LAYOUT_NAMES)
    return dict(sorted(out.items(), key=lambda kv: (order.index(kv[0][0]), -kv[0][1])))


def _e2e_label(kind: str, rows: int) -> str:
    return f"{LAYOUT_NAMES[kind]}, {rows:,}-row row groups"


def _e2e_stages(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``--e2e-only`` stages of a run (runs before stages were kept: its one command)."""
    if "e2e_stages" in results:
        return results["e2e_stages"]
    if not results.get("e2e_command"):
        return []
    return [{"command": results["e2e_command"], "row_group": results["config"].get("e2e_row_group", 122_880),
             "seconds": results.get("e2e_seconds", 0.0), "load_average": results.get("e2e_load_average", [])}]  # fmt: skip


def _not_run(results: dict[str, Any]) -> str:
    """Models the configuration named that have no record (the run was stopped before them)."""
    done = {r["model"] for r in results["records"]}
    missing = [m for m in results["config"].get("models") or () if m not in done]
    if not missing:
        return ""
    return (
        f"**Stopped (CPU time budget) before these configured models ran: {', '.join(missing)}**; "
        "every figure covers the models above only."
    )


def _protocol_lines(cfg: dict[str, Any]) -> list[str]:
    """How filters and blocks were chosen, for the run's protocol."""
    cascade = (
        "- Cascade: work budgets only (`tpch.effectiveness.work_budget_verifier`: IBP, CROWN, branch and bound up to "
        "64 pieces per region, certified LP; no clock, no MILP), so the verdicts are the same on any machine; the "
        "planner's CPU-time budgets decide a little differently (see a full run)."
        if cfg.get("work_budgets")
        else "- Cascade: the planner's (`Planner.verifier_for`: IBP, CROWN, witness search, branch and bound, "
        "the certified overlap LP on row groups of 16,384 rows or more; no MILP) with the planner's work budget "
        "(`planner.work_budget`: branch-and-bound pieces per row group that follow its rows; since session 11 a "
        "piece per 16 rows, at least 64; before it CPU-time budgets, then 16-1024 pieces at 128 rows a piece), "
        "the wall clock only as a safety cap."
    )
    return _protocol_only(cfg) + [
        "- Every file is written with `mlskip.write_parquet` at one block per row group, 45-byte hulls on every input "
        "pair; the ground truth of a block comes from the model evaluated in float32 (ONNX Runtime, as the UDF) on "
        "every row; a row with a NULL input never qualifies.",
        cascade,
    ]


def _protocol_only(cfg: dict[str, Any]) -> list[str]:
    if cfg.get("protocol", "sweep") == "reference":
        block = min(cfg["block_sizes"])
        return [
            f"- Protocol `reference` (our reading of the MLSkip description, not its code): the data set of each table "
            f"is its first {cfg['max_blocks']} blocks of {block:,} rows in generated order ({cfg['max_blocks'] * block:,} "
            "rows); natural-order settings write exactly those blocks, layout settings reorder those rows and cut them "
            "into the same number of blocks. Models: 2- to 4-input regressors, hidden layers "
            f"{cfg['hidden']}.",
            f"- Filters `lo <= model(x) <= hi`: `lo = min + u * (max - min)` of the model's float32 output on the data set "
            f"for each start `u` in {cfg['starts']}, `hi = lo + w * (max - min)` for widths {cfg['widths']}; filters "
            f"that select no row, duplicates and filters above {100 * cfg['max_selectivity']:g}% selectivity dropped. "
            "Start points sweep the output's value range, not its quantiles, so rare filters sit where the output is "
            "sparse. Selectivity and ground truth are on the data set; witnesses for the exact limit come from the "
            "whole table.",
        ]
    return [
        f"- Protocol `sweep`: filters `lo <= model(x) <= hi` with start points at output quantiles {cfg['starts']} and "
        f"widths {cfg['widths']} of the output's 0.1%..99.9% range; empty and duplicate filters dropped; binned by "
        "selectivity.",
        f"- Blocks: per file, at most {cfg['max_blocks']} random blocks of each size of the whole table in the "
        "setting's layout.",
    ]

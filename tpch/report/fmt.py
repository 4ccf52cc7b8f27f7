"""Formatting of report cells, and the reference figures the goals name."""

from __future__ import annotations

import math
from typing import Any

from mlskip.tpch.filters import BINS

LAYOUT_NAMES = {
    "layout": "sorted by the most output-correlated input",
    "hilbert": "Hilbert curve on the most influential inputs",
    "pred": "sorted by the model's own prediction",
}

PAPER_MINMAX, PAPER_HULL, PAPER_E2E = 0.274, 0.3831, 1.07
REF_EXACT_MINMAX, REF_EXACT_HULL = 0.266, 0.452
GOAL_HULL, GOAL_LAYOUT, GOAL_MS, GOAL_E2E = 0.60, 0.90, 1e-3, 5.0
HEADLINE_BIN = BINS[0][0]


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)


def _x(v: float) -> str:
    return "not measured" if math.isnan(v) else f"{v:.2f}x"


def _verdict(value: float, goal: float, higher: bool = True, ratio: bool = False) -> str:
    if value is None or math.isnan(value):
        return "not measured"
    if ratio:
        return "reached" if value >= goal else f"missed: {value / goal:.0%} of the target"
    ok = value >= goal if higher else value <= goal
    if higher:
        return "reached" if ok else f"missed by {100 * (goal - value):.1f} points"
    return "reached" if ok else f"missed: {value / goal:.2f}x the limit"


def _upper(x: float) -> str:
    return "not measured" if math.isnan(x) else f"<= {_pct(x)}"


def _load(v: Any) -> str:
    return "n/a" if not v else "(" + ", ".join(f"{x:.2f}" for x in v) + ")"

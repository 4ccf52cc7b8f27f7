"""Summaries recomputed from results.json records: effectiveness, timings, shares, soundness.

Effectiveness of a record = pruned skippable row groups / skippable row groups
(records without a skippable row group are left out). Averages are over
filters (each filter counts once), as the paper averages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

Record = dict[str, Any]


def eff(r: Record) -> float:
    """The cascade's effectiveness on one record."""
    return r["cascade_pruned_skippable"] / r["skippable"]


def eff_exact(r: Record) -> float:
    """The exact limit's effectiveness on one record (MILP sample extrapolated)."""
    return min(1.0, r["exact_pruned_estimate"] / r["skippable"])


def eff_exact_upper(r: Record) -> float:
    """Upper end of the exact limit: MILP time-outs in the sample counted as prunable."""
    scale = r["exact_rest"] / r["exact_sampled"] if r["exact_sampled"] else 0.0
    upper = (
        r["cascade_pruned_skippable"]
        + (r["exact_milp_pruned"] + r["exact_milp_undetermined"]) * scale
    )
    return min(1.0, upper / r["skippable"])


def eff_exact_hull_upper(r: Record) -> float:
    """Upper end of the exact limit with exact pair hulls (no byte budget): the share of
    skippable row groups whose box and exact pair hulls hold no real qualifying row (nan
    for records without the measurement: settings without hulls, runs before it)."""
    if "exact_hull_witnessed" not in r:
        return float("nan")
    return 1.0 - r["exact_hull_witnessed"] / r["skippable"]


def usable(records: Iterable[Record]) -> list[Record]:
    return [r for r in records if r["skippable"] > 0]


def mean_of(records: Iterable[Record], fn: Callable[[Record], float]) -> float:
    """Mean of ``fn`` over records with a skippable row group (nan if none, or if ``fn``
    has no value for one of them)."""
    vals = [fn(r) for r in usable(records)]
    return float(np.mean(vals)) if vals else float("nan")


def group(records: Iterable[Record], *keys: str) -> dict[tuple, list[Record]]:
    out: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        out[tuple(r[k] if not isinstance(r[k], list) else tuple(r[k]) for k in keys)].append(r)
    return dict(out)


def select(records: Iterable[Record], **where: Any) -> list[Record]:
    return [r for r in records if all(r[k] == v for k, v in where.items())]


def timing(records: Iterable[Record]) -> dict[str, float]:
    """Cascade seconds per row group: median and p95 over calls, mean over all row groups (wall
    and process CPU), total."""
    recs = list(records)
    per = np.array([r["cascade_seconds"] / max(1, r["row_groups"]) for r in recs])
    total = float(sum(r["cascade_seconds"] for r in recs))
    cpu = float(sum(r.get("cascade_cpu_seconds", float("nan")) for r in recs))
    groups = sum(r["row_groups"] for r in recs)
    if not len(per):
        nan = float("nan")
        return {"median": nan, "p95": nan, "mean": nan, "cpu_mean": nan, "total": 0.0}
    return {
        "median": float(np.median(per)),
        "p95": float(np.quantile(per, 0.95)),
        "mean": total / max(1, groups),
        "cpu_mean": cpu / max(1, groups),
        "total": total,
        "calls": len(recs),
        "row_groups": groups,
    }


def decided_shares(records: Iterable[Record]) -> dict[str, float]:
    """Share of row groups decided (or proven mixed) by each method."""
    counts: dict[str, int] = defaultdict(int)
    total = 0
    for r in records:
        total += r["row_groups"]
        for k, v in r["decided_by"].items():
            counts[k] += v
    return {k: v / max(1, total) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def soundness(records: Iterable[Record]) -> dict[str, int]:
    recs = list(records)
    return {
        "records": len(recs),
        "lost_row_groups": sum(r["lost_row_groups"] for r in recs),
        "wrong_all_match": sum(r["wrong_all_match"] for r in recs),
    }

"""The per-run tables: per bin, model and filter, gaps, timings, shares, bytes, e2e, notes."""

from __future__ import annotations

import numpy as np

from mlskip.tpch import summary as S
from mlskip.tpch.filters import BINS

from .fmt import HEADLINE_BIN, LAYOUT_NAMES, _pct, _table
from .records import _settings


def _per_bin(records: list[dict]) -> str:
    lines = []
    for (block,), recs in sorted(S.group(records, "block_rows").items()):
        rows = []
        for setting in _settings(recs):
            row = [setting]
            for name, _, _ in BINS:
                sub = S.select(recs, setting=setting, bin=name)
                n = len(S.usable(sub))
                row.append(
                    f"{_pct(S.mean_of(sub, S.eff))} / {_pct(S.mean_of(sub, S.eff_exact))} (n={n})"
                    if n
                    else "-"
                )
            rows.append(row)
        blocks = sorted({(r["blocks_sampled"], r["blocks_total"]) for r in recs})
        lines.append(
            f"\n**Row groups of {block:,} rows** (sampled blocks/total per file: {blocks})\n"
        )
        lines.append(_table(["setting", *[b[0] for b in BINS]], rows))
    return "\n".join(lines)


def _per_model(records: list[dict], block: int) -> str:
    rows = []
    head = S.select(records, bin=HEADLINE_BIN, block_rows=block)
    for (key,), recs in sorted(S.group(head, "model_key").items()):
        r2 = recs[0]["r2"]
        n = max(len(S.usable(S.select(recs, setting=x))) for x in _settings(recs))
        row = [key, f"{r2:.3f}", str(n)]
        for setting in _settings(records):
            sub = S.select(recs, setting=setting)
            row.append(f"{_pct(S.mean_of(sub, S.eff))} / {_pct(S.mean_of(sub, S.eff_exact))}")
        rows.append(row)
    return _table(["model", "R2", "filters", *_settings(records)], rows)


def _per_filter(records: list[dict], block: int) -> str:
    rows = []
    head = S.select(records, bin=HEADLINE_BIN, block_rows=block)
    by: dict[tuple, dict[str, dict]] = {}
    for r in head:
        by.setdefault((r["model_key"], r["filter"]["fid"]), {})[r["setting"]] = r
    for (key, fid), d in sorted(by.items()):
        f = next(iter(d.values()))["filter"]
        row = [key, fid, f"[{f['lo']:.6g}, {f['hi']:.6g}]", f"{100 * f['selectivity']:.3f}%"]
        for setting in _settings(records):
            r = d.get(setting)
            if r is None or r["skippable"] == 0:
                row.append("-")
                continue
            gap = "" if S.eff_exact(r) - S.eff(r) < 1e-9 else " **gap**"
            row.append(f"{_pct(S.eff(r))} / {_pct(S.eff_exact(r))} ({r['skippable']}){gap}")
        rows.append(row)
    return _table(["model", "filter", "lo..hi", "selectivity", *_settings(records)], rows)


def _gaps(records: list[dict]) -> str:
    gaps = [r for r in S.usable(records) if S.eff_exact(r) - S.eff(r) > 1e-9]
    if not gaps:
        return "No record where the exact method prunes more than the cascade."
    gaps.sort(key=lambda r: S.eff(r) - S.eff_exact(r))
    rows = [
        [r["model_key"], r["setting"], f"{r['block_rows']:,}", r["filter"]["fid"], r["bin"], _pct(S.eff(r)), _pct(S.eff_exact(r)),
         f"{r['exact_milp_pruned']}/{r['exact_sampled']} of {r['exact_rest']}"]
        for r in gaps[:15]
    ]  # fmt: skip
    total_missing = sum(r["exact_pruned_estimate"] - r["cascade_pruned_skippable"] for r in gaps)
    return (
        f"{len(gaps)} of {len(S.usable(records))} records have a gap (about {total_missing:.0f} row groups "
        "in all that MILP prunes and the cascade, within the planner's budget, leaves undecided). Largest:\n\n"
        + _table(
            [
                "model",
                "setting",
                "block",
                "filter",
                "bin",
                "cascade",
                "exact",
                "MILP pruned/sampled of undecided",
            ],
            rows,
        )
    )


def _timings(records: list[dict]) -> str:
    rows = []
    for (setting, block), recs in sorted(S.group(records, "setting", "block_rows").items()):
        t = S.timing(recs)
        rows.append([setting, f"{block:,}", t["calls"], f"{t['median'] * 1e3:.3f}", f"{t['p95'] * 1e3:.3f}",
                     f"{t['mean'] * 1e3:.3f}", f"{t['cpu_mean'] * 1e3:.3f}", f"{t['total']:.1f}"])  # fmt: skip
    return _table(
        ["setting", "block", "verify calls", "median ms/RG", "p95 ms/RG", "mean ms/RG",
         "mean CPU ms/RG", "total s"],
        rows,
    )  # fmt: skip


def _shares(records: list[dict]) -> str:
    rows = []
    for (setting,), recs in sorted(S.group(records, "setting").items()):
        shares = S.decided_shares(recs)
        rows.append([setting, ", ".join(f"{k} {_pct(v)}" for k, v in shares.items())])
    return _table(
        ["setting", "share of row groups by deciding method (sampling = proven mixed)"], rows
    )


def _bytes(records: list[dict]) -> str:
    rows = []
    for (table, block), recs in sorted(
        S.group([r for r in records if r["setting"] == "hull"], "table", "block_rows").items()
    ):
        r0 = recs[0]
        rows.append([table, f"{block:,}", r0["hull_pairs"], f"{np.mean([r['hull_bytes_per_pair'] for r in recs]):.1f}",
                     f"{r0['hull_pairs'] * np.mean([r['hull_bytes_per_pair'] for r in recs]):.0f}"])  # fmt: skip
    return _table(
        [
            "table",
            "block",
            "pairs",
            "mean bytes per RG and pair (budget 45)",
            "bytes per RG, all pairs",
        ],
        rows,
    )


def _e2e(e2e: list[dict]) -> str:
    """E2E table; mlskip is compared with the same ONNX UDF without skipping (the PyTorch UDF
    evaluates float32 in another order and may differ on rows exactly at a bound)."""
    if not e2e:
        return "Not run."
    rows = [
        [e["model"], e["fid"], f"{100 * e['selectivity']:.3f}%", e["layout"], f"{e['pruned']}/{e['row_groups']} ({e.get('row_group_rows', 122_880):,})",
         f"{e['torch_s']:.3f}", f"{e['onnx_s']:.3f}", f"{e['mlskip_s']:.3f}", f"{e['torch_over_mlskip']:.2f}x",
         f"{e['onnx_over_mlskip']:.2f}x", f"{e['planning_cold_s'] * 1e3:.0f} / {e['planning_warm_s'] * 1e3:.1f}",
         ("yes" if e["same_result"] else "**NO**") + ("" if e.get("torch_same", True) else " (torch UDF differs)")]
        for e in e2e
    ]  # fmt: skip
    return _table(["model", "filter", "selectivity", "layout", "pruned/RGs (rows per RG)", "torch UDF s", "ONNX UDF s", "mlskip s",
                   "torch/mlskip", "onnx/mlskip", "planning ms cold/warm", "mlskip count = ONNX UDF count"], rows)  # fmt: skip


def _notes(records: list[dict]) -> str:
    """Why goals are reached or missed, computed from the records."""
    lines = []
    pairs: dict[tuple, dict[str, dict]] = {}
    for r in records:
        pairs.setdefault((r["model_key"], r["block_rows"], r["filter"]["fid"]), {})[
            r["setting"]
        ] = r
    worse = total = 0
    duos = [(f"{k}-minmax", f"{k}-hull") for k in LAYOUT_NAMES] + [("minmax", "hull")]
    for d in pairs.values():
        for a, b in duos:
            if a in d and b in d and d[a]["skippable"]:
                total += 1
                worse += d[b]["cascade_pruned_skippable"] < d[a]["cascade_pruned_skippable"]
    lines.append(
        f"- Hull vs min-max in the cascade: on {worse} of {total} (filter, block size, layout) pairs the cascade "
        "pruned fewer row groups with hulls than with the bare box. The hull region lies inside the box, so this is "
        "the verifier (branch and bound on polygon-cut regions decides fewer regions within its budget), not the metadata."
    )
    open_ = sum(r["exact_open"] for r in records)
    wit = sum(r["exact_witnessed"] for r in records)
    lines.append(
        f"- Of {open_} skippable row groups the cascade left unpruned (all records), {wit} ({_pct(wit / max(1, open_))}) "
        "contain a real qualifying row of the table inside their region: no sound verifier can prune those on this "
        "metadata. That is the metadata's limit (boxes and 45-byte pair hulls in natural order span most of each "
        "column's domain), and why layout-aware writing is what moves effectiveness."
    )
    und = sum(r["exact_milp_undetermined"] for r in records)
    smp = sum(r["exact_sampled"] for r in records)
    lines.append(
        f"- MILP on the sampled open blocks: {smp} solved, {sum(r['exact_milp_pruned'] for r in records)} pruned, "
        f"{sum(r['exact_milp_mixed'] for r in records)} proven mixed, {und} timed out. Time-outs count as not prunable "
        "in the exact limit (a lower bound); the `(<= x)` figures count them as prunable (an upper bound)."
    )
    from mlskip.skipper.planner import Planner

    planner = Planner()
    per_rg = planner.seconds_per_row_group

    def budget(r: dict) -> float:
        return planner.safety_seconds + per_rg * r["row_groups"]

    busy = [r for r in records if r["cascade_seconds"] >= 0.9 * budget(r)]
    lines.append(
        f"- Verification time: {len(busy)} of {len(records)} verify calls ({_pct(len(busy) / max(1, len(records)))}) "
        f"used at least 90% of the planner's wall-clock safety cap ({planner.safety_seconds:g} s + "
        f"{per_rg * 1e3:g} ms per row group; the planner's budget is in work units, planner.work_budget, "
        "and the cap is only a safety net)."
    )
    return "\n".join(lines)

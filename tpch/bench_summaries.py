"""``mlskip bench summaries``: model-aware summaries against the convex ceiling (MODELS.md).

On MLSkip's protocol (its 10 regressors with one hidden layer of 32, the first 100 blocks
of 1,000 rows of each table in natural order, filters sweeping the output's value range,
selectivity at most 1%; results also for at most 0.1%) it measures, per model and filter,
the share of skippable blocks the planner prunes with

- ``minmax`` and ``hull``: the input summaries alone (45-byte pair polygons);
- ``summary-B``: the model's output summary of B bytes alone (8, 16, 32);
- ``summary-B+minmax`` / ``summary-B+hull``: the planner as it runs, summary first;

for the dense model and for each of its zoo variants (magnitude, Wanda, L2, PSViT,
PrimeSVT, lumping, STARFISH-healed, DOT-MoE) through the dense model's summary, with the
deviation bound the verifier proved per block. A separate stage times the summaries' cost:
writing a whole table with and without them, and planning with them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import bench_data, bench_models, effectiveness, filters

SETTINGS = ("minmax", "hull", "summary", "summary+minmax", "summary+hull")
VARIANT_TOLERANCE = 0.01  # "within 1% of the dense model's score": score >= 0.99 * base


@dataclass
class SummaryBenchConfig:
    sf: float = 1.0
    models: tuple[str, ...] = bench_models.REFERENCE_MODELS
    blocks: int = 100
    block_rows: int = 1000
    budgets: tuple[int, ...] = (8, 16, 32)
    max_selectivity: float = filters.REFERENCE_MAX_SELECTIVITY
    variants: bool = True
    quick: bool = False  # the zoo's quick variant list, fewer epochs
    train_sf: float = 0.1
    epochs: int = 150
    # settings "summary+hull@N": a variant's summary path splits its row groups into up to
    # N pieces (the planner's default is a piece per 16 rows, at least 64: 64 here), the
    # row groups it leaves open are verified as in "hull"
    pieces: tuple[int, ...] = (1024,)
    extra: dict[str, Any] = field(default_factory=dict)


def _plain_groups(groups):
    """Row groups without their model summaries (and without polygons: ``boxes``)."""
    return [replace(g, outputs=()) for g in groups]


def _args(header):
    """The arguments a DuckDB query on the summarized columns has (typed as recorded)."""
    from mlskip.skipper.rules.predicates import AffineArg

    out = []
    for column, types in zip(header.inputs, header.input_types, strict=True):
        column_type = types.split("->", 1)[0]
        out.append(
            AffineArg(((column, 1.0),), 0.0, ("cast", "DOUBLE", ("col", column_type, column)))
        )
    return tuple(out)


@dataclass
class _Model:
    name: str  # "dense" or the variant
    method: str
    network: Any
    digest: str
    onnx: Path
    score: float
    within: bool  # within VARIANT_TOLERANCE of the dense model's score
    y: np.ndarray = field(repr=False, default=None)


def _train(spec, cfg: SummaryBenchConfig, work: Path, data) -> list[_Model]:
    """The dense model and (with ``cfg.variants``) its zoo variants, as ONNX files."""
    import torch

    from mlskip.model_zoo.build import variants
    from mlskip.model_zoo.export import save_onnx
    from mlskip.model_zoo.train import load_dataset, score, train_dense
    from mlskip.udf.model import prepare_model

    torch.set_num_threads(1)
    ds = load_dataset(spec, n_train=4000, n_test=10_000, sf=cfg.train_sf)
    dense = train_dense(spec, (32,), epochs=cfg.epochs, data=ds).model
    base = score(dense, ds.x_test, ds.y_test, spec.task)
    todo = variants(dense, None, ds.x_train[:256], spec.task, cfg.quick)
    if not cfg.variants:
        todo = todo[:1]
    out = []
    for name, method, _, build in todo:
        try:
            model = build()
        except Exception as error:  # a method that does not apply to this model
            print(f"  {spec.name} {name}: not built ({type(error).__name__}: {error})")
            continue
        path = work / f"{spec.name}__{name}.onnx"
        save_onnx(model, path, spec.inputs, spec.task)
        prepared = prepare_model(str(path), list(spec.inputs))
        s = score(model, ds.x_test, ds.y_test, spec.task)
        m = _Model(name, method, prepared.network, prepared.digest, path, s,
                   s >= base - VARIANT_TOLERANCE * abs(base))  # fmt: skip
        m.y = bench_models.evaluate_rows(path, data.x)
        out.append(m)
    return out


def _write(data, rows, cfg, dense: _Model, budget: int, path: Path) -> Path:
    import itertools

    import mlskip

    if path.exists():
        return path
    pairs = list(itertools.combinations(data.table.column_names, 2))
    mlskip.write_parquet(
        data.table.take(rows), path, row_group_size=cfg.block_rows, hulls=pairs,
        models={"dense": (str(dense.onnx), list(data.table.column_names))}, model_bytes=budget,
    )  # fmt: skip
    return path


def _verdicts(planner, groups, bound) -> np.ndarray:
    return planner.row_group_verdicts(groups, bound)[0]


def _model_records(spec, cfg, work, planner) -> list[dict[str, Any]]:
    """Every record of one spec: per budget, model (dense and variants) and filter."""
    import pyarrow as pa

    from mlskip.metadata import read_skip_metadata
    from mlskip.skipper.planner import BoundPredicate
    from mlskip.skipper.row_group_regions import build_regions
    from mlskip.skipper.summary_plan import summary_verdicts
    from mlskip.verifier import UNKNOWN, Predicate
    from mlskip.verifier.output_summaries import deviation_bounds

    full = bench_data.load_inputs(spec.suite, spec.table, tuple(spec.inputs), cfg.sf)
    data = bench_data.head(full, cfg.blocks * cfg.block_rows)
    models = _train(spec, cfg, work, data)
    dense = models[0]
    rows = pa.array(np.arange(data.table.num_rows))
    records = []
    for budget in cfg.budgets:
        path = _write(data, rows, cfg, dense, budget, work / f"{spec.name}-b{budget}.parquet")
        groups = read_skip_metadata(str(path)).row_groups
        per_setting = {
            "minmax": effectiveness.without_hulls(_plain_groups(groups)),
            "hull": _plain_groups(groups),
            "summary+minmax": effectiveness.without_hulls(groups),
            "summary+hull": groups,
        }
        header = groups[0].outputs[0].header
        args = _args(header)
        regions = build_regions(groups, args, {})
        everything = np.arange(len(groups))
        for m in models:
            references = {} if m is dense else {dense.digest: dense.network}
            deviation = None
            if m is not dense:
                dev = deviation_bounds(dense.network, m.network, _region_batch(regions), 64)
                if dev is not None:
                    width = np.where(dev[1] >= dev[0], dev[1] - dev[0], np.inf)
                    y_range = float(np.ptp(dense.y[data.valid]))
                    deviation = {
                        "median_width": float(np.median(width)),
                        "median_width_of_range": float(np.median(width) / y_range),
                    }
            for f in filters.value_sweep_filters(
                m.y[data.valid], filters.REFERENCE_STARTS, filters.REFERENCE_WIDTHS,
                cfg.max_selectivity,
            ):  # fmt: skip
                truth = filters.block_truth(
                    filters.qualifying(m.y, data.valid, f.lo, f.hi), cfg.block_rows
                )
                pred = Predicate.between(f.lo, f.hi)
                bound = BoundPredicate(
                    m.network, pred, args, m.digest, f"{m.name} BETWEEN", ("DOUBLE",) * len(args),
                    references,
                )  # fmt: skip
                rec = {
                    "model": spec.name, "variant": m.name, "method": m.method,
                    "score": m.score, "within_1pct": m.within, "budget": budget,
                    "fid": f.fid, "selectivity": f.selectivity,
                    "skippable": int(truth.skippable.sum()), "blocks": len(groups),
                    "deviation": deviation,
                }  # fmt: skip
                rec.update(_ideal(m.y, data.valid, cfg.block_rows, f.lo, f.hi, truth))
                larger = cfg.pieces if budget == max(cfg.budgets) else ()
                got: dict[str, np.ndarray] = {}
                for setting in SETTINGS + tuple(f"summary+hull@{n}" for n in larger):
                    name, _, pieces = setting.partition("@")
                    if name == "summary":
                        v = summary_verdicts(groups, everything, bound, regions)[0]
                    elif pieces:  # the summary path with more pieces, the rest as "hull"
                        v = summary_verdicts(groups, everything, bound, regions, int(pieces))[0]
                        v = np.where(v != UNKNOWN, v, got["hull"])
                    else:
                        v = _verdicts(planner, per_setting[name], bound)
                    got[setting] = v
                    pruned = v == 0
                    rec[setting] = int((pruned & truth.skippable).sum())
                    rec[f"{setting}_lost"] = int((pruned & ~truth.skippable).sum())
                    rec[f"{setting}_wrong_all"] = int(((v == 1) & ~truth.all_match).sum())
                records.append(rec)
    return records


IDEAL = ("exact-range", "global-bins-64", "global-bins-256")


def _ideal(y, valid, block_rows: int, lo: float, hi: float, truth) -> dict[str, int]:
    """Skippable blocks pruned by the reference's idealized output summaries (no rounding
    allowance): each block's exact output range, and occupancy bitmaps of 64 and 256
    equal-width bins over the output's global range."""
    y = np.where(valid, y.astype(np.float64), np.nan)
    blocks = y[: len(y) // block_rows * block_rows].reshape(-1, block_rows)
    out = {}
    with np.errstate(invalid="ignore"):
        bmin, bmax = np.nanmin(blocks, axis=1), np.nanmax(blocks, axis=1)
        miss = (bmax < lo) | (bmin > hi)
        out["exact-range"] = int((miss & truth.skippable[: len(miss)]).sum())
        g_lo, g_hi = np.nanmin(y), np.nanmax(y)
        for bins in (64, 256):
            width = (g_hi - g_lo) / bins
            idx = np.clip(np.floor((blocks - g_lo) / width), 0, bins - 1)
            first = int(np.clip(np.floor((lo - g_lo) / width), 0, bins - 1))
            last = int(np.clip(np.floor((hi - g_lo) / width), 0, bins - 1))
            hit = ((idx >= first) & (idx <= last)).any(axis=1)
            out[f"global-bins-{bins}"] = int((~hit & truth.skippable[: len(hit)]).sum())
    return out


def _region_batch(regions):
    from mlskip.verifier import RegionBatch

    return RegionBatch(regions.lower, regions.upper, regions.pairs, regions.halfspaces)


def share(records, setting: str, max_sel: float | None = None, **where) -> tuple[float, int]:
    """Pruned share (%) of the skippable blocks over ``records`` matching ``where``."""
    rs = [r for r in records if all(r.get(k) == v for k, v in where.items())]
    if max_sel is not None:
        rs = [r for r in rs if r["selectivity"] <= max_sel]
    sk = sum(r["skippable"] for r in rs)
    return (100.0 * sum(r[setting] for r in rs) / sk if sk else float("nan")), len(rs)


def report(records, cost: dict[str, Any] | None, cfg: SummaryBenchConfig) -> str:
    lines = [
        "# Model-aware summaries",
        "",
        f"Configuration: `{json.dumps(asdict(cfg), default=str)}`",
        "",
    ]
    lost = sum(r[k] for r in records for k in r if k.endswith(("_lost", "_wrong_all")))
    lines += [f"Lost row groups and wrong all-match verdicts over every record: **{lost}**.", ""]
    for max_sel, label in ((0.001, "selectivity <= 0.1%"), (None, "all filters (<= 1%)")):
        lines += [f"## Dense models, natural order, {label}", "",
                  "| budget | filters | minmax | hull | summary | summary+minmax | summary+hull |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for b in cfg.budgets:
            cells = [share(records, s, max_sel, budget=b, variant="dense") for s in SETTINGS]
            lines.append(
                f"| {b} | {cells[0][1]} | " + " | ".join(f"{c[0]:.1f}%" for c in cells) + " |"
            )
        ideal = [share(records, s, max_sel, budget=cfg.budgets[0], variant="dense") for s in IDEAL]
        lines += ["", "Idealized (the issue's reference measures, no rounding allowance): "
                  + ", ".join(f"{n} {c[0]:.1f}%" for n, c in zip(IDEAL, ideal, strict=True)), ""]  # fmt: skip
    big = [f"summary+hull@{n}" for n in cfg.pieces]
    lines += ["## Variants through the dense model's summary (32 bytes, filters <= 1%)", "",
              "Settings `@N`: the summary path may split a row group into N pieces (the "
              "planner's budget is a piece per 16 rows, at least 64: 64 for these 1,000-row "
              "blocks); what it leaves open is verified as in `hull`.", "",
              "| variant | method | within 1% | filters | hull | summary | summary+hull | "
              + " | ".join(big) + " | deviation width / output range (median over models) |",
              "|---|---|---|---|---|---|---|" + "---|" * len(big) + "---|"]  # fmt: skip
    b = max(cfg.budgets)
    for name in dict.fromkeys(r["variant"] for r in records):
        rs = [r for r in records if r["variant"] == name and r["budget"] == b]
        cells = [share(rs, s) for s in ("hull", "summary", "summary+hull", *big)]
        devs = [r["deviation"]["median_width_of_range"] for r in rs if r["deviation"]]
        within = all(r["within_1pct"] for r in rs)
        dev = f"{np.median(devs):.3f}" if devs else "-"
        lines.append(f"| {name} | {rs[0]['method']} | {'yes' if within else 'no'} | {cells[0][1]} | "
                     + " | ".join(f"{c[0]:.1f}%" for c in cells) + f" | {dev} |")  # fmt: skip
    variants = [
        r for r in records if r["variant"] != "dense" and r["within_1pct"] and r["budget"] == b
    ]
    if variants:
        for setting in ("hull", "summary+hull", *big):
            v = share(variants, setting)
            lines += ["", f"All variants within 1% of their dense model's score, {setting} at "
                          f"{b} bytes: **{v[0]:.1f}%** of skippable blocks ({v[1]} filters)."]  # fmt: skip
    if cost:
        lines += ["", "## Cost", "", "```", json.dumps(cost, indent=2), "```"]
    return "\n".join(lines) + "\n"


E2E_SELECTIVITIES = (1e-3, 1e-4, 1e-5, 1e-6)


def e2e_stage(
    sf: float, work: Path, repeats: int = 3, row_group: int = 10_000
) -> list[dict[str, Any]]:
    """Wall time of ``SELECT count(*) ... WHERE m(...) > t`` on SF ``sf`` lineitem in
    natural order (``row_group``-row row groups, 45-byte hulls), with and without the
    model's summaries, at thresholds of the top 0.1% to 0.0001% of its outputs: the
    PyTorch UDF and the ONNX UDF on every row against mlskip (``tpch.e2e.measure_query``)."""
    from mlskip.model_zoo.specs import get_spec
    from mlskip.tpch.e2e import _write_full, compared_connections, measure_query

    spec = get_spec("lineitem_disc_price")
    data = bench_data.load_inputs(spec.suite, spec.table, tuple(spec.inputs), sf)
    onnx = work / "e2e_model.onnx"
    if not onnx.exists():
        model = bench_models.train_model(spec, (32,), work, 0.1, 60)
        model.onnx_path.replace(onnx)
    y = bench_models.evaluate_rows(onnx, data.x)[data.valid]
    columns = ", ".join(spec.inputs)
    out = []
    for label, models in (
        ("natural", None),
        ("natural+summary", {"m": (str(onnx), list(spec.inputs))}),
    ):
        path = _write_full(data, work / f"e2e-{label}-rg{row_group}-sf{sf}.parquet", None, None,
                           row_group, models)  # fmt: skip
        for selectivity in E2E_SELECTIVITIES:
            t = float(np.quantile(y, 1.0 - selectivity))
            sql = f"SELECT count(*) FROM '{path}' WHERE m({columns}) > {t!r}"
            m = measure_query(compared_connections("m", onnx), sql, repeats)
            report, sec = m["report"], m["seconds"]
            out.append({
                "file": label, "selectivity": selectivity, "threshold": t, "sql": sql,
                "row_groups": report.row_groups, "pruned": report.pruned,
                "all_match": report.all_match, "counts": m["counts"],
                "same_result": len(set(m["counts"].values())) == 1,
                "torch_s": sec["torch"], "onnx_s": sec["onnx"], "mlskip_s": sec["mlskip"],
                "torch_over_mlskip": sec["torch"] / sec["mlskip"],
                "onnx_over_mlskip": sec["onnx"] / sec["mlskip"],
                "planning_cold_s": m["planning_cold_s"], "planning_warm_s": m["planning_warm_s"],
            })  # fmt: skip
            print(f"e2e {label} selectivity {selectivity:g}: pruned {report.pruned}/"
                  f"{report.row_groups}, {out[-1]['torch_over_mlskip']:.2f}x over PyTorch")  # fmt: skip
    return out


def e2e_report(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## End to end (SF lineitem, natural order, `count(*) WHERE m(...) > t`)", "",
             "| file | selectivity | pruned / row groups | PyTorch UDF s | ONNX UDF s | mlskip s | "
             "x PyTorch | x ONNX | same counts |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['selectivity']:g} | {r['pruned']} / {r['row_groups']} | "
            f"{r['torch_s']:.3f} | {r['onnx_s']:.3f} | {r['mlskip_s']:.3f} | "
            f"{r['torch_over_mlskip']:.2f} | {r['onnx_over_mlskip']:.2f} | {r['same_result']} |"
        )
    return lines


def cost_stage(sf: float, work: Path) -> dict[str, Any]:
    """Seconds to write SF ``sf`` lineitem (natural order, 122,880-row row groups, hulls
    auto) with and without a model's summaries, and planning with them."""
    import mlskip
    from mlskip.model_zoo.specs import get_spec

    spec = get_spec("lineitem_disc_price")
    full = bench_data.load_inputs(spec.suite, spec.table, tuple(spec.inputs), sf)
    model = bench_models.train_model(spec, (32,), work, 0.1, 60)
    out: dict[str, Any] = {"rows": int(full.table.num_rows)}
    for label, kwargs in (
        ("plain", {}),
        ("summary", {"models": {"m": (str(model.onnx_path), list(spec.inputs))}}),
    ):
        start = time.perf_counter()
        mlskip.write_parquet(full.table, work / f"cost-{label}.parquet", **kwargs)
        out[f"write_{label}_s"] = time.perf_counter() - start
    extra = out["write_summary_s"] - out["write_plain_s"]
    out["summary_rows_per_s"] = out["rows"] / max(extra, 1e-9)
    out["summary_share_of_write"] = extra / out["write_summary_s"]
    from mlskip.metadata import read_skip_metadata
    from mlskip.skipper.planner import BoundPredicate, Planner
    from mlskip.udf.model import prepare_model
    from mlskip.verifier import Predicate

    prepared = prepare_model(str(model.onnx_path), list(spec.inputs))
    y = bench_models.evaluate_rows(model.onnx_path, full.x)
    groups = read_skip_metadata(str(work / "cost-summary.parquet")).row_groups
    args = _args(groups[0].outputs[0].header)
    for q in (0.999, 0.5):
        pred = Predicate.gt(float(np.quantile(y, q)))
        bound = BoundPredicate(prepared.network, pred, args, prepared.digest, "m > t",
                               ("DOUBLE",) * len(args))  # fmt: skip
        for label, gs in (("plain", _plain_groups(groups)), ("summary", groups)):
            Planner().row_group_verdicts(gs, bound)  # warm-up
            start = time.process_time()
            v, methods = Planner().row_group_verdicts(gs, bound)
            ms = 1000 * (time.process_time() - start) / len(gs)
            out[f"plan_{label}_q{q}_cpu_ms_per_rg"] = ms
            out[f"plan_{label}_q{q}_pruned"] = int((v == 0).sum())
            out[f"plan_{label}_q{q}_by_summary"] = int(
                sum(str(m).startswith("summary") for m in methods)
            )
    return out


def run(cfg: SummaryBenchConfig, out: Path, cost: bool = True, e2e: bool = False) -> Path:
    from mlskip.skipper.planner import Planner

    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    planner = Planner()
    records: list[dict[str, Any]] = []
    for spec in bench_models.regressor_specs(cfg.models) if cfg.models else ():
        start = time.perf_counter()
        records += _model_records(spec, cfg, work, planner)
        print(f"{spec.name}: {time.perf_counter() - start:.0f} s")
        (out / "records.json").write_text(json.dumps(records, default=float))
    costs = cost_stage(cfg.sf, work) if cost else None
    ends = e2e_stage(cfg.sf, work) if e2e else None
    (out / "results.json").write_text(json.dumps({"config": asdict(cfg), "records": records,
                                                  "cost": costs, "e2e": ends}, default=str))  # fmt: skip
    text = report(records, costs, cfg) if records else "# Model-aware summaries\n"
    if ends:
        text += "\n" + "\n".join(e2e_report(ends)) + "\n"
    (out / "REPORT.md").write_text(text)
    return out / "REPORT.md"

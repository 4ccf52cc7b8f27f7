"""One trained model's records for ``mlskip bench paper``: its layouts, block files,
filters and settings, each evaluated against the exact limit."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlskip.tpch import bench_data, bench_models, effectiveness, filters

from .paper_config import LAYOUTS, PaperConfig, layout_of


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


@dataclass
class _ModelData:
    """One trained model and the table it filters, ready for its layouts and filters."""

    full: Any  # bench_data.TableInputs of the whole table
    y_full: np.ndarray  # the model's output on every row of it
    data: Any  # the rows the protocol uses (the whole table, or its first blocks)
    y: np.ndarray
    network: Any
    corr: np.ndarray  # rank correlation of each input with the output
    conj: tuple[str, float, float]  # the ordinary range conjunct of "hull+sql"
    conj_mask: np.ndarray
    filters: list
    base: dict[str, Any]  # the fields every record of this model carries
    layouts: dict[str, tuple[str, Any]]  # kind -> (tag, row order maker)

    def conjunct_rows(self, x: np.ndarray) -> np.ndarray:
        j = list(self.base["inputs"]).index(self.conj[0])
        return (x[:, j] >= self.conj[1]) & (x[:, j] <= self.conj[2])


def _model_data(cfg: PaperConfig, spec, hidden: tuple[int, ...], work: Path) -> _ModelData:
    """Train the model, evaluate it on the table, pick the conjunct, filters and layouts."""
    from mlskip.verifier import load_model

    full = bench_data.load_inputs(spec.suite, spec.table, tuple(spec.inputs), cfg.sf)
    model = bench_models.train_model(spec, hidden, work, cfg.train_sf, cfg.epochs)
    network = load_model(str(model.onnx_path))
    y_full = bench_models.evaluate_rows(model.onnx_path, full.x)
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
    if reference:
        fs = filters.value_sweep_filters(y[data.valid], cfg.starts, cfg.widths, cfg.max_selectivity)
    else:
        fs = filters.sweep_filters(y[data.valid], cfg.starts, cfg.widths)
        fs = [f for f in fs if f.selectivity <= cfg.max_selectivity]
    base = {
        "suite": spec.suite,
        "table": spec.table,
        "model": spec.name,
        "hidden": [hidden] if bench_models.is_trees(hidden) else list(hidden),
        "family": "trees" if bench_models.is_trees(hidden) else "network",
        "sql_name": model.sql_name,
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
    cj = spec.inputs.index(conj[0])
    conj_mask = (data.x[:, cj] >= conj[1]) & (data.x[:, cj] <= conj[2])
    return _ModelData(full, y_full, data, y, network, corr, conj, conj_mask, fs, base, layouts)


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
    m = _model_data(cfg, spec, hidden, work)
    verifier = effectiveness.work_budget_verifier() if cfg.work_budgets else None
    rng = np.random.default_rng(cfg.seed)
    records: list[dict[str, Any]] = []
    todo = [k for k in LAYOUTS if any(layout_of(s) == k for s in cfg.settings)]
    progress.update(task, completed=0, total=len(m.filters) * len(todo) * len(cfg.block_sizes))
    drawn: dict[str, tuple] = {}
    for kind in todo:
        tag, make_order = m.layouts[kind]
        order = make_order()
        settings = [s for s in cfg.settings if layout_of(s) == kind]
        for block in cfg.block_sizes:
            blocks = bench_data.sample_blocks(len(order), block, cfg.max_blocks, cfg.seed)
            rows = bench_data.block_rows_index(order, blocks, block)
            name = (
                f"{cfg.protocol}-{spec.table}-{'-'.join(spec.inputs)}-{tag}-b{block}"
                f"-n{len(blocks)}-of{len(order)}.parquet"
            )
            path = bench_data.write_blocks(m.data, rows, block, work / name)
            block_x = m.data.x[rows].reshape(len(blocks), block, -1)
            groups = _block_records(
                cfg, m, path, rows, block_x, settings, rng, verifier, records, progress, task,
                dict(layout=tag, block_rows=block, blocks_total=int(len(order) // block),
                     blocks_sampled=int(len(blocks))),
            )  # fmt: skip
            if block == min(cfg.block_sizes) and kind in ("natural", "pred"):
                drawn[tag] = (groups, block_x)
    if draw is not None:
        _draw(draw, drawn, m.network, spec, m.corr, m.filters)
    return records


def _block_records(
    cfg: PaperConfig,
    m: _ModelData,
    path: Path,
    rows: np.ndarray,
    block_x: np.ndarray,
    settings: list[str],
    rng: np.random.Generator,
    verifier: Any,
    records: list[dict[str, Any]],
    progress: Any,
    task: Any,
    layout_fields: dict[str, Any],
) -> list:
    """Append a record per filter and setting for one written block file; returns its
    row groups' summaries."""
    from mlskip.metadata import read_skip_metadata
    from mlskip.verifier import Predicate

    block = layout_fields["block_rows"]
    groups = read_skip_metadata(str(path)).row_groups
    boxes = effectiveness.without_hulls(groups)
    hb = bench_data.hull_bytes_per_pair(groups)
    exact_hulls = (
        effectiveness.exact_pair_hulls(block_x) if any("hull" in s for s in settings) else None
    )
    args = effectiveness.plain_args(m.base["inputs"])
    for f in m.filters:
        label = f"{m.base['model_key']} {layout_fields['layout']} b={block} f{f.fid}"
        progress.update(task, description=label)
        q_all = filters.qualifying(m.y, m.data.valid, f.lo, f.hi)
        # witnesses of the exact limit: qualifying rows of the whole table
        w_all = filters.qualifying(m.y_full, m.full.valid, f.lo, f.hi)
        for setting in settings:
            sql = setting == "hull+sql"
            q = q_all & m.conj_mask if sql else q_all
            w = m.full.x[w_all & m.conjunct_rows(m.full.x)] if sql else m.full.x[w_all]
            truth = filters.block_truth(q[rows], block)
            use, bounds = _setting_inputs(setting, groups, boxes, m.conj)
            rec = effectiveness.evaluate(
                use, args, bounds, m.network, Predicate.between(f.lo, f.hi), truth,
                w, cfg.exact_cap, cfg.milp_seconds, rng, verifier,
                exact_hulls if "hull" in setting else None,
            )  # fmt: skip
            rec.update(m.base)
            rec.update(
                setting=setting,
                **layout_fields,
                filter=asdict(f),
                bin=f.bin,
                setting_selectivity=float(q.sum() / max(1, m.data.valid.sum())),
                conjunct=list(m.conj) if sql else None,
                hull_bytes_per_pair=hb if "hull" in setting else 0.0,
                hull_pairs=len(groups[0].hull_bytes) if groups and "hull" in setting else 0,
            )
            records.append(rec)
        progress.advance(task)
    return groups


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

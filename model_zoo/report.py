"""`zoo_report`: measure every zoo variant and write DIR/zoo.md, DIR/zoo.json and DIR/zoo.png.

Per variant: parameters (total, nonzero), ONNX bytes, held-out R2/accuracy vs
its dense base, ONNX Runtime rows/s at batch 2048 (1 thread), and skipping on
a fixed set of selective predicates over TPC row-group boxes (min-max of each
1000-row block in the table's natural order). A variant's threshold is mapped
to the dense model's selectivity (same quantile of its own outputs), so every
variant answers "the top 0.1%" and so on.

Two skipping figures are kept apart:
- ``data_skip``: the fraction of blocks that hold no qualifying row -- an upper
  bound for any sound verifier on any summary, computed from the rows;
- ``verifier_skip`` / ``verifier_regions_per_s``: what `mlskip.verifier` proves
  on the min-max boxes (`verification_metrics`); reported as missing, never
  estimated, when the verifier cannot be loaded or cannot bound the model.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from mlskip.model_zoo.build import MANIFEST, build_zoo
from mlskip.model_zoo.data import DEFAULT_SF, block_boxes, table_columns
from mlskip.model_zoo.export import rows_per_second, session
from mlskip.model_zoo.specs import CLASSIFICATION, get_spec

BLOCK_ROWS = 1000
# (name, kind, selectivity): kind "gt" = top tail, "lt" = bottom tail of the (first) output
REGRESSION_PREDICATES = (
    ("top0.1%", "gt", 0.001),
    ("bottom0.1%", "lt", 0.001),
    ("top1%", "gt", 0.01),
)
# the verifier configuration the report measures (cheap, batched bounds; the exact methods
# would dominate build time over hundreds of variants x blocks)
VERIFIER_METHODS: tuple[str, ...] = ("ibp", "crown")
VERIFIER_TIME_BUDGET = 10.0
# tree ensembles: leaf intervals, then branch and bound on split thresholds with the
# planner's smallest work budget (deterministic)
TREE_VERIFIER_METHODS: tuple[str, ...] = ("ibp", "bab")
TREE_PIECES = 64


class VerifierUnavailable(RuntimeError):
    """`mlskip.verifier` is missing or cannot bound this model; the column stays empty."""


def _outputs(path: Path, x: np.ndarray) -> np.ndarray:
    sess = session(path)
    double = sess.get_inputs()[0].type == "tensor(double)"  # trees that compare doubles
    xs = x.astype(np.float64 if double else np.float32)
    return np.concatenate(
        [sess.run(None, {"input": xs[i : i + 65536]})[0] for i in range(0, len(xs), 65536)]
    )


def predicates_for(spec_task: str, dense_out: np.ndarray) -> list[tuple[str, str, float]]:
    """The fixed predicate set of a spec: tails of the output for regressors; for a classifier,
    argmax == the class the dense model predicts least often (not threshold-mappable)."""
    if spec_task != CLASSIFICATION:
        return list(REGRESSION_PREDICATES)
    counts = np.bincount(dense_out.argmax(1), minlength=dense_out.shape[1])
    rare = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
    return [(f"argmax=={rare}", "argmax", float(rare))]


def qualifying(out: np.ndarray, kind: str, param: float) -> tuple[np.ndarray, float]:
    """Row mask of a predicate at the given selectivity (or class) and the threshold it maps to."""
    if kind == "argmax":
        return out.argmax(1) == int(param), float(param)
    y = out[:, 0].astype(np.float64)
    if kind == "gt":
        t = float(np.quantile(y, 1.0 - param))
        return y > t, t
    t = float(np.quantile(y, param))
    return y < t, t


def verification_metrics(
    onnx_path: Path,
    boxes: np.ndarray,
    kind: str,
    threshold: float,
    methods: tuple[str, ...] = VERIFIER_METHODS,
) -> dict:
    """Skip fraction, all-match fraction and regions/s that `mlskip.verifier` proves on ``boxes``.

    Raises `VerifierUnavailable` when the verifier is not importable or refuses the model.
    """
    try:
        from mlskip.verifier import ALL, NONE, Predicate, RegionBatch, Verifier, load_model  # noqa: I001
    except Exception as exc:  # not landed yet, or broken mid-development
        raise VerifierUnavailable(f"mlskip.verifier not usable: {exc}") from exc
    try:
        net = load_model(str(onnx_path))
        pred = {
            "gt": Predicate.gt,
            "lt": Predicate.lt,
            "argmax": lambda k: Predicate.argmax(int(k)),
        }[kind](threshold)
        regions = RegionBatch.boxes(boxes[:, :, 0], boxes[:, :, 1])
        t0 = time.perf_counter()
        trees = type(net).__name__ == "TreeEnsemble"
        verifier = Verifier(
            methods=TREE_VERIFIER_METHODS if trees else methods,
            time_budget=VERIFIER_TIME_BUDGET,
            bab_pieces_per_region=TREE_PIECES if trees else None,
        )
        result = verifier.verify(net, regions, pred)
        seconds = time.perf_counter() - t0
    except Exception as exc:
        raise VerifierUnavailable(f"{type(exc).__name__}: {exc}") from exc
    v = np.asarray(result.verdicts)
    return {
        "verifier_skip": float(np.mean(v == NONE)),
        "verifier_all": float(np.mean(v == ALL)),
        "verifier_regions_per_s": len(v) / max(seconds, 1e-9),
    }


SUMMARY_BYTES = 32  # model-aware summary per block (metadata/MODELS.md)


def summary_metrics(
    dense_path: Path,
    variant_path: Path,
    dense_blocks: list[np.ndarray],
    boxes: np.ndarray,
    kind: str,
    threshold: float,
) -> dict:
    """Skip fraction the planner proves for a variant through the dense model's output
    summaries (32 bytes per block, as ``write_parquet(models=...)`` stores them):
    its own model straight from the bins, a variant through bounds on both models over
    each block's box (skipper/summary_plan.py). Value predicates of one-output models."""
    from mlskip.metadata.model_summary import ModelHeader, bin_intervals, value_range, value_record
    from mlskip.skipper.summary_plan import DEVIATION_PIECES
    from mlskip.verifier import NONE, Predicate, RegionBatch, load_model
    from mlskip.verifier.output_summaries import output_error, reference_verdicts, value_verdicts

    if kind not in ("gt", "lt"):
        return {}
    f, g = load_model(str(dense_path)), load_model(str(variant_path))
    if f.num_outputs != 1 or g is None or g.num_outputs != 1:
        return {}
    rng = value_range(dense_blocks)
    if rng is None:
        return {}
    header = ModelHeader("dense", "0" * 64, "value", "float32", (), (), "", 1, *rng, 0.0,
                         SUMMARY_BYTES)  # fmt: skip
    intervals = [bin_intervals(header, value_record(y, *rng, SUMMARY_BYTES)) for y in dense_blocks]
    lo, hi = boxes[:, :, 0], boxes[:, :, 1]
    pred = Predicate.gt(threshold) if kind == "gt" else Predicate.lt(threshold)
    e_f = output_error(f, lo, hi)[:, 0]
    if dense_path == variant_path:
        widen = np.nextafter(2 * e_f, np.inf)
        v = value_verdicts(intervals, widen, widen, pred)
    else:
        e_g = output_error(g, lo, hi)[:, 0]
        v = reference_verdicts(f, g, intervals, e_f, e_g, RegionBatch(lo, hi), pred,
                               DEVIATION_PIECES)  # fmt: skip
    return {"summary_skip": float(np.mean(v == NONE))}


def layouts_for(x: np.ndarray, dense_out: np.ndarray, columns) -> dict[str, np.ndarray]:
    """Row orders the boxes are cut from: the table's natural order, and sorted by the input
    column whose ranks correlate most with the dense model's output (layout-aware writing)."""
    y = dense_out.max(1) if dense_out.shape[1] > 1 else dense_out[:, 0]
    ry = np.argsort(np.argsort(y)).astype(np.float64)
    corr = [abs(np.corrcoef(np.argsort(np.argsort(x[:, j])), ry)[0, 1]) for j in range(x.shape[1])]
    best = int(np.nanargmax(corr))
    return {
        "natural": np.arange(len(x)),
        f"sorted:{columns[best]}": np.argsort(x[:, best], kind="stable"),
    }


def measure(
    out_dir: Path,
    records: list[dict],
    sf: float,
    progress: bool = True,
    verifier_methods: tuple[str, ...] = VERIFIER_METHODS,
) -> list[dict]:
    """Add throughput and skipping measurements to the manifest's records."""
    by_spec: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_spec[r["spec"]].append(r)
    total = len(records)
    done = 0
    for spec_name, recs in by_spec.items():
        spec = get_spec(spec_name)
        cols = table_columns(spec.suite, spec.table, spec.inputs, sf)
        x_all = np.stack([cols[c] for c in spec.inputs], 1)
        outs = {r["variant"]: _outputs(out_dir / r["onnx"], x_all) for r in recs}
        preds = predicates_for(spec.task, outs["dense"])
        layouts = layouts_for(x_all, outs["dense"], spec.inputs)
        block_of = np.arange(len(x_all)) // BLOCK_ROWS
        boxes = {name: block_boxes(x_all[order], BLOCK_ROWS) for name, order in layouts.items()}
        dense_rps = {}
        for r in recs:
            path = out_dir / r["onnx"]
            r["rows_per_s"] = rows_per_second(path, len(spec.inputs))
            r["skipping"] = {}
            for lname, order in layouts.items():
                for pname, kind, param in preds:
                    mask, t = qualifying(outs[r["variant"]], kind, param)
                    hit_blocks = np.zeros(len(boxes[lname]), bool)
                    np.logical_or.at(hit_blocks, block_of, mask[order])
                    entry = {
                        "layout": lname,
                        "threshold": t,
                        "selectivity": float(mask.mean()),
                        "data_skip": float(1.0 - hit_blocks.mean()),
                    }
                    try:
                        entry.update(
                            verification_metrics(path, boxes[lname], kind, t, verifier_methods)
                        )
                    except VerifierUnavailable as exc:
                        entry["verifier_missing"] = str(exc)
                    if spec.task != CLASSIFICATION:
                        dense_y = outs["dense"][order, 0]
                        blocks = [dense_y[i : i + BLOCK_ROWS]
                                  for i in range(0, len(dense_y), BLOCK_ROWS)]  # fmt: skip
                        try:
                            base = next(x for x in recs if x["variant"] == r["base"])
                            entry.update(summary_metrics(
                                out_dir / base["onnx"], path, blocks, boxes[lname], kind, t
                            ))  # fmt: skip
                        except Exception as exc:  # a variant the verifier cannot read
                            entry["summary_missing"] = f"{type(exc).__name__}: {exc}"
                    r["skipping"][f"{lname}/{pname}"] = entry
            if r["variant"] in ("dense", "deep"):
                dense_rps[r["variant"]] = r["rows_per_s"]
            done += 1
            if progress:
                print(f"\r  measured {done}/{total}", end="", flush=True)
        for r in recs:
            r["base_rows_per_s"] = dense_rps.get(r["base"])
            r["speedup"] = r["rows_per_s"] / r["base_rows_per_s"] if r["base_rows_per_s"] else None
            r["n_blocks"] = len(x_all) // BLOCK_ROWS + bool(len(x_all) % BLOCK_ROWS)
    if progress:
        print()
    return records


def _mean(r: dict, key: str, layout: str | None = None) -> float | None:
    vals = [
        e[key]
        for e in r["skipping"].values()
        if key in e and (layout is None or e["layout"].startswith(layout))
    ]
    return float(np.mean(vals)) if vals else None


def best_tradeoffs(records: list[dict]) -> list[dict]:
    """Variants >= 2x faster than their dense base, within 1% (relative) of its score, and
    skipping at least as much as it (verifier figure if present, else the data bound)."""
    base = {(r["spec"], r["variant"]): r for r in records if r["variant"] in ("dense", "deep")}
    out = []
    for r in records:
        b = base.get((r["spec"], r["base"]))
        if b is None or r is b or not r["speedup"] or r["speedup"] < 2.0:
            continue
        if r["score"] < r["base_score"] - 0.01 * abs(r["base_score"]):
            continue
        key = "verifier_skip" if _mean(b, "verifier_skip") is not None else "data_skip"
        if (_mean(r, key) or 0.0) + 1e-12 < (_mean(b, key) or 0.0):
            continue
        out.append({**r, "skip_key": key})
    return sorted(out, key=lambda r: -r["speedup"])


def _fmt(v, spec="{:.4f}") -> str:
    return "—" if v is None else spec.format(v)


def write_markdown(path: Path, records: list[dict]) -> None:
    """DIR/zoo.md: one table per method family plus the best trade-offs."""
    lines = ["# mlskip model zoo report", ""]
    verifier_msgs = {e.get("verifier_missing") for r in records for e in r["skipping"].values()} - {
        None
    }
    if verifier_msgs:
        lines += [
            "**Verifier columns missing**: " + "; ".join(sorted(verifier_msgs)[:3]),
            "",
        ]
    lines += [
        "score = held-out R2 (regressors) or accuracy (classifiers); Δ = score - dense score;",
        "rows/s = ONNX Runtime, 1 thread, batch 2048; data skip = mean over predicates of the fraction",
        f"of {BLOCK_ROWS}-row blocks with no qualifying row (an upper bound for any verifier);",
        f"verifier skip = blocks `mlskip.verifier` (methods {', '.join(VERIFIER_METHODS)}) proves empty on",
        "their min-max boxes; summary skip = blocks the planner prunes through the dense (or deep) model's",
        f"{SUMMARY_BYTES}-byte output summaries (the model itself from its bins, a variant through bounds on",
        "both models per block; value predicates). nat. = the table's natural row order; sorted = rows sorted by the input",
        "column most rank-correlated with the dense output. Predicates: output top/bottom 0.1% and top 1%",
        "(each variant's threshold at the dense model's selectivity); classifiers: argmax == rarest class.",
        "",
    ]
    methods: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        methods[r["method"]].append(r)
    header = (
        "| spec | variant | widths | params | nonzero | ONNX B | score | Δ | rows/s | speedup "
        "| data skip nat. | verifier skip nat. | summary skip nat. | data skip sorted "
        "| verifier skip sorted | regions/s |"
    )
    for method, recs in methods.items():
        lines += [f"## {method}", "", header, "|" + "---|" * 16]
        for r in recs:
            lines.append(
                f"| {r['spec']} | {r['variant']} | {r['widths'] or 'MoE'} | {r['params']} | {r['nonzero_params']} "
                f"| {r['onnx_bytes']} | {r['score']:.4f} | {r['score'] - r['base_score']:+.4f} "
                f"| {r['rows_per_s'] / 1e6:.1f}M | {_fmt(r['speedup'], '{:.2f}x')} "
                f"| {_fmt(_mean(r, 'data_skip', 'natural'), '{:.1%}')} | {_fmt(_mean(r, 'verifier_skip', 'natural'), '{:.1%}')} "
                f"| {_fmt(_mean(r, 'summary_skip', 'natural'), '{:.1%}')} "
                f"| {_fmt(_mean(r, 'data_skip', 'sorted'), '{:.1%}')} | {_fmt(_mean(r, 'verifier_skip', 'sorted'), '{:.1%}')} "
                f"| {_fmt(_mean(r, 'verifier_regions_per_s'), '{:.0f}')} |"
            )
        lines.append("")
    best = best_tradeoffs(records)
    lines += ["## Best trade-offs (>= 2x faster, within 1% of dense score, skipping >= dense)", ""]
    if not best:
        lines.append("None met all three conditions.")
    for r in best[:25]:
        lines.append(
            f"- {r['spec']} / {r['variant']}: {r['speedup']:.2f}x, score {r['score']:.4f} "
            f"(dense {r['base_score']:.4f}), {r['skip_key']} {_mean(r, r['skip_key']):.1%}"
        )
    path.write_text("\n".join(lines) + "\n")


def write_figure(path: Path, records: list[dict]) -> None:
    """DIR/zoo.png: speedup vs score change, and skippable blocks vs dense, per method family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    methods = sorted({r["method"] for r in records if r["variant"] not in ("dense", "deep")})
    cmap = plt.get_cmap("tab20")
    base = {(r["spec"], r["variant"]): r for r in records if r["variant"] in ("dense", "deep")}
    for i, m in enumerate(methods):
        rs = [r for r in records if r["method"] == m and r["speedup"]]
        rel = [(r["score"] - r["base_score"]) / max(abs(r["base_score"]), 1e-9) * 100 for r in rs]
        axes[0].scatter(
            [r["speedup"] for r in rs], np.clip(rel, -50, 5), s=14, color=cmap(i), label=m
        )
        pairs = [
            (_mean(base[(r["spec"], r["base"])], "data_skip"), _mean(r, "data_skip")) for r in rs
        ]
        pairs = [p for p in pairs if None not in p]
        if pairs:
            axes[1].scatter(*zip(*pairs, strict=True), s=14, color=cmap(i), label=m)
    axes[0].axvline(2.0, color="grey", lw=0.8, ls="--")
    axes[0].axhline(-1.0, color="grey", lw=0.8, ls="--")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("ONNX Runtime speedup vs dense (batch 2048)")
    axes[0].set_ylabel("score change vs dense, % (clipped at -50)")
    axes[1].plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    axes[1].set_xlabel("dense: blocks without a qualifying row")
    axes[1].set_ylabel("variant: blocks without a qualifying row")
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def zoo_report(
    out_dir: str | Path,
    quick: bool = False,
    progress: bool = True,
    verifier_methods: tuple[str, ...] = VERIFIER_METHODS,
) -> Path:
    """Measure the zoo in ``out_dir`` (built first, with ``quick``, if it has no manifest);
    writes zoo.md, zoo.json and zoo.png there and returns the path of zoo.md."""
    out = Path(out_dir)
    manifest = out / MANIFEST
    if not manifest.exists():
        build_zoo(out, quick=quick, progress=progress)
    meta = json.loads(manifest.read_text())
    records = measure(out, meta["records"], meta.get("sf", DEFAULT_SF), progress, verifier_methods)
    (out / "zoo.json").write_text(
        json.dumps({"block_rows": BLOCK_ROWS, "records": records}, indent=1)
    )
    write_markdown(out / "zoo.md", records)
    write_figure(out / "zoo.png", records)
    if progress:
        from rich.console import Console
        from rich.markdown import Markdown

        best = best_tradeoffs(records)
        Console().print(
            Markdown(
                f"**{len(records)} variants measured; {len(best)} best trade-offs** -> {out / 'zoo.md'}"
            )
        )
    return out / "zoo.md"

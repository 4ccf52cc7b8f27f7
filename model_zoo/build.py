"""`build_zoo`: train the default dense models, derive every compressed variant, write ONNX + manifest.

Layout of ``out_dir``: ``onnx/<spec>__<variant>.onnx`` and ``manifest.json``
(one record per variant: spec, variant, method, base model, widths,
parameters, held-out score of the variant and of its dense base).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlskip.model_zoo import dot_moe, lorp, lumping, starfish, structured, wanda
from mlskip.model_zoo.data import DEFAULT_SF, input_types
from mlskip.model_zoo.export import save_onnx
from mlskip.model_zoo.nets import n_params, widths
from mlskip.model_zoo.prune_magnitude import magnitude_prune
from mlskip.model_zoo.specs import QUICK_SPECS, SPECS, ModelSpec, get_spec
from mlskip.model_zoo.train import load_dataset, score, train_dense

MANIFEST = "manifest.json"


def variants(
    dense: nn.Module, deep: nn.Module | None, x_cal: np.ndarray, task: str, quick: bool = False
) -> list[tuple[str, str, str, Callable[[], nn.Module]]]:
    """The (name, method, base, builder) list of variants derived from one dense model (and its deep twin)."""
    heal = starfish.heal
    out: list[tuple[str, str, str, Callable[[], nn.Module]]] = [
        ("dense", "dense", "dense", lambda: dense)
    ]

    def add(name, method, fn, base="dense"):
        out.append((name, method, base, fn))

    for s in (0.5, 0.9) if quick else (0.5, 0.7, 0.9):
        add(
            f"mag_global_s{int(s * 100)}",
            "magnitude",
            lambda s=s: magnitude_prune(dense, s, "global", x_cal),
        )
    add("mag_layer_s70", "magnitude", lambda: magnitude_prune(dense, 0.7, "layer", x_cal))
    add(
        "mag_global_s90_shrunk",
        "magnitude",
        lambda: structured.remove_dead_neurons(magnitude_prune(dense, 0.9, "global", x_cal)),
    )
    add(
        "mag_global_s70_healed",
        "magnitude+starfish",
        lambda: heal(magnitude_prune(dense, 0.7, "global", x_cal), dense, x_cal),
    )
    for s in (0.5,) if quick else (0.5, 0.7):
        add(f"wanda_s{int(s * 100)}", "wanda", lambda s=s: wanda.wanda_prune(dense, x_cal, s))
    add(
        "wanda_s70_healed",
        "wanda+starfish",
        lambda: heal(wanda.wanda_prune(dense, x_cal, 0.7), dense, x_cal),
    )
    for r in (0.5,) if quick else (0.25, 0.5, 0.75):
        add(
            f"l2_r{int(r * 100)}", "l2-structured", lambda r=r: structured.l2_prune(dense, r, x_cal)
        )
    add(
        "l2_r50_healed",
        "l2-structured+starfish",
        lambda: heal(structured.l2_prune(dense, 0.5, x_cal), dense, x_cal),
    )
    add(
        "l2_r75_healed",
        "l2-structured+starfish",
        lambda: heal(structured.l2_prune(dense, 0.75, x_cal), dense, x_cal),
    )
    add("psvit_loss1", "psvit", lambda: structured.psvit_prune(dense, x_cal, task, 0.01))
    add(
        "primesvt_loss1_save50",
        "primesvt",
        lambda: structured.primesvt_prune(dense, x_cal, task, 0.01, 0.5),
    )
    add(
        "primesvt_loss5_save70_healed", "primesvt+starfish",
        lambda: heal(structured.primesvt_prune(dense, x_cal, task, 0.05, 0.7), dense, x_cal),
    )  # fmt: skip
    for eps in (0.0, 0.5) if quick else (0.0, 0.1, 0.3, 0.5):
        add(f"lump_e{eps:g}", "lumping", lambda eps=eps: lumping.lump_neurons(dense, eps, x_cal))
    add(
        "lump_e0.5_healed",
        "lumping+starfish",
        lambda: heal(lumping.lump_neurons(dense, 0.5, x_cal), dense, x_cal),
    )
    add("moe_top1_e4", "dot-moe", lambda: dot_moe.to_moe(dense, x_cal, layer=0, n_experts=4))
    if deep is not None:
        add("deep", "dense", lambda: deep, base="deep")
        add("lorp_1", "lorp", lambda: lorp.lorp_prune(deep, x_cal, 1), base="deep")
        add("lorp_2", "lorp", lambda: lorp.lorp_prune(deep, x_cal, 2), base="deep")
        add(
            "lorp_3_healed",
            "lorp+starfish",
            lambda: heal(lorp.lorp_prune(deep, x_cal, 3), deep, x_cal),
            base="deep",
        )
    return out


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from mlskip.progress import progress

    return progress()


def build_spec(
    spec: ModelSpec,
    out_dir: Path,
    quick: bool = False,
    hidden: Sequence[int] = (32, 32),
    sf: float = DEFAULT_SF,
    on_variant: Callable[[str], None] | None = None,
    trees: bool = True,
) -> list[dict]:
    """Train one spec's dense (and deep) model, build its variants, write their ONNX files;
    with ``trees`` (and ``mlskip[trees]`` installed) its tree ensembles and their variants
    too (model_zoo/trees.py)."""
    torch.set_num_threads(1)
    epochs = 60 if quick else 150
    data = load_dataset(
        spec, n_train=2000 if quick else 4000, n_test=10000 if quick else 20000, sf=sf
    )
    x_cal = data.x_train[:256]
    types = input_types(spec, sf)  # stored in each ONNX file: SQL takes DATE columns as such
    dense_tm = train_dense(spec, hidden, epochs=epochs, data=data)
    deep = None
    if not quick or spec.name == QUICK_SPECS[0]:
        deep = train_dense(spec, (32,) * 5, epochs=epochs, data=data).model
    base_score = {
        "dense": dense_tm.score,
        "deep": score(deep, data.x_test, data.y_test, spec.task) if deep else None,
    }
    records = []
    (out_dir / "onnx").mkdir(parents=True, exist_ok=True)
    for name, method, base, fn in variants(dense_tm.model, deep, x_cal, spec.task, quick):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = fn()
        seconds = time.perf_counter() - t0
        path = out_dir / "onnx" / f"{spec.name}__{name}.onnx"
        nbytes = save_onnx(model, path, spec.inputs, spec.task, types)
        plain = isinstance(model, nn.Sequential)
        records.append(
            {
                "spec": spec.name,
                "suite": spec.suite,
                "table": spec.table,
                "task": spec.task,
                "variant": name,
                "method": method,
                "base": base,
                "onnx": str(path.relative_to(out_dir)),
                "onnx_bytes": nbytes,
                "widths": widths(model) if plain else None,
                "plain_mlp": plain,
                "params": n_params(model),
                "nonzero_params": n_params(model, nonzero=True),
                "score": score(model, data.x_test, data.y_test, spec.task),
                "base_score": base_score[base],
                "metric": "accuracy" if spec.task == "classification" else "r2",
                "build_seconds": round(seconds, 3),
                "warnings": [str(w.message) for w in caught],
            }
        )
        if on_variant:
            on_variant(name)
    from mlskip.model_zoo import trees as tree_zoo

    if trees and tree_zoo.available():
        records += tree_zoo.build_tree_records(spec, data, out_dir, types, quick, on_variant)
    return records


def build_zoo(
    out_dir: str | Path,
    quick: bool = False,
    progress: bool = True,
    specs: Sequence[str] | None = None,
    sf: float = DEFAULT_SF,
    trees: bool = True,
) -> Path:
    """Train and compress the default set (``quick``: 3 specs, fewer settings); returns the manifest path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = (
        [get_spec(s) for s in specs]
        if specs
        else [get_spec(s) for s in QUICK_SPECS]
        if quick
        else list(SPECS)
    )
    records: list[dict] = []
    with _progress(progress) as bar:
        overall = bar.add_task("zoo", total=len(chosen)) if bar else None
        for spec in chosen:
            sub = bar.add_task(f"  {spec.name}", total=None) if bar else None
            tick = (lambda _n, sub=sub: bar.advance(sub)) if bar else None
            done = build_spec(spec, out, quick=quick, sf=sf, on_variant=tick, trees=trees)
            records += done
            if bar:
                bar.update(sub, total=len(done))
                bar.advance(overall)
    manifest = out / MANIFEST
    manifest.write_text(json.dumps({"quick": quick, "sf": sf, "records": records}, indent=1))
    return manifest

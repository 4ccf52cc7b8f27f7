"""mlskip.model_zoo: filter models for TPC-H/TPC-DS and their compressed variants, in ONNX.

Importing this package imports torch (``import mlskip`` never does). Entry
points: `build_zoo` and `zoo_report` (the CLI's ``mlskip zoo build|report``),
`get_spec`/`REGISTRY`, `train_dense`, and one function per compression method.
"""

from __future__ import annotations

from mlskip.model_zoo.build import build_zoo
from mlskip.model_zoo.dot_moe import MoEMLP, to_moe
from mlskip.model_zoo.export import save_onnx, to_onnx
from mlskip.model_zoo.lorp import lorp_prune
from mlskip.model_zoo.lumping import lump_neurons
from mlskip.model_zoo.prune_magnitude import magnitude_prune
from mlskip.model_zoo.report import zoo_report
from mlskip.model_zoo.specs import REGISTRY, SPECS, ModelSpec, get_spec
from mlskip.model_zoo.starfish import alignment, heal
from mlskip.model_zoo.structured import (
    l2_prune,
    primesvt_prune,
    prune_neurons,
    psvit_prune,
    remove_dead_neurons,
    sensitivity,
)
from mlskip.model_zoo.train import fit_mlp, train_dense
from mlskip.model_zoo.wanda import wanda_prune

__all__ = [
    "REGISTRY",
    "SPECS",
    "ModelSpec",
    "MoEMLP",
    "alignment",
    "build_zoo",
    "fit_mlp",
    "get_spec",
    "heal",
    "l2_prune",
    "lorp_prune",
    "lump_neurons",
    "magnitude_prune",
    "primesvt_prune",
    "prune_neurons",
    "psvit_prune",
    "remove_dead_neurons",
    "save_onnx",
    "sensitivity",
    "to_moe",
    "to_onnx",
    "train_dense",
    "wanda_prune",
    "zoo_report",
]

"""mlskip.verifier: sound, batched NONE / ALL / UNKNOWN decisions for ML predicates.

Given a network, a batch of input regions (boxes, optionally cut by 2D
polygons) and a predicate on the output, decide per region whether no
point (NONE), every point (ALL) or possibly some points (UNKNOWN) satisfy
it, soundly for the model as evaluated in float32. Knows nothing of Parquet
or SQL. torch is never imported here (only by the torch loader and
alpha-CROWN, when used).

    net = load_model("model.onnx")
    regions = RegionBatch(lower, upper)            # [n, d] each
    result = Verifier().verify(net, regions, Predicate.gt(0.9))
    result.verdicts                                # int8: NONE=0, ALL=1, UNKNOWN=2
"""

from __future__ import annotations

from .cascade import AVAILABLE, DEFAULT_METHODS, METHOD_NAMES, VerificationResult, Verifier
from .layers import Affine, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .load import load_model
from .network import Network
from .predicate import ALL, NONE, UNKNOWN, Predicate
from .regions import RegionBatch

__all__ = [
    "ALL",
    "AVAILABLE",
    "DEFAULT_METHODS",
    "METHOD_NAMES",
    "NONE",
    "UNKNOWN",
    "Affine",
    "Identity",
    "LeakyReLU",
    "Network",
    "Predicate",
    "ReLU",
    "RegionBatch",
    "Sigmoid",
    "Tanh",
    "VerificationResult",
    "Verifier",
    "load_model",
]

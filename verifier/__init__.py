"""mlskip.verifier: sound, batched NONE / ALL / UNKNOWN decisions for ML predicates.

Given a network, a batch of input regions (boxes, optionally cut by 2D
polygons) and a predicate on the output, decide per region whether no
point (NONE), every point (ALL) or possibly some points (UNKNOWN) satisfy
it. Knows nothing of Parquet or SQL. torch is never imported here.
"""

from __future__ import annotations

from .layers import Affine, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .network import Network
from .predicate import ALL, NONE, UNKNOWN, Predicate
from .regions import RegionBatch

__all__ = [
    "ALL",
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
]

"""mlskip: skip Parquet row groups that an ML predicate provably cannot select.

The user-facing API lives here. Names are imported lazily so that
``import mlskip`` stays fast and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlskip._version import __version__
from mlskip.errors import (
    InputDataError,
    MetadataError,
    MlskipError,
    ModelInputError,
    PredicateError,
    SkippingFallbackWarning,
    UnknownSuiteError,
    UnsupportedModelError,
)

# public name -> module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    "connect": "mlskip.udf.connection",
    "Connection": "mlskip.udf.connection",
    "S3Options": "mlskip.skipper.remote",
    "write_parquet": "mlskip.metadata",
    "copy": "mlskip.metadata",
    "read_skip_metadata": "mlskip.metadata",
    "audit_file": "mlskip.metadata",
    "scan": "mlskip.udf.arrow_scan",
    "scan_dataset": "mlskip.udf.arrow_scan",
    "scan_polars": "mlskip.udf.arrow_scan",
    "SkipDataset": "mlskip.udf.skip_dataset",
    "plan_scan": "mlskip.udf.arrow_scan",
    "Verifier": "mlskip.verifier.cascade",
    "Predicate": "mlskip.verifier",
    "load_model": "mlskip.verifier",
    "generate_tpc": "mlskip.tpch.generate",
}

__all__ = [
    "__version__",
    "InputDataError",
    "MetadataError",
    "MlskipError",
    "ModelInputError",
    "PredicateError",
    "SkippingFallbackWarning",
    "UnknownSuiteError",
    "UnsupportedModelError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlskip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

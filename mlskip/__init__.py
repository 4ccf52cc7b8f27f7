"""mlskip: skip Parquet row groups that an ML predicate provably cannot select.

The user-facing API lives here. Names are imported lazily so that
``import mlskip`` stays fast and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    "write_parquet": "mlskip.udf.summarize_models",
    "copy": "mlskip.udf.summarize_models",
    "read_skip_metadata": "mlskip.metadata",
    "audit_file": "mlskip.metadata",
    "scan": "mlskip.udf.arrow_scan",
    "scan_dataset": "mlskip.udf.arrow_scan",
    "scan_polars": "mlskip.udf.arrow_scan",
    "SkipDataset": "mlskip.udf.skip_dataset",
    "plan_scan": "mlskip.udf.arrow_scan",
    "SkippingReport": "mlskip.skipper.explain",
    "FilePlan": "mlskip.skipper.plan",
    "ScanPlan": "mlskip.udf.arrow_scan",
    "FileSkipMetadata": "mlskip.metadata",
    "Verifier": "mlskip.verifier.cascade",
    "Predicate": "mlskip.verifier",
    "load_model": "mlskip.verifier",
    "generate_tpc": "mlskip.tpch.generate",
    "build_index": "mlskip.udf.summarize_models",
    "refresh_index": "mlskip.udf.summarize_models",
    "show_index": "mlskip.skipper.skip_index",
}

if TYPE_CHECKING:  # what editors and type checkers see; at run time, _LAZY and __getattr__
    from mlskip.metadata import FileSkipMetadata as FileSkipMetadata
    from mlskip.metadata import audit_file as audit_file
    from mlskip.metadata import read_skip_metadata as read_skip_metadata
    from mlskip.skipper.explain import SkippingReport as SkippingReport
    from mlskip.skipper.plan import FilePlan as FilePlan
    from mlskip.skipper.remote import S3Options as S3Options
    from mlskip.skipper.skip_index import show_index as show_index
    from mlskip.tpch.generate import generate_tpc as generate_tpc
    from mlskip.udf.arrow_scan import ScanPlan as ScanPlan
    from mlskip.udf.arrow_scan import plan_scan as plan_scan
    from mlskip.udf.arrow_scan import scan as scan
    from mlskip.udf.arrow_scan import scan_dataset as scan_dataset
    from mlskip.udf.arrow_scan import scan_polars as scan_polars
    from mlskip.udf.connection import Connection as Connection
    from mlskip.udf.connection import connect as connect
    from mlskip.udf.skip_dataset import SkipDataset as SkipDataset
    from mlskip.udf.summarize_models import build_index as build_index
    from mlskip.udf.summarize_models import copy as copy
    from mlskip.udf.summarize_models import refresh_index as refresh_index
    from mlskip.udf.summarize_models import write_parquet as write_parquet
    from mlskip.verifier import Predicate as Predicate
    from mlskip.verifier import load_model as load_model
    from mlskip.verifier.cascade import Verifier as Verifier

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

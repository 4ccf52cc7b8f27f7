"""mlskip.metadata: the Parquet writer hook and the reader of skipping summaries.

Writes row groups with Parquet's own min-max statistics plus, per chosen
numeric column pair, a conservative polygon in the footer (key ``mlskip.v3``,
see FORMAT.md): per row group, each pair's polygon and its share of its columns'
grid anchors take at most ``hull_bytes`` bytes; the footer is bound to the file's
row-group bytes and optionally signed. Reads them back (and ``mlskip.v2`` /
``mlskip.v1`` footers) as boxes, hull vertices and halfspaces. Knows nothing of
models.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule defining it, imported on first use: reading footers (the
# planner's path) then never imports the writer's numba kernels or the native library
_LAZY: dict[str, str] = {
    "AuditReport": "audit",
    "audit_file": "audit",
    "NumericColumn": "encoding",
    "is_numeric": "encoding",
    "to_numeric": "encoding",
    "KEY_ENV": "integrity",
    "key_id": "integrity",
    "resolve_key": "integrity",
    "cluster_order": "layout",
    "pair_polygon_native": "native",
    "PairPolygon": "polygon",
    "pair_polygon": "polygon",
    "decode_vertices": "polygon_codec",
    "halfspaces": "polygon_codec",
    "FileSkipMetadata": "reader",
    "RowGroupSummary": "reader",
    "footer_hash": "reader",
    "read_skip_metadata": "reader",
    "WriteReport": "writer",
    "copy": "writer",
    "select_pairs": "writer",
    "write_file": "writer",
    "write_parquet": "writer",
}

__all__ = [*_LAZY, "native"]


def __getattr__(name: str) -> Any:
    if name == "native":
        return importlib.import_module(f"{__name__}.native")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

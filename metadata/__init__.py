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

from . import native
from .audit import AuditReport, audit_file
from .encoding import NumericColumn, is_numeric, to_numeric
from .integrity import KEY_ENV, key_id, resolve_key
from .layout import cluster_order
from .native import pair_polygon_native
from .polygon import PairPolygon, pair_polygon
from .polygon_codec import decode_vertices, halfspaces
from .reader import FileSkipMetadata, RowGroupSummary, footer_hash, read_skip_metadata
from .writer import WriteReport, copy, select_pairs, write_file, write_parquet

__all__ = [
    "AuditReport",
    "KEY_ENV",
    "FileSkipMetadata",
    "NumericColumn",
    "PairPolygon",
    "RowGroupSummary",
    "WriteReport",
    "audit_file",
    "cluster_order",
    "copy",
    "decode_vertices",
    "halfspaces",
    "is_numeric",
    "key_id",
    "native",
    "pair_polygon",
    "pair_polygon_native",
    "read_skip_metadata",
    "footer_hash",
    "resolve_key",
    "select_pairs",
    "to_numeric",
    "write_file",
    "write_parquet",
]

"""mlskip.metadata: the Parquet writer hook and the reader of skipping summaries.

Writes row groups with Parquet's own min-max statistics plus, per chosen
numeric column pair, a conservative polygon of at most ``hull_bytes`` bytes in
the footer (key ``mlskip.v1``, see FORMAT.md); reads them back as boxes, hull
vertices and halfspaces. Knows nothing of models.
"""

from __future__ import annotations

from . import native
from .encoding import NumericColumn, is_numeric, to_numeric
from .layout import cluster_order
from .native import pair_polygon_native
from .polygon import PairPolygon, pair_polygon
from .polygon_codec import decode_vertices, halfspaces
from .reader import FileSkipMetadata, RowGroupSummary, read_skip_metadata
from .writer import WriteReport, copy, select_pairs, write_file, write_parquet

__all__ = [
    "FileSkipMetadata",
    "NumericColumn",
    "PairPolygon",
    "RowGroupSummary",
    "WriteReport",
    "cluster_order",
    "copy",
    "decode_vertices",
    "halfspaces",
    "is_numeric",
    "native",
    "pair_polygon",
    "pair_polygon_native",
    "read_skip_metadata",
    "select_pairs",
    "to_numeric",
    "write_file",
    "write_parquet",
]

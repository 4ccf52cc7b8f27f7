"""mlskip.metadata: the Parquet writer hook and the reader of skipping summaries.

Writes row groups with Parquet's own min-max statistics plus, per chosen
numeric column pair, a conservative polygon in the footer (key ``mlskip.v2``,
see FORMAT.md): per row group, each pair's polygon and its share of its columns'
grid anchors take at most ``hull_bytes`` bytes. Reads them back (and ``mlskip.v1``
footers) as boxes, hull vertices and halfspaces. Knows nothing of models.
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

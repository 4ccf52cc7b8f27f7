"""Hive-partitioned datasets with skipping summaries in every file.

``write_parquet(data, root, partition_by=[...])`` writes one file per distinct
combination of the partition columns, at ``root/k1=v1/k2=v2/data_0.parquet``,
without the partition columns (readers take them from the folder names). Folder
names are pyarrow's hive encoding (values URL-encoded, NULL as
``__HIVE_DEFAULT_PARTITION__``), which DuckDB's ``hive_partitioning`` reads back
to the same values (tested). Files of earlier writes under other names stay, as
with DuckDB's ``COPY ... (PARTITION_BY ..., OVERWRITE_OR_IGNORE)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mlskip.errors import InputDataError

FILE_NAME = "data_0.parquet"
_ROW = "__mlskip_row__"


@dataclass(frozen=True)
class PartitionedWriteReport:
    """What a partitioned write wrote: one report per file."""

    root: str
    partition_by: tuple[str, ...]
    files: tuple[Any, ...]  # WriteReport

    @property
    def num_rows(self) -> int:
        return sum(f.num_rows for f in self.files)

    @property
    def num_row_groups(self) -> int:
        return sum(f.num_row_groups for f in self.files)


def write_partitioned(
    table: pa.Table, root: str | os.PathLike, partition_by: Sequence[str], write: Any
) -> PartitionedWriteReport:
    """Write ``table`` under ``root`` partitioned by ``partition_by``; ``write(part, path)``
    writes one partition's rows (``write_parquet`` with the caller's options)."""
    import pyarrow.dataset as ds

    keys = list(dict.fromkeys(partition_by))
    missing = [k for k in keys if k not in table.column_names]
    if missing:
        raise InputDataError(
            f"partition_by column {missing[0]!r} is not in the data (columns: {table.column_names})"
        )
    if len(keys) == table.num_columns:
        raise InputDataError("partition_by names every column: the files would hold none")
    root = os.fspath(root)
    if os.path.isfile(root):
        raise InputDataError(f"{root} is a file; partition_by writes a folder of files")
    partitioning = ds.partitioning(table.select(keys).schema, flavor="hive")
    numbered = table.append_column(_ROW, pa.array(range(table.num_rows), pa.int64()))
    groups = numbered.group_by(keys, use_threads=False).aggregate([(_ROW, "list")])
    reports = []
    for i in range(groups.num_rows):
        rows = groups.column(f"{_ROW}_list")[i].values
        values = {k: groups.column(k)[i] for k in keys}
        folder, _ = partitioning.format(_matches(values))
        target = os.path.join(root, folder, FILE_NAME)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        reports.append(write(table.take(rows).drop_columns(keys), target))
    return PartitionedWriteReport(root, tuple(keys), tuple(reports))


def _matches(values: dict[str, pa.Scalar]) -> Any:
    """The partition expression ``k1 = v1 AND k2 = v2 ...`` (``is_null`` for NULL)."""
    import pyarrow.dataset as ds

    terms = [
        ds.field(k).is_null() if not v.is_valid else ds.field(k) == v for k, v in values.items()
    ]
    expression = terms[0]
    for term in terms[1:]:
        expression = expression & term
    return expression

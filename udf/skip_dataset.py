"""The row groups a skip plan keeps, as a dataset whose every method agrees.

pyarrow reads a ``FileSystemDataset`` of row-group subsets correctly, but its
``count_rows()`` (and a scanner's) without a filter returns the whole files' row
counts from their footers, ignoring the subset. ``SkipDataset`` therefore wraps
such a dataset and offers only methods that agree with one another: reading
(``to_table``, ``to_batches``, ``to_reader``, ``head``) goes through pyarrow,
counting without a filter comes from the plan's row groups, with a filter from
the rows read. It is not a ``pyarrow.dataset.Dataset``; ``to_reader()`` (or the
Arrow C stream it exposes) hands its rows to DuckDB, Polars or pandas.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa


class SkipDataset:
    """The row groups of ``plan``'s files that are not pruned (rows unfiltered: row groups
    kept may hold rows where the predicate fails; ``mlskip.scan`` filters them)."""

    def __init__(self, plan: Any, dataset: Any, unplanned: Sequence[Any] = ()) -> None:
        self.plan = plan
        self._dataset = dataset
        self._unplanned = tuple(unplanned)  # whole-file fragments of files not planned

    @property
    def schema(self) -> pa.Schema:
        return self._dataset.schema

    @property
    def files(self) -> list[str]:
        """The files with at least one row group to read."""
        return [f.path for f in self.plan.files if f.reason is not None or (~f.pruned).any()]

    def count_rows(self, filter: Any = None) -> int:
        """Rows in the kept row groups (that also satisfy ``filter``, a pyarrow expression)."""
        if filter is None:
            planned = sum(int(f.num_rows[~f.pruned].sum()) for f in self.plan.files if not f.reason)
            return planned + sum(int(f.count_rows()) for f in self._unplanned)
        return sum(b.num_rows for b in self._dataset.to_batches(columns=[], filter=filter))

    def to_table(self, columns: Sequence[str] | None = None, filter: Any = None) -> pa.Table:
        return self._dataset.to_table(columns=_listed(columns), filter=filter)

    def to_batches(
        self, columns: Sequence[str] | None = None, filter: Any = None
    ) -> Iterator[pa.RecordBatch]:
        return iter(self._dataset.to_batches(columns=_listed(columns), filter=filter))

    def to_reader(
        self, columns: Sequence[str] | None = None, filter: Any = None
    ) -> pa.RecordBatchReader:
        """A stream of the kept rows (what DuckDB's ``FROM reader`` and Polars read)."""
        return self._dataset.scanner(columns=_listed(columns), filter=filter).to_reader()

    def head(
        self, num_rows: int, columns: Sequence[str] | None = None, filter: Any = None
    ) -> pa.Table:
        return self._dataset.head(num_rows, columns=_listed(columns), filter=filter)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.to_reader().__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:
        planned = [f for f in self.plan.files if f.reason is None]
        total = sum(len(f.num_rows) for f in planned)
        kept = sum(int((~f.pruned).sum()) for f in planned)
        unplanned = len(self.plan.files) - len(planned)
        return (
            f"SkipDataset({len(self.plan.files)} file(s), {kept} of {total} row groups kept"
            + (f", {unplanned} file(s) read in full" if unplanned else "")
            + f", {self.count_rows():,} rows)"
        )


def _listed(columns: Sequence[str] | None) -> list[str] | None:
    return None if columns is None else list(columns)

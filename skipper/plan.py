"""Skip plans: per file and row group, prune / read without the model / read and evaluate.

Plans are small frozen values: easy to print, compare in tests and cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRUNE, ALL_MATCH, EVALUATE = "prune", "all_match", "evaluate"
Ranges = tuple[tuple[int, int], ...]


def row_ranges(offsets: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> Ranges:
    """Inclusive ``file_row_number`` ranges covering the row groups where ``mask``
    is true, adjacent row groups merged."""
    ranges: list[tuple[int, int]] = []
    for start, count, keep in zip(offsets.tolist(), counts.tolist(), mask.tolist(), strict=True):
        if not keep or count == 0:
            continue
        end = start + count - 1
        if ranges and ranges[-1][1] + 1 == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return tuple(ranges)


@dataclass(frozen=True, eq=False)
class FilePlan:
    """The plan for one file.

    ``verdicts[p][g]`` is the verifier's verdict (NONE=0, ALL=1, UNKNOWN=2)
    for predicate ``p`` on row group ``g``; ``methods[p][g]`` names what
    decided it. ``reason`` is set when no skipping applies to the file (it is
    then read in full and every predicate evaluated). ``identity`` is the
    file identity the plan was made for (see ``Planner.identity``); ``limits``
    say what limits skipping in it (no summaries, an untrusted footer, no polygon
    for the model's columns).
    """

    path: str
    num_rows: np.ndarray
    row_group_bytes: np.ndarray
    verdicts: tuple[np.ndarray, ...]
    methods: tuple[tuple[str, ...], ...]
    seconds: float
    reason: str | None = None
    identity: tuple | None = None
    limits: tuple[str, ...] = ()  # what limits skipping in this file (see Planner)
    # the planner's cost model: branch-and-bound pieces allowed per row group (what
    # reading and evaluating its rows would cost; see planner.work_budget), None if unused
    budget: int | None = None
    indexed: bool = False  # planned from a skip-index entry (not the file's footer)

    @property
    def num_row_groups(self) -> int:
        return int(self.num_rows.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        """First ``file_row_number`` of each row group (none for a file without row groups)."""
        return np.concatenate([[0], np.cumsum(self.num_rows)])[:-1].astype(np.int64)

    @property
    def pruned(self) -> np.ndarray:
        """Row groups no row of which can satisfy every predicate."""
        mask = np.zeros(self.num_row_groups, dtype=bool)
        for verdicts in self.verdicts:
            mask |= verdicts == 0
        return mask

    def all_match(self, p: int) -> np.ndarray:
        """Row groups read where predicate ``p`` holds for every row."""
        return (self.verdicts[p] == 1) & ~self.pruned

    @property
    def all_match_everywhere(self) -> np.ndarray:
        """Row groups read where every predicate holds for every row (no model runs)."""
        mask = ~self.pruned
        for verdicts in self.verdicts:
            mask &= verdicts == 1
        return mask

    @property
    def evaluated(self) -> np.ndarray:
        return ~self.pruned & ~self.all_match_everywhere

    def read_ranges(self) -> Ranges | None:
        """Rows to read; None when every row group is read."""
        keep = ~self.pruned
        if keep.all():
            return None
        return row_ranges(self.offsets, self.num_rows, keep)

    def all_match_ranges(self, p: int) -> Ranges:
        return row_ranges(self.offsets, self.num_rows, self.all_match(p))

    @property
    def bytes_skipped(self) -> int:
        return int(self.row_group_bytes[self.pruned].sum())

    @property
    def changes_anything(self) -> bool:
        return bool(
            self.pruned.any() or any(self.all_match(p).any() for p in range(len(self.verdicts)))
        )

"""What skipping did for a query: totals, per-file details and reasons, printable."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mlskip.skipper.plan import FilePlan


@dataclass(frozen=True)
class FileReport:
    """One file of one scan."""

    path: str
    row_groups: int
    pruned: int
    all_match: int
    evaluated: int
    bytes_skipped: int
    seconds: float
    methods: tuple[tuple[str, int], ...]
    reason: str | None = None
    pruned_groups: tuple[int, ...] = ()
    all_match_groups: tuple[int, ...] = ()
    limits: tuple[str, ...] = ()  # what limits skipping in this file
    budget: int | None = None  # branch-and-bound pieces per row group (the cost model)
    indexed: bool = False  # planned from a skip-index entry

    @classmethod
    def from_plan(cls, plan: FilePlan) -> FileReport:
        methods: Counter[str] = Counter()
        for per_predicate in plan.methods:
            methods.update(per_predicate)
        return cls(
            path=plan.path,
            row_groups=plan.num_row_groups,
            pruned=int(plan.pruned.sum()),
            all_match=int(plan.all_match_everywhere.sum()),
            evaluated=int(plan.evaluated.sum()),
            bytes_skipped=plan.bytes_skipped,
            seconds=plan.seconds,
            methods=tuple(sorted(methods.items())),
            reason=plan.reason,
            pruned_groups=tuple(np.flatnonzero(plan.pruned).tolist()),
            all_match_groups=tuple(np.flatnonzero(plan.all_match_everywhere).tolist()),
            limits=plan.limits,
            budget=plan.budget,
            indexed=plan.indexed,
        )


@dataclass(frozen=True)
class SkippingReport:
    """Totals over every planned file, per-file details, and why skipping did
    not apply where it did not. ``sql`` is the query DuckDB runs."""

    files: tuple[FileReport, ...] = ()
    reasons: tuple[str, ...] = ()
    sql: str = ""
    rewritten: bool = False
    planning_seconds: float = 0.0
    predicates: tuple[str, ...] = field(default=())
    # (path, identity planned for) of every planned file; is_query: the statement
    # is a query (SELECT, UNION, ...), the only kind ever rewritten
    identities: tuple[tuple[str, tuple | None], ...] = field(default=())
    is_query: bool = False

    @property
    def row_groups(self) -> int:
        return sum(f.row_groups for f in self.files)

    @property
    def pruned(self) -> int:
        return sum(f.pruned for f in self.files)

    @property
    def all_match(self) -> int:
        return sum(f.all_match for f in self.files)

    @property
    def evaluated(self) -> int:
        return sum(f.evaluated for f in self.files)

    @property
    def bytes_skipped(self) -> int:
        return sum(f.bytes_skipped for f in self.files)

    @property
    def verification_seconds(self) -> float:
        return sum(f.seconds for f in self.files)

    def __rich_console__(self, console, options):
        from rich.text import Text

        from mlskip.tables import fitted_table

        headers = ("file", "row groups", "pruned", "all-match", "evaluated", "bytes skipped",
                   "verify ms", "decided by")  # fmt: skip
        rows = [
            (
                f.path,
                str(f.row_groups),
                str(f.pruned),
                str(f.all_match),
                str(f.evaluated),
                f"{f.bytes_skipped:,}",
                f"{f.seconds * 1e3:.1f}",
                ", ".join(f"{m} {n}" for m, n in f.methods) or (f.reason or ""),
            )  # fmt: skip
            for f in self.files
        ]
        rows.append(
            (
                "total",
                str(self.row_groups),
                str(self.pruned),
                str(self.all_match),
                str(self.evaluated),
                f"{self.bytes_skipped:,}",
                f"{self.verification_seconds * 1e3:.1f}",
                "",
            )  # fmt: skip
        )
        yield fitted_table(
            headers, rows, options.max_width, title="mlskip: row groups per file",
            left=("file", "decided by"), bold_rows=(len(rows) - 1,),
        )  # fmt: skip
        yield Text(
            f"planning {self.planning_seconds * 1e3:.1f} ms; "
            f"query {'rewritten' if self.rewritten else 'run unmodified'}"
        )
        index_line = _index_text(self.files)
        if index_line:
            yield Text(index_line)
        budgets = sorted({f.budget for f in self.files if f.budget is not None})
        if budgets:
            yield Text(_budget_text(budgets), style="dim")
        for f in self.files:
            for limit in f.limits:
                yield Text(f"limited: {f.path}: {limit}", style="yellow")
        for reason in self.reasons:
            yield Text(f"not applied: {reason}", style="yellow")

    def __str__(self) -> str:
        import shutil
        from io import StringIO

        from rich.console import Console

        buffer = StringIO()
        # the terminal's width (or $COLUMNS), as print() of any other table would use
        width = shutil.get_terminal_size().columns
        Console(file=buffer, width=width, force_terminal=False).print(self)
        return buffer.getvalue()


def _index_text(files: tuple[FileReport, ...]) -> str:
    """What a skip index did, in one line (empty when none was used)."""
    indexed = [f for f in files if f.indexed]
    fallback = [f for f in files if any("skip index" in limit for limit in f.limits)]
    if not indexed and not fallback:
        return ""
    whole = [f for f in indexed if all(m.startswith("file-level") for m, _ in f.methods)]
    pruned = sum(1 for f in whole if f.pruned == f.row_groups)
    return (
        f"skip index: {len(indexed)} file(s) planned from it, {pruned} pruned whole and "
        f"{len(whole) - pruned} decided whole; {len(fallback)} planned from their own "
        "footers (stale or not indexed)"
    )


def _budget_text(budgets: list[int]) -> str:
    """The planner's cost-model choice (planner.work_budget, planner.runs_lp) in words."""
    from mlskip.skipper.planner import LP_MIN_ROWS, ROWS_PER_PIECE

    pieces = str(budgets[0]) if len(budgets) == 1 else f"{budgets[0]}-{budgets[-1]}"
    return (
        f"verifier budget: {pieces} branch-and-bound pieces per row group, about what "
        f"reading and evaluating its rows costs ({ROWS_PER_PIECE} rows a piece); overlap "
        f"LP only on row groups of {LP_MIN_ROWS:,} rows or more"
    )

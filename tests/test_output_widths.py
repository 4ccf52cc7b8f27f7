"""What a person reads is never cut: at 80 columns, in a piped log, file names and numbers
appear whole (tables become wrapped blocks when a grid would cut a cell)."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from mlskip.skipper.explain import FileReport, SkippingReport
from mlskip.tables import fitted_table

LONG = "/data/lake/warehouse/year=2026/month=12/lineitem-0001-of-0032.parquet"


def render(renderable, width: int) -> str:
    buffer = StringIO()
    Console(file=buffer, width=width, force_terminal=False).print(renderable)
    return buffer.getvalue()


def test_narrow_tables_keep_every_cell_whole():
    headers = ("file", "row groups", "bytes skipped")
    rows = [(LONG, "1,024", "123,456,789,012")]
    for width in (40, 80):
        text = render(fitted_table(headers, rows, width, left=("file",)), width)
        flat = "".join(line.rstrip() for line in text.splitlines())
        assert "…" not in text and LONG in flat and "123,456,789,012" in flat
    wide = render(fitted_table(headers, rows, 200, left=("file",)), 200)
    assert LONG in wide and "┃" in wide  # a grid where it fits


def test_explain_report_follows_the_terminal_width(monkeypatch):
    import numpy as np

    from mlskip.skipper.plan import FilePlan

    plan = FilePlan(
        path=LONG,
        num_rows=np.array([1000, 1000]),
        row_group_bytes=np.array([5_000_000, 6_000_000]),
        verdicts=(np.array([0, -1], dtype=np.int8),),
        methods=(("crown", "undecided"),),
        seconds=0.01,
        reason=None,
    )
    report = SkippingReport(files=(FileReport.from_plan(plan),), reasons=(), sql="", rewritten=True,
                            planning_seconds=0.02)  # fmt: skip
    monkeypatch.setenv("COLUMNS", "80")
    text = str(report)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and LONG in "".join(line.rstrip() for line in text.splitlines())
    assert "5,000,000" in text

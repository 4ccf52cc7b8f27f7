"""Tables a person reads at any width: nothing important is ever cut.

A table is printed as a grid when every cell fits on one line within the
console's width; otherwise each row becomes a wrapped ``header value, ...``
block, so a narrow terminal or a piped log (80 columns) still shows whole file
names and numbers instead of ``/tmp/m…`` and ``37,978…``.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import StringIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text


def fitted_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    title: str | None = None,
    left: Sequence[str] = (),
    bold_rows: Sequence[int] = (),
) -> RenderableType:
    """A grid of ``rows`` under ``headers`` if it fits in ``width`` columns uncut, else
    the same rows as wrapped text blocks (first column as the block's heading).
    ``left``: headers of left-aligned columns (others are right-aligned numbers)."""
    probe = Console(file=StringIO(), width=100_000)  # the natural width, not one capped
    for compact in (False, True):  # boxed; then without outer edge and column rules
        table = Table(
            title=title,
            box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
            show_edge=not compact,
            pad_edge=not compact,
            collapse_padding=compact,
        )
        for header in headers:
            table.add_column(header, justify="left" if header in left else "right", no_wrap=True)
        for i, row in enumerate(rows):
            table.add_row(*row, style="bold" if i in bold_rows else None)
        if Measurement.get(probe, probe.options, table).maximum <= width:
            return table
    blocks: list[RenderableType] = [Text(title, style="italic")] if title else []
    for i, row in enumerate(rows):
        heading = Text(row[0], style="bold" if i in bold_rows else "")
        fields = ", ".join(f"{h} {v}" for h, v in zip(headers[1:], row[1:], strict=True) if v)
        blocks += [heading, Padding(Text(fields), (0, 0, 0, 2))]
    return Group(*blocks)

"""DIR/REPORT.md from results.json: goals, effectiveness tables, exact limits, timings, e2e.

Every number is recomputed from the records; nothing is typed in except the
reference figures the goals name (the paper's and the exact limits measured on
the reference's models, ``fmt.py``). The fixed prose lives in ``templates/``;
``run.py`` renders one run, ``overview.py`` several; ``tables.py`` and ``goals.py``
compute the sections. ``python -m mlskip.tpch.report ROOT RUN...`` re-renders.
"""

from .fmt import _verdict
from .goals import breakdown, goals
from .overview import render_overview, write_overview
from .records import load_results
from .run import render, write_report

__all__ = [
    "_verdict",
    "breakdown",
    "goals",
    "load_results",
    "render",
    "render_overview",
    "write_overview",
    "write_report",
]

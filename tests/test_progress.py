"""Long commands show progress in a piped log too: plain lines every few seconds."""

from __future__ import annotations

import time
from io import StringIO

from rich.console import Console

from mlskip.progress import LoggedProgress, stage


def test_piped_progress_prints_lines_while_waiting_and_advancing():
    out = StringIO()
    with LoggedProgress(console=Console(file=out, force_terminal=False), log_seconds=0.05) as bar:
        task = bar.add_task("trials", total=10)
        time.sleep(0.3)  # nothing advances: the heartbeat still reports
        bar.update(task, description="stage two")  # a new stage is reported at once
        bar.advance(task, 4)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("trials: 0/10 done") for line in lines)
    assert any(line.startswith("stage two: 0/10 done") for line in lines)


def test_terminal_progress_prints_no_extra_lines():
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=80)
    with LoggedProgress(console=console, log_seconds=0.01, auto_refresh=False) as bar:
        task = bar.add_task("trials", total=10)
        time.sleep(0.05)
        bar.advance(task, 4)
    assert "done," not in out.getvalue()


def test_stage_reports_start_and_end_when_piped():
    out = StringIO()
    with stage(Console(file=out, force_terminal=False), "generating"):
        pass
    text = out.getvalue()
    assert "generating ..." in text and "generating: done in" in text

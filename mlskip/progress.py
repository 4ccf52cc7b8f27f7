"""Progress a person sees in a terminal and in a piped log alike.

rich draws a live bar in a terminal but shows nothing while output goes to a
pipe or a file (CI logs, ``| tee``). ``progress()`` gives rich's ``Progress``
that, when its console is not a terminal, also prints one plain line per open
task every few seconds: the stage, done/total and the time elapsed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

LOG_SECONDS = 5.0  # at most one line per task this often when output is not a terminal


class LoggedProgress(Progress):
    """rich's ``Progress`` plus plain lines when its console is not a terminal."""

    def __init__(self, *columns: Any, log_seconds: float = LOG_SECONDS, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._log_seconds = log_seconds
        self._logged = time.monotonic()
        self._log_lock = threading.Lock()
        self._stopped: threading.Event | None = None

    def start(self) -> None:
        super().start()
        if not self.disable and not self.console.is_terminal:
            self._stopped = threading.Event()
            threading.Thread(target=self._heartbeat, daemon=True).start()

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()
        super().stop()

    def _heartbeat(self) -> None:
        """A line every ``log_seconds`` even while no task advances (a long step)."""
        while not self._stopped.wait(self._log_seconds):
            self._log()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log(force="description" in kwargs)  # a new stage is worth a line

    def _log(self, force: bool = False) -> None:
        if self.disable or self.console.is_terminal:
            return
        with self._log_lock:
            now = time.monotonic()
            if not force and now - self._logged < self._log_seconds * 0.9:
                return
            self._logged = now
        for task in list(self.tasks):
            if task.finished or not task.visible:
                continue
            total = f"/{task.total:,.0f}" if task.total is not None else ""
            line = f"{task.description}: {task.completed:,.0f}{total} done, "
            line += f"{task.elapsed or 0.0:.0f} s elapsed"
            self.console.print(line, markup=False, highlight=False)


def progress(*, remaining: bool = False, disable: bool = False) -> LoggedProgress:
    """A progress display with description, bar, done/total and elapsed time (and time
    remaining with ``remaining``); plain lines every few seconds when piped."""
    columns: list[Any] = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    if remaining:
        columns.append(TimeRemainingColumn())
    return LoggedProgress(*columns, disable=disable)


@contextlib.contextmanager
def stage(console: Console, text: str) -> Iterator[None]:
    """A named step: a spinner in a terminal; when piped, a line as it starts and one
    with its time when it ends."""
    if console.is_terminal:
        with console.status(text):
            yield
        return
    start = time.monotonic()
    console.print(f"{text} ...", markup=False, highlight=False)
    yield
    console.print(
        f"{text}: done in {time.monotonic() - start:.1f} s", markup=False, highlight=False
    )

"""Verification budgets in CPU time of the verifying thread, capped in wall time.

A budget counted in the thread's own CPU time gives the same verdicts on an idle
and on a busy machine: what the cascade decides depends on the work it could do,
not on what else runs (a wall-clock budget let a loaded machine decide fewer row
groups, and hulls lose to min-max between two runs). The wall-clock cap
(``WALL_FACTOR`` times the budget) bounds the latency when the thread waits (for
the GIL, for I/O) instead of working.
"""

from __future__ import annotations

import time

WALL_FACTOR = 4.0


class Deadline:
    """``seconds`` of this thread's CPU time from now, and at most ``WALL_FACTOR`` times
    that in wall time."""

    def __init__(self, seconds: float) -> None:
        seconds = max(0.0, float(seconds))
        self.cpu_end = time.thread_time() + seconds
        self.wall_end = time.perf_counter() + WALL_FACTOR * seconds

    def remaining(self) -> float:
        """Seconds left (CPU, and never more than the wall-clock cap leaves)."""
        return max(0.0, min(self.cpu_end - time.thread_time(), self.wall_end - time.perf_counter()))

    def passed(self) -> bool:
        return self.remaining() <= 0.0

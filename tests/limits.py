"""A wall-clock limit per fuzzing case (SIGALRM; main thread, POSIX), shared by the fuzzers."""

from __future__ import annotations

import contextlib
import signal


class CaseTimeout(Exception):
    """A fuzzing case ran past its time limit (a hang, as the fuzzers report it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def _raise(signum, frame):
        raise CaseTimeout(f"case ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

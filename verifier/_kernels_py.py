"""The polygon kernels of ``_kernels.py`` run as plain Python, for small batches.

numba costs a process about a second on first use (its import, its compiler's setup,
scipy.linalg for BLAS), which a first query over a few row groups would pay for a few
milliseconds of work. So ``kernels(n)`` hands small batches these plain-Python copies:
the same source, read from ``_kernels.py`` and run without ``numba.njit`` (float64
scalars, numpy's IEEE rules for division by zero), and large ones the compiled kernels.
Like the compiled ones, nothing computed here is trusted for soundness (see
``_kernels.py``); the tests hold the two equal.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

# at most this many regions go to the plain-Python kernels (tens of microseconds each)
PLAIN_PYTHON_REGIONS = 256
# ... and at most this many in all per process: past that (about a second of plain-Python
# work, what numba's start-up costs), the compiled kernels pay off. Planning a lake from a
# skip index runs branch and bound on a few row groups at a time for many files: with
# plain Python throughout it took 0.93 s where the compiled kernels took 0.12 s.
PLAIN_PYTHON_WORK = 30_000
_plain_work = 0


def _plain_kernels() -> types.SimpleNamespace:
    """The public kernels and constants of ``_kernels.py`` as plain Python, each call
    under numpy's "ignore" error state (as numba's numpy error model: no warnings)."""
    import functools

    import numpy as np

    source_path = Path(__file__).with_name("_kernels.py")
    source = source_path.read_text()
    if "\nimport numba\n" not in source:  # the one line this copy leaves out must be there
        raise ImportError("_kernels.py no longer imports numba as expected")
    module = types.ModuleType(__name__ + ".plain", __doc__)
    module.__dict__["numba"] = types.SimpleNamespace(njit=lambda *_a, **_k: lambda f: f)
    code = compile(source.replace("\nimport numba\n", "\n"), str(source_path), "exec")
    exec(code, module.__dict__)  # noqa: S102 - our own kernels' source, without numba.njit

    def quiet(function: Any) -> Any:
        @functools.wraps(function)
        def call(*args: Any) -> Any:
            with np.errstate(all="ignore"):
                return function(*args)

        return call

    public = {
        name: quiet(value) if callable(value) else value
        for name, value in module.__dict__.items()
        if not name.startswith("_") and name not in ("np", "numba", "annotations")
    }
    return types.SimpleNamespace(**public)


PLAIN = _plain_kernels()


def kernels(regions: int) -> Any:
    """The kernel module for a batch of ``regions``: plain Python up to
    ``PLAIN_PYTHON_REGIONS`` while this process has done less than ``PLAIN_PYTHON_WORK``
    regions that way, the numba-compiled kernels otherwise."""
    global _plain_work
    if regions <= PLAIN_PYTHON_REGIONS and _plain_work < PLAIN_PYTHON_WORK:
        _plain_work += regions  # unsynchronized: a lost update only delays the switch
        return PLAIN
    from . import _kernels

    return _kernels

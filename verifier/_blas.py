"""Run numpy's OpenBLAS single-threaded while bounding (small GEMMs).

The verifier's matrix products are small ([n, 32] @ [32, 256]); OpenBLAS
worker threads spin between calls and, on a 2-core machine, slow the
surrounding elementwise numpy work down several times. ``single_thread()``
sets the thread count to 1 for the duration and restores it.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager

_LIB: tuple | None = None


def _lib() -> tuple | None:
    global _LIB
    if _LIB is None:
        import numpy as np

        found: tuple = ()
        libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
        for path in glob.glob(os.path.join(libdir, "*openblas*.so*")):
            try:
                lib = ctypes.CDLL(path)
                get = lib.scipy_openblas_get_num_threads64_
                put = lib.scipy_openblas_set_num_threads64_
                get.restype = ctypes.c_int
                put.argtypes = [ctypes.c_int]
                found = (get, put)
                break
            except (OSError, AttributeError):
                continue
        _LIB = found
    return _LIB or None


@contextmanager
def single_thread() -> Iterator[None]:
    lib = _lib()
    if lib is None:
        yield
        return
    get, put = lib
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)

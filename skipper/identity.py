"""File identities: what says a file is still the one its facts were read from."""

from __future__ import annotations

import os


def local_identity(path: str, st: os.stat_result) -> tuple:
    """Identity of a local file from its ``stat``: every write changes its ctime (which,
    unlike the mtime, no tool can set back); size, mtime and inode change when it is
    replaced."""
    return (
        os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev
    )  # fmt: skip


def stat_identity(path: str) -> tuple:
    """``local_identity`` of ``path`` now."""
    return local_identity(path, os.stat(path))

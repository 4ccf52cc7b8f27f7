"""Load DuckDB's tpch/tpcds extensions offline, from their PyPI wheels.

DuckDB would otherwise download them at run time; the wheels
``duckdb-extension-tpch`` / ``duckdb-extension-tpcds`` carry the binaries.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

from mlskip.errors import MlskipError

SUITES: dict[str, str] = {"tpch": "duckdb_extension_tpch", "tpcds": "duckdb_extension_tpcds"}


def extension_path(suite: str) -> Path:
    """Path of the ``.duckdb_extension`` file shipped in the suite's wheel."""
    package = importlib.import_module(SUITES[suite])
    root = Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(root.glob(f"{suite}.duckdb_extension"))
    if not found:
        raise MlskipError(
            f"the {suite} extension for DuckDB {duckdb.__version__} is not in {root}; "
            f"install the matching wheel: pip install {SUITES[suite].replace('_', '-')}=={duckdb.__version__}"
        )
    return found[0]


def load_extension(con: duckdb.DuckDBPyConnection, suite: str) -> None:
    """INSTALL the suite's extension from its wheel file and LOAD it into ``con``."""
    path = extension_path(suite)
    con.execute(f"INSTALL '{path}'")
    con.execute(f"LOAD {suite}")

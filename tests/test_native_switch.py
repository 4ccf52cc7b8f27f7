"""The native switch: the writer falls back to the numba reference without the Rust library."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mlskip.metadata import native, pair_polygon_native, write_parquet


@pytest.fixture
def no_library(monkeypatch):
    """Pretend the shared library was never built."""
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_loaded", True)
    yield
    native.set_enabled(None)


def _table() -> pa.Table:
    rng = np.random.default_rng(3)
    return pa.table({"a": rng.normal(size=3000), "b": rng.integers(0, 99, 3000)})


def test_fallback_without_library(tmp_path, no_library, monkeypatch):
    assert not native.available() and not native.enabled()
    native.set_enabled(True)  # forcing it on cannot enable a missing library
    assert not native.enabled()
    calls = []
    monkeypatch.setattr(native, "row_group_native", lambda *a, **k: calls.append(a))
    rep = write_parquet(_table(), tmp_path / "x.parquet", row_group_size=1000, hulls=[("a", "b")])
    assert rep.num_row_groups == 3 and not calls
    with pytest.raises(RuntimeError, match="cargo build --release"):
        pair_polygon_native(np.zeros(3), np.zeros(3))


def test_switch_and_environment(monkeypatch):
    native.set_enabled(False)
    assert not native.enabled()
    native.set_enabled(None)
    monkeypatch.setenv("MLSKIP_NATIVE", "0")
    assert not native.enabled()
    monkeypatch.setenv("MLSKIP_NATIVE", "1")
    assert native.enabled() == native.available()


def test_writer_uses_kernel_when_enabled(tmp_path, monkeypatch):
    if not native.available():
        pytest.skip("mlskip native library not built (cargo build --release)")
    calls = []
    real = native.row_group_native

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(native, "row_group_native", spy)
    write_parquet(_table(), tmp_path / "x.parquet", row_group_size=1000, hulls=[("a", "b")])
    assert len(calls) == 3
    # widths the record format cannot encode stay on the reference path (and its errors)
    assert not native.supports((16, 15))

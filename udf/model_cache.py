"""Prepared models kept on disk, so that a fresh process registers a known model fast.

Preparing an ONNX model (parsing it, reading its network for the verifier,
checking its batch dimension with ONNX Runtime) imports the ``onnx`` package,
which alone costs most of a second (its ``ml_dtypes`` dependency). The result
depends only on the model's bytes, the input names given, and the code and
library versions that prepared it, so it is kept under that key in
``$MLSKIP_CACHE_DIR/models`` (default ``~/.cache/mlskip/models``) and loaded
instead of prepared again (the newest 256 entries are kept). Only self-contained models are kept (not those whose
weights live in external files). ``MLSKIP_MODEL_CACHE=0`` turns it off; an
entry that cannot be read is ignored and written again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

FORMAT = b"mlskip-model-cache-1"
KEEP = 256  # entries kept; the least recently written beyond this are removed


def enabled() -> bool:
    return os.environ.get("MLSKIP_MODEL_CACHE", "1") not in ("0", "false", "no")


def folder() -> Path:
    root = os.environ.get("MLSKIP_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "mlskip") / "models"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> bytes:
    """What else decides a prepared model: the preparing code and library versions."""
    import mlskip.udf.model as model_module
    import mlskip.verifier as verifier_package

    digest = hashlib.sha256(FORMAT)
    sources = [Path(model_module.__file__)]
    sources += sorted(Path(verifier_package.__file__).parent.rglob("*.py"))
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    for package in ("onnx", "onnxruntime", "numpy", "protobuf"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{package}={metadata.version(package)}".encode())
    digest.update(sys.version.encode())
    return digest.digest()


def key(raw: bytes, given: Any) -> str:
    """The entry of a model's ``raw`` bytes prepared with the options ``given`` (input
    names, input types: anything with a stable ``repr``)."""
    digest = hashlib.sha256(code_fingerprint())
    digest.update(repr(given).encode())
    digest.update(raw)
    return digest.hexdigest()


def load(cache_key: str) -> Any | None:
    """The prepared model kept under ``cache_key``, or None."""
    path = folder() / f"{cache_key}.pkl"
    try:
        with open(path, "rb") as handle:
            if handle.read(len(FORMAT)) != FORMAT:
                return None
            return pickle.load(handle)  # noqa: S301  (our own cache, in the user's folder)
    except Exception:  # missing, truncated or from another version: prepare again
        return None


def store(cache_key: str, prepared: Any) -> None:
    """Keep ``prepared`` under ``cache_key`` (written to a temporary name, then renamed:
    readers never see half an entry). A cache that cannot be written is skipped."""
    target = folder() / f"{cache_key}.pkl"
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(FORMAT)
            pickle.dump(prepared, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        return
    _prune(target.parent)


def _prune(where: Path) -> None:
    """At most ``KEEP`` entries: random models (tests, campaigns) must not fill the disk."""
    with contextlib.suppress(OSError):
        entries = sorted(where.glob("*.pkl"), key=lambda p: p.stat().st_mtime)
        for old in entries[: max(0, len(entries) - KEEP)]:
            with contextlib.suppress(OSError):
                old.unlink()

"""The import rule: stages import only from themselves and the stages listed before
them (docs/ARCHITECTURE.md). Every import counts, also inside functions and under
TYPE_CHECKING, so a new back edge fails here, not in a reader's head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder -> the package it is installed as (pyproject's package-dir)
FOLDERS = {
    "mlskip": "mlskip",
    "metadata": "mlskip.metadata",
    "verifier": "mlskip.verifier",
    "skipper": "mlskip.skipper",
    "udf": "mlskip.udf",
    "model_zoo": "mlskip.model_zoo",
    "tpch": "mlskip.tpch",
}

# Layers in order: a module may import its own layer and the layers before it.
# Each layer lists module-name prefixes; the longest matching prefix wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leaves", ("mlskip.errors", "mlskip._version", "mlskip.progress", "mlskip.tables")),
    ("metadata", ("mlskip.metadata",)),
    ("verifier", ("mlskip.verifier",)),
    ("skipper", ("mlskip.skipper",)),
    ("udf", ("mlskip.udf",)),
    ("tpc data", ("mlskip.tpch.generate", "mlskip.tpch.extensions")),
    ("public api", ("mlskip",)),  # the package's __init__: a lazy map onto the layers above
    ("model_zoo", ("mlskip.model_zoo",)),
    ("testing", ("mlskip.testing",)),
    ("benchmarks", ("mlskip.tpch",)),
    ("cli", ("mlskip.cli", "mlskip.__main__")),
)


def layer_of(module: str) -> int | None:
    """Index in LAYERS of ``module`` (None outside mlskip)."""
    best, best_len = None, -1
    for k, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = k, len(p)
    return best


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    pkg = FOLDERS[rel.parts[0]]
    rest = list(rel.with_suffix("").parts[1:])
    if rest and rest[-1] == "__init__":
        rest.pop()
    return ".".join([pkg, *rest])


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``source``."""
    out = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "mlskip":  # `from mlskip import x`: x may be a leaf module
                out += [(node.lineno, f"mlskip.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


def back_edges(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports in ``source`` (the text of ``module``) that break the rule."""
    mine = layer_of(module)
    bad = []
    for line, target in imported_modules(source, module, is_package):
        theirs = layer_of(target)
        if theirs is None and target.startswith("mlskip."):
            theirs = layer_of("mlskip")  # a public name of the package
        if theirs is not None and mine is not None and theirs > mine:
            bad.append(
                f"{module}:{line} imports {target} ({LAYERS[theirs][0]} after {LAYERS[mine][0]})"
            )
    return bad


def product_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in product_files() if layer_of(module_name(p)) is None]
    assert missing == []


def test_no_back_edges():
    bad = []
    for path in product_files():
        name = module_name(path)
        bad += back_edges(path.read_text(), name, path.name == "__init__.py")
    assert bad == [], "\n".join(bad)


@pytest.mark.parametrize(
    "module, source",
    [
        ("mlskip.metadata.writer", "from mlskip.udf.connection import connect\n"),
        ("mlskip.verifier.crown", "def f():\n    from mlskip.skipper import planner\n"),
        ("mlskip.udf.model", "from ..tpch import paper\n"),
        ("mlskip.skipper.planner", "import mlskip.testing.selfcheck\n"),
        ("mlskip.tpch.generate", "from mlskip.model_zoo.train import train_dense\n"),
        ("mlskip.errors", "from mlskip import connect\n"),
    ],
)
def test_a_back_edge_is_reported(module, source):
    """The checker itself: each of these would be a new back edge."""
    assert back_edges(source, module)


def test_forward_edges_pass():
    assert not back_edges("from mlskip.errors import MlskipError\n", "mlskip.metadata.footer")
    assert not back_edges("from .crown import crown_bounds\n", "mlskip.verifier.cascade")
    assert not back_edges("import mlskip\nmlskip.connect()\n", "mlskip.tpch.e2e")

"""``python -m mlskip.tpch.report ROOT RUN...``: overview of several runs under ROOT."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import write_overview


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m mlskip.tpch.report")
    p.add_argument("root", type=Path)
    p.add_argument("runs", nargs="+", help="run folders under ROOT holding results.json(.gz)")
    a = p.parse_args(argv)
    print(write_overview(a.root, a.runs))


if __name__ == "__main__":
    main()

"""``python -m mlskip``: the same as the ``mlskip`` command."""

from mlskip.cli import main

main()

"""The ``churnwatch`` command line (the console script is ``apps.cli:main``); one module per subcommand,
the parser and :func:`main` in :mod:`apps.cli.entry`."""

from apps.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]

"""`python -m petard`: the same entry point as the `petard` console script."""

from petard.api.cli import entry

entry()

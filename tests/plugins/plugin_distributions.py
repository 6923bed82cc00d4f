"""Throwaway installed distributions for plugin-discovery tests (real dist-info on sys.path)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_distribution(directory: Path, dist_name: str, ep_name: str, module: str, source: str,
                       version: str = "1.2.3") -> None:
    """A throwaway installed distribution in `directory` (put it on sys.path / PYTHONPATH):
    module `module` with `source`, registered as entry point `ep_name` of group petard."""
    (directory / f"{module}.py").write_text(textwrap.dedent(source))
    # The directory name must escape '-' (importlib.metadata splits the name off at the first one).
    info = directory / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[petard]\n{ep_name} = {module}\n")

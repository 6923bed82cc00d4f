"""The built wheel installs one import name, petard, and nothing else into site-packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_only_the_petard_package(tmp_path):
    # Build from a copy: setuptools writes build metadata next to the sources it builds.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info",
                                                                 ".pytest_cache", ".hypothesis", "examples"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("petard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"petard", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for module in ("petard/__init__.py", "petard/__main__.py", "petard/api/cli.py", "petard/core/controller.py",
                   "petard/backends/unicorn/__init__.py", "petard/backends/kvm/__init__.py",
                   "petard/plugins/serial.py", "petard/guest/__init__.py"):
        assert module in names
    assert not any(name.startswith("petard/tests/") for name in names)
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "petard = petard.api.cli:entry" in zipfile.ZipFile(wheel).read(entry_points).decode()

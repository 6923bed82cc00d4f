"""The cache: offline rebuilds from downloaded packages, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from petard.guest.cache import MANIFEST_NAME, cache_dir, cached_artifacts, fetch


def test_initrd_recipe_change_rebuilds_offline_from_cached_debs(guest_artifacts, tmp_path, monkeypatch):
    real_root = cache_dir()
    manifest = json.loads((real_root / MANIFEST_NAME).read_text())
    (tmp_path / "debs").mkdir()
    for key in ("kernel_deb", "busybox_deb"):
        os.symlink(real_root / "debs" / manifest[key], tmp_path / "debs" / manifest[key])
    stale = dict(manifest, initrd_recipe="stale")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(stale))
    assert cached_artifacts(tmp_path) is None

    def no_network(*args, **kwargs):
        raise AssertionError("apt must not run when the packages are already downloaded")

    monkeypatch.setattr("petard.guest.apt.PrivateApt.ensure_lists", no_network)
    messages: list[str] = []
    rebuilt = fetch(root=tmp_path, progress=messages.append)
    assert rebuilt.initrd.read_bytes() == guest_artifacts.initrd.read_bytes()  # reproducible build
    assert rebuilt.kernel.read_bytes() == guest_artifacts.kernel.read_bytes()
    assert rebuilt.kernel.is_relative_to(tmp_path)
    assert cached_artifacts(tmp_path) == rebuilt
    assert any(message.startswith("built ") for message in messages)


def test_command_line_prints_the_paths(guest_artifacts):
    env = {**os.environ, "PETARD_CACHE": str(cache_dir())}
    for command in (["paths"], ["fetch", "--quiet"]):
        result = subprocess.run([sys.executable, "-m", "petard.guest", *command], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [f"kernel={guest_artifacts.kernel}", f"initrd={guest_artifacts.initrd}"]


def test_paths_without_a_cache_fails_helpfully(tmp_path):
    env = {**os.environ, "PETARD_CACHE": str(tmp_path / "empty")}
    result = subprocess.run([sys.executable, "-m", "petard.guest", "paths"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "python -m petard.guest fetch" in result.stderr

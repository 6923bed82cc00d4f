"""Fixtures for API tests: a petard process per test, nothing configured."""

from __future__ import annotations

import pytest


@pytest.fixture
def vmm(spawn):
    """A petard on the Unicorn backend, API up, nothing configured."""
    return spawn("--backend", "unicorn")


@pytest.fixture
def kernel_file(tmp_path):
    """A file standing in for a kernel image where only its readability matters (PUT-time checks)."""
    path = tmp_path / "vmlinux.bin"
    path.write_bytes(b"\0" * 4096)
    return str(path)

"""Fixtures for API tests: a real petard process per test, on a real Unix socket."""

from __future__ import annotations

import pytest

from petard_proc import PetardProcess


@pytest.fixture
def spawn(tmp_path):
    processes: list[PetardProcess] = []

    def start(*args: str, wait: bool = True, **kwargs) -> PetardProcess:
        process = PetardProcess(tmp_path, *args, **kwargs)
        processes.append(process)
        return process.wait_started() if wait else process

    yield start
    for process in processes:
        process.stop()


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

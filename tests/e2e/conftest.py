"""Fixtures for end-to-end tests: the real Debian guest, booted by a real petard process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from petard_proc import PetardProcess  # noqa: E402


@pytest.fixture(scope="session")
def guest():
    """Debian's arm64 kernel and the busybox initramfs (fetched into the cache on first use)."""
    from petard.guest import artifacts

    return artifacts()


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

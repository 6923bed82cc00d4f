"""Fixtures shared by the whole suite: real petard processes on real Unix sockets."""

from __future__ import annotations

import pytest

from petard_proc import PetardProcess


@pytest.fixture
def spawn(tmp_path):
    """Start ``python -m petard`` with the given flags; by default wait until its API answers."""
    processes: list[PetardProcess] = []

    def start(*args: str, wait: bool = True, **kwargs) -> PetardProcess:
        process = PetardProcess(tmp_path, *args, **kwargs)
        processes.append(process)
        return process.wait_started() if wait else process

    yield start
    for process in processes:
        process.stop()

"""Fixtures shared by the whole suite: real petard processes on real Unix sockets."""

from __future__ import annotations

import importlib.util
import logging

import pytest

from petard_proc import PetardProcess

if importlib.util.find_spec("unicorn") is not None:     # absent in tests/kvm_nested's emulated host
    import petard.backends.unicorn  # noqa: F401  (first: picks the libunicorn any test's `import unicorn` loads)


@pytest.fixture(autouse=True)
def _petard_logger_as_found():
    """A VmmLogger made by one test (it routes 'petard' logs to its own handler and stops
    propagation, as the process needs) must not hide log records from the next test's caplog."""
    logger = logging.getLogger("petard")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:] = handlers
    logger.propagate = propagate
    logger.setLevel(level)


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

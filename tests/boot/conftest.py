"""Fixtures for the boot tests: real guest memory and the real Debian guest kernel."""

from __future__ import annotations

import pytest

from petard.core import layout
from petard.core.memory import GuestMemory


@pytest.fixture(scope="session")
def guest_artifacts():
    """Debian's arm64 kernel + the busybox initrd, fetched into the petard cache on first use."""
    from petard.guest import artifacts

    return artifacts()


@pytest.fixture
def make_memory():
    """GuestMemory at DRAM_START of a given size in MiB, closed after the test."""
    created = []

    def make(mib: int) -> GuestMemory:
        memory = GuestMemory(layout.DRAM_START, mib * layout.MiB)
        created.append(memory)
        return memory

    yield make
    for memory in created:
        memory.close()

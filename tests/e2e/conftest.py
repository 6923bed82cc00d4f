"""Fixtures for end-to-end tests: the real Debian guest."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def guest():
    """Debian's arm64 kernel and the busybox initramfs (fetched into the cache on first use)."""
    from petard.guest import artifacts

    return artifacts()

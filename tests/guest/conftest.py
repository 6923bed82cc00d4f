"""Fixtures for the guest tooling tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def guest_artifacts():
    """Debian's arm64 kernel + the busybox initrd, fetched into the petard cache on first use."""
    from petard.guest import artifacts

    return artifacts()

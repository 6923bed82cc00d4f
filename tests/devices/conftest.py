"""Fixtures for device tests."""

from __future__ import annotations

import pytest

from .bench import Bench


@pytest.fixture
def bench():
    bench = Bench()
    yield bench
    bench.close()

"""The pytest plugin of petard's test kit (entry point ``petard`` in group ``pytest11``).

Fixtures:

``device_bench``
    A fresh `petard.testing.DeviceBench`, closed after the test.
``petard_guest``
    ``petard_guest(*devices, **boot_options)`` boots the small Linux guest with
    `petard.testing.GuestDevice`s attached and returns a `GuestVm`; every guest is stopped
    after the test. Backend: ``--petard-backend`` or ``PETARD_TEST_BACKEND`` (default
    unicorn). The guest's console is also written to ``console.log`` in the test's tmp_path.

Importing this module is cheap (no backend, no pydantic): pytest loads it in every run.
"""

from __future__ import annotations

import os

import pytest

from petard.core.backend import BACKEND_NAMES, EMULATION_BACKEND
from petard.testing.guest import BACKEND_ENV

BACKEND_OPTION = "--petard-backend"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("petard", "petard device test kit")
    group.addoption(BACKEND_OPTION, default=None, choices=BACKEND_NAMES,
                    help=f"vCPU backend for the petard_guest fixture "
                         f"(default: ${BACKEND_ENV} or {EMULATION_BACKEND})")


@pytest.fixture
def device_bench():
    from petard.testing.bench import DeviceBench

    bench = DeviceBench()
    yield bench
    bench.close()


@pytest.fixture
def petard_guest(request: pytest.FixtureRequest, tmp_path):
    from petard.testing.guest import GuestVm

    backend = request.config.getoption(BACKEND_OPTION) or os.environ.get(BACKEND_ENV)
    guests: list[GuestVm] = []

    def boot(*devices, **options) -> GuestVm:
        options.setdefault("backend", backend)
        options.setdefault("console_log", tmp_path / f"console{len(guests) or ''}.log")
        guest = GuestVm.boot(devices, **options)
        guests.append(guest)
        return guest

    yield boot
    for guest in guests:
        guest.close()

"""`UnicornBackend`: creates `UnicornVm`s, after proving once per process (the start-up
self-test) that this Unicorn build lets us recover exception syndromes."""

from __future__ import annotations

import threading

from petard.core.backend import Backend, MachineDescription

from . import libunicorn
from .syndrome import ExceptionDetailsReader, probe_exception_details_reader
from .vm import UnicornVm

_probe_lock = threading.Lock()
_probed_reader: ExceptionDetailsReader | None = None


def exception_details_reader() -> ExceptionDetailsReader:
    """The self-tested reader (runs the self-test on first use; raises UnicornSelfTestError)."""
    global _probed_reader
    with _probe_lock:
        if _probed_reader is None:
            _probed_reader = probe_exception_details_reader()
        return _probed_reader


class UnicornBackend(Backend):
    name = "unicorn"

    def __init__(self):
        libunicorn.warn_unless_patched()
        self.exception_details = exception_details_reader()

    def create_vm(self, machine: MachineDescription) -> UnicornVm:
        return UnicornVm(machine, self.exception_details)

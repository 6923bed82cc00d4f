"""Starting a machine for the controller: pick the backend, build, run it on its own thread.

Placeholder wiring until the machine builder lands: it reports why the chosen backend
cannot start.
"""

from __future__ import annotations

from typing import Callable

from petard.core import faults
from petard.core.backend import UnknownBackendError, get_backend


def make_starter(backend_name: str, boot_timer: bool = False):
    def start(resources, on_exit: Callable[[int], None]):
        try:
            get_backend(backend_name)
        except (UnknownBackendError, RuntimeError) as error:
            raise faults.VmmActionError(faults.start_error(str(error))) from None
        raise faults.VmmActionError(faults.start_error("the machine builder is not available yet"))

    return start

"""Host input for devices: read a file descriptor (stdin, a FIFO) on a helper thread and
deliver what arrives on the VM's thread, through the VM clock.

Device code runs on one thread only, so the reader never calls the device directly: each
chunk is posted with `clock.call_soon_threadsafe(deliver, chunk)`, which also wakes an idle
run loop.
"""

from __future__ import annotations

import os
import select
import threading
from typing import Callable

from petard.devices import VirtualClock

__all__ = ["InputPump"]

READ_CHUNK = 4096


class InputPump:
    """Copies bytes from `fd` to `deliver` (run on the VM's thread) until EOF or `stop()`."""

    def __init__(self, fd: int, deliver: Callable[[bytes], None], clock: VirtualClock, name: str) -> None:
        self._fd = fd
        self._deliver = deliver
        self._clock = clock
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._pump, name=f"{name} input", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the reader to finish and wait for it (it exits within one select wake-up)."""
        if self._stop_write >= 0:
            os.write(self._stop_write, b"x")
            if self._thread.is_alive():
                self._thread.join()
            os.close(self._stop_write)
            os.close(self._stop_read)
            self._stop_write = self._stop_read = -1

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_read], [], [])
            if self._stop_read in ready:
                return
            try:
                data = os.read(self._fd, READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            if not data:  # EOF: the writer went away
                return
            self._clock.call_soon_threadsafe(self._deliver, data)

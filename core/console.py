"""The host side of the serial console: whether stdin feeds the guest, and the terminal mode.

As upstream, the guest's serial input comes from stdin only when stdin is a terminal or a
FIFO. A terminal is put in raw mode while the guest runs (keys, Ctrl-C included, go to the
guest, as on a real serial line) and restored when the guest ends or the process exits.
"""

from __future__ import annotations

import atexit
import os
import stat
import sys
import termios
import tty


class HostConsole:
    def __init__(self, input_fd: int | None):
        self.input_fd = input_fd
        self._saved_mode: list | None = None

    @classmethod
    def for_stdin(cls) -> "HostConsole":
        try:
            fd = sys.stdin.fileno()
            mode = os.fstat(fd).st_mode
        except (AttributeError, OSError, ValueError):
            return cls(None)
        if os.isatty(fd) or stat.S_ISFIFO(mode):
            return cls(fd)
        return cls(None)

    def make_raw(self) -> None:
        if self.input_fd is None or not os.isatty(self.input_fd):
            return
        self._saved_mode = termios.tcgetattr(self.input_fd)
        tty.setraw(self.input_fd)
        atexit.register(self.restore)

    def restore(self) -> None:
        if self._saved_mode is not None and self.input_fd is not None:
            try:
                termios.tcsetattr(self.input_fd, termios.TCSADRAIN, self._saved_mode)
            except termios.error:
                pass
            self._saved_mode = None

"""The VMM's log, in Firecracker's line format and with its knobs.

A line reads ``<local time with ns> [<instance id>:<thread>[:<LEVEL>][:<file>:<line>]] <msg>``,
as upstream's ``logger/logging.rs`` writes it; tools that scrape Firecracker logs (for
``API server started.``, per-request lines, exit codes) read petard's the same way.
Configured by the CLI (``--log-path --level --show-level --show-log-origin --module``) and
by ``PUT /logger``. Built on the standard ``logging`` module: every petard module logs
through ``logging.getLogger("petard...")`` and this module formats and routes it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import IO

from petard.core import faults

ROOT_LOGGER = "petard"
DEFAULT_INSTANCE_ID = "anonymous-instance"
DEFAULT_LEVEL = "Info"

# Upstream level names (the API's LevelFilter) to Python levels, and Rust's Display of levels.
LEVELS = {
    "Off": logging.CRITICAL + 10,
    "Error": logging.ERROR,
    "Warning": logging.WARNING,
    "Info": logging.INFO,
    "Debug": logging.DEBUG,
    "Trace": 5,
}
_RUST_LEVEL_NAMES = {logging.ERROR: "ERROR", logging.WARNING: "WARN", logging.INFO: "INFO",
                     logging.DEBUG: "DEBUG", 5: "TRACE", logging.CRITICAL: "ERROR"}
_LEVEL_SPELLINGS = {"off": "Off", "trace": "Trace", "debug": "Debug", "info": "Info", "warn": "Warning",
                    "warning": "Warning", "error": "Error"}


def parse_level(text: str) -> str | None:
    """Upstream's ``LevelFilter::from_str``: case-insensitive, ``warn`` and ``warning`` alike."""
    return _LEVEL_SPELLINGS.get(text.lower())


# Python names its first thread MainThread; upstream's is "main".
_THREAD_NAMES = {"MainThread": "main"}


def local_time_ns(now_ns: int | None = None) -> str:
    """Upstream's ``LocalTime`` Display: ``2024-05-01T12:00:00.123456789`` in local time."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    seconds, nanoseconds = divmod(now_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds)) + f".{nanoseconds:09d}"


class FirecrackerFormatter(logging.Formatter):
    def __init__(self, instance_id: str, show_level: bool, show_origin: bool):
        super().__init__()
        self.instance_id = instance_id
        self.show_level = show_level
        self.show_origin = show_origin

    def format(self, record: logging.LogRecord) -> str:
        thread = _THREAD_NAMES.get(record.threadName, record.threadName or "-")
        level = f":{_RUST_LEVEL_NAMES.get(record.levelno, record.levelname)}" if self.show_level else ""
        origin = f":{record.pathname}:{record.lineno}" if self.show_origin else ""
        stamp = local_time_ns(int(record.created * 1e9))
        return f"{stamp} [{self.instance_id}:{thread}{level}{origin}] {record.getMessage()}"


class _ModuleFilter(logging.Filter):
    """Upstream's ``module`` filter: only records whose module path starts with it."""

    def __init__(self) -> None:
        super().__init__()
        self.prefix: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        return self.prefix is None or record.name.startswith(self.prefix) or record.module.startswith(self.prefix)


class _LineHandler(logging.Handler):
    """Writes whole lines to the target (stdout or a file/FIFO); counts what it could not write."""

    def __init__(self) -> None:
        super().__init__()
        self.target: IO[str] | None = None
        self.missed = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            stream = self.target or sys.stdout
            stream.write(line)
            stream.flush()
        except Exception:  # a full FIFO or a closed stdout must not take the VMM down
            self.missed += 1


class VmmLogger:
    """Owns the ``petard`` logger's format, level, target and module filter."""

    def __init__(self) -> None:
        self.instance_id = DEFAULT_INSTANCE_ID
        self.show_level = False
        self.show_origin = False
        self.level = DEFAULT_LEVEL
        self._lock = threading.Lock()
        self._handler = _LineHandler()
        self._filter = _ModuleFilter()
        self._handler.addFilter(self._filter)
        self._logger = logging.getLogger(ROOT_LOGGER)
        self._logger.propagate = False
        self._logger.handlers[:] = [self._handler]
        self._apply()

    @property
    def missed_log_count(self) -> int:
        return self._handler.missed

    def configure(
        self,
        *,
        instance_id: str | None = None,
        log_path: str | None = None,
        level: str | None = None,
        show_level: bool | None = None,
        show_origin: bool | None = None,
        module: str | None = None,
    ) -> None:
        """Apply settings; ``None`` keeps a setting, except ``level`` which resets to Info as upstream."""
        target = open_log_target(log_path) if log_path is not None else None
        with self._lock:
            if instance_id is not None:
                self.instance_id = instance_id
            self.level = parse_level(level) if level else DEFAULT_LEVEL
            if target is not None:
                self._handler.target = target
            if show_level is not None:
                self.show_level = show_level
            if show_origin is not None:
                self.show_origin = show_origin
            if module is not None:
                self._filter.prefix = module
            self._apply()

    def _apply(self) -> None:
        self._handler.setFormatter(FirecrackerFormatter(self.instance_id, self.show_level, self.show_origin))
        self._logger.setLevel(LEVELS[self.level])


def open_log_target(path: str) -> IO[str]:
    """Open a log or metrics destination as upstream does: append, non-blocking (FIFOs welcome)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
    except OSError as error:
        raise faults.VmmActionError(faults.logger_open_error(error)) from None
    return os.fdopen(fd, "w", buffering=1)


def get(name: str = "") -> logging.Logger:
    """The logger for a petard component (``get("vmm")`` → ``petard.vmm``)."""
    return logging.getLogger(f"{ROOT_LOGGER}.{name}" if name else ROOT_LOGGER)

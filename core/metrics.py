"""The VMM's metrics, written as newline-delimited JSON like upstream's ``logger/metrics.rs``.

Each flush writes one JSON object: ``utc_timestamp_ms`` plus groups of counters, using
upstream's group and key names where petard counts the same thing. Counters report what
happened since the previous flush (upstream's ``SharedIncMetric``); stored values such as
``api_server.process_startup_time_us`` are reported as set (``SharedStoreMetric``).
Flushed at InstanceStart, every 60 s, on ``FlushMetrics`` and at exit.
"""

from __future__ import annotations

import json
import threading
import time
from typing import IO

from petard.core import faults
from petard.core.logger import open_log_target

PERIODIC_FLUSH_SECONDS = 60

# Groups always present in a flush, so consumers find the keys they look for even at zero.
COUNTER_GROUPS = {
    "api_server": ["sync_response_fails", "sync_vmm_send_timeout_count"],
    "get_api_requests": ["instance_info_count", "machine_cfg_count", "mmds_count", "vmm_version_count"],
    "put_api_requests": [
        "actions_count", "actions_fails", "boot_source_count", "boot_source_fails", "drive_count",
        "drive_fails", "logger_count", "logger_fails", "machine_cfg_count", "machine_cfg_fails",
        "cpu_cfg_count", "cpu_cfg_fails", "metrics_count", "metrics_fails", "network_count",
        "network_fails", "mmds_count", "mmds_fails", "vsock_count", "vsock_fails", "pmem_count",
        "pmem_fails", "serial_count", "serial_fails", "entropy_count", "entropy_fails",
        "hotplug_memory_count", "hotplug_memory_fails",
    ],
    "patch_api_requests": [
        "drive_count", "drive_fails", "network_count", "network_fails", "machine_cfg_count",
        "machine_cfg_fails", "mmds_count", "mmds_fails", "pmem_count", "pmem_fails",
        "hotplug_memory_count", "hotplug_memory_fails",
    ],
    "logger": ["missed_metrics_count", "metrics_fails", "missed_log_count", "log_fails"],
    "vmm": ["panic_count"],
}


class Metrics:
    """Thread-safe counters and stored values, flushed as ndjson to a configured target."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[str, int]] = {
            group: dict.fromkeys(names, 0) for group, names in COUNTER_GROUPS.items()
        }
        self._stored: dict[str, dict[str, int]] = {}
        self._target: IO[str] | None = None
        self._timer: threading.Timer | None = None
        self.emit_id: str | None = None

    @property
    def configured(self) -> bool:
        return self._target is not None

    def configure(self, path: str, instance_id: str | None = None) -> None:
        """Open the destination once; upstream refuses a second ``PUT /metrics``."""
        if self._target is not None:
            raise faults.VmmActionError(faults.METRICS_ALREADY_INITIALIZED)
        try:
            self._target = open_log_target(path)
        except faults.VmmActionError:
            try:
                open(path, "a").close()
            except OSError as error:
                raise faults.VmmActionError(faults.metrics_open_error(error)) from None
            raise
        self.emit_id = instance_id
        self._schedule()

    def inc(self, group: str, name: str, amount: int = 1) -> None:
        with self._lock:
            counters = self._counters.setdefault(group, {})
            counters[name] = counters.get(name, 0) + amount

    def store(self, group: str, name: str, value: int) -> None:
        with self._lock:
            self._stored.setdefault(group, {})[name] = value

    def flush(self) -> bool:
        """Write one line; returns False when no target is configured."""
        with self._lock:
            if self._target is None:
                return False
            line: dict[str, object] = {"utc_timestamp_ms": time.time_ns() // 1_000_000}
            if self.emit_id:
                line["instance_id"] = self.emit_id
            for group, counters in self._counters.items():
                line[group] = dict(counters)
                for name in counters:
                    counters[name] = 0
            for group, values in self._stored.items():
                line.setdefault(group, {}).update(values)
            try:
                self._target.write(json.dumps(line) + "\n")
                self._target.flush()
            except OSError:
                self._counters["logger"]["missed_metrics_count"] += 1
            return True

    def _schedule(self) -> None:
        self._timer = threading.Timer(PERIODIC_FLUSH_SECONDS, self._periodic)
        self._timer.daemon = True
        self._timer.name = "fc_metrics"
        self._timer.start()

    def _periodic(self) -> None:
        self.flush()
        self._schedule()

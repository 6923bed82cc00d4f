"""A device attached to a real Linux guest: the small Debian guest booted in-process.

The guest-level half of petard's test kit. `GuestVm.boot` builds a machine like
``petard`` does at InstanceStart (serial console, RTC, the devices you attach after them),
runs it on a vCPU thread of the chosen backend (Unicorn by default, so it works on any host;
``PETARD_TEST_BACKEND=kvm`` on an aarch64 host with /dev/kvm) and gives the test:

* the console: `run(command)` types a shell command and returns its output and exit status,
  `wait_for(text)` waits for console output, `console` is everything so far;
* the devices, by name (`device(name)`), and `call(fn, *args)`, which runs `fn` on the VM's
  thread (device code is single-threaded: touch device state only through `call`).

The kernel and initramfs come from ``petard.guest.artifacts()`` (fetched into the cache on
first use). Boots take a few seconds on Unicorn; keep one guest per test.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from petard.core import layout
from petard.core.backend import EMULATION_BACKEND
from petard.core.device import Device, DevicePlacement
from petard.core.hookspecs import hookimpl

__all__ = ["BACKEND_ENV", "CommandResult", "GuestDevice", "GuestVm"]

BACKEND_ENV = "PETARD_TEST_BACKEND"
READY_MARKER = "PETARD-GUEST-READY"
BOOT_ARGS = "console=ttyS0 reboot=k panic=1"
CONSOLE_DEVICE = "serial"
INLINE_PLUGIN = "test-devices"
BOOT_TIMEOUT_S = 180.0
COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class GuestDevice:
    """A device to attach: a `Device` subclass or a type name some plugin provides, with its
    instance `name`, optional explicit `address`/`gsis`, and user `options` (validated by
    the type's `options_model`)."""

    type: str | type[Device]
    name: str
    options: Mapping[str, Any] | None = None
    address: int | None = None
    gsis: tuple[int, ...] | None = None


@dataclass(frozen=True)
class CommandResult:
    output: str
    status: int


class _ConsoleCapture:
    """The serial device's output sink: keeps everything and lets threads wait on it."""

    def __init__(self, mirror_path: str | os.PathLike | None) -> None:
        self._data = bytearray()
        self._changed = threading.Condition()
        self._mirror = open(mirror_path, "ab") if mirror_path is not None else None

    def write(self, data: bytes) -> int:
        with self._changed:
            self._data += data
            self._changed.notify_all()
        if self._mirror is not None:
            self._mirror.write(data)
            self._mirror.flush()
        return len(data)

    def flush(self) -> None:
        pass

    def text(self, start: int = 0) -> str:
        with self._changed:
            return self._data[start:].decode(errors="replace")

    def size(self) -> int:
        with self._changed:
            return len(self._data)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def close(self) -> None:
        if self._mirror is not None:
            self._mirror.close()


class _InlinePlugin:
    """Registers device classes handed directly to `GuestVm.boot` (no entry point needed)."""

    def __init__(self, types: Mapping[str, type[Device]]) -> None:
        self._types = dict(types)

    @hookimpl
    def petard_device_types(self) -> dict[str, type[Device]]:
        return dict(self._types)


class GuestVm:
    """A booted guest; build with `GuestVm.boot` and `close()` it (or use `with`)."""

    def __init__(self, machine: Any, console: _ConsoleCapture) -> None:
        self.machine = machine
        self._console = console
        self._commands = itertools.count(1)
        self.exit = None
        self._thread = threading.Thread(target=self._run, name=machine.vm.run_thread_name, daemon=True)
        self._thread.start()

    @classmethod
    def boot(cls, devices: Iterable[GuestDevice] = (), *, backend: str | None = None,
             mem_size_mib: int = 256, boot_args: str = BOOT_ARGS, console_log: str | os.PathLike | None = None,
             plugin_manager: Any = None, wait: bool = True, vcpu_count: int = 1,
             gic_version: int | None = None) -> GuestVm:
        """Boot the guest with `devices` attached after the serial console and RTC (each
        without an address takes the next virtio-mmio slot, without GSIs the next free
        ones); wait for the guest's shell unless `wait` is False. `gic_version` None lets
        the backend choose (KVM: what the host has)."""
        from petard.core.machine import Machine, MachineSpec
        from petard.core.plugins import create_plugin_manager
        from petard.guest import artifacts

        devices = list(devices)
        inline = {device.type.__name__: device.type for device in devices if not isinstance(device.type, str)}
        manager = plugin_manager or create_plugin_manager()
        if inline:
            manager.register_plugin(_InlinePlugin(inline), f"{INLINE_PLUGIN}-{id(devices):x}")
        guest = artifacts()
        console = _ConsoleCapture(console_log)
        placements = [
            DevicePlacement(CONSOLE_DEVICE, CONSOLE_DEVICE, layout.SERIAL_START, options={"output": console}),
            DevicePlacement("rtc", "rtc", layout.RTC_START),
        ]
        for device in devices:
            type_name = device.type if isinstance(device.type, str) else device.type.__name__
            placements.append(DevicePlacement(type_name, device.name, device.address, device.gsis,
                                              options=dict(device.options or {}), from_config=True))
        spec = MachineSpec(kernel_path=guest.kernel, initrd_path=guest.initrd, cmdline=boot_args,
                           mem_size_mib=mem_size_mib, devices=placements, vcpu_count=vcpu_count,
                           gic_version=gic_version,
                           backend=backend or os.environ.get(BACKEND_ENV) or EMULATION_BACKEND)
        try:
            machine = Machine.build(spec, manager)
        except Exception:
            console.close()
            raise
        vm = cls(machine, console)
        if wait:
            try:
                vm.wait_for(READY_MARKER, timeout=BOOT_TIMEOUT_S)
            except BaseException:
                vm.close()
                raise
        return vm

    def _run(self) -> None:
        try:
            self.exit = self.machine.run()
        except BaseException as error:  # reported by wait_for as the reason the guest stopped
            self.exit = error
            raise

    def __enter__(self) -> GuestVm:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # --- devices ----------------------------------------------------------------------

    def device(self, name: str) -> Device:
        return self.machine.device(name)

    def call(self, function: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run `function(*args)` on the VM's thread at its next safe point; return its result."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def task() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as error:  # hand every failure to the waiting test
                future.set_exception(error)

        self.machine.clock.call_soon_threadsafe(task)
        return future.result(timeout)

    # --- console ----------------------------------------------------------------------

    @property
    def console(self) -> str:
        return self._console.text()

    def send(self, text: str) -> None:
        """Type `text` on the guest's console."""
        serial = self.device(CONSOLE_DEVICE)
        self.machine.clock.call_soon_threadsafe(serial.feed, text.encode())

    def wait_for(self, text: str | re.Pattern, timeout: float = COMMAND_TIMEOUT_S, start: int = 0) -> re.Match | str:
        """Wait until console output from offset `start` contains `text` (a string or a
        compiled regex); return the match. Fails with the console's tail on timeout or exit."""
        pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
        found: list[re.Match] = []

        def seen() -> bool:
            match = pattern.search(self._console.text(start))
            if match:
                found.append(match)
            return bool(match) or not self._thread.is_alive()

        deadline = time.monotonic() + timeout
        while not found:
            if not self._console.wait(seen, min(1.0, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise AssertionError(f"no {pattern.pattern!r} on the console within {timeout}s; "
                                         f"console tail:\n{self.console[-3000:]}")
            elif not found:
                raise AssertionError(f"the guest stopped ({self.exit}) before {pattern.pattern!r}; "
                                     f"console tail:\n{self.console[-3000:]}")
        return found[0]

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT_S, check: bool = True) -> CommandResult:
        """Run a shell command in the guest; return its output (without the echoed command
        line) and exit status. With `check`, a non-zero status fails the test."""
        number = next(self._commands)
        # The marker is assembled by the shell, so the echoed command line never matches it.
        start = self._console.size()
        self.send(f"{command}; echo \"@@PETARD\"\"-DONE-{number}-$?@@\"\n")
        match = self.wait_for(re.compile(rf"@@PETARD-DONE-{number}-(\d+)@@"), timeout, start)
        text = self._console.text(start)[: match.start()]
        # The output starts after the shell's echo of the command line, which ends with the
        # unassembled marker (the echo may be wrapped or redrawn, its end is not).
        echo_end = text.rfind(f"-DONE-{number}-$?@@\"")
        if echo_end >= 0:
            newline = text.find("\n", echo_end)
            text = "" if newline < 0 else text[newline + 1:]
        output = text.replace("\r\n", "\n").strip("\n")
        result = CommandResult(output, int(match.group(1)))
        if check and result.status != 0:
            raise AssertionError(f"guest command {command!r} failed with status {result.status}:\n{output}")
        return result

    def close(self) -> None:
        """Stop the guest and release the machine."""
        if self._thread.is_alive():
            self.machine.vm.stop()
            self._thread.join(timeout=30)
        try:
            self.machine.close()
        finally:
            self._console.close()

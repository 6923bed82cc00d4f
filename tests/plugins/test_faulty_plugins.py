"""A plugin device that misbehaves does not take the VM down, and the error names the plugin.

Each test runs a real machine on the Unicorn backend: an assembled guest reads and writes a
faulty device, then a healthy one, then powers off. The faulty device raises in `mmio_read`
or `mmio_write`, answers something that is not an int, or an int too large for the access,
or fails in a timer callback. Overlapping windows make the machine refuse to build, naming
both devices and their plugins.
"""

from __future__ import annotations

import logging

import pytest
from guestasm.image import build_image

from petard.core import layout
from petard.core.backend import ExitReason
from petard.core.device import Device, DeviceCreationError, DevicePlacement
from petard.core.hookspecs import hookimpl
from petard.core.machine import Machine, MachineSpec
from petard.core.mmio import MmioOverlapError
from petard.core.plugins import PetardPluginManager

FAULTY_BASE = layout.virtio_mmio_address(0)
RECORDER_BASE = layout.virtio_mmio_address(1)
RECORDER_MAGIC = 0x600D
FAULTY_GOOD_VALUE = 7
GUEST_WRITE_VALUE = 0x1234
PLUGIN = "acme-faulty"

PROGRAM = r"""
entry:
    ldr x1, =FAULTY
    ldr x2, =RECORDER
    ldr w3, [x1]            // 1: read the faulty device
    str w3, [x2]
    ldr w4, =WRITE_VALUE
    str w4, [x1, #8]        // 2: write to it
    ldr w3, [x1]            // 3: read it again
    str w3, [x2]
    ldr w3, [x2]            // 4: the healthy device still answers
    str w3, [x2]
    system_off
"""


class Recorder(Device):
    """Reads give RECORDER_MAGIC; writes are recorded."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.values: list[int] = []

    def mmio_read(self, offset: int, size: int) -> int:
        return RECORDER_MAGIC

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.values.append(value)


class Faulty(Device):
    """Misbehaves as `mode` says."""

    def __init__(self, ctx, *, mode: str) -> None:
        super().__init__(ctx)
        self.mode = mode

    def start(self) -> None:
        if self.mode == "raise-in-timer":
            self.ctx.clock.call_later(0, self._explode)

    def _explode(self) -> None:
        raise RuntimeError("timer went off badly")

    def mmio_read(self, offset: int, size: int):
        answers = {
            "raise-read": lambda: 1 // 0,
            "returns-str": lambda: "seven",
            "returns-none": lambda: None,
            "returns-too-big": lambda: 1 << 40,
            "returns-negative": lambda: -1,
        }
        return answers.get(self.mode, lambda: FAULTY_GOOD_VALUE)()

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if self.mode == "raise-write":
            raise OSError(f"cannot write {value:#x}")


class Unbuildable(Device):
    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        raise LookupError("no calibration table")


class FaultyPlugin:
    @hookimpl
    def petard_device_types(self):
        return {"faulty": Faulty, "recorder": Recorder, "unbuildable": Unbuildable}


@pytest.fixture
def manager():
    manager = PetardPluginManager()
    manager.register_builtins()
    manager.register_plugin(FaultyPlugin(), PLUGIN)
    return manager


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[str]:
        return [record.getMessage() for record in self.records if record.levelno >= logging.ERROR]


@pytest.fixture
def petard_log():
    """What petard logged (its own handler: the VMM's logger does not propagate to caplog
    once a VmmLogger has been set up in this process)."""
    handler = _Records()
    logger = logging.getLogger("petard")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def image(tmp_path):
    return build_image(tmp_path, PROGRAM, FAULTY=FAULTY_BASE, RECORDER=RECORDER_BASE, WRITE_VALUE=GUEST_WRITE_VALUE)


def run(image, manager, mode):
    spec = MachineSpec(kernel_path=image, cmdline="", mem_size_mib=64, backend="unicorn", devices=[
        DevicePlacement("faulty", "bad0", FAULTY_BASE, options={"mode": mode}),
        DevicePlacement("recorder", "good0", RECORDER_BASE),
    ])
    machine = Machine.build(spec, manager)
    try:
        vm_exit = machine.run()
    finally:
        machine.close()
    return vm_exit, machine


@pytest.mark.parametrize("mode, first_read, cause", [
    ("raise-read", 0, "ZeroDivisionError: integer division or modulo by zero"),
    ("returns-str", 0, "TypeError: mmio_read returned str 'seven', not an int"),
    ("returns-none", 0, "TypeError: mmio_read returned NoneType None, not an int"),
    ("returns-too-big", 0, "ValueError: mmio_read returned 0x10000000000, which does not fit in 4 byte(s)"),
    ("returns-negative", 0, "ValueError: mmio_read returned -0x1, which does not fit in 4 byte(s)"),
    ("raise-write", FAULTY_GOOD_VALUE, "OSError: cannot write 0x1234"),
])
def test_a_failing_device_is_disabled_and_the_guest_runs_on(image, manager, petard_log, mode, first_read, cause):
    vm_exit, machine = run(image, manager, mode)
    assert vm_exit.reason is ExitReason.POWER_OFF, vm_exit.describe()
    # The faulty device read 0 once disabled; the healthy one kept answering.
    assert machine.device("good0").values == [first_read, 0, RECORDER_MAGIC]
    (region,) = [r for r in machine.bus.regions() if r.name == "bad0"]
    assert region.failed
    errors = petard_log.errors()
    assert len(errors) == 1  # logged once, not per access
    assert f"device 'bad0' (Faulty) of plugin '{PLUGIN}'" in errors[0] and cause in errors[0]
    assert "the device is disabled" in errors[0]


def test_a_failing_timer_callback_is_logged_with_its_plugin(image, manager, petard_log):
    vm_exit, machine = run(image, manager, "raise-in-timer")
    assert vm_exit.reason is ExitReason.POWER_OFF
    assert machine.device("good0").values == [FAULTY_GOOD_VALUE, FAULTY_GOOD_VALUE, RECORDER_MAGIC]
    messages = petard_log.errors()
    assert any(f"device 'bad0' of plugin '{PLUGIN}'" in m and "_explode" in m for m in messages), messages


def test_overlapping_windows_refuse_to_build_naming_both_plugins(image, manager):
    spec = MachineSpec(kernel_path=image, cmdline="", mem_size_mib=64, backend="unicorn", devices=[
        DevicePlacement("serial", "serial", layout.SERIAL_START, options={"output": None}),
        DevicePlacement("recorder", "good0", layout.SERIAL_START),
    ])
    with pytest.raises(MmioOverlapError) as error:
        Machine.build(spec, manager)
    assert str(error.value) == (
        f"device 'good0' (Recorder) of plugin '{PLUGIN}' at [{layout.SERIAL_START:#x}, {layout.SERIAL_START + 0x1000:#x}) "
        f"overlaps device 'serial' (Serial16550A) of plugin 'serial' at "
        f"[{layout.SERIAL_START:#x}, {layout.SERIAL_START + 0x1000:#x})")


def test_a_constructor_that_raises_is_named(image, manager):
    spec = MachineSpec(kernel_path=image, cmdline="", mem_size_mib=64, backend="unicorn",
                       devices=[DevicePlacement("unbuildable", "odd0")])
    with pytest.raises(DeviceCreationError) as error:
        Machine.build(spec, manager)
    assert str(error.value) == (f"device 'odd0' of type 'unbuildable' (plugin '{PLUGIN}') could not be created: "
                                "LookupError: no calibration table")

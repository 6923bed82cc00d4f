"""End to end: the Debian arm64 kernel boots on the Unicorn backend with the boot helper's
FDT/loader and initramfs, prints the guest-ready marker on the 8250 console and powers off
through PSCI SYSTEM_OFF, with GICv3 and with GICv2."""

import io
import threading
import time

import pytest

import petard.guest
from petard.core import layout
from petard.core.backend import ExitReason
from petard.core.boot.cmdline import guest_cmdline
from petard.core.device import DevicePlacement
from petard.core.machine import Machine, MachineSpec

BOOT_ARGS = f"console=ttyS0 reboot=k panic=1 {petard.guest.TEST_POWEROFF_ARG}"
BOOT_TIME_LIMIT_S = 120


class ConsoleCapture(io.RawIOBase):
    """The serial device's output: keeps the bytes and when the marker first appeared."""

    def __init__(self, marker: bytes):
        self.data = bytearray()
        self.marker = marker
        self.marker_time: float | None = None

    def writable(self) -> bool:
        return True

    def write(self, chunk) -> int:
        self.data += chunk
        if self.marker_time is None and self.marker in self.data[-len(chunk) - len(self.marker):]:
            self.marker_time = time.monotonic()
        return len(chunk)


@pytest.fixture(scope="module")
def guest():
    return petard.guest.artifacts()


@pytest.mark.parametrize("gic_version, vcpu_count", [(3, 1), (2, 1), (3, 2), (2, 2)])
def test_debian_kernel_boots_to_marker_and_powers_off(guest, gic_version, vcpu_count):
    console = ConsoleCapture(petard.guest.READY_MARKER.encode())
    spec = MachineSpec(
        kernel_path=guest.kernel, initrd_path=guest.initrd,
        cmdline=str(guest_cmdline(BOOT_ARGS)), gic_version=gic_version, mem_size_mib=256,
        vcpu_count=vcpu_count, backend="unicorn",
        devices=[DevicePlacement("serial", "serial", layout.SERIAL_START,
                                 options={"output": console}),
                 DevicePlacement("rtc", "rtc", layout.RTC_START)])
    started = time.monotonic()
    machine = Machine.build(spec)
    thread = threading.Thread(target=machine.run, daemon=True)
    thread.start()
    thread.join(BOOT_TIME_LIMIT_S)
    if thread.is_alive():
        machine.vm.stop()
        thread.join(10)
    text = console.data.decode(errors="replace")
    assert machine.exit is not None and machine.exit.reason is ExitReason.POWER_OFF, (
        (machine.exit.describe() if machine.exit else "no exit") + "\n" + text[-3000:])
    assert petard.guest.READY_MARKER in text
    assert "Root IRQ handler: gic_handle_irq" in text
    if gic_version == 3:
        assert "GICv3: CPU0: found redistributor 0" in text
    else:
        assert "GICv3" not in text
    assert "ttyS0 at MMIO 0x40002000" in text           # the 8250 driver found the UART
    assert "reboot: Power down" in text
    assert f"smp: Brought up 1 node, {vcpu_count} CPU" in text
    for failure in ("Oops", "BUG:", "Kernel panic", "Unable to handle"):
        assert failure not in text, text[-3000:]
    stats = machine.vm.stats()
    print(f"\nGICv{gic_version}, {vcpu_count} vCPU(s): marker after {console.marker_time - started:.2f} s, "
          f"exit after {time.monotonic() - started:.2f} s; {dict(stats)}")

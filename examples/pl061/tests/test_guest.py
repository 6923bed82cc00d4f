"""The PL061 driven by a real Linux guest (Debian's arm64 kernel, gpio-pl061 built in) through
GPIO sysfs, with the host on the other side of the pins."""

from __future__ import annotations

import re

import pytest

from petard.testing import GuestDevice

GPIO_SYSFS = "/sys/class/gpio"


class SysfsGpio:
    """The guest's view of one pin, through /sys/class/gpio, typed on its console."""

    def __init__(self, vm, chip_base: int, pin: int) -> None:
        self.vm = vm
        self.number = chip_base + pin
        self.path = f"{GPIO_SYSFS}/gpio{self.number}"

    def export(self, direction: str, edge: str | None = None) -> None:
        self.vm.run(f"echo {self.number} > {GPIO_SYSFS}/export")
        self.vm.run(f"echo {direction} > {self.path}/direction")
        if edge is not None:
            self.vm.run(f"echo {edge} > {self.path}/edge")

    def write(self, value: int) -> None:
        self.vm.run(f"echo {value} > {self.path}/value")

    def read(self) -> int:
        return int(self.vm.run(f"cat {self.path}/value").output)

    def interrupt_count(self) -> int:
        """The guest's count for this pin's interrupt (the gpiolib line of /proc/interrupts)."""
        line = self.vm.run("grep gpiolib /proc/interrupts").output
        match = re.match(r"\s*\d+:\s+(\d+)\s", line)
        assert match, line
        return int(match.group(1))


@pytest.fixture
def guest_with_gpio(petard_guest):
    vm = petard_guest(GuestDevice("pl061", "gpio0"))
    labels = vm.run(f"cat {GPIO_SYSFS}/gpiochip*/label").output.split()
    assert labels == [f"{vm.machine.devices[-1].base:x}.gpio"]  # the guest found our device and no other chip
    chip_base = int(vm.run(f"cat {GPIO_SYSFS}/gpiochip*/base").output)
    return vm, vm.device("gpio0"), chip_base


def test_guest_drives_a_pin_the_host_observes(guest_with_gpio):
    vm, gpio, chip_base = guest_with_gpio
    changes = []
    vm.call(gpio.add_listener, lambda pin, level: changes.append((pin, level)))
    led = SysfsGpio(vm, chip_base, 2)
    led.export("out")
    led.write(1)
    assert vm.call(gpio.level, 2) is True
    assert vm.call(lambda: gpio.levels) == 1 << 2
    led.write(0)
    assert vm.call(gpio.level, 2) is False
    assert vm.call(lambda: list(changes)) == [(2, True), (2, False)]


def test_host_drives_a_pin_and_the_guest_takes_the_interrupt(guest_with_gpio):
    vm, gpio, chip_base = guest_with_gpio
    button = SysfsGpio(vm, chip_base, 5)
    button.export("in", edge="rising")
    assert button.read() == 0 and button.interrupt_count() == 0
    assert vm.call(lambda: gpio.save_state()["enabled"]) == 1 << 5  # the driver unmasked pin 5

    vm.call(gpio.drive, 5, True)
    assert button.interrupt_count() == 1
    assert button.read() == 1
    assert vm.call(lambda: gpio.save_state()["raw_status"]) == 0  # the guest acknowledged (GPIOIC)

    vm.call(gpio.drive, 5, False)  # a falling edge is not an event for "rising"
    assert button.read() == 0 and button.interrupt_count() == 1
    vm.call(gpio.drive, 5, True)
    assert button.interrupt_count() == 2

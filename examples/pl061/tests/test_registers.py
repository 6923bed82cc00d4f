"""The PL061 at register level, on petard's device bench (no guest): what Linux's gpio-pl061
driver does to it, and what the host sees and drives."""

from __future__ import annotations

import pytest

from petard.core.boot.fdt import Cells
from petard.core.device import DeviceOptionsError
from petard_pl061 import Pl061
from petard_pl061 import registers as reg


@pytest.fixture
def gpio(device_bench):
    return device_bench.attach("pl061", name="gpio0")  # through the installed entry point


@pytest.fixture
def base(device_bench, gpio):
    return device_bench.base_of(gpio)


def data_address(base: int, pins: int) -> int:
    """The GPIODATA address whose mask selects `pins`."""
    return base + reg.DATA_START + (pins << reg.DATA_MASK_SHIFT)


def test_the_entry_point_provides_the_type(device_bench, gpio):
    assert type(gpio) is Pl061
    assert gpio.ctx.plugin == "pl061" and gpio.ctx.log.name == "petard.plugin.pl061"


def test_primecell_identification_matches_linux_amba_id(device_bench, base):
    periph = sum(device_bench.readl(base + reg.PERIPH_ID_BASE + 4 * i) << (8 * i) for i in range(4))
    cell = sum(device_bench.readl(base + reg.PRIMECELL_ID_BASE + 4 * i) << (8 * i) for i in range(4))
    assert (periph & 0x000FFFFF, cell) == (0x00041061, 0xB105F00D)  # gpio-pl061's amba_id


def test_outputs_drive_pins_through_the_masked_data_window(device_bench, gpio, base):
    seen = []
    gpio.add_listener(lambda pin, level: seen.append((pin, level)))
    device_bench.writeb(base + reg.DIR, 0b0000_0011)  # pins 0 and 1 are outputs
    device_bench.writeb(data_address(base, 0b01), 0xFF)  # mask: only pin 0 is written
    assert gpio.levels == 0b01 and gpio.level(0) and not gpio.level(1)
    device_bench.writeb(data_address(base, 0b11), 0b10)
    assert (gpio.level(0), gpio.level(1)) == (False, True)
    assert seen == [(0, True), (0, False), (1, True)]
    assert device_bench.readb(data_address(base, 0xFF)) == 0b10
    assert device_bench.readb(data_address(base, 0b01)) == 0  # the mask hides pin 1


def test_host_drives_inputs_the_guest_reads(device_bench, gpio, base):
    gpio.drive(5, True)
    assert device_bench.readb(data_address(base, 1 << 5)) == 1 << 5
    device_bench.writeb(base + reg.DIR, 1 << 5)  # now an output latching 0: the host's level is hidden
    assert not gpio.level(5)
    device_bench.writeb(base + reg.DIR, 0)
    assert gpio.level(5)


def test_rising_edge_interrupt_until_cleared(device_bench, gpio, base):
    pin = 1 << 3
    device_bench.writeb(base + reg.IEV, pin)  # rising (IS=0: edge)
    device_bench.writeb(base + reg.IE, pin)
    irq = device_bench.irq(gpio)
    gpio.drive(3, True)
    assert irq.level and device_bench.readb(base + reg.MIS) == pin
    gpio.drive(3, False)  # the falling edge is not an event; the latched one stays
    assert irq.level
    device_bench.writeb(base + reg.IC, pin)
    assert not irq.level and device_bench.readb(base + reg.RIS) == 0
    gpio.drive(3, False)
    assert irq.history == [True, False]


def test_falling_and_both_edges(device_bench, gpio, base):
    device_bench.writeb(base + reg.IE, 0b11)
    device_bench.writeb(base + reg.IBE, 0b10)  # pin 1: both edges; pin 0: falling (IEV=0)
    gpio.drive(0, True)
    gpio.drive(1, True)
    assert device_bench.readb(base + reg.RIS) == 0b10
    gpio.drive(0, False)
    assert device_bench.readb(base + reg.RIS) == 0b11


def test_masked_edge_is_latched_but_silent(device_bench, gpio, base):
    device_bench.writeb(base + reg.IEV, 1)
    gpio.drive(0, True)
    assert device_bench.readb(base + reg.RIS) == 1 and not device_bench.irq(gpio).level
    device_bench.writeb(base + reg.IE, 1)
    assert device_bench.irq(gpio).level


def test_level_sensitive_interrupt_follows_the_pin(device_bench, gpio, base):
    device_bench.writeb(base + reg.IS, 1)
    device_bench.writeb(base + reg.IEV, 1)  # high level
    device_bench.writeb(base + reg.IE, 1)
    irq = device_bench.irq(gpio)
    assert not irq.level
    gpio.drive(0, True)
    device_bench.writeb(base + reg.IC, 1)  # clearing does nothing while the level is there
    assert irq.level
    gpio.drive(0, False)
    assert not irq.level


def test_word_accesses_and_unknown_offsets(device_bench, gpio, base, caplog):
    device_bench.writel(base + reg.DIR, 0xFFFF_FF0F)
    assert device_bench.readl(base + reg.DIR) == 0x0F  # eight pins, eight bits
    assert device_bench.readl(base + 0x800) == 0
    assert "ignoring guest read" in caplog.text and "pl061" in caplog.text


def test_options_are_validated_by_the_plugin_model(device_bench):
    gpio = device_bench.attach("pl061", options={"initial_inputs": 0b1000_0001,
                                                 "line_names": ["led", "button", "", "", "", "", "", ""]})
    assert gpio.levels == 0b1000_0001
    with pytest.raises(DeviceOptionsError, match=r"plugin 'pl061'.*initial_inputs: Input should be less"):
        device_bench.attach("pl061", options={"initial_inputs": 256})
    with pytest.raises(DeviceOptionsError, match=r"line_names: Value error, needs exactly 8 names"):
        device_bench.attach("pl061", options={"line_names": ["led"]})
    with pytest.raises(DeviceOptionsError, match=r"colour: Extra inputs are not permitted"):
        device_bench.attach("pl061", options={"colour": "blue"})


def test_device_tree_node(device_bench):
    gpio = device_bench.attach(Pl061, gsis=(7,), options={"line_names": list("abcdefgh")})
    (node,) = gpio.fdt_nodes(0x4000_5000, gpio.ctx.irqs)
    assert node.name == "gpio@40005000"
    assert node.properties["compatible"] == ["arm,pl061", "arm,primecell"]
    assert node.properties["interrupts"] == Cells(0, 7, 4)  # SPI, GSI 7, level-high
    assert node.properties["#gpio-cells"] == Cells(2) and "gpio-controller" in node.properties
    assert node.properties["gpio-line-names"] == list("abcdefgh")


def test_state_survives_save_and_restore(device_bench, gpio, base):
    device_bench.writeb(base + reg.DIR, 0x0F)
    device_bench.writeb(data_address(base, 0xFF), 0x05)
    device_bench.writeb(base + reg.IEV, 0x80)
    device_bench.writeb(base + reg.IE, 0x80)
    gpio.drive(7, True)
    copy = device_bench.attach(Pl061)
    copy.restore_state(gpio.save_state())
    assert copy.save_state() == gpio.save_state() and copy.levels == gpio.levels == 0x85
    assert device_bench.irq(copy).level

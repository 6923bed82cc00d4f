"""MMIO round trip from a guest to a Python device plugin and back, on the Unicorn backend.

A bare-metal guest (assembled with binutils-aarch64-linux-gnu, wrapped as an arm64 Image and
booted by petard's real machine builder) runs three timed loops of N iterations each:

  1. ``ldr w3, [x1]`` from the device: a guest load that Unicorn turns into a call of the
     bus region, which calls the plugin's ``mmio_read`` (Python) and hands the value back;
  2. ``str w2, [x1, #4]`` to the device: the same for ``mmio_write``;
  3. ``ldr w3, [x4]`` from guest RAM: the same loop without MMIO, the loop's own cost.

The device (a ``petard.core.device.Device`` registered through a plugin, as third-party
devices are) notes the host clock when the guest writes its MARK register between loops
and counts every access, so the figure covers exactly the N accesses of each loop and the
count proves they all reached Python. Prints µs per access (goal: ≤ 3 µs per MMIO access).

    python benchmarks/mmio_roundtrip.py [--count 200000] [--repeat 5] [--gic-version 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from guestasm.image import build_image  # noqa: E402  (tests/ is on the path)

from petard.core import layout  # noqa: E402
from petard.core.backend import ExitReason  # noqa: E402
from petard.core.device import Device, DevicePlacement  # noqa: E402
from petard.core.hookspecs import hookimpl  # noqa: E402
from petard.core.machine import Machine, MachineSpec  # noqa: E402
from petard.core.plugins import PetardPluginManager  # noqa: E402

DEVICE_BASE = layout.virtio_mmio_address(0)
DATA = 0x0
WRITE_DATA = 0x4
MARK = 0x8
RAM_SCRATCH = layout.DRAM_START + 0x10_0000  # below the kernel image, unused by it

PROGRAM = r"""
entry:
    ldr x1, =DEVICE
    ldr x4, =RAM_SCRATCH
    str wzr, [x1, #MARK]        // t0
    ldr x2, =COUNT
1:  ldr w3, [x1, #DATA]         // loop 1: MMIO reads
    subs x2, x2, #1
    b.ne 1b
    str wzr, [x1, #MARK]        // t1
    ldr x2, =COUNT
2:  str w2, [x1, #WRITE_DATA]   // loop 2: MMIO writes
    subs x2, x2, #1
    b.ne 2b
    str wzr, [x1, #MARK]        // t2
    ldr x2, =COUNT
3:  ldr w3, [x4]                // loop 3: RAM reads (the loop's own cost)
    subs x2, x2, #1
    b.ne 3b
    str wzr, [x1, #MARK]        // t3
    system_off
"""


class Stopwatch(Device):
    """Answers reads with a constant, counts accesses, notes the time at each MARK write."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.reads = 0
        self.writes = 0
        self.marks: list[int] = []

    def mmio_read(self, offset: int, size: int) -> int:
        self.reads += 1
        return 0x1234

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset == MARK:
            self.marks.append(time.perf_counter_ns())
        else:
            self.writes += 1


class StopwatchPlugin:
    @hookimpl
    def petard_device_types(self):
        return {"stopwatch": Stopwatch}


def run_once(image: Path, count: int, gic_version: int) -> tuple[float, float, float]:
    manager = PetardPluginManager()
    manager.register_plugin(StopwatchPlugin(), "bench-stopwatch")
    spec = MachineSpec(kernel_path=image, cmdline="", mem_size_mib=64, gic_version=gic_version, backend="unicorn",
                       devices=[DevicePlacement("stopwatch", "stopwatch", DEVICE_BASE)])
    machine = Machine.build(spec, manager)
    try:
        vm_exit = machine.run()
    finally:
        machine.close()
    if vm_exit.reason is not ExitReason.POWER_OFF:
        raise SystemExit(f"the guest did not finish: {vm_exit.describe()}")
    device = machine.device("stopwatch")
    if (device.reads, device.writes, len(device.marks)) != (count, count, 4):
        raise SystemExit(f"expected {count} reads and writes, saw {device.reads} and {device.writes}")
    t0, t1, t2, t3 = device.marks
    return tuple((end - start) / count / 1000 for start, end in ((t0, t1), (t1, t2), (t2, t3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="accesses per loop (default 200000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the median is reported (default 5)")
    parser.add_argument("--gic-version", type=int, choices=(2, 3), default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="petard-mmio-bench-") as tmp:
        image = build_image(Path(tmp), PROGRAM, DEVICE=DEVICE_BASE, RAM_SCRATCH=RAM_SCRATCH, COUNT=args.count,
                            DATA=DATA, WRITE_DATA=WRITE_DATA, MARK=MARK)
        runs = []
        for run in range(args.repeat):
            read_us, write_us, ram_us = run_once(image, args.count, args.gic_version)
            runs.append((read_us, write_us, ram_us))
            print(f"run {run + 1}: MMIO read {read_us:.3f} us, MMIO write {write_us:.3f} us, "
                  f"RAM read loop {ram_us:.4f} us per iteration")
    read_us, write_us, ram_us = (statistics.median(column) for column in zip(*runs))
    print(f"median of {args.repeat} x {args.count} accesses (Unicorn, Python plugin device): "
          f"read {read_us:.3f} us, write {write_us:.3f} us per round trip; "
          f"loop without MMIO {ram_us:.4f} us; goal <= 3 us: {'met' if max(read_us, write_us) <= 3 else 'NOT met'}")


if __name__ == "__main__":
    main()

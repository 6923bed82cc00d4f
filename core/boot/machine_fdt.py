"""The machine's device tree, node for node as Firecracker's ``arch/aarch64/fdt.rs`` emits it.

Order under the root: ``cpus`` (``cpu@N``), ``memory@ram``, ``chosen``, ``intc``
(GICv3 with its ITS child ``msic``, or GICv2 ``arm,gic-400``), ``timer``,
``apb-pclk``, ``psci``, then the device nodes given by the caller, in the order
given. Upstream emits rtc, uart, then virtio-mmio nodes sorted by address (then
vmgenid / vmclock); the machine builder passes them in that order.

Not emitted: the per-CPU cache nodes upstream copies from the host's sysfs
(optional for the guest), and ``pci@...`` (PCI is not supported).

Entry points::

    machine_fdt(vcpu_mpidrs=[0], mem_size=128 << 20, cmdline="console=ttyS0",
                gic_version=3, initrd=Region(start, size), device_nodes=[...]) -> bytes
    machine_tree(...same arguments...) -> FdtNode   # the tree, for inspection
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from petard.core import layout
from petard.core.boot.fdt import EMPTY, Cells, FdtError, FdtNode, U64, build_dtb
from petard.core.boot.fdt_bindings import ppi_interrupt
from petard.core.layout import Region

GIC_VERSIONS = (2, 3)
RNG_SEED_SIZE = 64
TIMER_PPIS = (
    layout.TIMER_SECURE_PHYS_PPI,
    layout.TIMER_NONSECURE_PHYS_PPI,
    layout.TIMER_VIRT_PPI,
    layout.TIMER_HYP_PPI,
)


def machine_fdt(
    *,
    vcpu_mpidrs: Sequence[int],
    mem_size: int,
    cmdline: str,
    gic_version: int,
    initrd: Region | None = None,
    device_nodes: Sequence[FdtNode] = (),
    rng_seed: bytes | None = None,
) -> bytes:
    """The DTB to place at ``layout.fdt_address(mem_size)`` (FdtError if over FDT_MAX_SIZE).

    ``vcpu_mpidrs``: MPIDR_EL1 of each vCPU, in vCPU order (their count is the vCPU count).
    ``initrd``: where the initrd was loaded (address, size), or None.
    ``rng_seed``: the ``/chosen/rng-seed`` bytes; 64 fresh random bytes when None.
    """
    blob = build_dtb(
        machine_tree(
            vcpu_mpidrs=vcpu_mpidrs,
            mem_size=mem_size,
            cmdline=cmdline,
            gic_version=gic_version,
            initrd=initrd,
            device_nodes=device_nodes,
            rng_seed=rng_seed,
        )
    )
    if len(blob) > layout.FDT_MAX_SIZE:
        raise FdtError(f"device tree of {len(blob)} bytes exceeds FDT_MAX_SIZE ({layout.FDT_MAX_SIZE})")
    return blob


def machine_tree(
    *,
    vcpu_mpidrs: Sequence[int],
    mem_size: int,
    cmdline: str,
    gic_version: int,
    initrd: Region | None = None,
    device_nodes: Sequence[FdtNode] = (),
    rng_seed: bytes | None = None,
) -> FdtNode:
    """The machine's device tree as an :class:`FdtNode` (see :func:`machine_fdt`)."""
    if not vcpu_mpidrs:
        raise FdtError("a machine needs at least one vCPU")
    root = FdtNode(
        "",
        {
            "compatible": "linux,dummy-virt",
            "#address-cells": Cells(2),
            "#size-cells": Cells(2),
            "interrupt-parent": Cells(layout.PHANDLE_GIC),
        },
    )
    root.add(cpus_node(vcpu_mpidrs))
    root.add(memory_node(mem_size))
    root.add(chosen_node(cmdline, initrd, rng_seed))
    root.add(gic_node(gic_version, len(vcpu_mpidrs)))
    root.add(timer_node())
    root.add(apb_clock_node())
    root.add(psci_node())
    for node in device_nodes:
        root.add(node)
    return root


def cpus_node(vcpu_mpidrs: Sequence[int]) -> FdtNode:
    cpus = FdtNode("cpus", {"#address-cells": Cells(2), "#size-cells": Cells(0)})
    for index, mpidr in enumerate(vcpu_mpidrs):
        cpus.add(
            FdtNode(
                f"cpu@{index:x}",
                {
                    "device_type": "cpu",
                    "compatible": "arm,arm-v8",
                    "enable-method": "psci",
                    "reg": U64(mpidr & layout.MPIDR_FDT_REG_MASK),
                },
            )
        )
    return cpus


def memory_node(mem_size: int) -> FdtNode:
    region = layout.memory_node_region(mem_size)
    return FdtNode("memory@ram", {"device_type": "memory", "reg": U64(region.base, region.size)})


def chosen_node(cmdline: str, initrd: Region | None, rng_seed: bytes | None) -> FdtNode:
    chosen = FdtNode("chosen", {"bootargs": cmdline})
    if initrd is not None:
        chosen.set("linux,initrd-start", U64(initrd.base))
        chosen.set("linux,initrd-end", U64(initrd.end))
    chosen.set("linux,pci-probe-only", Cells(1))
    seed = os.urandom(RNG_SEED_SIZE) if rng_seed is None else bytes(rng_seed)
    if not seed:
        raise FdtError("rng-seed must not be empty")
    chosen.set("rng-seed", seed)
    return chosen


def gic_node(gic_version: int, n_vcpus: int) -> FdtNode:
    if gic_version == 3:
        dist = layout.gicv3_distributor_region()
        redist = layout.gicv3_redistributor_region(n_vcpus)
        compatible, regions, maintenance_ppi = "arm,gic-v3", (dist, redist), layout.GICV3_MAINTENANCE_PPI
    elif gic_version == 2:
        dist = layout.gicv2_distributor_region()
        cpu = layout.gicv2_cpu_interface_region()
        compatible, regions, maintenance_ppi = "arm,gic-400", (dist, cpu), layout.GICV2_MAINTENANCE_PPI
    else:
        raise FdtError(f"GIC version must be one of {GIC_VERSIONS}, not {gic_version!r}")
    intc = FdtNode(
        "intc",
        {
            "compatible": compatible,
            "interrupt-controller": EMPTY,
            "#interrupt-cells": Cells(3),
            "reg": U64(*(value for region in regions for value in region)),
            "phandle": Cells(layout.PHANDLE_GIC),
            "#address-cells": Cells(2),
            "#size-cells": Cells(2),
            "ranges": EMPTY,
            "interrupts": ppi_interrupt(maintenance_ppi),
        },
    )
    if gic_version == 3:
        its = layout.gicv3_its_region(n_vcpus)
        intc.add(
            FdtNode(
                "msic",
                {
                    "compatible": "arm,gic-v3-its",
                    "msi-controller": EMPTY,
                    "phandle": Cells(layout.PHANDLE_MSI),
                    "reg": U64(its.base, its.size),
                },
            )
        )
    return intc


def timer_node() -> FdtNode:
    interrupts = Cells(*(cell for ppi in TIMER_PPIS for cell in ppi_interrupt(ppi)))
    return FdtNode(
        "timer",
        {"compatible": "arm,armv8-timer", "always-on": EMPTY, "interrupts": interrupts},
    )


def apb_clock_node() -> FdtNode:
    return FdtNode(
        "apb-pclk",
        {
            "compatible": "fixed-clock",
            "#clock-cells": Cells(0),
            "clock-frequency": Cells(layout.APB_CLOCK_HZ),
            "clock-output-names": "clk24mhz",
            "phandle": Cells(layout.PHANDLE_APB_CLOCK),
        },
    )


def psci_node() -> FdtNode:
    return FdtNode("psci", {"compatible": "arm,psci-0.2", "method": "hvc"})

"""The interrupt controller's state in architectural terms, the same for every backend.

A backend fills a `GicState` from its own controller (the in-kernel vGIC's device attributes
on KVM, petard's emulated GIC on Unicorn) and loads one back. It holds what the GIC
architecture (IHI 0048 for v2, IHI 0069 for v3) says software can observe:

  * per interrupt: enabled, pending, active, priority, edge- or level-triggered, its group;
    SPIs in the distributor, each CPU's SGIs and PPIs in its redistributor (v3) or in the
    distributor's banked registers (v2), with the CPUs that sent each pending SGI (v2);
  * per SPI: where it goes (v3: GICD_IROUTER, v2: a GICD_ITARGETSR CPU mask);
  * the distributor's group enables (GICD_CTLR.EnableGrp0/1);
  * per CPU interface: enabled, priority mask, binary point, EOI mode, and the priorities
    of its active interrupts, in the order they were taken;
  * v3: whether each redistributor is asleep (GICR_WAKER.ProcessorSleep).

The pending state of a level-triggered interrupt follows its input line; lines are driven
again by their devices when they are connected to the restored controller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from petard.core.arch import gic

_PRIVATE = gic.PRIVATE_INTID_COUNT


@dataclass
class IrqState:
    enabled: bool = False
    pending: bool = False
    active: bool = False
    priority: int = 0
    edge: bool = False              # GICD_ICFGR: edge-triggered (SGIs always are)
    group1: bool = False            # GICD_IGROUPR / GICR_IGROUPR0


@dataclass
class GicCpuState:
    private: list[IrqState] = field(default_factory=lambda: [IrqState(edge=intid < gic.SGI_COUNT)
                                                             for intid in range(_PRIVATE)])
    # v2: per SGI, the CPUs whose request is pending (GICD_SPENDSGIR); empty on v3.
    sgi_sources: list[list[int]] = field(default_factory=lambda: [[] for _ in range(gic.SGI_COUNT)])
    interface_enabled: bool = False     # ICC_IGRPEN1_EL1.Enable / GICC_CTLR.Enable
    priority_mask: int = 0              # ICC_PMR_EL1 / GICC_PMR
    binary_point: int = 0               # ICC_BPR1_EL1 / GICC_BPR
    eoi_mode_split: bool = False        # ICC_CTLR_EL1.EOImode / GICC_CTLR.EOImodeNS
    active_priorities: list[int] = field(default_factory=list)     # in the order taken
    redistributor_asleep: bool = True   # v3: GICR_WAKER.ProcessorSleep


@dataclass
class GicState:
    version: int                        # 2 or 3
    irq_count: int                      # INTIDs 0 .. irq_count - 1
    distributor_group_enables: int = 0  # GICD_CTLR: bit 0 EnableGrp0, bit 1 EnableGrp1
    spis: list[IrqState] = field(default_factory=list)          # INTID 32 + i
    spi_routes: list[int] = field(default_factory=list)         # v3: GICD_IROUTER, v2: CPU mask
    cpus: list[GicCpuState] = field(default_factory=list)

    @classmethod
    def reset(cls, version: int, irq_count: int, cpu_count: int) -> GicState:
        """The state of a controller no software has touched yet."""
        spi_count = irq_count - _PRIVATE
        return cls(version, irq_count, spis=[IrqState() for _ in range(spi_count)],
                   spi_routes=[0 if version == 3 else 1] * spi_count,
                   cpus=[GicCpuState() for _ in range(cpu_count)])

    def irq(self, cpu: int, intid: int) -> IrqState:
        return self.cpus[cpu].private[intid] if intid < _PRIVATE else self.spis[intid - _PRIVATE]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GicState:
        values = dict(data)
        values["spis"] = [IrqState(**irq) for irq in values.get("spis", [])]
        values["cpus"] = [GicCpuState(**{**cpu, "private": [IrqState(**irq) for irq in cpu["private"]]})
                          for cpu in values.get("cpus", [])]
        return cls(**values)

"""Device interrupts on KVM: the backend's interrupt sink drives the in-kernel vGIC's SPI
inputs with KVM_IRQ_LINE (read back through the vGIC's distributor registers).

Runs inside the emulated aarch64 host (tests/kvm_nested); skipped anywhere without KVM.
"""

import unittest

from petard.backends.kvm import KvmBackend
from petard.backends.kvm import kvm_abi as abi
from petard.core.backend import GicVersion

from kvm_testing import host_gic, make_machine, requires_kvm

GICD_ISPENDR, GICD_ICPENDR, GICD_ICFGR = 0x200, 0x280, 0xC00


@requires_kvm
class KvmInterruptTest(unittest.TestCase):
    def test_irq_line_makes_the_spi_pending_in_the_vgic(self):
        description, _ = make_machine("write_byte", host_gic())
        vm = KvmBackend().create_vm(description)
        self.addCleanup(vm.close)
        intid = 32 + 5
        register = 4 * (intid // 32)            # same offsets on GICv2 and GICv3 distributors
        bit = 1 << (intid % 32)
        group = abi.KVM_DEV_ARM_VGIC_GRP_DIST_REGS
        pending = lambda: vm.vgic.device.get_attr(group, GICD_ISPENDR + register) & bit
        self.assertEqual(pending(), 0)
        # SPIs reset edge-triggered (GICD_ICFGR 0b10): a rising edge latches them pending
        self.assertEqual((vm.vgic.device.get_attr(group, GICD_ICFGR + 4 * (intid // 16)) >> (2 * (intid % 16))) & 3, 2)
        vm.interrupt_sink.set_irq_level(intid, True)
        self.assertEqual(pending(), bit)
        vm.interrupt_sink.set_irq_level(intid, False)
        self.assertEqual(pending(), bit)          # latched until the guest acknowledges it
        # Userspace clears it as a save/restore would: GICv3 takes the exact pending state
        # through ISPENDR (its ICPENDR ignores userspace writes), GICv2 write-1-to-clear.
        if vm.gic_version == GicVersion.V3:
            vm.vgic.device.set_attr(group, GICD_ISPENDR + register, 0)
        else:
            vm.vgic.device.set_attr(group, GICD_ICPENDR + register, bit)
        self.assertEqual(pending(), 0)
        other = intid + 1
        vm.interrupt_sink.set_irq_level(other, True)
        self.assertEqual(pending(), 0, "only the raised INTID becomes pending")


if __name__ == "__main__":
    unittest.main()

"""The ioctl numbers and struct sizes of `kvm_abi` against the values measured on a real
arm64 kernel (printed by a C program from <linux/kvm.h>; see the nested-KVM notes §2).
Runs everywhere: no KVM needed."""

import unittest

from petard.backends.kvm import kvm_abi as abi

MEASURED_IOCTLS = {
    "KVM_GET_API_VERSION": 0xAE00, "KVM_CREATE_VM": 0xAE01, "KVM_CHECK_EXTENSION": 0xAE03,
    "KVM_GET_VCPU_MMAP_SIZE": 0xAE04, "KVM_SET_USER_MEMORY_REGION": 0x4020AE46,
    "KVM_CREATE_VCPU": 0xAE41, "KVM_ARM_PREFERRED_TARGET": 0x8020AEAF,
    "KVM_ARM_VCPU_INIT": 0x4020AEAE, "KVM_SET_ONE_REG": 0x4010AEAC, "KVM_GET_ONE_REG": 0x4010AEAB,
    "KVM_RUN": 0xAE80, "KVM_CREATE_DEVICE": 0xC00CAEE0, "KVM_SET_DEVICE_ATTR": 0x4018AEE1,
}


class KvmAbiTest(unittest.TestCase):
    def test_ioctl_numbers_match_the_kernel(self):
        for name, number in MEASURED_IOCTLS.items():
            self.assertEqual(getattr(abi, name), number, name)

    def test_core_register_ids(self):
        self.assertEqual(abi.core_register_x(0), 0x6030000000100000)
        self.assertEqual(abi.REG_PC, 0x6030000000100040)
        self.assertEqual(abi.REG_PSTATE, 0x6030000000100042)
        self.assertEqual(abi.REG_MPIDR_EL1, 0x603000000013C005)

    def test_kvm_run_unions(self):
        self.assertEqual(abi.kvm_run_mmio.size, 8 + 8 + 4 + 1)
        phys, data, length, is_write = abi.kvm_run_mmio.unpack_from(
            bytes(32) + (0x4000_3000).to_bytes(8, "little") + b"A" + bytes(7) + (1).to_bytes(4, "little") + b"\1",
            abi.KVM_RUN_EXIT_UNION_OFFSET)
        self.assertEqual((phys, data[:1], length, is_write), (0x4000_3000, b"A", 1, 1))

    def test_spi_irq_line_encoding(self):
        # KVM_ARM_IRQ_TYPE_SPI in bits 24-27, the INTID (not the GSI) in bits 0-15
        self.assertEqual(abi.spi_irq_line(32), 0x0100_0020)
        self.assertEqual(abi.spi_irq_line(127), 0x0100_007F)


if __name__ == "__main__":
    unittest.main()

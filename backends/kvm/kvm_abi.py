"""The arm64 KVM userspace ABI: ioctl numbers, constants and struct layouts.

Every name is spelled as in <linux/kvm.h> and <asm/kvm.h> (arm64) so that it can be looked
up there; ioctl numbers are built with the kernel's own _IO/_IOR/_IOW/_IOWR encoding from
the struct sizes below. Struct layouts are `struct.Struct`s (little-endian, natural
alignment spelled out). Only the standard library is used: `fcntl.ioctl` on the fds,
`mmap` for `struct kvm_run`. Nothing here opens a device or keeps state.
"""

from __future__ import annotations

import struct

# --- ioctl encoding (include/uapi/asm-generic/ioctl.h) ---------------------------------

_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _IOC(direction: int, kind: int, nr: int, size: int) -> int:
    return (direction << _IOC_DIRSHIFT) | (kind << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) \
        | (size << _IOC_SIZESHIFT)


def _IO(kind: int, nr: int) -> int:
    return _IOC(_IOC_NONE, kind, nr, 0)


def _IOR(kind: int, nr: int, layout: struct.Struct) -> int:
    return _IOC(_IOC_READ, kind, nr, layout.size)


def _IOW(kind: int, nr: int, layout: struct.Struct) -> int:
    return _IOC(_IOC_WRITE, kind, nr, layout.size)


def _IOWR(kind: int, nr: int, layout: struct.Struct) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, kind, nr, layout.size)


# --- struct layouts ---------------------------------------------------------------------

# struct kvm_userspace_memory_region { u32 slot; u32 flags; u64 guest_phys_addr;
#                                      u64 memory_size; u64 userspace_addr; }
kvm_userspace_memory_region = struct.Struct("<IIQQQ")
# struct kvm_irq_level { u32 irq; u32 level; }   (the irq/status union is a u32)
kvm_irq_level = struct.Struct("<II")
# struct kvm_one_reg { u64 id; u64 addr; }
kvm_one_reg = struct.Struct("<QQ")
# struct kvm_vcpu_init { u32 target; u32 features[7]; }
KVM_VCPU_INIT_FEATURE_WORDS = 7
kvm_vcpu_init = struct.Struct("<I7I")
# struct kvm_create_device { u32 type; u32 fd; u32 flags; }
kvm_create_device = struct.Struct("<III")
# struct kvm_device_attr { u32 flags; u32 group; u64 attr; u64 addr; }
kvm_device_attr = struct.Struct("<IIQQ")
# struct kvm_signal_mask { u32 len; u8 sigset[]; }  (the ioctl size covers the header only)
kvm_signal_mask = struct.Struct("<I")
KERNEL_SIGSET_BYTES = 8     # the kernel's sigset_t on arm64: 64 signals
# struct kvm_mp_state { u32 mp_state; }
kvm_mp_state = struct.Struct("<I")

# --- ioctls -------------------------------------------------------------------------------

KVMIO = 0xAE
KVM_API_VERSION = 12

# /dev/kvm
KVM_GET_API_VERSION = _IO(KVMIO, 0x00)
KVM_CREATE_VM = _IO(KVMIO, 0x01)
KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04)
# VM fd
KVM_CREATE_VCPU = _IO(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, kvm_userspace_memory_region)
KVM_IRQ_LINE = _IOW(KVMIO, 0x61, kvm_irq_level)
KVM_ARM_PREFERRED_TARGET = _IOR(KVMIO, 0xAF, kvm_vcpu_init)
KVM_CREATE_DEVICE = _IOWR(KVMIO, 0xE0, kvm_create_device)
# device fd
KVM_SET_DEVICE_ATTR = _IOW(KVMIO, 0xE1, kvm_device_attr)
KVM_GET_DEVICE_ATTR = _IOW(KVMIO, 0xE2, kvm_device_attr)
KVM_HAS_DEVICE_ATTR = _IOW(KVMIO, 0xE3, kvm_device_attr)
# vCPU fd
KVM_RUN = _IO(KVMIO, 0x80)
KVM_SET_SIGNAL_MASK = _IOW(KVMIO, 0x8B, kvm_signal_mask)
KVM_GET_MP_STATE = _IOR(KVMIO, 0x98, kvm_mp_state)
KVM_SET_MP_STATE = _IOW(KVMIO, 0x99, kvm_mp_state)
KVM_GET_ONE_REG = _IOW(KVMIO, 0xAB, kvm_one_reg)
KVM_SET_ONE_REG = _IOW(KVMIO, 0xAC, kvm_one_reg)
KVM_ARM_VCPU_INIT = _IOW(KVMIO, 0xAE, kvm_vcpu_init)

# --- capabilities (KVM_CHECK_EXTENSION) -------------------------------------------------

KVM_CAP_USER_MEMORY = 3
KVM_CAP_NR_VCPUS = 9
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_ONE_REG = 70
KVM_CAP_DEVICE_CTRL = 89
KVM_CAP_ARM_PSCI_0_2 = 102
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_ARM_VM_IPA_SIZE = 165
KVM_CAP_ARM_IRQ_LINE_LAYOUT_2 = 174
KVM_CAP_SYSTEM_EVENT_DATA = 215

# --- struct kvm_run (the mmap of a vCPU fd) ----------------------------------------------

# u8 request_interrupt_window; u8 immediate_exit; u8 padding1[6]; u32 exit_reason; ...
KVM_RUN_IMMEDIATE_EXIT_OFFSET = 1
KVM_RUN_EXIT_REASON_OFFSET = 8
kvm_run_exit_reason = struct.Struct("<I")
KVM_RUN_EXIT_UNION_OFFSET = 32
# union member `mmio`: u64 phys_addr; u8 data[8]; u32 len; u8 is_write;
kvm_run_mmio = struct.Struct("<Q8sIB")
KVM_RUN_MMIO_DATA_OFFSET = KVM_RUN_EXIT_UNION_OFFSET + 8
# exit_reason and the `mmio` member in one unpack from offset 0 (the vCPU loop's hot path),
# with the data as a little-endian u64: (exit_reason, phys_addr, data, len, is_write)
kvm_run_exit_and_mmio = struct.Struct("<8xI20xQQIB")
assert kvm_run_exit_and_mmio.size == KVM_RUN_EXIT_UNION_OFFSET + kvm_run_mmio.size
# union member `system_event`: u32 type; u32 ndata; u64 data[16];
kvm_run_system_event = struct.Struct("<II")
KVM_RUN_SYSTEM_EVENT_DATA_OFFSET = KVM_RUN_EXIT_UNION_OFFSET + 8
KVM_SYSTEM_EVENT_MAX_DATA = 16
# union member `fail_entry`: u64 hardware_entry_failure_reason; u32 cpu;
kvm_run_fail_entry = struct.Struct("<QI")
# union member `internal`: u32 suberror; u32 ndata; u64 data[16];
kvm_run_internal = struct.Struct("<II")
# union member `arm_nisv`: u64 esr_iss; u64 fault_ipa;
kvm_run_arm_nisv = struct.Struct("<QQ")

# exit_reason values
KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_IO = 2
KVM_EXIT_HYPERCALL = 3
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_MMIO = 6
KVM_EXIT_IRQ_WINDOW_OPEN = 7
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_SYSTEM_EVENT = 24
KVM_EXIT_ARM_NISV = 28

EXIT_REASON_NAMES = {value: name for name, value in globals().items()
                     if name.startswith("KVM_EXIT_") and isinstance(value, int)}

# system_event.type values
KVM_SYSTEM_EVENT_SHUTDOWN = 1
KVM_SYSTEM_EVENT_RESET = 2
KVM_SYSTEM_EVENT_CRASH = 3

# kvm_mp_state.mp_state values used on arm64
KVM_MP_STATE_RUNNABLE = 0
KVM_MP_STATE_STOPPED = 5

# --- arm64 vCPU init (asm/kvm.h) -----------------------------------------------------------

KVM_ARM_TARGET_GENERIC_V8 = 5
KVM_ARM_VCPU_POWER_OFF = 0      # feature bit numbers in features[0]
KVM_ARM_VCPU_EL1_32BIT = 1
KVM_ARM_VCPU_PSCI_0_2 = 2
KVM_ARM_VCPU_PMU_V3 = 3

# --- arm64 register ids (KVM_GET/SET_ONE_REG) ---------------------------------------------

KVM_REG_ARM64 = 0x6000000000000000
KVM_REG_SIZE_SHIFT = 52
KVM_REG_SIZE_MASK = 0x00F0000000000000
KVM_REG_SIZE_U32 = 0x0020000000000000
KVM_REG_SIZE_U64 = 0x0030000000000000
KVM_REG_SIZE_U128 = 0x0040000000000000
KVM_REG_ARM_COPROC_SHIFT = 16
KVM_REG_ARM_CORE = 0x0010 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SYSREG = 0x0013 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SYSREG_OP0_SHIFT = 14
KVM_REG_ARM64_SYSREG_OP1_SHIFT = 11
KVM_REG_ARM64_SYSREG_CRN_SHIFT = 7
KVM_REG_ARM64_SYSREG_CRM_SHIFT = 3
KVM_REG_ARM64_SYSREG_OP2_SHIFT = 0

# struct kvm_regs { struct user_pt_regs regs { u64 regs[31]; u64 sp; u64 pc; u64 pstate; };
#                   u64 sp_el1; u64 elr_el1; u64 spsr[KVM_NR_SPSR];
#                   struct user_fpsimd_state fp_regs { __uint128_t vregs[32]; u32 fpsr; u32 fpcr; }; }
# (fp_regs is 16-byte aligned: offsets checked with aarch64-linux-gnu-gcc against <asm/kvm.h>)
USER_PT_REGS_SP_OFFSET = 31 * 8             # SP_EL0
USER_PT_REGS_PC_OFFSET = 32 * 8
USER_PT_REGS_PSTATE_OFFSET = 33 * 8
KVM_REGS_SP_EL1_OFFSET = 272
KVM_REGS_ELR_EL1_OFFSET = 280
KVM_REGS_SPSR_OFFSET = 288                  # spsr[KVM_SPSR_EL1], KVM_SPSR_EL1 = 0
KVM_REGS_VREGS_OFFSET = 336
KVM_REGS_FPSR_OFFSET = 848
KVM_REGS_FPCR_OFFSET = 852


def KVM_REG_ARM_CORE_REG(offset_in_kvm_regs: int, size: int = KVM_REG_SIZE_U64) -> int:
    """Id of the core register at byte `offset_in_kvm_regs` of struct kvm_regs."""
    return KVM_REG_ARM64 | size | KVM_REG_ARM_CORE | (offset_in_kvm_regs // 4)


def register_size(reg_id: int) -> int:
    """Bytes a KVM_GET/SET_ONE_REG of `reg_id` transfers."""
    return 1 << ((reg_id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)


def ARM64_SYS_REG(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    return (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG
            | (op0 << KVM_REG_ARM64_SYSREG_OP0_SHIFT) | (op1 << KVM_REG_ARM64_SYSREG_OP1_SHIFT)
            | (crn << KVM_REG_ARM64_SYSREG_CRN_SHIFT) | (crm << KVM_REG_ARM64_SYSREG_CRM_SHIFT)
            | (op2 << KVM_REG_ARM64_SYSREG_OP2_SHIFT))


def core_register_x(n: int) -> int:
    return KVM_REG_ARM_CORE_REG(8 * n)


REG_SP = KVM_REG_ARM_CORE_REG(USER_PT_REGS_SP_OFFSET)
REG_PC = KVM_REG_ARM_CORE_REG(USER_PT_REGS_PC_OFFSET)
REG_PSTATE = KVM_REG_ARM_CORE_REG(USER_PT_REGS_PSTATE_OFFSET)
REG_SP_EL1 = KVM_REG_ARM_CORE_REG(KVM_REGS_SP_EL1_OFFSET)
REG_ELR_EL1 = KVM_REG_ARM_CORE_REG(KVM_REGS_ELR_EL1_OFFSET)
REG_SPSR_EL1 = KVM_REG_ARM_CORE_REG(KVM_REGS_SPSR_OFFSET)
REG_FPSR = KVM_REG_ARM_CORE_REG(KVM_REGS_FPSR_OFFSET, KVM_REG_SIZE_U32)
REG_FPCR = KVM_REG_ARM_CORE_REG(KVM_REGS_FPCR_OFFSET, KVM_REG_SIZE_U32)
REG_MPIDR_EL1 = ARM64_SYS_REG(3, 0, 0, 0, 5)


def core_register_v(n: int) -> int:
    """FP/SIMD register Vn (128 bits)."""
    return KVM_REG_ARM_CORE_REG(KVM_REGS_VREGS_OFFSET + 16 * n, KVM_REG_SIZE_U128)


# The generic timer (asm/kvm.h). KVM_REG_ARM_TIMER_CNT and _CVAL carry each other's
# system-register encodings: a historical slip the ABI keeps.
KVM_REG_ARM_TIMER_CTL = ARM64_SYS_REG(3, 3, 14, 3, 1)
KVM_REG_ARM_TIMER_CNT = ARM64_SYS_REG(3, 3, 14, 3, 2)
KVM_REG_ARM_TIMER_CVAL = ARM64_SYS_REG(3, 3, 14, 0, 2)
KVM_REG_ARM_PTIMER_CTL = ARM64_SYS_REG(3, 3, 14, 2, 1)
KVM_REG_ARM_PTIMER_CVAL = ARM64_SYS_REG(3, 3, 14, 2, 2)

# --- in-kernel vGIC devices ---------------------------------------------------------------

KVM_CREATE_DEVICE_TEST = 1
KVM_DEV_TYPE_ARM_VGIC_V2 = 5
KVM_DEV_TYPE_ARM_VGIC_V3 = 7
KVM_DEV_TYPE_ARM_VGIC_ITS = 8

KVM_DEV_ARM_VGIC_GRP_ADDR = 0
KVM_DEV_ARM_VGIC_GRP_DIST_REGS = 1
KVM_DEV_ARM_VGIC_GRP_CPU_REGS = 2
KVM_DEV_ARM_VGIC_GRP_NR_IRQS = 3
KVM_DEV_ARM_VGIC_GRP_CTRL = 4
KVM_DEV_ARM_VGIC_GRP_REDIST_REGS = 5
KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS = 6
KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO = 7
KVM_DEV_ARM_VGIC_CTRL_INIT = 0
KVM_DEV_ARM_VGIC_CPUID_SHIFT = 32           # v2: attr = vcpu_index << 32 | offset
KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT = 32        # v3: attr = Aff3.Aff2.Aff1.Aff0 << 32 | offset


def vgic_v3_mpidr_field(mpidr: int) -> int:
    """The attr's mpidr field: Aff3 in bits 63:56, Aff2, Aff1, Aff0 in 39:32."""
    packed = ((mpidr >> 32) & 0xFF) << 24 | (mpidr & 0xFF_FFFF)
    return packed << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT

KVM_VGIC_V2_ADDR_TYPE_DIST = 0
KVM_VGIC_V2_ADDR_TYPE_CPU = 1
KVM_VGIC_V3_ADDR_TYPE_DIST = 2
KVM_VGIC_V3_ADDR_TYPE_REDIST = 3

# --- KVM_IRQ_LINE encoding on arm64 ---------------------------------------------------------

KVM_ARM_IRQ_TYPE_SHIFT = 24
KVM_ARM_IRQ_VCPU_SHIFT = 16
KVM_ARM_IRQ_NUM_SHIFT = 0
KVM_ARM_IRQ_TYPE_CPU = 0
KVM_ARM_IRQ_TYPE_SPI = 1
KVM_ARM_IRQ_TYPE_PPI = 2


def spi_irq_line(intid: int) -> int:
    """kvm_irq_level.irq for a shared peripheral interrupt (INTID 32 and up)."""
    return (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (intid << KVM_ARM_IRQ_NUM_SHIFT)

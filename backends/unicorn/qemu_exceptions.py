"""QEMU's internal exception numbers, as Unicorn passes them to UC_HOOK_INTR callbacks.

These are not architectural: they are QEMU's `EXCP_*` values (target/arm/cpu.h) that
Unicorn 2.1.4 hands to the interrupt hook instead of entering the guest's vector table.
"""

EXCP_UDEF = 1               # undefined instruction (also: unknown system register, HVC with SCR_EL3.HCE=0)
EXCP_SWI = 2                # SVC
EXCP_PREFETCH_ABORT = 3     # instruction abort
EXCP_DATA_ABORT = 4
EXCP_IRQ = 5
EXCP_FIQ = 6
EXCP_BKPT = 7               # BRK
EXCP_HVC = 11
EXCP_SMC = 13

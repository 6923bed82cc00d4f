"""Exception Syndrome Register (ESR_ELx) layout and exception classes (Arm ARM D17.2.37)."""

ESR_EC_SHIFT = 26
ESR_EC_MASK = 0x3F
ESR_IL = 1 << 25            # 32-bit instruction length
ESR_ISS_MASK = 0x1FF_FFFF

# Exception classes.
EC_UNKNOWN = 0x00
EC_WFX = 0x01
EC_SVC64 = 0x15
EC_HVC64 = 0x16
EC_SMC64 = 0x17
EC_SYS64 = 0x18             # trapped MSR/MRS/system instruction
EC_IABT_LOW = 0x20          # instruction abort from a lower exception level
EC_IABT_CUR = 0x21
EC_PC_ALIGN = 0x22
EC_DABT_LOW = 0x24          # data abort from a lower exception level
EC_DABT_CUR = 0x25
EC_SP_ALIGN = 0x26
EC_SERROR = 0x2F
EC_BRK64 = 0x3C

# ISS of SVC/HVC/SMC: the 16-bit immediate.
ISS_IMM16_MASK = 0xFFFF

# ISS of data aborts.
ISS_DABT_ISV = 1 << 24
ISS_DABT_WNR = 1 << 6       # write, not read
ISS_DABT_FSC_MASK = 0x3F    # fault status code

# Fault status codes (DFSC/IFSC).
FSC_TRANSLATION_L0 = 0x04
FSC_TRANSLATION_L1 = 0x05
FSC_TRANSLATION_L2 = 0x06
FSC_TRANSLATION_L3 = 0x07
FSC_ALIGNMENT = 0x21


def make_esr(ec: int, iss: int = 0, il: bool = True) -> int:
    return (ec << ESR_EC_SHIFT) | (ESR_IL if il else 0) | (iss & ESR_ISS_MASK)


def exception_class(esr: int) -> int:
    return (esr >> ESR_EC_SHIFT) & ESR_EC_MASK


def iss(esr: int) -> int:
    return esr & ESR_ISS_MASK


EC_NAMES = {
    EC_UNKNOWN: "unknown", EC_WFX: "WFI/WFE", EC_SVC64: "SVC", EC_HVC64: "HVC",
    EC_SMC64: "SMC", EC_SYS64: "MSR/MRS trap", EC_IABT_LOW: "instruction abort (lower EL)",
    EC_IABT_CUR: "instruction abort", EC_PC_ALIGN: "PC alignment", EC_DABT_LOW:
    "data abort (lower EL)", EC_DABT_CUR: "data abort", EC_SP_ALIGN: "SP alignment",
    EC_SERROR: "SError", EC_BRK64: "BRK",
}

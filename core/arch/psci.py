"""PSCI (Arm DEN 0022) function identifiers, return codes and version numbers used by petard."""

# Function ids (SMC32 for the 0x84 range, SMC64 for the 0xC4 range).
PSCI_VERSION = 0x8400_0000
PSCI_CPU_SUSPEND_32 = 0x8400_0001
PSCI_CPU_SUSPEND_64 = 0xC400_0001
PSCI_CPU_OFF = 0x8400_0002
PSCI_CPU_ON_32 = 0x8400_0003
PSCI_CPU_ON_64 = 0xC400_0003
PSCI_AFFINITY_INFO_32 = 0x8400_0004
PSCI_AFFINITY_INFO_64 = 0xC400_0004
PSCI_MIGRATE_INFO_TYPE = 0x8400_0006
PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009
PSCI_FEATURES = 0x8400_000A

# Return codes (as signed 32-bit values; the caller sees them sign-extended in x0).
PSCI_RET_SUCCESS = 0
PSCI_RET_NOT_SUPPORTED = -1
PSCI_RET_INVALID_PARAMETERS = -2
PSCI_RET_DENIED = -3
PSCI_RET_ALREADY_ON = -4
PSCI_RET_ON_PENDING = -5
PSCI_RET_INTERNAL_FAILURE = -6
PSCI_RET_NOT_PRESENT = -7
PSCI_RET_DISABLED = -8
PSCI_RET_INVALID_ADDRESS = -9

# AFFINITY_INFO results.
AFFINITY_ON = 0
AFFINITY_OFF = 1
AFFINITY_ON_PENDING = 2

# MIGRATE_INFO_TYPE: "Trusted OS not present or does not require migration".
MIGRATE_INFO_TOS_NOT_PRESENT = 2

# The version petard's emulated firmware reports: 1.0 (major << 16 | minor).
PSCI_VERSION_1_0 = (1 << 16) | 0


def to_register(value: int) -> int:
    """A (possibly negative) PSCI return value as the 64-bit register content."""
    return value & 0xFFFF_FFFF_FFFF_FFFF

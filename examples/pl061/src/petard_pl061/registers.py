"""The PL061's register map (ARM DDI 0190B, "PrimeCell GPIO (PL061) Technical Reference Manual")."""

PIN_COUNT = 8
PIN_MASK = (1 << PIN_COUNT) - 1

# GPIODATA is a 256-word window: address bits [9:2] of an access select which pins it
# reads or writes (bit n of the mask = pin n), so one store can touch one pin atomically.
DATA_START = 0x000
DATA_END = 0x3FC
DATA_MASK_SHIFT = 2

DIR = 0x400  # direction: 1 = output
IS = 0x404  # interrupt sense: 1 = level, 0 = edge
IBE = 0x408  # interrupt on both edges
IEV = 0x40C  # interrupt event: 1 = rising edge / high level
IE = 0x410  # interrupt mask: 1 = enabled
RIS = 0x414  # raw interrupt status (read-only)
MIS = 0x418  # masked interrupt status (read-only)
IC = 0x41C  # interrupt clear, write 1s (write-only)
AFSEL = 0x420  # hardware control select (no alternate functions here)

# PrimeCell identification: PeriphID0-3 at 0xFE0-0xFEC, PCellID0-3 at 0xFF0-0xFFC, one
# byte of each 32-bit ID per register. Linux's AMBA bus matches "arm,pl061" on 0x00041061.
PERIPH_ID = 0x00041061
PRIMECELL_ID = 0xB105F00D
PERIPH_ID_BASE = 0xFE0
PRIMECELL_ID_BASE = 0xFF0
ID_REGISTERS = {
    **{PERIPH_ID_BASE + 4 * i: (PERIPH_ID >> (8 * i)) & 0xFF for i in range(4)},
    **{PRIMECELL_ID_BASE + 4 * i: (PRIMECELL_ID >> (8 * i)) & 0xFF for i in range(4)},
}

# Linux accesses the PL061 with readb/writeb; 32-bit accesses are answered too.
ACCESS_SIZES = (1, 2, 4)

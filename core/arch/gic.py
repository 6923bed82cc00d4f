"""GIC architecture numbers (GICv2: IHI 0048B, GICv3: IHI 0069): register offsets, bits, INTIDs.

Offsets are from the start of each frame (distributor, redistributor RD/SGI frames,
GICv2 CPU interface). The GICv3 CPU interface is system registers: see `sysregs.ICC_*`.
"""

# INTID ranges.
SGI_COUNT = 16
PRIVATE_INTID_COUNT = 32         # SGIs + PPIs, banked per CPU
SPURIOUS_INTID = 1023

IDLE_PRIORITY = 0xFF             # running priority with nothing active

# Distributor (both versions unless marked).
GICD_CTLR = 0x000
GICD_TYPER = 0x004
GICD_IIDR = 0x008
GICD_TYPER2 = 0x00C              # v3
GICD_IGROUPR = 0x080
GICD_ISENABLER = 0x100
GICD_ICENABLER = 0x180
GICD_ISPENDR = 0x200
GICD_ICPENDR = 0x280
GICD_ISACTIVER = 0x300
GICD_ICACTIVER = 0x380
GICD_IPRIORITYR = 0x400
GICD_ITARGETSR = 0x800           # v2
GICD_ICFGR = 0xC00
GICD_IGRPMODR = 0xD00            # v3
GICD_SGIR = 0xF00                # v2
GICD_CPENDSGIR = 0xF10           # v2
GICD_SPENDSGIR = 0xF20           # v2
GICD_IROUTER = 0x6000            # v3, 8 bytes per INTID (SPIs only)
GICD_PIDR2 = 0xFFE8              # v3

GICD_CTLR_ENABLE_GRP0 = 1 << 0
GICD_CTLR_ENABLE_GRP1 = 1 << 1   # v3 with DS=1 (v2: bit 0 enables the distributor)
GICD_CTLR_ARE = 1 << 4           # v3: affinity routing
GICD_CTLR_DS = 1 << 6            # v3: single security state
GICD_CTLR_RWP = 1 << 31          # v3: register write pending

GICD_TYPER_CPU_NUMBER_SHIFT = 5
GICD_TYPER_ID_BITS_SHIFT = 19    # v3: IDbits - 1
GICD_TYPER_ID_BITS_SPIS_ONLY = 9  # 10 bits of INTID (no LPIs)
GICD_TYPER_RSS = 1 << 26         # v3: SGIs can target Aff0 values 0-255 (range selector)
GICV2_MAX_CPUS = 8               # v2 target lists and ITARGETSR are 8-bit CPU masks

GIC_PIDR2_ARCH_GICV3 = 0x3B      # ArchRev 3 in bits [7:4]

ICFGR_EDGE = 0b10                # per-INTID 2-bit field, bit 1 set = edge-triggered

# GICD_SGIR (v2).
SGIR_TARGET_FILTER_SHIFT = 24
SGIR_TARGET_LIST_SHIFT = 16
SGIR_FILTER_LIST = 0
SGIR_FILTER_ALL_BUT_SELF = 1
SGIR_FILTER_SELF = 2
SGIR_INTID_MASK = 0xF

# GICv3 redistributor: two 64 KiB frames per CPU.
GICR_FRAME_SIZE = 0x1_0000
GICR_STRIDE = 2 * GICR_FRAME_SIZE
GICR_SGI_BASE = GICR_FRAME_SIZE
GICR_CTLR = 0x0000
GICR_IIDR = 0x0004
GICR_TYPER = 0x0008              # 64-bit
GICR_STATUSR = 0x0010
GICR_WAKER = 0x0014
GICR_PROPBASER = 0x0070
GICR_PENDBASER = 0x0078
GICR_PIDR2 = 0xFFE8
# SGI frame registers mirror the distributor's first words (offsets within GICR_SGI_BASE).
GICR_IGROUPR0 = GICD_IGROUPR
GICR_ISENABLER0 = GICD_ISENABLER
GICR_ICENABLER0 = GICD_ICENABLER
GICR_ISPENDR0 = GICD_ISPENDR
GICR_ICPENDR0 = GICD_ICPENDR
GICR_ISACTIVER0 = GICD_ISACTIVER
GICR_ICACTIVER0 = GICD_ICACTIVER
GICR_IPRIORITYR0 = GICD_IPRIORITYR
GICR_ICFGR0 = GICD_ICFGR
GICR_IGRPMODR0 = GICD_IGRPMODR

GICR_TYPER_LAST = 1 << 4
GICR_TYPER_PROCESSOR_NUMBER_SHIFT = 8
GICR_TYPER_AFFINITY_SHIFT = 32
GICR_WAKER_PROCESSOR_SLEEP = 1 << 1
GICR_WAKER_CHILDREN_ASLEEP = 1 << 2

# GICv2 CPU interface.
GICC_CTLR = 0x00
GICC_PMR = 0x04
GICC_BPR = 0x08
GICC_IAR = 0x0C
GICC_EOIR = 0x10
GICC_RPR = 0x14
GICC_HPPIR = 0x18
GICC_ABPR = 0x1C
GICC_APR0 = 0xD0
GICC_IIDR = 0xFC
GICC_DIR = 0x1000
GICC_CTLR_ENABLE = 1 << 0
GICC_CTLR_EOI_MODE = 1 << 9      # EOImodeNS: EOIR only drops priority, DIR deactivates
GICC_IAR_CPUID_SHIFT = 10
GICC_IAR_INTID_MASK = 0x3FF
GICC_IIDR_GICV2 = 0x0202_143B    # ARM, architecture version 2

# GICv3 CPU interface system-register fields.
ICC_CTLR_EOI_MODE = 1 << 1
ICC_CTLR_PRI_BITS_SHIFT = 8
ICC_CTLR_A3V = 1 << 15
ICC_CTLR_RSS = 1 << 18           # the CPU interface honours ICC_SGI1R_EL1.RS
ICC_SRE_SRE = 1 << 0
ICC_SRE_DFB = 1 << 1
ICC_SRE_DIB = 1 << 2
ICC_IGRPEN_ENABLE = 1 << 0
ICC_IAR_INTID_MASK = 0xFF_FFFF
ICC_SGI1R_TARGET_LIST_MASK = 0xFFFF
ICC_SGI1R_AFF1_SHIFT = 16
ICC_SGI1R_INTID_SHIFT = 24
ICC_SGI1R_AFF2_SHIFT = 32
ICC_SGI1R_IRM = 1 << 40
ICC_SGI1R_RS_SHIFT = 44          # range selector: the target list covers Aff0 16*RS..16*RS+15
ICC_SGI1R_RS_MASK = 0xF
ICC_SGI1R_AFF3_SHIFT = 48
ICC_SGI1R_TARGETS_PER_RANGE = 16

# Implemented priority bits (as KVM's vGIC): 5, so priorities are multiples of 8.
PRIORITY_BITS = 5
PRIORITY_MASK = (0xFF << (8 - PRIORITY_BITS)) & 0xFF

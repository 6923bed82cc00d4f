"""Numbers from the virtio 1.2 specification that the transport, the queues and the
devices share: MMIO register offsets, status bits, feature bits, ring layout.

Everything here is a spec (or Linux uapi) constant; nothing is petard policy except
`MAX_QUEUE_SIZE`, which is Firecracker's limit.
"""

from __future__ import annotations

# --- virtio-mmio register map (spec 4.2.2), offsets inside the device's window ----------------
MAGIC_VALUE = 0x000
VERSION = 0x004
DEVICE_ID = 0x008
VENDOR_ID = 0x00C
DEVICE_FEATURES = 0x010
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_READY = 0x044
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090  # the available ring
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0  # the used ring
QUEUE_DEVICE_HIGH = 0x0A4
CONFIG_GENERATION = 0x0FC
CONFIG_SPACE = 0x100  # device-specific configuration starts here

REGISTER_ACCESS_SIZE = 4  # registers below CONFIG_SPACE are 32 bits and read only whole

MMIO_MAGIC = 0x7472_6976  # "virt" little-endian
MMIO_VERSION_MODERN = 2
VENDOR_ID_NONE = 0  # Firecracker reports 0

# --- device status (spec 2.1) -----------------------------------------------------------------
STATUS_INIT = 0x00
STATUS_ACKNOWLEDGE = 0x01
STATUS_DRIVER = 0x02
STATUS_DRIVER_OK = 0x04
STATUS_FEATURES_OK = 0x08
STATUS_DEVICE_NEEDS_RESET = 0x40
STATUS_FAILED = 0x80

# --- interrupt status bits (spec 4.2.2) -------------------------------------------------------
INTERRUPT_VRING = 0x1
INTERRUPT_CONFIG = 0x2

# --- feature bits (spec 6) ---------------------------------------------------------------------
F_INDIRECT_DESC = 28
F_RING_EVENT_IDX = 29
F_VERSION_1 = 32
FEATURE_PAGE_BITS = 32  # DeviceFeaturesSel / DriverFeaturesSel select 32-bit pages

# --- split virtqueue layout (spec 2.7) ---------------------------------------------------------
DESCRIPTOR_SIZE = 16  # le64 addr, le32 len, le16 flags, le16 next
DESC_F_NEXT = 0x1
DESC_F_WRITE = 0x2
DESC_F_INDIRECT = 0x4
RING_HEADER_SIZE = 4  # le16 flags, le16 idx
AVAIL_ENTRY_SIZE = 2  # le16 ring[]
USED_ENTRY_SIZE = 8  # le32 id, le32 len
EVENT_FIELD_SIZE = 2  # used_event at the end of avail, avail_event at the end of used
AVAIL_F_NO_INTERRUPT = 0x1
USED_F_NO_NOTIFY = 0x1
DESC_TABLE_ALIGNMENT = 16
AVAIL_RING_ALIGNMENT = 2
USED_RING_ALIGNMENT = 4
RING_INDEX_MODULUS = 1 << 16

MAX_QUEUE_SIZE = 256  # Firecracker's FIRECRACKER_MAX_QUEUE_SIZE

# --- device ids (spec 5) -----------------------------------------------------------------------
DEVICE_ID_BLOCK = 2
DEVICE_ID_ENTROPY = 4
DEVICE_ID_BALLOON = 5

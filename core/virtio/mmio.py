"""The virtio-mmio transport, modern (version 2) only, as Firecracker implements it.

A virtio device model subclasses `VirtioMmioDevice` and declares `device_id` and
`queue_max_sizes`; it overrides the hooks it needs:

* `device_features()` - its feature bits (VIRTIO_F_VERSION_1 is always added),
* `config_space()` / `write_config()` - its device configuration (offset 0x100 onwards),
* `activate()` - the driver set DRIVER_OK with every queue valid (raise `ActivationError`
  to refuse),
* `process_queue(index)` - the driver notified queue `index` (or the device calls
  `run_queue(index)` itself later, e.g. when a rate limiter allows more work),
* `reset_device()` - the driver wrote 0 to Status.

It then uses `self.queues`, `signal_used(queue)`, `signal_config_change()`,
`has_feature(bit)` and `needs_reset(reason)`.

Registers (below 0x100) answer 4-byte accesses only; the status state machine accepts
0 -> ACKNOWLEDGE -> +DRIVER -> +FEATURES_OK -> +DRIVER_OK, FAILED at any time and 0 (reset)
at any time; queue layout and driver features are only writable in the states upstream
allows. QueueNotify is handled here, in the VMM, on every backend. A malformed queue found
while processing (`QueueError`, or a guest-memory fault) sets DEVICE_NEEDS_RESET, raises a
configuration-change interrupt and logs once: the device stops serving the queues until the
driver resets it, and nothing propagates into the vCPU loop. Interrupts are edge-triggered
pulses on the device's single IRQ line, with the cause in InterruptStatus.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

from petard.core.boot.fdt import FdtNode
from petard.core.boot.fdt_bindings import virtio_mmio_node
from petard.core.device import Device, DeviceContext
from petard.core.irq import IrqLine
from petard.core.memory import GuestMemoryError
from petard.core.virtio import spec
from petard.core.virtio.queue import QueueError, SplitQueue

__all__ = ["ActivationError", "VirtioMmioDevice"]

_FEATURES_NEGOTIATION = spec.STATUS_ACKNOWLEDGE | spec.STATUS_DRIVER
_QUEUE_SETUP = _FEATURES_NEGOTIATION | spec.STATUS_FEATURES_OK
_RUNNING = _QUEUE_SETUP | spec.STATUS_DRIVER_OK
_PAGE_MASK = (1 << spec.FEATURE_PAGE_BITS) - 1
_ADDRESS_HALVES = {
    spec.QUEUE_DESC_LOW: ("desc_table", 0), spec.QUEUE_DESC_HIGH: ("desc_table", 32),
    spec.QUEUE_DRIVER_LOW: ("avail_ring", 0), spec.QUEUE_DRIVER_HIGH: ("avail_ring", 32),
    spec.QUEUE_DEVICE_LOW: ("used_ring", 0), spec.QUEUE_DEVICE_HIGH: ("used_ring", 32),
}


class ActivationError(Exception):
    """A device refuses DRIVER_OK (the transport then sets DEVICE_NEEDS_RESET)."""


class VirtioMmioDevice(Device):
    """Base class of virtio devices on the virtio-mmio transport (module docstring)."""

    irq_count = 1
    compatible = ("virtio,mmio",)
    #: Virtio device id (spec 5), e.g. 2 for block.
    device_id: ClassVar[int] = 0
    #: Maximum size of each queue, in queue order (each a power of two <= 256).
    queue_max_sizes: ClassVar[tuple[int, ...]] = ()

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self.irq = ctx.irqs[0]
        self.queues = [SplitQueue(ctx.memory, size) for size in self.queue_max_sizes]
        self.status = spec.STATUS_INIT
        self.interrupt_status = 0
        self.config_generation = 0
        self.acked_features = 0
        self._device_features_sel = 0
        self._driver_features_sel = 0
        self._queue_sel = 0
        self._needs_reset_reason: str | None = None
        self._early_notifications: set[int] = set()

    # --- what subclasses provide ---------------------------------------------------------------

    def device_features(self) -> int:
        """Device-specific feature bits offered to the driver."""
        return 0

    def config_space(self) -> bytes:
        """The device configuration structure as the driver reads it."""
        return b""

    def write_config(self, offset: int, data: bytes) -> None:
        """A driver write into the configuration space (read-only by default)."""
        self.unhandled_access("write", spec.CONFIG_SPACE + offset, len(data), int.from_bytes(data, "little"))

    def activate(self) -> None:
        """DRIVER_OK with valid queues: start serving them."""

    def process_queue(self, index: int) -> None:
        """Serve queue `index` (called on notification, through `run_queue`)."""

    def reset_device(self) -> None:
        """The driver reset the device; drop device-specific runtime state."""

    # --- services for subclasses ---------------------------------------------------------------

    @property
    def offered_features(self) -> int:
        return self.device_features() | (1 << spec.F_VERSION_1)

    def has_feature(self, bit: int) -> bool:
        """Whether feature `bit` was negotiated."""
        return bool(self.acked_features >> bit & 1)

    @property
    def activated(self) -> bool:
        """Serving queues: DRIVER_OK and neither DEVICE_NEEDS_RESET nor FAILED."""
        return self.status == _RUNNING

    def signal_used(self, queue: SplitQueue) -> None:
        """Interrupt the driver if it wants to hear about the entries just added to `queue`."""
        if queue.needs_interrupt():
            self._interrupt(spec.INTERRUPT_VRING)

    def signal_config_change(self) -> None:
        """The configuration space changed (e.g. a new capacity): bump the generation, tell."""
        self.config_generation = (self.config_generation + 1) & _PAGE_MASK
        if self.status & spec.STATUS_DRIVER_OK:
            self._interrupt(spec.INTERRUPT_CONFIG)

    def needs_reset(self, reason: str) -> None:
        """Stop serving the guest until it resets the device (spec 2.1.2)."""
        if self._needs_reset_reason is None:
            self.ctx.log.error("%s: device needs reset: %s", self.ctx.name, reason)
        self._needs_reset_reason = reason
        self.status |= spec.STATUS_DEVICE_NEEDS_RESET
        if self.status & spec.STATUS_DRIVER_OK:
            self._interrupt(spec.INTERRUPT_CONFIG)

    def run_queue(self, index: int) -> None:
        """Serve queue `index` if the device is running, containing guest-caused faults."""
        if not self.activated or not 0 <= index < len(self.queues):
            return
        try:
            self.process_queue(index)
        except (QueueError, GuestMemoryError) as error:
            self.needs_reset(f"queue {index}: {error}")

    def _interrupt(self, cause: int) -> None:
        self.interrupt_status |= cause
        self.irq.pulse()

    # --- register access -----------------------------------------------------------------------

    def mmio_read(self, offset: int, size: int) -> int:
        if offset >= spec.CONFIG_SPACE:
            config = self.config_space()
            start = offset - spec.CONFIG_SPACE
            if start + size > len(config):
                self.unhandled_access("read", offset, size)
            return int.from_bytes(config[start:start + size].ljust(size, b"\0"), "little")
        if size != spec.REGISTER_ACCESS_SIZE:
            self.unhandled_access("read", offset, size)
            return 0
        if offset == spec.MAGIC_VALUE:
            return spec.MMIO_MAGIC
        if offset == spec.VERSION:
            return spec.MMIO_VERSION_MODERN
        if offset == spec.DEVICE_ID:
            return self.device_id
        if offset == spec.VENDOR_ID:
            return spec.VENDOR_ID_NONE
        if offset == spec.DEVICE_FEATURES:
            return self.offered_features >> (spec.FEATURE_PAGE_BITS * self._device_features_sel) & _PAGE_MASK
        if offset == spec.QUEUE_NUM_MAX:
            queue = self._selected_queue()
            return queue.max_size if queue is not None else 0
        if offset == spec.QUEUE_READY:
            queue = self._selected_queue()
            return int(queue.ready) if queue is not None else 0
        if offset == spec.INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == spec.STATUS:
            return self.status
        if offset == spec.CONFIG_GENERATION:
            return self.config_generation
        self.unhandled_access("read", offset, size)
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset >= spec.CONFIG_SPACE:
            if self.status & spec.STATUS_DRIVER:
                self.write_config(offset - spec.CONFIG_SPACE, value.to_bytes(size, "little"))
            else:
                self.unhandled_access("write", offset, size, value)
            return
        if size != spec.REGISTER_ACCESS_SIZE:
            self.unhandled_access("write", offset, size, value)
            return
        if offset == spec.QUEUE_NOTIFY:
            self._notify(value)
        elif offset == spec.INTERRUPT_ACK:
            if self.status & spec.STATUS_DRIVER_OK:
                self.interrupt_status &= ~value
        elif offset == spec.STATUS:
            self._set_status(value & 0xFF)
        elif offset == spec.DEVICE_FEATURES_SEL:
            self._device_features_sel = value
        elif offset == spec.DRIVER_FEATURES_SEL:
            self._driver_features_sel = value
        elif offset == spec.DRIVER_FEATURES:
            self._write_driver_features(value)
        elif offset == spec.QUEUE_SEL:
            self._queue_sel = value
        elif offset in (spec.QUEUE_NUM, spec.QUEUE_READY) or offset in _ADDRESS_HALVES:
            self._write_queue_field(offset, value)
        else:
            self.unhandled_access("write", offset, size, value)

    def _notify(self, index: int) -> None:
        # Linux's balloon kicks its statistics queue before DRIVER_OK; like an ioeventfd that
        # nobody reads yet, the kick waits for activation instead of being lost.
        if self.status == _QUEUE_SETUP and 0 <= index < len(self.queues):
            self._early_notifications.add(index)
        else:
            self.run_queue(index)

    def _selected_queue(self) -> SplitQueue | None:
        return self.queues[self._queue_sel] if self._queue_sel < len(self.queues) else None

    def _write_driver_features(self, value: int) -> None:
        if self.status != _FEATURES_NEGOTIATION or self._driver_features_sel > 1:
            self.unhandled_access("write", spec.DRIVER_FEATURES, spec.REGISTER_ACCESS_SIZE, value)
            return
        shift = spec.FEATURE_PAGE_BITS * self._driver_features_sel
        offered = self.offered_features >> shift & _PAGE_MASK
        if value & ~offered:
            self.ctx.log.warning("%s: driver acked unoffered features %#x (page %d); ignoring them",
                                 self.ctx.name, value & ~offered, self._driver_features_sel)
        self.acked_features = (self.acked_features & ~(_PAGE_MASK << shift)) | ((value & offered) << shift)

    def _write_queue_field(self, offset: int, value: int) -> None:
        queue = self._selected_queue()
        if queue is None or self.status != _QUEUE_SETUP:
            self.unhandled_access("write", offset, spec.REGISTER_ACCESS_SIZE, value)
            return
        if offset == spec.QUEUE_NUM:
            queue.size = value
        elif offset == spec.QUEUE_READY:
            queue.ready = value == 1
        else:
            name, shift = _ADDRESS_HALVES[offset]
            current = getattr(queue, name)
            setattr(queue, name, (current & ~(_PAGE_MASK << shift)) | (value << shift))

    # --- the status state machine ----------------------------------------------------------

    def _set_status(self, status: int) -> None:
        current = self.status
        added = status & ~current
        if status == spec.STATUS_INIT:
            self._reset()
        elif added == spec.STATUS_ACKNOWLEDGE and current == spec.STATUS_INIT and status == added:
            self.status = status
        elif added == spec.STATUS_DRIVER and current == spec.STATUS_ACKNOWLEDGE and status == _FEATURES_NEGOTIATION:
            self.status = status
        elif added == spec.STATUS_FEATURES_OK and current == _FEATURES_NEGOTIATION and status == _QUEUE_SETUP:
            if self.has_feature(spec.F_VERSION_1):
                self.status = status
            else:  # leaving FEATURES_OK clear tells the driver its feature set is refused
                self.ctx.log.warning("%s: driver did not accept VIRTIO_F_VERSION_1; refusing "
                                     "FEATURES_OK (modern virtio-mmio only)", self.ctx.name)
        elif added == spec.STATUS_DRIVER_OK and current == _QUEUE_SETUP and status == _RUNNING:
            self.status = status
            self._activate()
        elif added & spec.STATUS_FAILED:
            self.status |= spec.STATUS_FAILED
        else:
            self.ctx.log.warning("%s: invalid virtio status transition %#x -> %#x",
                                 self.ctx.name, current, status)

    def _activate(self) -> None:
        event_idx = self.has_feature(spec.F_RING_EVENT_IDX)
        for index, queue in enumerate(self.queues):
            problem = queue.problem()
            if problem is not None:
                self.needs_reset(f"activation failed: queue {index}: {problem}")
                return
            queue.event_idx = event_idx
        try:
            self.activate()
        except ActivationError as error:
            self.needs_reset(f"activation failed: {error}")
            return
        early, self._early_notifications = sorted(self._early_notifications), set()
        for index in early:
            self.run_queue(index)

    def _reset(self) -> None:
        self.reset_device()
        for queue in self.queues:
            queue.reset()
        self.status = spec.STATUS_INIT
        self.interrupt_status = 0
        self.acked_features = 0
        self._device_features_sel = 0
        self._driver_features_sel = 0
        self._queue_sel = 0
        self._needs_reset_reason = None
        self._early_notifications.clear()

    # --- device API ----------------------------------------------------------------------------

    def fdt_nodes(self, base: int, irqs: Sequence[IrqLine]) -> list[FdtNode]:
        return [virtio_mmio_node(base, self.mmio_size, irqs[0].gsi)]

    def save_state(self) -> dict[str, Any]:
        return {
            "status": self.status, "interrupt_status": self.interrupt_status,
            "config_generation": self.config_generation, "acked_features": self.acked_features,
            "device_features_sel": self._device_features_sel,
            "driver_features_sel": self._driver_features_sel, "queue_sel": self._queue_sel,
            "queues": [queue.save_state() for queue in self.queues],
            "early_notifications": sorted(self._early_notifications),
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        self.status = state["status"]
        self.interrupt_status = state["interrupt_status"]
        self.config_generation = state["config_generation"]
        self.acked_features = state["acked_features"]
        self._device_features_sel = state["device_features_sel"]
        self._driver_features_sel = state["driver_features_sel"]
        self._queue_sel = state["queue_sel"]
        self._early_notifications = set(state.get("early_notifications", ()))
        for queue, saved in zip(self.queues, state["queues"]):
            queue.restore_state(saved)

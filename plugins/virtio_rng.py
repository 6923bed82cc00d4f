"""virtio-rng: the entropy device of `PUT /entropy`, fed from the host's `os.urandom`.

One queue of 256, no device features beyond VERSION_1, no configuration space (like
Firecracker's). Each request's device-writable buffers are filled with random bytes, at
most 64 KiB per request; an optional rate limiter (bandwidth in bytes, ops in requests)
holds requests back until it has tokens again.
"""

from __future__ import annotations

import os
from typing import Any

from petard.devices import Device, DeviceContext, RateLimiter, VirtioMmioDevice, hookimpl, virtio_spec

TYPE_NAME = "virtio-rng"

QUEUE_SIZE = 256
MAX_REQUEST_BYTES = 64 * 1024  # upstream's per-request cap


class VirtioRng(VirtioMmioDevice):
    """A virtio entropy source (module docstring)."""

    device_id = virtio_spec.DEVICE_ID_ENTROPY
    queue_max_sizes = (QUEUE_SIZE,)

    def __init__(self, ctx: DeviceContext, *, rate_limiter: Any = None) -> None:
        super().__init__(ctx)
        self.limiter = RateLimiter.from_api(rate_limiter, ctx.clock, self._resume)
        self.bytes_served = 0

    def process_queue(self, index: int) -> None:
        queue = self.queues[index]
        memory = self.ctx.memory
        completed = False
        while (chain := queue.pop()) is not None:
            wanted = min(chain.writable_length, MAX_REQUEST_BYTES)
            if self.limiter.limits and not self.limiter.consume(wanted, 1):
                queue.undo_pop()
                break
            remaining = wanted
            for descriptor in chain.writable:
                if not remaining:
                    break
                length = min(descriptor.length, remaining)
                memory.write(descriptor.address, os.urandom(length))
                remaining -= length
            self.bytes_served += wanted
            queue.add_used(chain.head, wanted)
            completed = True
        if completed:
            self.signal_used(queue)

    def _resume(self) -> None:
        self.run_queue(0)

    def stop(self) -> None:
        self.limiter.close()


@hookimpl
def petard_device_types() -> dict[str, type[Device]]:
    return {TYPE_NAME: VirtioRng}

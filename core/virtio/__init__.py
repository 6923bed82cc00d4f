"""Virtio for device models: the virtio-mmio transport and split virtqueues.

A third-party virtio device subclasses `VirtioMmioDevice` (see `petard.core.virtio.mmio`)
and serves its `SplitQueue`s (see `petard.core.virtio.queue`); `petard.core.virtio.spec`
holds the specification's numbers. A device that answers every request with zeros::

    class Zeros(VirtioMmioDevice):
        device_id = 4                      # spec 5: entropy
        queue_max_sizes = (256,)

        def process_queue(self, index):
            queue = self.queues[index]
            while (chain := queue.pop()) is not None:   # checked; QueueError -> NEEDS_RESET
                for buffer in chain.writable:
                    self.ctx.memory.write(buffer.address, bytes(buffer.length))
                queue.add_used(chain.head, chain.writable_length)
            self.signal_used(queue)                      # interrupt if the driver wants one

Register it from a plugin's ``petard_device_types`` hook like any device; the machine
gives it a virtio-mmio slot, a GSI and its ``virtio,mmio`` device-tree node.
"""

from petard.core.virtio.mmio import ActivationError, VirtioMmioDevice
from petard.core.virtio.queue import Descriptor, DescriptorChain, QueueError, SplitQueue

__all__ = ["ActivationError", "Descriptor", "DescriptorChain", "QueueError", "SplitQueue", "VirtioMmioDevice"]

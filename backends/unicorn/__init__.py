"""The Unicorn backend: aarch64 guests emulated by Unicorn, on any host.

Modules, one job each, from the bottom floor up: `ports` (why a vCPU stops, its power
state, the protocols the helpers use of a vCPU), `cpu` (engine creation, firmware-level
register set-up), `cpu_state` (registers to and from core's neutral `VcpuState`),
`syndrome` (exception syndrome recovery + start-up self-test), `exception_entry`
(entering the guest's vector table), `timer` (generic timer behind the MSR hook),
`gic_model`/`gic_registers`/`gic_common`/`gicv2`/`gicv3` (emulated interrupt
controllers, and their neutral `GicState`), `psci` (firmware calls, answered as values),
`idle_exit` (learned idle-loop stop point), `guest_va` (guest page-table walks), `fatal`
(failure reports), `engine` (the one engine all vCPUs share, switching it between them,
its hooks and MMIO ranges), `hook_filter` (+ `hook_filter.c`: native filters in front of
the hottest hooks), `raw_hooks` (hooks and MMIO registered with libunicorn directly),
`published_code` (dropping stale translations of pages the VMM wrote, on IC IVAU),
`scheduler` (which vCPU runs next), `smp` (spin-wait yielding, only with several vCPUs),
`vcpu` (one vCPU's hook handlers, safe stop points and run slice), `vm` (the round-robin
loop that decides what each stop means, pause/resume, state), `backend` (the `Backend`
implementation), `libunicorn` (which libunicorn is loaded) and `libunicorn_build`
(petard's patched build).
"""

from . import libunicorn

libunicorn.select()     # before anything imports `unicorn`

from .backend import UnicornBackend  # noqa: E402

BACKEND_CLASS = UnicornBackend

__all__ = ["UnicornBackend", "BACKEND_CLASS"]

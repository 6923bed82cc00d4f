"""The Unicorn backend: aarch64 guests emulated by Unicorn, on any host.

Modules, one job each: `cpu` (engine creation, firmware-level register set-up),
`syndrome` (exception syndrome recovery + start-up self-test), `exception_entry`
(entering the guest's vector table), `timer` (generic timer behind the MSR hook),
`gic_state`/`gic_registers`/`gic_common`/`gicv2`/`gicv3` (emulated interrupt
controllers), `psci` (firmware calls), `idle_exit` (learned idle-loop stop point),
`guest_va` (guest page-table walks), `fatal` (failure reports), `engine` (the one
engine all vCPUs share, switching it between them, its hooks and MMIO ranges),
`hook_filter` (+ `hook_filter.c`: native filters in front of the hottest hooks),
`raw_hooks` (hooks and MMIO registered with libunicorn directly), `published_code`
(dropping stale translations of pages the VMM wrote, on IC IVAU), `vcpu` (one vCPU's
state, hook handlers and safe stop points), `smp` (spin-wait yielding, only with several
vCPUs), `vm` (round-robin loop, pause/resume), `backend` (the `Backend` implementation),
`libunicorn` (which libunicorn is loaded) and `libunicorn_build` (petard's patched build).
"""

from . import libunicorn

libunicorn.select()     # before anything imports `unicorn`

from .backend import UnicornBackend  # noqa: E402

BACKEND_CLASS = UnicornBackend

__all__ = ["UnicornBackend", "BACKEND_CLASS"]

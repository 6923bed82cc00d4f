"""The KVM backend: aarch64 guests on /dev/kvm of an aarch64 host.

Modules, one job each: `host` (is this host able at all), `kvm_abi` (ioctl numbers,
register ids and struct layouts of <linux/kvm.h>), `ioctls` (typed wrappers around the
fds), `vgic` (the in-kernel interrupt controller), `control` (pause/resume/stop and the
first exit, shared by the VM and its threads), `vcpu` (one vCPU's thread and its KVM_RUN
exit loop), `vcpu_state`/`vgic_state` (the vCPU's and the vGIC's state to and from core's
neutral terms), `vm` (creation order, the device clock thread, state), `backend` (the
`Backend` implementation and the host checks at creation).
"""

from petard.backends.kvm.backend import KvmBackend
from petard.backends.kvm.host import KvmUnavailableError, check_host

BACKEND_CLASS = KvmBackend

__all__ = ["BACKEND_CLASS", "KvmBackend", "KvmUnavailableError", "check_host"]

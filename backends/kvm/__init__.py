"""The KVM backend: aarch64 guests on /dev/kvm of an aarch64 host.

Modules, one job each: `host` (is this host able at all), `kvm_abi` (ioctl numbers and
struct layouts of <linux/kvm.h>), `ioctls` (typed wrappers around the fds), `vgic` (the
in-kernel interrupt controller), `vcpu` (one vCPU's thread and its KVM_RUN exit loop), `vm`
(creation order, the device clock thread, pause/resume/stop), `backend` (the `Backend`
implementation and the host checks at creation).
"""

from petard.backends.kvm.backend import KvmBackend
from petard.backends.kvm.host import KvmUnavailableError, check_host

BACKEND_CLASS = KvmBackend

__all__ = ["BACKEND_CLASS", "KvmBackend", "KvmUnavailableError", "check_host"]

"""The KVM backend: aarch64 guests on /dev/kvm of an aarch64 host."""

from petard.backends.kvm.host import KvmUnavailableError, check_host


class KvmBackend:
    """Placeholder until the KVM backend lands: refuses with the reason the host gives."""

    name = "kvm"

    def __init__(self) -> None:
        check_host()
        raise KvmUnavailableError("The KVM backend is not implemented yet. Run petard with --backend unicorn.")


BACKEND_CLASS = KvmBackend

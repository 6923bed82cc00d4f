"""petard: a Firecracker-compatible microVM monitor with KVM and Unicorn vCPU backends."""

__version__ = "0.1.0"

"""vCPU backends behind core's backend interface: KVM (hardware) and Unicorn (emulation)."""

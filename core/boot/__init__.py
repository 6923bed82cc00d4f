"""Putting a guest into memory: kernel loading, initrd placement, command line, FDT.

``kernel`` (arm64 Image loader), ``loader`` (initrd + FDT placement, the whole boot
payload), ``cmdline`` (Firecracker's command-line rules), ``fdt`` (DTB writer/reader),
``fdt_bindings`` (interrupt/clock/reg helpers for device nodes), ``machine_fdt`` (the
machine's device tree). Addresses come from ``petard.core.layout``.
"""

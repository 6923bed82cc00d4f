"""The VMM itself: lifecycle, controller, guest memory, MMIO bus, IRQ lines, boot, device API.

Knows no backend and no web framework: backends and devices plug in through the
interfaces defined here.
"""

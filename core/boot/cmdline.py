"""The guest kernel command line, built by Firecracker's rules (pure functions, no I/O).

Upstream keeps the command line in linux-loader's ``Cmdline`` (capacity
CMDLINE_MAX_SIZE = 2048 bytes *including* the terminating NUL). Boot arguments
and init arguments (after ``" -- "``) are kept apart so that everything the VMM
appends lands before the separator. The error texts are linux-loader's, since
Firecracker shows them to API clients.

What the VMM adds at boot, in upstream order (``builder.rs``):

1. ``pci=off`` (PCI is never enabled in petard),
2. ``root=/dev/vda`` or ``root=PARTUUID=<uuid>`` then ``ro``/``rw`` for a root drive,
3. ``earlycon=uart,mmio,0x40002000`` when the line contains ``console=`` (the
   serial device only exists in that case).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from petard.core.layout import CMDLINE_MAX_SIZE, SERIAL_START

DEFAULT_KERNEL_CMDLINE = (
    "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce"
)
INIT_ARGS_SEPARATOR = " -- "
CONSOLE_MARKER = "console="

# linux-loader's cmdline::Error Display texts.
ERR_INVALID_CAPACITY = "Invalid cmdline capacity provided."
ERR_TOO_LARGE = "Inserting string would make command line too long."
ERR_INVALID_ASCII = "String contains a non-printable ASCII character."
ERR_HAS_SPACE = "String contains a space."
ERR_HAS_EQUALS = "String contains an equals sign."
ERR_NO_QUOTE_SPACE = "Value that contains spaces need to be surrounded by quotes"
ERR_INVALID_QUOTE = "Double quote can not be in the middle of the value"
ERR_NULL_TERMINATOR = "Null terminator detected in the command line structure."
ERR_ONLY_INIT_ARGS = "Cmdline cannot contain only init args."


class KernelCmdlineError(ValueError):
    """A command line that breaks linux-loader's rules; ``str()`` is upstream's text."""


def _printable(text: str) -> bool:
    return all(" " <= c <= "~" for c in text)


@dataclass(frozen=True)
class KernelCmdline:
    """An immutable command line; the ``with_*``/``insert*`` methods return new ones."""

    boot_args: str = ""
    init_args: str = ""
    capacity: int = CMDLINE_MAX_SIZE

    @classmethod
    def parse(cls, raw: str, capacity: int = CMDLINE_MAX_SIZE) -> "KernelCmdline":
        """Split ``raw`` at the first ``" -- "`` outside double quotes (``Cmdline::try_from``)."""
        if capacity == 0:
            raise KernelCmdlineError(ERR_INVALID_CAPACITY)
        boot, init = raw, ""
        start = 0
        while (index := raw.find(INIT_ARGS_SEPARATOR, start)) != -1:
            if raw[:index].count('"') % 2 == 0:
                boot, init = raw[:index], raw[index + len(INIT_ARGS_SEPARATOR) :]
                break
            start = index + 1
        boot, init = boot.strip(), init.strip()
        size = len(boot.encode()) + 1
        if init:
            size += len(INIT_ARGS_SEPARATOR) + len(init.encode())
        if size > capacity:
            raise KernelCmdlineError(ERR_INVALID_CAPACITY)
        return cls(boot, init, capacity)

    def _size_with_nul(self) -> int:
        size = len(self.boot_args.encode()) + 1
        if self.init_args:
            size += len(INIT_ARGS_SEPARATOR) + len(self.init_args.encode())
        return size

    def insert_str(self, slug: str) -> "KernelCmdline":
        """Append ``slug`` to the boot arguments (before any init arguments)."""
        text = slug.strip()
        if not _printable(text):
            raise KernelCmdlineError(ERR_INVALID_ASCII)
        size = self._size_with_nul() + (1 if self.boot_args else 0) + len(text)
        if size > self.capacity:
            raise KernelCmdlineError(ERR_TOO_LARGE)
        joined = f"{self.boot_args} {text}" if self.boot_args else text
        return replace(self, boot_args=joined)

    def insert(self, key: str, value: str) -> "KernelCmdline":
        """Append ``key=value`` with linux-loader's key/value checks."""
        if not _printable(key):
            raise KernelCmdlineError(ERR_INVALID_ASCII)
        if " " in key:
            raise KernelCmdlineError(ERR_HAS_SPACE)
        if "=" in key:
            raise KernelCmdlineError(ERR_HAS_EQUALS)
        if not _printable(value):
            raise KernelCmdlineError(ERR_INVALID_ASCII)
        quoted = len(value) >= 2 and value[0] == '"' and value[-1] == '"'
        if len(value) >= 3 and '"' in value[1:-1]:
            raise KernelCmdlineError(ERR_INVALID_QUOTE)
        if " " in value and not quoted:
            raise KernelCmdlineError(ERR_NO_QUOTE_SPACE)
        return self.insert_str(f"{key}={value}")

    def render(self) -> str:
        """The string handed to the guest in ``/chosen/bootargs``."""
        if not self.boot_args and self.init_args:
            raise KernelCmdlineError(ERR_ONLY_INIT_ARGS)
        text = self.boot_args
        if self.init_args:
            text += INIT_ARGS_SEPARATOR + self.init_args
        if "\0" in text:
            raise KernelCmdlineError(ERR_NULL_TERMINATOR)
        return text

    def __str__(self) -> str:
        return self.render()

    def has_console(self) -> bool:
        """Upstream's test for creating the serial device: ``console=`` anywhere in the line."""
        text = self.boot_args + (INIT_ARGS_SEPARATOR + self.init_args if self.init_args else "")
        return CONSOLE_MARKER in text

    def with_pci_off(self) -> "KernelCmdline":
        return self.insert("pci", "off")

    def with_root_device(self, partuuid: str | None = None, read_only: bool = False) -> "KernelCmdline":
        root = f"root=PARTUUID={partuuid}" if partuuid else "root=/dev/vda"
        return self.insert_str(root).insert_str("ro" if read_only else "rw")

    def with_earlycon(self, serial_address: int = SERIAL_START) -> "KernelCmdline":
        return self.insert("earlycon", f"uart,mmio,0x{serial_address:08x}")


def boot_cmdline(boot_args: str | None) -> KernelCmdline:
    """The user's ``boot_args`` (validated as at ``PUT /boot-source``) or the default line."""
    return KernelCmdline.parse(DEFAULT_KERNEL_CMDLINE if boot_args is None else boot_args)


@dataclass(frozen=True)
class RootDevice:
    """The root drive's contribution to the command line."""

    partuuid: str | None = None
    read_only: bool = False


def guest_cmdline(
    boot_args: str | None,
    root_device: RootDevice | None = None,
    serial_address: int = SERIAL_START,
) -> KernelCmdline:
    """The final command line, with what the VMM appends at InstanceStart (module docstring).

    Whether the serial device exists follows from the result: ``has_console()``.
    """
    cmdline = boot_cmdline(boot_args).with_pci_off()
    if root_device is not None:
        cmdline = cmdline.with_root_device(root_device.partuuid, root_device.read_only)
    if cmdline.has_console():
        cmdline = cmdline.with_earlycon(serial_address)
    return cmdline

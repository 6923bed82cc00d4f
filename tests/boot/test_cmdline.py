"""Firecracker's command-line rules, including linux-loader's limits and error texts."""

from __future__ import annotations

import pytest

from petard.core.boot.cmdline import (
    DEFAULT_KERNEL_CMDLINE,
    KernelCmdline,
    KernelCmdlineError,
    RootDevice,
    boot_cmdline,
    guest_cmdline,
)


def test_default_is_upstreams():
    assert DEFAULT_KERNEL_CMDLINE == (
        "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce"
    )
    assert str(boot_cmdline(None)) == DEFAULT_KERNEL_CMDLINE
    assert str(boot_cmdline("  quiet  ")) == "quiet"


def test_capacity_counts_the_terminating_nul():
    assert str(KernelCmdline.parse("a" * 2047)) == "a" * 2047
    with pytest.raises(KernelCmdlineError, match=r"^Invalid cmdline capacity provided\.$"):
        KernelCmdline.parse("a" * 2048)
    with pytest.raises(KernelCmdlineError, match="Invalid cmdline capacity"):
        KernelCmdline.parse("a" * 1000 + " -- " + "b" * 1044)


def test_appending_past_capacity_is_refused_with_upstreams_text():
    full = KernelCmdline.parse("a" * 2040)
    assert str(full.insert_str("bbbbbb")) == "a" * 2040 + " bbbbbb"  # 2047 + NUL
    with pytest.raises(KernelCmdlineError, match=r"^Inserting string would make command line too long\.$"):
        full.insert_str("bbbbbbb")
    with pytest.raises(KernelCmdlineError, match="too long"):
        guest_cmdline("console=ttyS0 " + "x" * 2000)  # pci=off + earlycon overflow


def test_root_device_forms():
    base = KernelCmdline.parse("quiet")
    assert str(base.with_root_device()) == "quiet root=/dev/vda rw"
    assert str(base.with_root_device(read_only=True)) == "quiet root=/dev/vda ro"
    assert str(base.with_root_device("0eaa91a0-01", False)) == "quiet root=PARTUUID=0eaa91a0-01 rw"


def test_earlycon_only_with_a_console_and_in_upstream_order():
    assert str(guest_cmdline("panic=1")) == "panic=1 pci=off"
    with_console = guest_cmdline("console=ttyS0 panic=1", RootDevice(read_only=True))
    assert str(with_console) == "console=ttyS0 panic=1 pci=off root=/dev/vda ro earlycon=uart,mmio,0x40002000"
    assert with_console.has_console()
    assert not guest_cmdline("quiet").has_console()


def test_appended_arguments_stay_before_init_arguments():
    cmdline = guest_cmdline('console=ttyS0 foo="a -- b" -- init1 init2', RootDevice("1234-5678"))
    assert str(cmdline) == (
        'console=ttyS0 foo="a -- b" pci=off root=PARTUUID=1234-5678 rw earlycon=uart,mmio,0x40002000 -- init1 init2'
    )
    assert cmdline.init_args == "init1 init2"


def test_console_in_init_args_also_counts_like_upstream():
    assert guest_cmdline("quiet -- console=x").has_console()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("a b", "1", "String contains a space."),
        ("a=b", "1", "String contains an equals sign."),
        ("k", "two words", "Value that contains spaces need to be surrounded by quotes"),
        ("k", 'x"y"z', "Double quote can not be in the middle of the value"),
        ("k", "caf\u00e9", "String contains a non-printable ASCII character."),
    ],
)
def test_key_value_validation(key, value, message):
    with pytest.raises(KernelCmdlineError) as error:
        KernelCmdline.parse("x").insert(key, value)
    assert str(error.value) == message


def test_quoted_value_with_spaces_is_accepted():
    assert str(KernelCmdline.parse("x").insert("k", '"two words"')) == 'x k="two words"'


def test_render_errors():
    with pytest.raises(KernelCmdlineError, match="only init args"):
        str(KernelCmdline.parse(" -- init"))
    with pytest.raises(KernelCmdlineError, match="Null terminator"):
        str(KernelCmdline.parse("a\0b"))

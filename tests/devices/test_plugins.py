"""The plugin manager: built-ins through the public hooks, entry-point discovery, the
autoload switch, the block list, and errors that name the plugin at fault.

Entry-point discovery is exercised for real: each test writes a throwaway distribution
(a `*.dist-info` directory with `entry_points.txt`, plus the plugin module) into a temporary
directory put on `sys.path`, and `importlib.metadata` finds it there. Nothing is patched.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from petard.core.device import DevicePlacement
from petard.core.plugins import (BUILTIN_PLUGINS, DISABLE_AUTOLOAD_ENV, PetardPluginManager, PluginError,
                                 create_plugin_manager)
from petard.plugins.boot_timer import BootTimer
from petard.plugins.rtc import Pl031
from petard.plugins.serial import Serial16550A
from petard.plugins.virtio_balloon import VirtioBalloon
from petard.plugins.virtio_blk import VirtioBlock
from petard.plugins.virtio_rng import VirtioRng

PLUGIN_OK = """
    from petard.core.device import Device, DevicePlacement
    from petard.core.hookspecs import hookimpl

    class Thermometer(Device):
        irq_count = 1
        compatible = ("acme,thermometer",)

        def mmio_read(self, offset, size):
            return 2150  # centi-degrees

    @hookimpl
    def petard_device_types():
        return {"thermometer": Thermometer}

    @hookimpl
    def petard_machine_devices(spec):
        return [DevicePlacement("thermometer", name="thermo0", options={})]
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install a throwaway distribution `dist_name` whose entry point `ep_name` (group
    petard) is module `module` with source `source`."""
    monkeypatch.syspath_prepend(str(tmp_path))
    installed = []

    def install(dist_name: str, ep_name: str, module: str, source: str, version: str = "1.2.3") -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist_name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[petard]\n{ep_name} = {module}\n")
        installed.append(module)

    yield install
    for module in installed:
        sys.modules.pop(module, None)


def test_builtins_are_registered_through_the_hooks():
    manager = create_plugin_manager(autoload=False)
    types = manager.device_types()
    assert {name: (t.cls, t.plugin) for name, t in types.items()} == {
        "serial": (Serial16550A, "serial"),
        "rtc": (Pl031, "rtc"),
        "boot_timer": (BootTimer, "boot_timer"),
        "virtio-blk": (VirtioBlock, "virtio_blk"),
        "virtio-rng": (VirtioRng, "virtio_rng"),
        "virtio-balloon": (VirtioBalloon, "virtio_balloon"),
    }
    infos = {info.name: info for info in manager.plugin_infos()}
    assert set(infos) == set(BUILTIN_PLUGINS)
    assert all(info.builtin and info.hooks == ("petard_device_types",) for info in infos.values())


def test_block_list_applies_to_builtins():
    manager = create_plugin_manager(autoload=False, blocked=["rtc"])
    assert set(manager.device_types()) == {"serial", "boot_timer", "virtio-blk", "virtio-rng", "virtio-balloon"}
    with pytest.raises(KeyError, match="rtc"):
        manager.device_type("rtc")


def test_entry_point_plugin_is_discovered(install, monkeypatch):
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    install("acme-thermo", "acme", "acme_thermo_plugin", PLUGIN_OK)
    manager = create_plugin_manager()
    thermometer = manager.device_type("thermometer")
    assert (thermometer.plugin, thermometer.cls.__name__) == ("acme", "Thermometer")
    info = next(i for i in manager.plugin_infos() if i.name == "acme")
    assert (info.version, info.builtin) == ("1.2.3", False)
    assert manager.machine_devices(spec=None) == [DevicePlacement("thermometer", name="thermo0")]


def test_autoload_can_be_disabled_by_environment(install, monkeypatch):
    install("acme-thermo", "acme", "acme_thermo_plugin", PLUGIN_OK)
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    manager = create_plugin_manager()
    assert "thermometer" not in manager.device_types()
    assert not manager.has_plugin("acme")


def test_blocked_entry_point_is_not_even_imported(install):
    install("acme-broken", "acme", "acme_broken_plugin", "raise RuntimeError('must not be imported')")
    manager = create_plugin_manager(autoload=True, blocked=["acme"])
    assert "acme_broken_plugin" not in sys.modules
    assert manager.is_blocked("acme")


def test_import_failure_names_the_plugin_and_distribution(install):
    install("acme-broken", "acme", "acme_broken_plugin", "import no_such_module_anywhere")
    with pytest.raises(PluginError) as error:
        create_plugin_manager(autoload=True)
    assert error.value.plugin == "acme"
    assert "acme-broken 1.2.3" in str(error.value) and "no_such_module_anywhere" in str(error.value)


def test_duplicate_device_type_names_both_plugins(install):
    install("acme-uart", "acme", "acme_uart_plugin", """
        from petard.core.hookspecs import hookimpl
        from petard.plugins.serial import Serial16550A

        @hookimpl
        def petard_device_types():
            return {"serial": Serial16550A}
    """)
    manager = create_plugin_manager(autoload=True)
    with pytest.raises(PluginError, match=r"plugin 'acme'.*'serial'.*plugin 'serial'"):
        manager.device_types()


@pytest.mark.parametrize("body, complaint", [
    ("raise ValueError('boom')", "raised ValueError: boom"),
    ("return ['not', 'a', 'mapping']", "must return a mapping"),
    ("return {'gadget': object}", "not a subclass of petard.core.device.Device"),
])
def test_bad_device_types_answers_name_the_plugin(body, complaint):
    namespace: dict = {}
    exec(textwrap.dedent(f"""
        from petard.core.hookspecs import hookimpl

        class Plugin:
            @hookimpl
            def petard_device_types(self):
                {body}
    """), namespace)
    manager = PetardPluginManager()
    manager.register_plugin(namespace["Plugin"](), "gadgets")
    with pytest.raises(PluginError) as error:
        manager.device_types()
    assert error.value.plugin == "gadgets" and complaint in str(error.value)


def test_hook_with_wrong_signature_is_rejected_at_registration():
    from petard.core.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def petard_machine_devices(self, spec, unexpected):
            return []

    with pytest.raises(PluginError, match="plugin 'odd': cannot be registered"):
        PetardPluginManager().register_plugin(Plugin(), "odd")

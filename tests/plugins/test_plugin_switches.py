"""Discovery and its switches, through the real command line: `petard plugins` lists what a
VMM would load (names, versions, hooks, device types), the environment variables and the
flags turn autoloading off, block plugins and trace hook calls; a plugin that fails to load
stops the VMM with a message naming it, unless it is blocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from plugin_distributions import write_distribution
from petard_proc import PetardProcess

SENSOR_PLUGIN = """
    from petard.core.device import Device
    from petard.core.hookspecs import hookimpl

    class Thermometer(Device):
        irq_count = 1

    @hookimpl
    def petard_device_types():
        return {"acme-thermometer": Thermometer}
"""

PLUGIN_ENV_VARS = ("PETARD_DISABLE_PLUGIN_AUTOLOAD", "PETARD_BLOCK_PLUGINS", "PETARD_TRACE_PLUGINS")


@pytest.fixture
def plugin_path(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write_distribution(site, "acme-thermometer", "acme", "acme_thermometer_plugin", SENSOR_PLUGIN, "2.5.0")
    return site


def petard(*args: str, site, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in PLUGIN_ENV_VARS}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "petard", *args], capture_output=True, text=True,
                          env=environment, timeout=60)


def listed(result: subprocess.CompletedProcess) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {plugin["name"]: plugin for plugin in json.loads(result.stdout)}


def test_plugins_lists_builtins_then_installed_plugins(plugin_path):
    result = petard("plugins", site=plugin_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "SOURCE", "HOOKS", "DEVICE", "TYPES"]
    assert lines[1].split()[:3] == ["serial", "0.1.0", "built-in"]
    acme = next(line for line in lines if line.startswith("acme "))
    assert acme.split() == ["acme", "2.5.0", "acme-thermometer", "2.5.0", "petard_device_types", "acme-thermometer"]
    plugins = listed(petard("plugins", "--json", site=plugin_path))
    assert plugins["acme"] == {"name": "acme", "version": "2.5.0", "builtin": False,
                               "hooks": ["petard_device_types"], "source": "acme-thermometer 2.5.0",
                               "module": "acme_thermometer_plugin", "device_types": ["acme-thermometer"]}
    assert plugins["rtc"]["builtin"] and plugins["rtc"]["device_types"] == ["rtc"]


@pytest.mark.parametrize("args, env", [
    (["--no-plugin-autoload"], {}),
    ([], {"PETARD_DISABLE_PLUGIN_AUTOLOAD": "1"}),
    (["--block-plugin", "acme"], {}),
    ([], {"PETARD_BLOCK_PLUGINS": "other,acme"}),
])
def test_autoload_and_block_switches(plugin_path, args, env):
    plugins = listed(petard("plugins", "--json", *args, site=plugin_path, env=env))
    assert "acme" not in plugins and "serial" in plugins


def test_a_builtin_can_be_blocked(plugin_path):
    plugins = listed(petard("plugins", "--json", "--block-plugin", "rtc", "--block-plugin", "boot_timer",
                            site=plugin_path))
    assert "rtc" not in plugins and "boot_timer" not in plugins and "acme" in plugins


@pytest.mark.parametrize("args, env", [(["--trace-plugins"], {}), ([], {"PETARD_TRACE_PLUGINS": "1"})])
def test_trace_logs_every_hook_call(plugin_path, args, env):
    result = petard("plugins", *args, site=plugin_path, env=env)
    assert result.returncode == 0, result.stderr
    calls = [line for line in result.stderr.splitlines() if "hook petard_device_types" in line]
    plugins = [line.split("of plugin ")[1].split()[0] for line in calls]
    assert plugins[:3] == ["'serial'", "'rtc'", "'boot_timer'"] and "'acme'" in plugins[3:]
    (acme_call,) = [line for line in calls if "of plugin 'acme'" in line]
    assert "returned {'acme-thermometer': <class 'acme_thermometer_plugin.Thermometer'>}" in acme_call
    assert "registered plugin 'acme' (acme-thermometer 2.5.0)" in result.stderr
    assert "hook petard_device_types" not in petard("plugins", site=plugin_path).stderr


def test_a_plugin_that_fails_to_load_is_named_and_can_be_blocked(tmp_path, plugin_path):
    write_distribution(plugin_path, "acme-broken", "broken", "acme_broken_plugin",
                       "import acme_no_such_dependency\n", "0.0.1")
    result = petard("plugins", site=plugin_path)
    assert result.returncode == 1
    assert result.stderr.startswith("petard plugins: plugin 'broken': failed to load (entry point broken = "
                                    "acme_broken_plugin of distribution acme-broken 0.0.1): ModuleNotFoundError")
    assert "acme" in listed(petard("plugins", "--json", "--block-plugin", "broken", site=plugin_path))

    environment = {"PYTHONPATH": str(plugin_path)}
    vmm = PetardProcess(tmp_path, env=environment)
    try:
        assert vmm.wait_exit(30) == 1
        assert "Could not load the device plugins: plugin 'broken': failed to load" in vmm.output
    finally:
        vmm.stop()
    vmm = PetardProcess(tmp_path, "--block-plugin", "broken", "--trace-plugins", env=environment)
    try:
        vmm.wait_started()
        assert vmm.api.get("/").json()["state"] == "Not started"
        names = [plugin["name"] for plugin in vmm.api.get("/petard/plugins").json()]
        assert "acme" in names and "broken" not in names
        # The VMM's log carries the trace, in its usual line format.
        assert "registered plugin 'acme' (acme-thermometer 2.5.0)" in vmm.output
        assert "hook petard_device_types({}) of plugin 'acme' returned" in vmm.output
    finally:
        vmm.stop()

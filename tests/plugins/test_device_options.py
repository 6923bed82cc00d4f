"""The pieces behind the switches and the options check, in-process: plugin settings from the
environment plus flags, and device options validated by a plugin's pydantic model."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from petard.core.device import Device, DeviceOptionsError, DeviceType
from petard.core.plugins import BLOCK_ENV, DISABLE_AUTOLOAD_ENV, TRACE_ENV, PluginSettings


class FanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm: int = Field(1000, ge=0, le=10_000)
    label: str = "fan"


class Fan(Device):
    options_model = FanOptions

    def __init__(self, ctx, *, rpm: int, label: str) -> None:
        super().__init__(ctx)
        self.rpm, self.label = rpm, label


class Plain(Device):
    pass


def test_options_become_constructor_keywords():
    assert Fan.options_from_config({"rpm": 1200}) == {"rpm": 1200, "label": "fan"}
    assert Fan.options_from_config(None) == {"rpm": 1000, "label": "fan"}
    assert Plain.options_from_config({}) == {}


def test_every_problem_is_named_with_its_field_and_the_plugin():
    fan = DeviceType("fan", Fan, "acme-cooling")
    with pytest.raises(DeviceOptionsError) as error:
        fan.check_options({"rpm": -1, "label": 3, "colour": "red"})
    assert str(error.value) == (
        "device type 'fan' of plugin 'acme-cooling': invalid options: "
        "rpm: Input should be greater than or equal to 0; label: Input should be a valid string; "
        "colour: Extra inputs are not permitted")
    assert (error.value.plugin, error.value.type_name) == ("acme-cooling", "fan")
    with pytest.raises(DeviceOptionsError, match="takes no options, got a, b"):
        DeviceType("plain", Plain, "acme").check_options({"b": 1, "a": 2})


def test_settings_from_environment_and_flags(monkeypatch):
    for name in (DISABLE_AUTOLOAD_ENV, BLOCK_ENV, TRACE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert PluginSettings.from_environment() == PluginSettings(autoload=True, blocked=(), trace=False)
    monkeypatch.setenv(BLOCK_ENV, " rtc, acme ,,")
    monkeypatch.setenv(TRACE_ENV, "1")
    settings = PluginSettings.from_environment()
    assert settings == PluginSettings(autoload=True, blocked=("rtc", "acme"), trace=True)
    merged = settings.with_flags(no_autoload=True, blocked=["acme", "serial"])
    assert merged == PluginSettings(autoload=False, blocked=("rtc", "acme", "serial"), trace=True)
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert PluginSettings.from_environment().with_flags().autoload is False

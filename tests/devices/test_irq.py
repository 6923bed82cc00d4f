"""IrqLine: GSI to INTID, level and edge signalling, replay of what happened before the
backend's interrupt controller was connected."""

from __future__ import annotations

import pytest

from petard.core.irq import IrqLine, RecordingInterruptSink
from petard.core.layout import GSI_COUNT, LayoutError


def test_intid_is_gsi_plus_32():
    assert IrqLine(0).intid == 32
    assert IrqLine(GSI_COUNT - 1).intid == 127


@pytest.mark.parametrize("gsi", [-1, GSI_COUNT])
def test_gsi_outside_the_spi_range_is_rejected(gsi):
    with pytest.raises(LayoutError):
        IrqLine(gsi)


def test_levels_and_pulses_reach_the_sink():
    sink = RecordingInterruptSink()
    line = IrqLine(2)
    line.connect(sink)
    line.raise_()
    line.raise_()  # already high: nothing new
    line.lower()
    line.pulse()
    assert sink.events == [(34, True), (34, False), (34, True), (34, False)]
    assert sink.rising_edges(34) == 2


def test_pulse_on_a_high_line_keeps_it_high():
    sink = RecordingInterruptSink()
    line = IrqLine(1)
    line.connect(sink)
    line.raise_()
    line.pulse()
    assert line.level and sink.levels[33] is True


def test_level_before_connect_is_replayed():
    line = IrqLine(5)
    line.raise_()
    sink = RecordingInterruptSink()
    line.connect(sink)
    assert sink.events == [(37, True)]


def test_edge_before_connect_is_replayed_once():
    line = IrqLine(5)
    line.pulse()
    line.pulse()
    sink = RecordingInterruptSink()
    line.connect(sink)
    assert sink.events == [(37, True), (37, False)]
    other = RecordingInterruptSink()
    line.connect(other)  # reconnecting does not invent another edge
    assert other.events == []


def test_lowered_line_before_connect_sends_nothing():
    line = IrqLine(3)
    line.raise_()
    line.lower()
    sink = RecordingInterruptSink()
    line.connect(sink)
    assert sink.events == []

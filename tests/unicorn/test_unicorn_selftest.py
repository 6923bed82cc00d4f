"""The start-up self-test that proves exception syndromes can be recovered from Unicorn."""

import pytest
from guestasm import assemble_words

from petard.backends.unicorn import syndrome
from petard.backends.unicorn.backend import UnicornBackend
from petard.core.arch import esr, insn


def test_probe_finds_the_syndrome_and_fault_address():
    reader = syndrome.probe_exception_details_reader()
    seen = syndrome._run_self_test_guest()
    svc_blob_offset_value = int.from_bytes(seen[0][1][reader.offset:reader.offset + 4], "little")
    assert svc_blob_offset_value == syndrome.EXPECTED_SVC_SYNDROME
    assert esr.exception_class(svc_blob_offset_value) == esr.EC_SVC64


def test_self_test_program_encodings_match_the_assembler():
    # The runtime self-test cannot depend on binutils, so it encodes its three instructions
    # itself; check them against the real assembler.
    words = assemble_words("svc #0x1234\nstr x1, [x0]\nwfi\nhvc #0x5")
    assert words == [insn.encode_svc(0x1234), insn.encode_str_x_unsigned_offset(1, 0),
                     insn.WFI, insn.encode_hvc(0x5)]


def test_backend_refuses_to_start_when_the_syndrome_is_not_where_expected(monkeypatch):
    import petard.backends.unicorn.backend as backend_module

    real_guest = syndrome._run_self_test_guest

    def wrong_blobs():
        real = real_guest()
        return [(intno, bytes(len(blob))) for intno, blob in real]    # syndrome nowhere

    monkeypatch.setattr(syndrome, "_run_self_test_guest", wrong_blobs)
    monkeypatch.setattr(backend_module, "_probed_reader", None)
    with pytest.raises(syndrome.UnicornSelfTestError, match="could not locate the exception syndrome"):
        UnicornBackend()


def test_backend_refuses_when_the_engine_delivers_other_exceptions(monkeypatch):
    import petard.backends.unicorn.backend as backend_module

    monkeypatch.setattr(syndrome, "_run_self_test_guest", lambda: [])
    monkeypatch.setattr(backend_module, "_probed_reader", None)
    with pytest.raises(syndrome.UnicornSelfTestError, match="expected an SVC then a data abort"):
        UnicornBackend()

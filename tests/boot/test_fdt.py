"""The DTB writer: encodings checked against the real dtc, and write/read round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petard.core.boot.fdt import (
    EMPTY,
    FDT_MAGIC,
    Cells,
    FdtError,
    FdtNode,
    U64,
    build_dtb,
    decode_cells,
    decode_strings,
    decode_u64s,
    encode_value,
    parse_dtb,
)

from .dtc import compile_dts, decompile, fdtget


def sample_tree() -> FdtNode:
    root = FdtNode("", {"compatible": "petard,test", "#address-cells": Cells(2), "#size-cells": Cells(2)})
    node = root.add(FdtNode("dev@40001000"))
    node.set("compatible", ["arm,pl031", "arm,primecell"])
    node.set("reg", U64(0x4000_1000, 0x1000))
    node.set("interrupts", Cells(0, 5, 1))
    node.set("flag", EMPTY)
    node.set("also-flag", None)
    node.set("blob", b"\x01\x02\x03")
    node.add(FdtNode("child", {"label": "c"}))
    return root


def test_dtc_reads_every_value_type_as_intended(tmp_path):
    blob = build_dtb(sample_tree(), reservations=[(0x8000_0000, 0x1000)])
    dts = decompile(blob)
    assert 'compatible = "arm,pl031\\0arm,primecell";' in dts
    assert "reg = <0x00 0x40001000 0x00 0x1000>;" in dts
    assert "interrupts = <0x00 0x05 0x01>;" in dts
    assert "flag;" in dts and "also-flag;" in dts
    assert "blob = [01 02 03];" in dts
    assert "/memreserve/\t0x0000000080000000 0x0000000000001000;" in dts
    path = tmp_path / "t.dtb"
    path.write_bytes(blob)
    assert fdtget(path, "/dev@40001000", "reg") == "0 40001000 0 1000"
    assert fdtget(path, "/dev@40001000", "compatible", "s") == "arm,pl031 arm,primecell"
    assert fdtget(path, "/dev@40001000/child", "label", "s") == "c"


def test_dtc_recompiles_our_blob_to_the_same_tree():
    blob = build_dtb(sample_tree())
    again = parse_dtb(compile_dts(decompile(blob))).root
    assert again == parse_dtb(blob).root


def test_header_fields():
    blob = build_dtb(FdtNode(""))
    parsed = parse_dtb(blob)
    assert int.from_bytes(blob[:4], "big") == FDT_MAGIC
    assert int.from_bytes(blob[4:8], "big") == len(blob)
    assert parsed.version == 17 and parsed.reservations == []


def test_encodings():
    assert encode_value("ab") == b"ab\0"
    assert encode_value(["a", "bc"]) == b"a\0bc\0"
    assert encode_value(Cells(1, 0xFFFF_FFFF)) == b"\0\0\0\1\xff\xff\xff\xff"
    assert encode_value(U64(0x1_0000_0002)) == b"\0\0\0\1\0\0\0\2"
    assert encode_value(EMPTY) == encode_value(None) == b""
    assert encode_value(b"\x00\x01") == b"\x00\x01"


@pytest.mark.parametrize("bad", [5, True, Cells(-1), Cells(1 << 32), U64(1 << 64), "a\0b", [], [1], 1.5])
def test_values_without_an_encoding_are_refused(bad):
    with pytest.raises(FdtError):
        encode_value(bad)


@pytest.mark.parametrize("name", ["a b", "x" * 32, "", "dev@", "ü"])
def test_bad_node_names_are_refused(name):
    with pytest.raises(FdtError, match="invalid node name"):
        build_dtb(FdtNode("", children=[FdtNode(name)]))


def test_bad_property_name_and_duplicate_children_are_refused():
    with pytest.raises(FdtError, match="invalid property name"):
        build_dtb(FdtNode("", {"bad name": EMPTY}))
    with pytest.raises(FdtError, match="two children named 'a'"):
        build_dtb(FdtNode("", children=[FdtNode("a"), FdtNode("a")]))
    with pytest.raises(FdtError, match="root node"):
        build_dtb(FdtNode("notroot"))


def test_value_error_names_the_property():
    with pytest.raises(FdtError, match="property 'reg' of node dev"):
        build_dtb(FdtNode("", children=[FdtNode("dev", {"reg": 7})]))


def test_tree_navigation():
    root = sample_tree()
    assert root.find("/dev@40001000/child").properties == {"label": "c"}
    assert [path for path, _ in root.walk()] == ["/", "/dev@40001000", "/dev@40001000/child"]
    with pytest.raises(KeyError):
        root.find("nope")


names = st.from_regex(r"[a-z][a-z0-9,._+\-]{0,20}", fullmatch=True)
values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=20),
    st.lists(st.text(alphabet="abc,-", max_size=8), min_size=1, max_size=4),
    st.lists(st.integers(0, 2**32 - 1), max_size=6).map(lambda v: Cells(*v)),
    st.lists(st.integers(0, 2**64 - 1), max_size=4).map(lambda v: U64(*v)),
    st.binary(max_size=24),
    st.just(EMPTY),
)
nodes = st.recursive(
    st.builds(lambda n, p: FdtNode(n, p), names, st.dictionaries(names, values, max_size=4)),
    lambda kids: st.builds(
        lambda n, p, c: FdtNode(n, p, list({child.name: child for child in c}.values())),
        names,
        st.dictionaries(names, values, max_size=4),
        st.lists(kids, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(nodes, max_size=3), st.dictionaries(names, values, max_size=3))
def test_round_trip(children, properties):
    root = FdtNode("", properties, list({child.name: child for child in children}.values()))
    parsed = parse_dtb(build_dtb(root)).root
    assert [path for path, _ in parsed.walk()] == [path for path, _ in root.walk()]
    for (_, ours), (_, theirs) in zip(root.walk(), parsed.walk()):
        assert list(theirs.properties) == list(ours.properties)
        for name, value in ours.properties.items():
            raw = theirs.properties[name]
            assert raw == encode_value(value)
            if isinstance(value, Cells):
                assert decode_cells(raw) == tuple(value)
            elif isinstance(value, U64):
                assert decode_u64s(raw) == tuple(value)
            elif isinstance(value, str):
                assert decode_strings(raw) == [value]

"""A JSON parser that remembers where each value ends, for serde_json-style error positions.

Firecracker's fault messages for bad bodies come from serde_json and name a position, e.g.
``missing field `vcpu_count` at line 1 column 21``. Python's ``json`` module forgets
positions, so bodies are parsed here into a tree of :class:`Node` objects that keep the
offset of the last character each value consumed. Syntax errors are raised as
:class:`JsonSyntaxError` with serde_json's wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_WHITESPACE = " \t\n\r"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass
class Node:
    """A parsed JSON value with the offset of its last consumed character.

    ``kind`` is one of ``object``, ``array``, ``string``, ``integer``, ``float``, ``bool``, ``null``.
    Objects keep ``entries`` as (key, offset of the key's closing quote, value node), in order.
    """

    kind: str
    value: Any
    end: int
    entries: list[tuple[str, int, "Node"]] = field(default_factory=list)
    items: list["Node"] = field(default_factory=list)

    def to_python(self) -> Any:
        if self.kind == "object":
            return {key: node.to_python() for key, _, node in self.entries}
        if self.kind == "array":
            return [node.to_python() for node in self.items]
        return self.value


class JsonSyntaxError(ValueError):
    """A body that is not JSON; ``str()`` is serde_json's message with its position."""

    def __init__(self, message: str, text: str, offset: int):
        self.message = message
        self.offset = offset
        super().__init__(f"{message} at {position(text, offset)}")


def position(text: str, offset: int) -> str:
    """serde_json's ``line L column C`` for the character at ``offset`` (0-based)."""
    offset = max(-1, min(offset, len(text) - 1))
    line = text.count("\n", 0, offset + 1) + 1
    line_start = text.rfind("\n", 0, offset + 1) + 1
    column = offset - line_start + 1
    return f"line {line} column {column}"


def parse(text: str) -> Node:
    """Parse one JSON document; trailing non-whitespace is an error as in serde_json."""
    parser = _Parser(text)
    parser.skip_whitespace()
    node = parser.value()
    parser.skip_whitespace()
    if parser.pos < len(text):
        raise JsonSyntaxError("trailing characters", text, parser.pos)
    return node


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def error(self, message: str, offset: int | None = None) -> JsonSyntaxError:
        return JsonSyntaxError(message, self.text, self.pos if offset is None else offset)

    def eof(self, what: str) -> JsonSyntaxError:
        return JsonSyntaxError(f"EOF while parsing {what}", self.text, len(self.text))

    def skip_whitespace(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def value(self) -> Node:
        if self.pos >= len(self.text):
            raise self.eof("a value")
        char = self.text[self.pos]
        if char == "{":
            return self.object()
        if char == "[":
            return self.array()
        if char == '"':
            text, end = self.string()
            return Node("string", text, end)
        if char == "-" or char.isdigit():
            return self.number()
        for literal, kind, value in (("true", "bool", True), ("false", "bool", False), ("null", "null", None)):
            if self.text.startswith(literal, self.pos):
                self.pos += len(literal)
                return Node(kind, value, self.pos - 1)
            if literal.startswith(self.text[self.pos:]) and self.pos < len(self.text):
                raise self.eof("a value")
        if char.isalpha():
            raise self.error("expected ident")
        raise self.error("expected value")

    def object(self) -> Node:
        self.pos += 1
        node = Node("object", None, -1)
        self.skip_whitespace()
        if self.pos < len(self.text) and self.text[self.pos] == "}":
            node.end = self.pos
            self.pos += 1
            return node
        while True:
            self.skip_whitespace()
            if self.pos >= len(self.text):
                raise self.eof("an object")
            if self.text[self.pos] != '"':
                if self.text[self.pos] == "}" and node.entries:
                    raise self.error("trailing comma")
                raise self.error("key must be a string")
            key, key_end = self.string()
            self.skip_whitespace()
            if self.pos >= len(self.text):
                raise self.eof("an object")
            if self.text[self.pos] != ":":
                raise self.error("expected `:`")
            self.pos += 1
            self.skip_whitespace()
            node.entries.append((key, key_end, self.value()))
            self.skip_whitespace()
            if self.pos >= len(self.text):
                raise self.eof("an object")
            char = self.text[self.pos]
            self.pos += 1
            if char == "}":
                node.end = self.pos - 1
                return node
            if char != ",":
                raise self.error("expected `,` or `}`", self.pos - 1)

    def array(self) -> Node:
        self.pos += 1
        node = Node("array", None, -1)
        self.skip_whitespace()
        if self.pos < len(self.text) and self.text[self.pos] == "]":
            node.end = self.pos
            self.pos += 1
            return node
        while True:
            self.skip_whitespace()
            if self.pos < len(self.text) and self.text[self.pos] == "]" and node.items:
                raise self.error("trailing comma")
            node.items.append(self.value())
            self.skip_whitespace()
            if self.pos >= len(self.text):
                raise self.eof("a list")
            char = self.text[self.pos]
            self.pos += 1
            if char == "]":
                node.end = self.pos - 1
                return node
            if char != ",":
                raise self.error("expected `,` or `]`", self.pos - 1)

    def string(self) -> tuple[str, int]:
        text = self.text
        pos = self.pos + 1
        out: list[str] = []
        while True:
            if pos >= len(text):
                self.pos = pos
                raise self.eof("a string")
            char = text[pos]
            if char == '"':
                self.pos = pos + 1
                return "".join(out), pos
            if char == "\\":
                pos += 1
                if pos >= len(text):
                    self.pos = pos
                    raise self.eof("a string")
                escape = text[pos]
                if escape == "u":
                    digits = text[pos + 1 : pos + 5]
                    if len(digits) < 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                        raise self.error("invalid escape", pos)
                    out.append(chr(int(digits, 16)))
                    pos += 4
                elif escape in _ESCAPES:
                    out.append(_ESCAPES[escape])
                else:
                    raise self.error("invalid escape", pos)
            elif ord(char) < 0x20:
                raise self.error("control character (\\u0000-\\u001F) found while parsing a string", pos)
            else:
                out.append(char)
            pos += 1

    def number(self) -> Node:
        text = self.text
        start = pos = self.pos
        if text[pos] == "-":
            pos += 1
        digits_start = pos
        while pos < len(text) and text[pos].isdigit():
            pos += 1
        if pos == digits_start:
            raise self.error("invalid number", pos)
        is_float = False
        if pos < len(text) and text[pos] == ".":
            is_float = True
            pos += 1
            fraction_start = pos
            while pos < len(text) and text[pos].isdigit():
                pos += 1
            if pos == fraction_start:
                raise self.error("invalid number", pos)
        if pos < len(text) and text[pos] in "eE":
            is_float = True
            pos += 1
            if pos < len(text) and text[pos] in "+-":
                pos += 1
            exponent_start = pos
            while pos < len(text) and text[pos].isdigit():
                pos += 1
            if pos == exponent_start:
                raise self.error("invalid number", pos)
        self.pos = pos
        literal = text[start:pos]
        if is_float:
            return Node("float", float(literal), pos - 1)
        return Node("integer", int(literal), pos - 1)

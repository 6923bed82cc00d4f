"""Decode a request body into a pydantic model the way Firecracker's serde does, errors included.

Upstream deserializes with serde_json into Rust structs marked ``deny_unknown_fields`` and
reports the *first* problem in document order, with serde's wording and position
(``unknown field `foo`, expected one of `a`, `b` at line 1 column 6``). Clients and tests
match on those texts, so :func:`decode` walks the positioned JSON tree against the model's
field annotations in the same order serde would, and only then builds the pydantic model
(whose own validation is the second line of defence).

The Rust type behind each annotation is declared with the markers below (``U8``, ``U32``,
``PathStr``...), so the models read like upstream's structs.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Union

import pydantic
from pydantic import BaseModel

from petard.api import jsonpos


@dataclass(frozen=True)
class RustInt:
    """An integer field of a given Rust width (``u8``, ``u32``, ``i64``...)."""

    name: str
    minimum: int
    maximum: int


@dataclass(frozen=True)
class RustStr:
    """A string field; ``expecting`` is serde's description (``a string``, ``path string``)."""

    expecting: str = "a string"


@dataclass(frozen=True)
class CustomCheck:
    """A field with a hand-written serde deserializer (e.g. a MAC address).

    ``check(value)`` returns an error message (serde ``Error::custom``) or None.
    """

    check: typing.Callable[[Any], str | None]


class JsonValue:
    """Marker: any JSON value (serde_json::Value)."""


def _int(name: str, minimum: int, maximum: int) -> Any:
    return Annotated[int, RustInt(name, minimum, maximum), pydantic.Field(ge=minimum, le=maximum)]


U8 = _int("u8", 0, 2**8 - 1)
U16 = _int("u16", 0, 2**16 - 1)
U32 = _int("u32", 0, 2**32 - 1)
U64 = _int("u64", 0, 2**64 - 1)
Usize = _int("usize", 0, 2**64 - 1)
I64 = _int("i64", -(2**63), 2**63 - 1)
Str = Annotated[str, RustStr()]
PathStr = Annotated[str, RustStr("path string")]


class SerdeError(ValueError):
    """A body serde would reject; ``str()`` is the message upstream puts in its fault text."""


class ModelConfig:
    """The pydantic configuration every API model shares: strict, unknown fields rejected;
    validators built on first use (a process touches a few of the ~40 models: this keeps
    ~40 ms of schema building off start-up)."""

    config = pydantic.ConfigDict(extra="forbid", frozen=True, defer_build=True)


def decode(model: type[BaseModel], body: str) -> BaseModel:
    """Parse and validate ``body`` as ``model``; raise :class:`SerdeError` with serde's message."""
    try:
        root = jsonpos.parse(body)
    except jsonpos.JsonSyntaxError as error:
        raise SerdeError(str(error)) from None
    _Checker(body).check(root, model)
    try:
        return model.model_validate(root.to_python())
    except pydantic.ValidationError as error:  # pragma: no cover - the walk above is stricter
        raise SerdeError(error.errors()[0]["msg"]) from None


def decode_json_value(body: str) -> Any:
    """Parse an arbitrary JSON document (MMDS bodies) with serde_json's syntax errors."""
    try:
        return jsonpos.parse(body).to_python()
    except jsonpos.JsonSyntaxError as error:
        raise SerdeError(str(error)) from None


def _unexpected(node: jsonpos.Node) -> str:
    """serde's ``Unexpected`` wording for the value a node holds."""
    if node.kind == "string":
        return f'string "{node.value}"'
    if node.kind == "integer":
        return f"integer `{node.value}`"
    if node.kind == "float":
        text = repr(node.value)
        return f"floating point `{text}`"
    if node.kind == "bool":
        return f"boolean `{'true' if node.value else 'false'}`"
    if node.kind == "null":
        return "null"
    if node.kind == "object":
        return "map"
    return "sequence"


def _one_of(names: list[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    if not quoted:
        return "there are no fields"
    if len(quoted) == 1:
        return f"expected {quoted[0]}"
    if len(quoted) == 2:
        return f"expected {quoted[0]} or {quoted[1]}"
    return "expected one of " + ", ".join(quoted)


def _split_annotation(annotation: Any) -> tuple[Any, list[Any]]:
    """Return (bare type, Annotated metadata)."""
    if typing.get_origin(annotation) is Annotated:
        bare, *metadata = typing.get_args(annotation)
        inner_bare, inner_metadata = _split_annotation(bare)
        return inner_bare, metadata + inner_metadata
    return annotation, []


def _optional_inner(annotation: Any) -> Any | None:
    """The T of ``Optional[T]`` or None if the annotation is not optional."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def _is_required(field: pydantic.fields.FieldInfo) -> bool:
    return field.is_required()


class _Checker:
    def __init__(self, text: str):
        self.text = text

    def fail(self, message: str, offset: int) -> typing.NoReturn:
        raise SerdeError(f"{message} at {jsonpos.position(self.text, offset)}")

    def check(self, node: jsonpos.Node, annotation: Any) -> None:
        bare, metadata = _split_annotation(annotation)
        inner = _optional_inner(bare)
        if inner is not None:
            if node.kind == "null":
                return
            self.check(node, inner)
            return
        for marker in metadata:
            if isinstance(marker, RustInt):
                return self.check_int(node, marker)
            if isinstance(marker, RustStr):
                return self.check_str(node, marker.expecting)
            if isinstance(marker, CustomCheck):
                self.check_str(node, "a string")
                message = marker.check(node.value)
                if message:
                    self.fail(message, node.end)
                return
        if bare is JsonValue or bare is Any:
            return
        if bare is bool:
            if node.kind != "bool":
                self.fail(f"invalid type: {_unexpected(node)}, expected a boolean", node.end)
            return
        if bare is str:
            return self.check_str(node, "a string")
        if isinstance(bare, type) and issubclass(bare, enum.Enum):
            return self.check_enum(node, bare)
        if isinstance(bare, type) and issubclass(bare, BaseModel):
            return self.check_struct(node, bare)
        origin = typing.get_origin(bare)
        if origin is list:
            if node.kind != "array":
                self.fail(f"invalid type: {_unexpected(node)}, expected a sequence", node.end)
            (item_type,) = typing.get_args(bare)
            for item in node.items:
                self.check(item, item_type)
            return
        if origin is dict:
            if node.kind != "object":
                self.fail(f"invalid type: {_unexpected(node)}, expected a map", node.end)
            _, value_type = typing.get_args(bare)
            for _, _, value in node.entries:
                self.check(value, value_type)
            return
        raise TypeError(f"no serde rule for annotation {annotation!r}")

    def check_int(self, node: jsonpos.Node, rust: RustInt) -> None:
        if node.kind != "integer":
            self.fail(f"invalid type: {_unexpected(node)}, expected {rust.name}", node.end)
        if not rust.minimum <= node.value <= rust.maximum:
            self.fail(f"invalid value: {_unexpected(node)}, expected {rust.name}", node.end)

    def check_str(self, node: jsonpos.Node, expecting: str) -> None:
        if node.kind != "string":
            self.fail(f"invalid type: {_unexpected(node)}, expected {expecting}", node.end)

    def check_enum(self, node: jsonpos.Node, enum_type: type[enum.Enum]) -> None:
        variants = [member.value for member in enum_type]
        if node.kind != "string":
            self.fail(f"invalid type: {_unexpected(node)}, expected enum {enum_type.__name__}", node.end)
        if node.value not in variants:
            self.fail(f"unknown variant `{node.value}`, {_one_of(variants)}", node.end)

    def check_struct(self, node: jsonpos.Node, model: type[BaseModel]) -> None:
        if node.kind != "object":
            self.fail(
                f"invalid type: {_unexpected(node)}, expected struct {_rust_name(model)}", node.end
            )
        fields = model.model_fields
        names = [field.alias or name for name, field in fields.items()]
        by_name = {field.alias or name: field for name, field in fields.items()}
        lenient = model.model_config.get("extra") != "forbid"
        seen: set[str] = set()
        for key, key_end, value in node.entries:
            field = by_name.get(key)
            if field is None:
                if lenient:
                    continue
                self.fail(f"unknown field `{key}`, {_one_of(names)}", key_end)
            if key in seen:
                self.fail(f"duplicate field `{key}`", key_end)
            seen.add(key)
            self.check(value, field.annotation if not field.metadata else Annotated[(field.annotation, *field.metadata)])
        for name in names:
            if name not in seen and _is_required(by_name[name]):
                self.fail(f"missing field `{name}`", node.end)
        validator = getattr(model, "serde_validate", None)
        if validator is not None:
            message = validator(node.to_python())
            if message:
                self.fail(message, node.end)


def _rust_name(model: type[BaseModel]) -> str:
    return getattr(model, "rust_name", model.__name__)

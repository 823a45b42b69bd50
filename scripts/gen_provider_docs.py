"""Write docs/providers.md from the ProviderSpecs this package registers (its entry points):
one section per provider with its type, API, what to install, what it depends on, and every
config field with its type, default and description, read from the pydantic config class.

    python -m scripts.gen_provider_docs         # rewrite docs/providers.md
    python -m scripts.gen_provider_docs --check # exit 1 if it is out of date
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from llama_stack.distribution.provider import PROVIDER_APIS, ProviderSpec
from llama_stack.distribution.registry import ENTRY_POINT_GROUP
from llama_stack.distribution.store.api import PostgresKVStoreConfig, RedisKVStoreConfig, SqliteKVStoreConfig
from scripts.generated_docs import write_or_check

DOC = Path(__file__).resolve().parents[1] / "docs" / "providers.md"
PACKAGE = "llamastack-lite"
KVSTORES = (SqliteKVStoreConfig, RedisKVStoreConfig, PostgresKVStoreConfig)
KVSTORE_LINK = "[kvstore](#key-value-stores)"


def shipped_specs() -> list[ProviderSpec]:
    """The providers this package's own entry points name (not plugins, not test providers)."""
    specs = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.dist is not None and entry.dist.name == PACKAGE:
            spec = entry.load()
            if isinstance(spec, ProviderSpec):
                specs.append(spec)
    order = {api: index for index, api in enumerate(PROVIDER_APIS)}
    return sorted(specs, key=lambda spec: (order.get(spec.api, len(order)), spec.provider_type))


def _is_kvstore(annotation: Any) -> bool:
    members = [a for a in _flatten_union(annotation) if a is not type(None)]
    return bool(members) and all(member in KVSTORES for member in members)


def _flatten_union(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Annotated:
        return _flatten_union(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _flatten_union(arg)]
    return [annotation]


def type_name(annotation: Any) -> str:
    if _is_kvstore(annotation):
        optional = type(None) in _flatten_union(annotation)
        return KVSTORE_LINK + (" \\| none" if optional else "")
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return " \\| ".join(type_name(arg) for arg in get_args(annotation))
    if origin is Literal:
        return " \\| ".join(json.dumps(value) for value in get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(arg) for arg in get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "none"
    if annotation is SecretStr:
        return "secret string"
    return str(getattr(annotation, "__name__", annotation))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, SecretStr):
        return "***"
    return value


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if value is None:
        return "none"
    return f"`{json.dumps(_plain(value))}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def field_rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    """One row per field; a field holding a nested config model lists that model's fields."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in KVSTORES:
            rows += field_rows(annotation, f"{prefix}{name}.")
            continue
        description = _cell(field.description or "")
        rows.append(f"| `{prefix}{name}` | {type_name(annotation)} | {default_text(field)} | {description} |")
    return rows


def _docstring(model: type[BaseModel]) -> str:
    own = model.__dict__.get("__doc__") or ""
    return " ".join(own.strip().split("\n\n")[0].split())


def provider_section(spec: ProviderSpec) -> list[str]:
    install = f"`{spec.pip_command}`" if (spec.extra or spec.pip_packages or spec.install_hint) else "included"
    facts = [f"API: `{spec.api.value}`", f"install: {install}", f"config: `{spec.config_class.__name__}`"]
    if spec.depends_on:
        facts.append("depends on: " + ", ".join(f"`{api.value}`" for api in spec.depends_on))
    if spec.optional_depends_on:
        facts.append("uses when served: " + ", ".join(f"`{api.value}`" for api in spec.optional_depends_on))
    lines = [f"### `{spec.provider_type}`", "", _cell(spec.description), "", "- " + "\n- ".join(facts), ""]
    if doc := _docstring(spec.config_class):
        lines += [doc, ""]
    rows = field_rows(spec.config_class)
    if rows:
        lines += ["| Field | Type | Default | Description |", "|-------|------|---------|-------------|", *rows, ""]
    else:
        lines += ["No configuration.", ""]
    return lines


@contextmanager
def home_as_tilde() -> Iterator[None]:
    """Defaults computed with expanduser() print as `~/...`, the same on every machine."""
    saved = os.environ.get("HOME")
    os.environ["HOME"] = "~"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = saved


def render() -> str:
    specs = shipped_specs()
    lines = [
        "# Providers",
        "",
        "<!-- Generated by scripts/gen_provider_docs.py from the providers' ProviderSpecs: do not edit. -->",
        "",
        "Each provider backs one API. A run.yaml names it by `provider_type` and gives its `config`;",
        "a field left out takes its default, and a misspelt one fails at startup naming its key.",
        "`llama stack list-providers` lists the same providers with what to install.",
        "",
    ]
    seen: dict[str, int] = {}  # GitHub numbers a repeated heading's anchor: remote::bedrock, remote::bedrock-1

    def unique_anchor(provider_type: str) -> str:
        base = anchor(provider_type)
        count = seen.get(base, 0)
        seen[base] = count + 1
        return f"{base}-{count}" if count else base

    with home_as_tilde():
        for api in PROVIDER_APIS:
            of_api = [spec for spec in specs if spec.api == api]
            if not of_api:
                continue
            lines += [f"## {api.value.capitalize()}", ""]
            lines += [f"- [`{spec.provider_type}`](#{unique_anchor(spec.provider_type)})" for spec in of_api] + [""]
            for spec in of_api:
                lines += provider_section(spec)
        lines += [
            "## Key-value stores",
            "",
            "Where a run.yaml keeps state (`metadata_store`, a memory provider's `kvstore`, the agents'",
            "`persistence_store`), `type` picks one of these. Point several servers at one Postgres or",
            "Redis and they share it.",
            "",
        ]
        for store in KVSTORES:
            kind = store.model_fields["type"].default
            lines += [f"### `type: {kind}`", "", "| Field | Type | Default | Description |"]
            lines += ["|-------|------|---------|-------------|", *field_rows(store), ""]
    return "\n".join(lines).rstrip() + "\n"


def anchor(provider_type: str) -> str:
    """GitHub's anchor of a `### \\`inline::faiss\\`` heading."""
    return "".join(c for c in provider_type.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    return write_or_check(DOC, render, __spec__.name if __spec__ else __name__, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

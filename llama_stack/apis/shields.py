"""Shields registry API."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

from llama_stack.apis.common import JsonValue, WireModel
from llama_stack.apis.resource import Resource


class Shield(Resource):
    type: Literal["shield"] = "shield"
    params: dict[str, JsonValue] = Field(default_factory=dict)


class RegisterShieldRequest(WireModel):
    shield_id: str = Field(min_length=1)
    provider_shield_id: str | None = None
    provider_id: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)


class Shields(Protocol):
    async def list_shields(self) -> list[Shield]: ...
    async def get_shield(self, identifier: str) -> Shield | None: ...
    async def register_shield(self, request: RegisterShieldRequest) -> Shield: ...


class ShieldOwner(Protocol):
    async def register_shield(self, shield: Shield) -> Shield: ...

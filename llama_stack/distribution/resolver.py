"""RunConfig -> a running Stack: providers instantiated in dependency order, routing tables loaded,
the run config's resources registered. A bad config stops startup with the YAML key path and why.

With `background=True` (how `llama stack run` serves), the providers start in background tasks
(see distribution/startup.py): the server answers at once, a request for a provider still loading
waits for it, and a provider that fails to start is reported by /alpha/health and named in the
error of every request routed to it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from pydantic import BaseModel

from llama_stack.apis.errors import StackError
from llama_stack.apis.memory_banks import RegisterMemoryBankRequest
from llama_stack.apis.models import RegisterModelRequest
from llama_stack.apis.shields import RegisterShieldRequest
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.provider import AnyProviderSpec, Api, ApiRouters, Deps
from llama_stack.distribution.registry import UnknownProvider, get_provider_spec
from llama_stack.distribution.routers import InferenceRouter, MemoryRouter, SafetyRouter
from llama_stack.distribution.routing import MemoryBanksTable, ModelsTable, ShieldsTable
from llama_stack.distribution.spec import ConfigError, RunConfig, validate_section
from llama_stack.distribution.startup import (
    HealthReport,
    ProviderStartup,
    Readiness,
    StartingAgents,
    StartingInference,
    StartingMemory,
    StartingSafety,
)
from llama_stack.distribution.store import kvstore_from_config
from llama_stack.distribution.store.api import KVStore, MissingDependency
from llama_stack.server.operations import Operations

log = logging.getLogger(__name__)


@dataclass
class ResolvedProvider:
    api: Api
    provider_id: str
    spec: AnyProviderSpec
    impl: Any  # a gate (distribution/startup.py) until a background start has finished
    startup: ProviderStartup[Any]


@dataclass
class Stack:
    """A built stack. `routers` are what providers are handed (through Deps); `faces` are what the
    HTTP faces call: the same routers, with the wrappers only a client's own request passes."""

    config: RunConfig
    store: KVStore
    providers: list[ResolvedProvider]
    models: ModelsTable
    shields: ShieldsTable
    memory_banks: MemoryBanksTable
    operations: Operations
    routers: ApiRouters = field(default_factory=ApiRouters)
    faces: ApiRouters = field(default_factory=ApiRouters)
    # Providers behind gates whose background start has not been launched yet (start_background).
    unstarted: list[tuple[ResolvedProvider, int, BaseModel, Deps]] = field(default_factory=list)

    def start_background(self) -> None:
        """Launch the background starts on the running loop (build_stack does, unless told to wait)."""
        for provider, index, provider_config, deps in self.unstarted:
            provider.startup.task = asyncio.create_task(
                _start_in_background(self, provider, index, provider_config, deps)
            )
        self.unstarted = []

    def health(self) -> HealthReport:
        states = [provider.startup.health() for provider in self.providers]
        failed = any(state.status == Readiness.failed for state in states)
        return HealthReport(
            status="Error" if failed else "OK",
            ready=all(state.status == Readiness.ready for state in states),
            providers=states,
        )

    async def wait_started(self) -> None:
        """Wait for every background start to end, ready or failed (health says which)."""
        tasks = [p.startup.task for p in self.providers if p.startup.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def shutdown(self) -> None:
        starting = [p.startup.task for p in self.providers if p.startup.task is not None and not p.startup.task.done()]
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        for provider in reversed(self.providers):
            shutdown = getattr(provider.impl, "shutdown", None)
            if shutdown is None:
                continue
            try:
                await shutdown()
            except Exception:  # one provider failing to stop must not keep the others running
                log.exception("provider %s failed to shut down", provider.provider_id)
        await self.operations.close()
        await self.store.close()


def _specs(config: RunConfig) -> dict[Api, list[tuple[int, AnyProviderSpec, BaseModel]]]:
    """Look up and validate every provider entry before starting any of them."""
    resolved: dict[Api, list[tuple[int, AnyProviderSpec, BaseModel]]] = {}
    for api in config.served_apis():
        entries = config.providers.get(api, [])
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            path: tuple[str | int, ...] = ("providers", api.value, index)
            if entry.provider_id in seen:
                raise ConfigError(f"providers.{api.value}[{index}].provider_id: '{entry.provider_id}' is used twice")
            seen.add(entry.provider_id)
            try:
                spec = get_provider_spec(api, entry.provider_type)
            except UnknownProvider as e:
                raise ConfigError(f"providers.{api.value}[{index}].provider_type: {e}") from e
            missing = spec.missing_modules()
            if missing:
                raise ConfigError(
                    f"providers.{api.value}[{index}].provider_type: '{spec.provider_type}' needs "
                    f"{', '.join(missing)}, which is not installed; run: {spec.pip_command}"
                )
            config_model = validate_section(spec.config_class, entry.config, (*path, "config"))
            resolved.setdefault(api, []).append((index, spec, config_model))
    return resolved


REGISTRIES = (Api.models, Api.shields, Api.memory_banks)


async def _open_kvstore(spec: AnyProviderSpec, provider_config: BaseModel) -> KVStore | None:
    """The provider's own kvstore (Deps.kvstore), from the config its spec names."""
    if spec.kvstore is None:
        return None
    try:
        return await kvstore_from_config(spec.kvstore(provider_config))
    except (MissingDependency, ConnectionError) as e:
        raise RuntimeError(f"kvstore: {e}") from e


def _api_order(specs: dict[Api, list[tuple[int, AnyProviderSpec, BaseModel]]]) -> list[Api]:
    graph: dict[Api, set[Api]] = {api: set() for api in specs}
    for api, entries in specs.items():
        for _, spec, _ in entries:
            graph[api].update(optional for optional in spec.optional_depends_on if optional in specs)
            for needed in spec.depends_on:
                if needed in REGISTRIES:
                    continue
                if needed not in specs:
                    raise ConfigError(
                        f"providers.{api.value}: '{spec.provider_type}' needs the {needed.value} API, "
                        "which this run config does not serve"
                    )
                graph[api].add(needed)
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        raise ConfigError(f"providers: the APIs depend on each other in a cycle: {e.args[1]}") from e


# The call chain, from the provider out to the face, as a request meets it in reverse:
#   provider -> metering (each inference provider: every call measured once, whoever makes it)
#   -> router (the routing table picks the provider) -> scopes (faces only: the caller's models)
# Guardrails wrap the faces' chat per request (distribution/guardrails.py), since each request names its shields.
def _build_router(api: Api, stack: Stack, impls: dict[str, Any], outbound: OutboundPolicy) -> object:
    if api == Api.inference:
        stack.models.providers = impls
        metered = {pid: _metered(stack, pid, impl) for pid, impl in impls.items()}
        return InferenceRouter(stack.models, metered, outbound)
    if api == Api.safety:
        stack.shields.providers = impls
        return SafetyRouter(stack.shields)
    if api == Api.memory:
        stack.memory_banks.providers = impls
        return MemoryRouter(stack.memory_banks)
    return next(iter(impls.values()))  # agents have no registry: one agents provider serves them all


def _metered(stack: Stack, provider_id: str, impl: Any) -> Any:
    types = {p.provider_id: p.spec.provider_type for p in stack.providers if p.api == Api.inference}
    return stack.operations.metered(provider_id, types[provider_id], impl)


# The gate that stands in for a provider of each API until it has started in the background.
def _gate(api: Api, stack: Stack, startup: ProviderStartup[Any]) -> object:
    if api == Api.inference:
        return StartingInference(startup, stack.models)
    if api == Api.safety:
        return StartingSafety(startup, stack.shields)
    if api == Api.memory:
        return StartingMemory(startup, stack.memory_banks)
    return StartingAgents(startup)


def _install(stack: Stack, provider: ResolvedProvider, impl: Any) -> None:
    """Put a provider that has started where its gate stood, so requests reach it directly."""
    provider.impl = impl
    pid = provider.provider_id
    if provider.api == Api.inference:
        stack.models.providers[pid] = impl
        router = stack.routers.get(Api.inference)
        assert isinstance(router, InferenceRouter)
        router.providers[pid] = _metered(stack, pid, impl)
    elif provider.api == Api.safety:
        stack.shields.providers[pid] = impl
    elif provider.api == Api.memory:
        stack.memory_banks.providers[pid] = impl
    elif provider.api == Api.agents:  # the agents provider is its API's router
        stack.routers.set(Api.agents, impl)
        stack.faces.set(Api.agents, stack.operations.scoped_agents(impl))


async def _start_provider(api: Api, index: int, spec: AnyProviderSpec, provider_config: BaseModel, deps: Deps) -> Any:
    """The provider's kvstore opened and its factory run; a failure names the YAML key."""
    kv = None
    try:
        kv = await _open_kvstore(spec, provider_config)
        deps = Deps({a: deps.get(a) for a in deps}, deps.outbound, deps.multi_tenant, kv)
        return await spec.factory(provider_config, deps)
    except (StackError, OSError, ValueError, RuntimeError) as e:
        if kv is not None:  # the provider did not start, so it does not own its store
            await kv.close()
        message = e.message if isinstance(e, StackError) else str(e)
        raise ConfigError(f"providers.{api.value}[{index}] ({spec.provider_type}): failed to start: {message}") from e
    except BaseException:
        if kv is not None:
            await kv.close()
        raise


async def _start_in_background(
    stack: Stack, provider: ResolvedProvider, index: int, provider_config: BaseModel, deps: Deps
) -> None:
    """The heavy imports in a worker thread, then the factory, then the resources the gate took."""
    startup, started = provider.startup, time.perf_counter()
    impl: Any = None
    try:
        await asyncio.to_thread(provider.spec.import_required)
        impl = await _start_provider(provider.api, index, provider.spec, provider_config, deps)
        await startup.hand_over_pending(impl)
        _install(stack, provider, impl)
        startup.succeed(impl)
        log.info("provider %s ready in %.2fs", provider.provider_id, time.perf_counter() - started)
    except Exception as e:  # recorded for health and for every request to it, never lost in a task
        message = e.message if isinstance(e, StackError) else str(e) or type(e).__name__
        if not isinstance(e, ConfigError):
            message = f"providers.{provider.api.value}[{index}] ({provider.spec.provider_type}): {message}"
        log.error("provider %s failed to start: %s", provider.provider_id, message)
        startup.fail(message)
        await _shutdown_quietly(impl)
    finally:
        if startup.status == Readiness.starting:  # cancelled: the server is stopping
            startup.fail("the server stopped before this provider started")


async def _shutdown_quietly(impl: Any) -> None:
    shutdown = getattr(impl, "shutdown", None)
    if shutdown is None:
        return
    try:
        await shutdown()
    except Exception:
        log.exception("a provider that failed to start also failed to shut down")


def _face_routers(stack: Stack) -> ApiRouters:
    faces = ApiRouters({api: stack.routers.get(api) for api in stack.routers}, stack.config.image_name)
    inference, agents = stack.routers.get(Api.inference), stack.routers.get(Api.agents)
    if inference is not None:
        faces.set(Api.inference, stack.operations.scoped_inference(inference))
    if agents is not None:
        faces.set(Api.agents, stack.operations.scoped_agents(agents))
    return faces


async def _register_configured(stack: Stack) -> None:
    config = stack.config
    sections: list[tuple[str, list[Any], Any]] = [
        (
            "models",
            config.models,
            lambda item: stack.models.register_model(RegisterModelRequest(**item.model_dump())),
        ),
        (
            "shields",
            config.shields,
            lambda item: stack.shields.register_shield(RegisterShieldRequest(**item.model_dump())),
        ),
        (
            "memory_banks",
            config.memory_banks,
            lambda item: stack.memory_banks.register_memory_bank(
                RegisterMemoryBankRequest.model_validate(item.model_dump())
            ),
        ),
    ]
    for section, items, register in sections:
        for index, item in enumerate(items):
            try:
                await register(item)
            except StackError as e:
                raise ConfigError(f"{section}[{index}]: {e.message}") from e


async def build_stack(config: RunConfig, background: bool = False, launch: bool = True) -> Stack:
    """The stack, ready to serve. With `background`, the providers are still starting when it
    returns (on the running loop; Stack.health says how each stands); with `launch=False` too,
    they start only when the caller calls Stack.start_background (the server does once its port
    is bound, so the heavy imports do not compete with its own start)."""
    specs = _specs(config)
    order = _api_order(specs)
    try:
        store = await kvstore_from_config(config.registry_store())
    except (MissingDependency, ConnectionError) as e:
        raise ConfigError(f"metadata_store: {e}") from e
    models = ModelsTable({}, store)
    stack = Stack(
        config=config,
        store=store,
        providers=[],
        models=models,
        shields=ShieldsTable({}, store),
        memory_banks=MemoryBanksTable({}, store, models),
        operations=Operations(config.server, store),
        routers=ApiRouters(distribution=config.image_name),
    )
    outbound = OutboundPolicy.from_config(config.server.outbound)
    multi_tenant = bool(config.server.auth and config.server.auth.keys)
    for api, registry in (
        (Api.models, stack.models),
        (Api.shields, stack.shields),
        (Api.memory_banks, stack.memory_banks),
    ):
        stack.routers.set(api, registry)
    try:
        for api in order:
            impls: dict[str, Any] = {}
            for index, spec, provider_config in specs[api]:
                pid = config.providers[api][index].provider_id
                wanted = (*spec.depends_on, *spec.optional_depends_on)
                deps = Deps({a: stack.routers.get(a) for a in wanted if a in stack.routers}, outbound, multi_tenant)
                startup: ProviderStartup[Any] = ProviderStartup(api.value, pid, spec.provider_type)
                impl = _gate(api, stack, startup) if background else None
                if impl is None:
                    impl = await _start_provider(api, index, spec, provider_config, deps)
                    startup.succeed(impl)
                provider = ResolvedProvider(api, pid, spec, impl, startup)
                if startup.impl is None:
                    stack.unstarted.append((provider, index, provider_config, deps))
                impls[pid] = impl
                stack.providers.append(provider)
            stack.routers.set(api, _build_router(api, stack, impls, outbound))
        stack.faces = _face_routers(stack)
        for table in (stack.models, stack.shields, stack.memory_banks):
            await table.load_persisted()
        await _register_configured(stack)
    except BaseException:
        await stack.shutdown()
        raise
    # Gates took the resources registered above; from here on a registration waits for its provider.
    for provider, *_ in stack.unstarted:
        provider.startup.deferring = False
    if launch:
        stack.start_background()
    return stack

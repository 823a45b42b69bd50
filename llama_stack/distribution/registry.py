"""Provider specs, discovered from the "llama_stack.providers" entry-point group.

Loading an entry point imports only the provider package's __init__ and config (cheap); the
heavy implementation is imported by the factory when a distribution actually uses it.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from llama_stack.distribution.provider import AnyProviderSpec, Api, ProviderSpec

ENTRY_POINT_GROUP = "llama_stack.providers"

log = logging.getLogger(__name__)


class UnknownProvider(LookupError):
    pass


# Providers added in-process (an app embedding the stack, or a test's scripted provider).
_installed: dict[tuple[Api, str], AnyProviderSpec] = {}


def install_provider(spec: AnyProviderSpec) -> None:
    """Make a provider available without packaging it as an entry point."""
    _installed[(spec.api, spec.provider_type)] = spec


def provider_registry() -> dict[tuple[Api, str], AnyProviderSpec]:
    return {**_discovered(), **_installed}


@cache
def _discovered() -> dict[tuple[Api, str], AnyProviderSpec]:
    registry: dict[tuple[Api, str], AnyProviderSpec] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        # A broken plugin must not take down the providers that work; it is named in the log.
        try:
            spec = entry.load()
        except Exception:
            log.exception("provider entry point %s = %s failed to load; skipped", entry.name, entry.value)
            continue
        if not isinstance(spec, ProviderSpec):
            log.error("provider entry point %s = %s is not a ProviderSpec; skipped", entry.name, entry.value)
            continue
        registry[(spec.api, spec.provider_type)] = spec
    return registry


def providers_for(api: Api) -> list[AnyProviderSpec]:
    return sorted(
        (spec for (spec_api, _), spec in provider_registry().items() if spec_api == api),
        key=lambda spec: spec.provider_type,
    )


def get_provider_spec(api: Api, provider_type: str) -> AnyProviderSpec:
    spec = provider_registry().get((api, provider_type))
    if spec is None:
        known = ", ".join(s.provider_type for s in providers_for(api)) or "none installed"
        raise UnknownProvider(f"unknown provider_type '{provider_type}' for the {api.value} API (known: {known})")
    return spec

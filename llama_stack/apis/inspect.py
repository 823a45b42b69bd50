"""Inspect API: health, providers and routes of the running stack."""

from __future__ import annotations

from llama_stack.apis.common import WireModel


class HealthInfo(WireModel):
    status: str


class ProviderInfo(WireModel):
    provider_id: str
    provider_type: str


class RouteInfo(WireModel):
    route: str
    method: str
    provider_types: list[str]

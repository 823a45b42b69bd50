"""The registered resources (models, shields, memory banks) share one identity shape."""

from __future__ import annotations

from llama_stack.apis.common import WireModel


class Resource(WireModel):
    """A named thing a provider serves: `identifier` is what clients use,
    `provider_resource_id` what the provider calls it."""

    identifier: str
    provider_resource_id: str
    provider_id: str

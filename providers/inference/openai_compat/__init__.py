"""remote::vllm, remote::tgi, remote::together, remote::fireworks, remote::databricks, remote::openai:
one adapter for every OpenAI-compatible backend, where each vendor is only configuration
(vendors.py: base URL, API-key sources, model-id map).

Importing this package stays cheap (pydantic only): the HTTP client (httpx, a core dependency)
is imported by the factory. No SDK: client.py speaks the OpenAI wire format itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.apis.inference import Inference
from llama_stack.distribution.provider import Api, Deps, InferenceSpec, ProviderFactory, ProviderSpec

from .config import OpenAICompatConfig
from .vendors import DATABRICKS, FIREWORKS, OPENAI, TGI, TOGETHER, VENDORS, VLLM, Vendor

if TYPE_CHECKING:
    from .inference import OpenAICompatInference


async def get_provider_impl(config: OpenAICompatConfig, deps: Deps, vendor: Vendor = VLLM) -> OpenAICompatInference:
    """The factory every vendor's spec calls with its own Vendor (see `_factory`)."""
    from .inference import OpenAICompatInference

    return OpenAICompatInference(vendor, config)


def _factory(vendor: Vendor) -> ProviderFactory[OpenAICompatConfig, Inference]:
    async def factory(config: OpenAICompatConfig, deps: Deps) -> OpenAICompatInference:
        return await get_provider_impl(config, deps, vendor)

    return factory


def _spec(vendor: Vendor) -> InferenceSpec[OpenAICompatConfig]:
    key = f"; API key from provider data '{vendor.provider_data_key}', config or {vendor.api_key_env}"
    return ProviderSpec(
        api=Api.inference,
        provider_type=vendor.provider_type,
        config_class=OpenAICompatConfig,
        factory=_factory(vendor),
        description=f"{vendor.name}: {vendor.description}{key}",
    )


vllm_spec = _spec(VLLM)
tgi_spec = _spec(TGI)
together_spec = _spec(TOGETHER)
fireworks_spec = _spec(FIREWORKS)
databricks_spec = _spec(DATABRICKS)
openai_spec = _spec(OPENAI)
SPECS: dict[str, InferenceSpec[OpenAICompatConfig]] = {
    spec.provider_type: spec
    for spec in (vllm_spec, tgi_spec, together_spec, fireworks_spec, databricks_spec, openai_spec)
}

__all__ = [
    "SPECS",
    "VENDORS",
    "OpenAICompatConfig",
    "Vendor",
    "databricks_spec",
    "fireworks_spec",
    "get_provider_impl",
    "openai_spec",
    "tgi_spec",
    "together_spec",
    "vllm_spec",
]

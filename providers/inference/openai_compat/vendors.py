"""The OpenAI-compatible vendors: each is only configuration — a base URL, where its API key
comes from, what it calls the Llama models, and which optional parameters it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..remote_common import LLAMA_MODELS


@dataclass(frozen=True)
class Vendor:
    key: str  # "together": provider_type "remote::together"
    name: str  # for people: "Together"
    default_url: str | None  # None: the URL must be configured (e.g. a Databricks workspace)
    url_env: str  # the variable the shipped run.yaml reads the URL from
    api_key_env: str
    provider_data_key: str
    requires_api_key: bool
    model_ids: dict[str, str] = field(default_factory=dict)  # Llama descriptor -> vendor model name
    lists_models: bool = False  # GET /v1/models answers OpenAI's list of the models it serves
    extra_sampling: bool = False  # accepts top_k and repetition_penalty beside OpenAI's parameters
    stream_usage: bool = True  # accepts stream_options.include_usage
    description: str = ""
    # "remote::<key>", worked out once: the provider names it on every answer it converts.
    provider_type: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider_type", f"remote::{self.key}")


_HF_REPOS = dict(LLAMA_MODELS)

VLLM = Vendor(
    key="vllm",
    name="vLLM",
    default_url="http://localhost:8000/v1",
    url_env="VLLM_URL",
    api_key_env="VLLM_API_TOKEN",
    provider_data_key="vllm_api_token",
    requires_api_key=False,
    model_ids=_HF_REPOS,
    lists_models=True,
    extra_sampling=True,
    description="a vLLM server's OpenAI-compatible API",
)

TGI = Vendor(
    key="tgi",
    name="TGI",
    default_url="http://localhost:8080/v1",
    url_env="TGI_URL",
    api_key_env="TGI_API_TOKEN",
    provider_data_key="tgi_api_token",
    requires_api_key=False,
    model_ids=_HF_REPOS,  # TGI serves one model and accepts any name for it
    description="Hugging Face Text Generation Inference's Messages API",
)

TOGETHER = Vendor(
    key="together",
    name="Together",
    default_url="https://api.together.xyz/v1",
    url_env="TOGETHER_URL",
    api_key_env="TOGETHER_API_KEY",
    provider_data_key="together_api_key",
    requires_api_key=True,
    model_ids={
        "Llama3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
        "Llama3.1-70B-Instruct": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
        "Llama3.1-405B-Instruct": "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
        "Llama3.2-3B-Instruct": "meta-llama/Llama-3.2-3B-Instruct-Turbo",
        "Llama3.2-11B-Vision-Instruct": "meta-llama/Llama-3.2-11B-Vision-Instruct-Turbo",
        "Llama3.2-90B-Vision-Instruct": "meta-llama/Llama-3.2-90B-Vision-Instruct-Turbo",
        "Llama3.3-70B-Instruct": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "Llama-Guard-3-8B": "meta-llama/Meta-Llama-Guard-3-8B",
        "Llama-Guard-3-11B-Vision": "meta-llama/Llama-Guard-3-11B-Vision-Turbo",
    },
    extra_sampling=True,
    description="Together AI's hosted Llama models",
)

_FIREWORKS = "accounts/fireworks/models/"
FIREWORKS = Vendor(
    key="fireworks",
    name="Fireworks",
    default_url="https://api.fireworks.ai/inference/v1",
    url_env="FIREWORKS_URL",
    api_key_env="FIREWORKS_API_KEY",
    provider_data_key="fireworks_api_key",
    requires_api_key=True,
    model_ids={
        "Llama3.1-8B-Instruct": _FIREWORKS + "llama-v3p1-8b-instruct",
        "Llama3.1-70B-Instruct": _FIREWORKS + "llama-v3p1-70b-instruct",
        "Llama3.1-405B-Instruct": _FIREWORKS + "llama-v3p1-405b-instruct",
        "Llama3.2-1B-Instruct": _FIREWORKS + "llama-v3p2-1b-instruct",
        "Llama3.2-3B-Instruct": _FIREWORKS + "llama-v3p2-3b-instruct",
        "Llama3.2-11B-Vision-Instruct": _FIREWORKS + "llama-v3p2-11b-vision-instruct",
        "Llama3.2-90B-Vision-Instruct": _FIREWORKS + "llama-v3p2-90b-vision-instruct",
        "Llama3.3-70B-Instruct": _FIREWORKS + "llama-v3p3-70b-instruct",
        "Llama-Guard-3-8B": _FIREWORKS + "llama-guard-3-8b",
        "Llama-Guard-3-11B-Vision": _FIREWORKS + "llama-guard-3-11b-vision",
    },
    extra_sampling=True,
    description="Fireworks AI's hosted Llama models",
)

DATABRICKS = Vendor(
    key="databricks",
    name="Databricks",
    default_url=None,  # https://<workspace>.cloud.databricks.com/serving-endpoints
    url_env="DATABRICKS_URL",
    api_key_env="DATABRICKS_API_TOKEN",
    provider_data_key="databricks_api_token",
    requires_api_key=True,
    model_ids={
        "Llama3.1-70B-Instruct": "databricks-meta-llama-3-1-70b-instruct",
        "Llama3.1-405B-Instruct": "databricks-meta-llama-3-1-405b-instruct",
        "Llama3.3-70B-Instruct": "databricks-meta-llama-3-3-70b-instruct",
    },
    stream_usage=False,
    description="Databricks Model Serving endpoints (Foundation Model APIs)",
)

OPENAI = Vendor(
    key="openai",
    name="OpenAI",
    default_url="https://api.openai.com/v1",
    url_env="OPENAI_BASE_URL",
    api_key_env="OPENAI_API_KEY",
    provider_data_key="openai_api_key",
    requires_api_key=True,
    lists_models=True,
    description="OpenAI's API, or any server that speaks it",
)

VENDORS: dict[str, Vendor] = {v.provider_type: v for v in (VLLM, TGI, TOGETHER, FIREWORKS, DATABRICKS, OPENAI)}

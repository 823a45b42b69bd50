"""Building a stack from a run config: fail-fast errors with key paths, routing, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llama_stack.apis.errors import Conflict, InvalidRequest, ModelNotFound
from llama_stack.apis.inference import ChatCompletionRequest, EmbeddingsRequest
from llama_stack.apis.models import RegisterModelRequest
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import build_stack
from llama_stack.distribution.spec import ConfigError, parse_run_config


def run_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 2,
        "image_name": "test",
        "providers": {
            "inference": [
                {"provider_id": "alpha", "provider_type": "test::scripted", "config": {"reply_prefix": "A "}},
                {"provider_id": "beta", "provider_type": "test::scripted", "config": {"reply_prefix": "B "}},
            ]
        },
        "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
        "models": [
            {"model_id": "m-alpha", "provider_id": "alpha"},
            {"model_id": "m-beta", "provider_id": "beta", "provider_model_id": "beta-internal-name"},
        ],
    }
    config.update(overrides)
    return config


async def chat(stack: Any, model_id: str, text: str) -> str:
    request = ChatCompletionRequest.model_validate(
        {"model_id": model_id, "messages": [{"role": "user", "content": text}]}
    )
    response = await stack.routers[Api.inference].chat_completion(request)
    return str(response.completion_message.content)


async def test_requests_reach_the_provider_that_owns_the_model(tmp_path: Path) -> None:
    stack = await build_stack(parse_run_config(run_config(tmp_path), env={}))
    try:
        assert await chat(stack, "m-alpha", "hi") == "A hi"
        assert await chat(stack, "m-beta", "hi") == "B hi"
        with pytest.raises(ModelNotFound, match=r"'nope' is not registered.*m-alpha"):
            await chat(stack, "nope", "hi")
    finally:
        await stack.shutdown()


async def test_provider_sees_its_own_name_for_the_model(tmp_path: Path) -> None:
    stack = await build_stack(parse_run_config(run_config(tmp_path), env={}))
    try:
        beta: Any = stack.models.providers["beta"]
        assert beta.registered == ["m-beta"]
        model = await stack.models.get("m-beta")
        assert model.provider_resource_id == "beta-internal-name"
    finally:
        await stack.shutdown()


async def test_runtime_registration_survives_a_restart(tmp_path: Path) -> None:
    config = parse_run_config(run_config(tmp_path), env={})
    stack = await build_stack(config)
    await stack.models.register_model(RegisterModelRequest(model_id="late", provider_id="beta"))
    await stack.shutdown()

    restarted = await build_stack(config)
    try:
        assert {m.identifier for m in await restarted.models.list_models()} == {"m-alpha", "m-beta", "late"}
        assert await chat(restarted, "late", "again") == "B again"
        beta_again: Any = restarted.models.providers["beta"]
        assert "late" in beta_again.registered
    finally:
        await restarted.shutdown()


async def test_unregistered_model_is_gone_after_restart(tmp_path: Path) -> None:
    config = parse_run_config(run_config(tmp_path), env={})
    stack = await build_stack(config)
    await stack.models.register_model(RegisterModelRequest(model_id="temp", provider_id="alpha"))
    await stack.models.unregister_model("temp")
    await stack.shutdown()
    restarted = await build_stack(config)
    try:
        assert await restarted.models.get_model("temp") is None
    finally:
        await restarted.shutdown()


async def test_registration_conflicts_and_ambiguity_are_clear(tmp_path: Path) -> None:
    stack = await build_stack(parse_run_config(run_config(tmp_path), env={}))
    try:
        with pytest.raises(Conflict, match="already registered with provider 'alpha'"):
            await stack.models.register_model(RegisterModelRequest(model_id="m-alpha", provider_id="beta"))
        with pytest.raises(InvalidRequest, match="set provider_id to one of alpha, beta"):
            await stack.models.register_model(RegisterModelRequest(model_id="which"))
        with pytest.raises(InvalidRequest, match="provider_id 'gamma' is not configured"):
            await stack.models.register_model(RegisterModelRequest(model_id="x", provider_id="gamma"))
        # Registering the same model again with the same provider is idempotent.
        again = await stack.models.register_model(RegisterModelRequest(model_id="m-alpha", provider_id="alpha"))
        assert again.provider_id == "alpha"
    finally:
        await stack.shutdown()


async def test_a_model_registered_by_another_replica_is_found_on_first_use(tmp_path: Path) -> None:
    config = parse_run_config(run_config(tmp_path), env={})
    first, second = await build_stack(config), await build_stack(config)
    try:
        await first.models.register_model(RegisterModelRequest(model_id="shared", provider_id="alpha"))
        assert await chat(second, "shared", "seen") == "A seen"
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_embedding_model_is_not_a_chat_model(tmp_path: Path) -> None:
    models = [{"model_id": "emb", "provider_id": "alpha", "model_type": "embedding"}]
    stack = await build_stack(parse_run_config(run_config(tmp_path, models=models), env={}))
    try:
        with pytest.raises(InvalidRequest, match="'emb' is an embedding model"):
            await chat(stack, "emb", "hi")
        response = await stack.routers[Api.inference].embeddings(
            EmbeddingsRequest(model_id="emb", contents=["abc", "de"])
        )
        assert response.embeddings == [[3.0, 1.0], [2.0, 1.0]]
    finally:
        await stack.shutdown()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"providers": {"inference": [{"provider_id": "x", "provider_type": "remote::nope"}]}},
            r"^providers\.inference\[0\]\.provider_type: unknown provider_type 'remote::nope'.*test::scripted",
        ),
        (
            {
                "providers": {
                    "inference": [
                        {"provider_id": "x", "provider_type": "test::scripted", "config": {"token_delay_s": "slow"}}
                    ]
                }
            },
            r"^providers\.inference\[0\]\.config\.token_delay_s: Input should be a valid number",
        ),
        (
            {"providers": {"inference": [{"provider_id": "x", "provider_type": "test::needs-missing-module"}]}},
            r"needs a_module_that_is_not_installed.*run: pip install 'llamastack-lite\[imaginary\]'",
        ),
        (
            {
                "providers": {
                    "inference": [
                        {"provider_id": "x", "provider_type": "test::scripted"},
                        {"provider_id": "x", "provider_type": "test::scripted"},
                    ]
                }
            },
            r"^providers\.inference\[1\]\.provider_id: 'x' is used twice",
        ),
        (
            {
                "models": [{"model_id": "refused", "provider_id": "alpha"}],
                "providers": {
                    "inference": [
                        {
                            "provider_id": "alpha",
                            "provider_type": "test::scripted",
                            "config": {"refuse_models": ["refused"]},
                        }
                    ]
                },
            },
            r"^models\[0\]: no weights for refused",
        ),
        (
            {"metadata_store": {"type": "redis", "url": "redis://127.0.0.1:1/0"}},
            r"^metadata_store: .*redis",
        ),
    ],
)
async def test_bad_run_config_fails_fast_naming_the_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await build_stack(parse_run_config(run_config(tmp_path, **change), env={}))

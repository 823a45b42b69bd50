"""remote::ollama through the real `ollama` client against the fake Ollama server
(tests/fakes/ollama_server.py): prompts, streaming, sampling, tool calls, images, completion and
embeddings. Model tags, pulls, failures and cancellation: test_ollama_failures.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from llama_stack.apis.common import (
    URL,
    CompletionMessage,
    ImageContentItem,
    Message,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    TextContentItem,
    ToolCall,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)
from llama_stack.apis.errors import (
    InvalidRequest,
    ModelNotFound,
    NotImplementedYet,
)
from llama_stack.apis.inference import (
    ChatCompletionEventType,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    GrammarResponseFormat,
    JsonSchemaResponseFormat,
    LogProbConfig,
)
from llama_stack.models.chat_format import decode_tokens, encode_dialog
from tests.fakes.ollama_model import count_tokens
from tests.fakes.ollama_server import FakeOllama

pytest.importorskip("ollama", reason="needs the ollama extra: pip install 'llamastack-lite[ollama]'")

from llama_stack.providers.inference.ollama import (
    OllamaInferenceConfig,
    provider_spec,
)
from llama_stack.providers.inference.ollama.inference import OllamaInference
from tests.providers.ollama_support import (  # noqa: F401 - pytest finds fixtures by name
    LLAMA_1B,
    MINILM,
    MISTRAL,
    PNG,
    VISION,
    WEATHER_TOOL,
    chat,
    collect,
    fake_fixture,
    ollama_url_fixture,
    provider_fixture,
    streamed_calls,
    text_of,
)

# --- the provider contract ----------------------------------------------------------------------


def test_the_provider_spec_names_its_extra_and_defaults() -> None:
    assert provider_spec.provider_type == "remote::ollama"
    assert provider_spec.extra == "ollama" and provider_spec.required_modules == ("ollama",)
    config = OllamaInferenceConfig()
    assert config.url == "http://localhost:11434" and config.pull_missing_models is False


# --- chat ---------------------------------------------------------------------------------------


async def test_chat_sends_the_llama3_prompt_raw_and_reports_usage(provider: OllamaInference, fake: FakeOllama) -> None:
    response = await provider.chat_completion(chat("Hello there"))

    sent = fake.last("/api/generate")
    llama_prompt = decode_tokens(encode_dialog([UserMessage(content="Hello there")], model_id=LLAMA_1B))
    expected_prompt = llama_prompt.removeprefix("<|begin_of_text|>")  # Ollama's tokenizer adds it
    assert sent["raw"] is True and sent["stream"] is False and sent["model"] == "llama3.2:1b-instruct-fp16"
    assert sent["prompt"] == expected_prompt and expected_prompt.startswith("<|start_header_id|>user")
    assert sent["prompt"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    message = response.completion_message
    assert message.content == "You said: Hello there. This is the fake Ollama model answering."
    assert message.stop_reason == StopReason.end_of_turn and message.tool_calls == []
    assert response.usage is not None
    assert response.usage.prompt_tokens == count_tokens(expected_prompt)
    assert response.usage.completion_tokens == 11  # the fake emits one word per token


async def test_chat_stream_yields_start_deltas_and_complete_with_usage(provider: OllamaInference) -> None:
    whole = await provider.chat_completion(chat("Hello there"))
    chunks = await collect(provider.chat_completion_stream(chat("Hello there")))

    kinds = [c.event.event_type for c in chunks]
    assert kinds[0] == ChatCompletionEventType.start and kinds[-1] == ChatCompletionEventType.complete
    assert kinds.count(ChatCompletionEventType.progress) == 11
    assert text_of(chunks) == whole.completion_message.content
    assert chunks[-1].event.stop_reason == StopReason.end_of_turn
    assert chunks[-1].event.usage == whole.usage


async def test_max_tokens_becomes_num_predict_and_ends_out_of_tokens(provider: OllamaInference) -> None:
    request = chat("Count to 50", sampling_params=SamplingParams(max_tokens=5))
    response = await provider.chat_completion(request)
    chunks = await collect(provider.chat_completion_stream(request))

    assert response.completion_message.content == "1 2 3 4 5"
    assert response.completion_message.stop_reason == StopReason.out_of_tokens
    assert text_of(chunks) == "1 2 3 4 5" and chunks[-1].event.stop_reason == StopReason.out_of_tokens


@pytest.mark.parametrize(
    ("params", "options"),
    [
        (SamplingParams(), {"temperature": 0.0, "repeat_penalty": 1.0}),
        (
            SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.7, top_p=0.9, max_tokens=64, seed=7),
            {"temperature": 0.7, "top_p": 0.9, "top_k": 0, "repeat_penalty": 1.0, "num_predict": 64, "seed": 7},
        ),
        (
            SamplingParams(strategy=SamplingStrategy.top_k, temperature=1.2, top_k=20, repetition_penalty=1.3),
            {"temperature": 1.2, "top_k": 20, "top_p": 1.0, "repeat_penalty": 1.3},
        ),
        (
            SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.0, top_p=0.5),
            {"temperature": 0.0, "repeat_penalty": 1.0},
        ),
    ],
)
async def test_sampling_params_become_ollama_options(
    provider: OllamaInference, fake: FakeOllama, params: SamplingParams, options: dict[str, Any]
) -> None:
    await provider.chat_completion(chat("Hi", sampling_params=params))
    assert fake.last("/api/generate")["options"] == options
    await provider.completion(CompletionRequest(model_id=LLAMA_1B, content="Hi", sampling_params=params))
    assert fake.last("/api/generate")["options"] == options


async def test_json_schema_response_format_is_passed_as_ollama_format(
    provider: OllamaInference, fake: FakeOllama
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}}}
    request = chat("Weather as JSON", response_format=JsonSchemaResponseFormat(json_schema=schema))
    response = await provider.chat_completion(request)

    assert fake.last("/api/generate")["format"] == schema
    assert set(json.loads(str(response.completion_message.content))) == {"city", "degrees"}


async def test_unsupported_options_are_refused_before_calling_ollama(
    provider: OllamaInference, fake: FakeOllama
) -> None:
    calls = len(fake.received)
    with pytest.raises(NotImplementedYet, match="grammar"):
        provider.chat_completion_stream(chat("Hi", response_format=GrammarResponseFormat(bnf={"root": "x"})))
    with pytest.raises(NotImplementedYet, match="logprobs"):
        await provider.completion(CompletionRequest(model_id=LLAMA_1B, content="Hi", logprobs=LogProbConfig(top_k=2)))
    with pytest.raises(ModelNotFound):
        await provider.chat_completion(chat("Hi", model="never-registered"))
    assert len(fake.received) == calls


# --- tool calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fmt", "marker"),
    [
        (LLAMA_1B, None, "[func_name1("),  # Llama 3.2 text defaults to python_list
        (LLAMA_1B, ToolPromptFormat.json, "Return function calls in JSON format."),
        (LLAMA_1B, ToolPromptFormat.function_tag, "<function=example_function_name>"),
        (VISION, None, "Return function calls in JSON format."),  # Llama 3.2 Vision defaults to json
    ],
)
async def test_tool_calls_are_prompted_in_llama_format_and_parsed(
    provider: OllamaInference, fake: FakeOllama, model: str, fmt: ToolPromptFormat | None, marker: str
) -> None:
    request = chat("What is the weather in Paris?", model=model, tools=[WEATHER_TOOL], tool_prompt_format=fmt)
    response = await provider.chat_completion(request)
    assert marker in fake.last("/api/generate")["prompt"]
    message = response.completion_message
    assert [(c.tool_name, c.arguments) for c in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert message.content == "" and message.stop_reason == StopReason.end_of_message

    chunks = await collect(provider.chat_completion_stream(request))
    assert [(c.tool_name, c.arguments) for c in streamed_calls(chunks)] == [("get_weather", {"city": "Paris"})]
    assert text_of(chunks) == "" and chunks[-1].event.stop_reason == StopReason.end_of_message


async def test_a_tool_format_the_model_does_not_take_is_refused(provider: OllamaInference) -> None:
    request = chat(
        "What is the weather in Paris?", model=VISION, tools=[WEATHER_TOOL], tool_prompt_format="python_list"
    )
    with pytest.raises(InvalidRequest, match="python_list"):
        await provider.chat_completion(request)


async def test_a_tool_result_goes_back_to_the_model(provider: OllamaInference) -> None:
    call = ToolCall(call_id="c1", tool_name="get_weather", arguments={"city": "Paris"})
    messages: list[Message] = [
        UserMessage(content="What is the weather in Paris?"),
        CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call]),
        ToolResponseMessage(call_id="c1", tool_name="get_weather", content="sunny, 22 C"),
    ]
    request = ChatCompletionRequest(model_id=LLAMA_1B, messages=messages, tools=[WEATHER_TOOL])
    response = await provider.chat_completion(request)
    assert response.completion_message.content == "The tool said: sunny, 22 C"
    assert response.completion_message.stop_reason == StopReason.end_of_turn


async def test_models_without_a_llama_template_chat_through_api_chat_with_tools(
    provider: OllamaInference, fake: FakeOllama
) -> None:
    plain = await provider.chat_completion(chat("Hello", model=MISTRAL))
    assert fake.last("/api/chat")["messages"] == [{"role": "user", "content": "Hello"}]
    assert str(plain.completion_message.content).startswith("You said: Hello")

    request = chat("What is the weather in Paris?", model=MISTRAL, tools=[WEATHER_TOOL])
    response = await provider.chat_completion(request)
    sent_tool = fake.last("/api/chat")["tools"][0]["function"]
    assert sent_tool["name"] == "get_weather" and sent_tool["parameters"]["required"] == ["city"]
    assert [(c.tool_name, c.arguments) for c in response.completion_message.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert response.completion_message.stop_reason == StopReason.end_of_message
    chunks = await collect(provider.chat_completion_stream(request))
    assert [c.tool_name for c in streamed_calls(chunks)] == ["get_weather"]
    assert chunks[-1].event.stop_reason == StopReason.end_of_message


# --- images -------------------------------------------------------------------------------------


def image_chat(image: ImageContentItem, model: str = VISION) -> ChatCompletionRequest:
    content: list[TextContentItem | ImageContentItem] = [TextContentItem(text="What is in this image?"), image]
    return ChatCompletionRequest(model_id=model, messages=[UserMessage(content=content)])


async def test_images_go_to_api_chat_as_base64(provider: OllamaInference, fake: FakeOllama, ollama_url: str) -> None:
    encoded = base64.b64encode(PNG).decode()
    fake.files["dot.png"] = PNG
    for image in (
        ImageContentItem(data=encoded),
        ImageContentItem(url=URL(uri=f"data:image/png;base64,{encoded}")),
        ImageContentItem(url=URL(uri=f"{ollama_url}/files/dot.png")),
    ):
        response = await provider.chat_completion(image_chat(image))
        sent = fake.last("/api/chat")
        assert sent["model"] == "llama3.2-vision:11b"
        assert sent["messages"] == [{"role": "user", "content": "What is in this image?", "images": [encoded]}]
        assert "I see 1 image." in str(response.completion_message.content)

    chunks = await collect(provider.chat_completion_stream(image_chat(ImageContentItem(data=encoded))))
    assert "I see 1 image." in text_of(chunks) and chunks[-1].event.usage is not None


async def test_images_for_a_text_model_are_refused(provider: OllamaInference) -> None:
    request = image_chat(ImageContentItem(data=base64.b64encode(PNG).decode()), LLAMA_1B)
    with pytest.raises(InvalidRequest, match="text-only"):
        await provider.chat_completion(request)
    with pytest.raises(InvalidRequest, match="text-only"):
        provider.chat_completion_stream(request)  # on the call, before any chunk


# --- completion and embeddings ------------------------------------------------------------------


async def test_completion_sends_the_raw_text_prompt(provider: OllamaInference, fake: FakeOllama) -> None:
    request = CompletionRequest(model_id=LLAMA_1B, content="Once upon a time")
    response = await provider.completion(request)
    assert fake.last("/api/generate")["prompt"] == "Once upon a time"  # Ollama adds <|begin_of_text|>
    assert response.content.startswith(" and so time goes on and on and on")
    assert response.stop_reason == StopReason.end_of_turn
    assert response.usage is not None and response.usage.completion_tokens == len(response.content.split()) == 30

    chunks = [c async for c in provider.completion_stream(request)]
    assert "".join(c.delta for c in chunks) == response.content
    assert chunks[-1].stop_reason == StopReason.end_of_turn and chunks[-1].usage == response.usage

    short = await provider.completion(request.model_copy(update={"sampling_params": SamplingParams(max_tokens=2)}))
    assert short.content == " and so" and short.stop_reason == StopReason.out_of_tokens


async def test_embeddings_are_deterministic_and_report_usage(provider: OllamaInference, fake: FakeOllama) -> None:
    texts = ["the cat sat", "stock markets fell", "the cat sat"]
    response = await provider.embeddings(EmbeddingsRequest(model_id=MINILM, contents=list(texts)))
    assert fake.last("/api/embed") == {"model": "all-minilm:l6-v2", "input": texts}
    first, second, third = response.embeddings
    assert len(first) == 384 and first == third and first != second
    assert abs(sum(v * v for v in first) - 1.0) < 1e-6
    assert response.usage is not None and response.usage.prompt_tokens == sum(count_tokens(t) for t in texts)


# --- the contract suite's backend ---------------------------------------------------------------


async def test_the_contract_backend_serves_its_features() -> None:
    from tests.providers.backends.ollama import open_backend
    from tests.providers.contract import EMBEDDINGS, IMAGES, TOOLS

    async with open_backend() as backend:
        model_id = backend.model.provider_resource_id
        assert {TOOLS, IMAGES, EMBEDDINGS} <= backend.features
        request = chat("What is the weather in Paris?", model=model_id, tools=[WEATHER_TOOL])
        response = await backend.provider.chat_completion(request)
        assert [c.tool_name for c in response.completion_message.tool_calls] == ["get_weather"]
        image = ImageContentItem(data=base64.b64encode(PNG).decode())
        answer = await backend.provider.chat_completion(image_chat(image, model_id))
        assert "I see 1 image." in answer.completion_message.content
        assert backend.embedding_model is not None and backend.open_streams() == 0

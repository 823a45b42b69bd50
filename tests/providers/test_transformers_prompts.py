"""inline::transformers: packaging, Llama 3 chat-format prompts and streaming decode."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import subprocess
import sys

from llama_stack.apis.common import (
    CompletionMessage,
    Message,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolResponseMessage,
    UserMessage,
)
from llama_stack.models.chat_format import (
    encode_completion,
    encode_dialog,
    get_tokenizer,
)
from tests.providers.transformers_support import TINY


def test_importing_the_provider_package_does_not_import_torch() -> None:
    code = (
        "import sys, llama_stack.providers.inference.transformers as p; "
        "assert p.provider_spec.provider_type == 'inline::transformers'; "
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_chat_prompt_is_the_llama3_chat_format() -> None:
    messages: list[Message] = [SystemMessage(content="Be brief."), UserMessage(content="Hi there")]
    tokens = encode_dialog(messages, model_id=TINY)
    assert tokens[:2] == [128000, 128006]  # <|begin_of_text|><|start_header_id|>
    assert get_tokenizer().decode(tokens) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_history_with_tool_calls_and_tool_results_is_encoded() -> None:
    messages: list[Message] = [
        UserMessage(content="Weather in Paris?"),
        CompletionMessage(
            content="",
            stop_reason=StopReason.end_of_message,
            tool_calls=[ToolCall(call_id="c1", tool_name="get_weather", arguments={"city": "Paris"})],
        ),
        ToolResponseMessage(call_id="c1", tool_name="get_weather", content="sunny"),
    ]
    text = get_tokenizer().decode(encode_dialog(messages, model_id=TINY))
    assert '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>' in text
    assert text.endswith(
        "<|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_completion_prompt_is_begin_of_text_then_the_text() -> None:
    tokens = encode_completion("Once upon a time", model_id=TINY)
    assert tokens[0] == 128000
    assert get_tokenizer().decode(tokens[1:]) == "Once upon a time"


def test_stream_decoder_never_splits_a_utf8_character() -> None:
    from llama_stack.models.chat_format import StreamDecoder

    text = "🦙🦙 naïve 日本語"
    tokens = get_tokenizer().encode(text, bos=False, eos=False)
    piece = get_tokenizer().model.decode_single_token_bytes
    assert any(_not_utf8(piece(t)) for t in tokens), "precondition: some token is a partial character"
    decoder = StreamDecoder()
    deltas = [decoder.feed(t) for t in tokens] + [decoder.flush()]
    assert "".join(deltas) == text
    assert all("\ufffd" not in delta for delta in deltas)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False

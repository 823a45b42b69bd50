"""Glue between our API messages and the Llama 3 chat format of the `llama-models` package.

Every local Llama 3.x prompt is built here, with llama-models' own `ChatFormat` and the real
`tokenizer.model` it ships, so prompts match what Meta's reference implementation feeds the
models token for token. This module also turns generated token ids back into text, including
the incremental decoding that streaming needs (a multi-byte UTF-8 character can span tokens).
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from llama_models.datatypes import BuiltinTool as RawBuiltinTool
from llama_models.datatypes import RawContent, RawMediaItem, RawMessage, RawTextItem
from llama_models.datatypes import StopReason as RawStopReason
from llama_models.datatypes import ToolCall as RawToolCall
from llama_models.datatypes import ToolPromptFormat as RawToolPromptFormat
from llama_models.llama3.chat_format import ChatFormat, LLMInput
from llama_models.llama3.tokenizer import Tokenizer
from PIL import Image as PIL_Image

from llama_stack.apis.common import (
    BuiltinTool,
    CompletionMessage,
    ImageContentItem,
    InterleavedContent,
    Message,
    StopReason,
    SystemMessage,
    TextContentItem,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
    content_has_image,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest
from llama_stack.models.images import image_bytes
from llama_stack.models.tool_prompts import check_tool_prompt_format, tool_prompts


@functools.cache
def get_tokenizer() -> Tokenizer:
    """The Llama 3 tiktoken tokenizer (shared by every Llama 3.x model), loaded once."""
    return Tokenizer.get_instance()


@functools.cache
def get_chat_format() -> ChatFormat:
    return ChatFormat(get_tokenizer())


@dataclass(frozen=True)
class StopTokens:
    """The token ids that end a generation, and the stop reason each one reports."""

    end_of_turn: frozenset[int]
    end_of_message: frozenset[int]

    @property
    def all(self) -> frozenset[int]:
        return self.end_of_turn | self.end_of_message

    def reason(self, token_id: int) -> StopReason | None:
        if token_id in self.end_of_turn:
            return StopReason.end_of_turn
        if token_id in self.end_of_message:
            return StopReason.end_of_message
        return None


@functools.cache
def llama3_stop_tokens() -> StopTokens:
    tokenizer = get_tokenizer()
    # <|end_of_text|> ends a base model's completion the way <|eot_id|> ends a chat turn.
    return StopTokens(
        end_of_turn=frozenset({tokenizer.eot_id, tokenizer.eos_id}),
        end_of_message=frozenset({tokenizer.eom_id}),
    )


# --- our API types -> llama-models' raw types ---------------------------------------------------


def text_only_error(model_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"model {model_id} is text-only: it cannot read images. Remove the image content "
        "or send the request to a vision model (e.g. Llama3.2-11B-Vision-Instruct)."
    )


def to_raw_content(content: InterleavedContent, *, model_id: str, allow_images: bool) -> RawContent:
    if not allow_images and content_has_image(content):
        raise text_only_error(model_id)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return [_to_raw_item(item) for item in content]
    return _to_raw_item(content)


def _to_raw_item(item: TextContentItem | ImageContentItem) -> RawTextItem | RawMediaItem:
    if isinstance(item, TextContentItem):
        return RawTextItem(text=item.text)
    return RawMediaItem(data=image_bytes(item))


def _to_raw_tool_call(call: ToolCall) -> RawToolCall:
    builtin_names = {tool.value for tool in BuiltinTool}
    tool_name = RawBuiltinTool(call.tool_name) if call.tool_name in builtin_names else call.tool_name
    # model_construct: llama-models validates arguments as at most one level deep, while ours may
    # nest freely; its encoders only json.dumps / format them, which handles any depth.
    return RawToolCall.model_construct(call_id=call.call_id, tool_name=tool_name, arguments=call.arguments)


def to_raw_message(message: Message, *, model_id: str, allow_images: bool = False) -> RawMessage:
    def content(value: InterleavedContent) -> RawContent:
        return to_raw_content(value, model_id=model_id, allow_images=allow_images)

    if isinstance(message, UserMessage):
        context = content(message.context) if message.context is not None else None
        return RawMessage(role="user", content=content(message.content), context=context)
    if isinstance(message, SystemMessage):
        return RawMessage(role="system", content=content(message.content))
    if isinstance(message, ToolResponseMessage):
        # llama-models' "tool" role is written as the `ipython` header in the prompt.
        return RawMessage(role="tool", content=content(message.content))
    if isinstance(message, CompletionMessage):
        return RawMessage(
            role="assistant",
            content=content(message.content),
            stop_reason=RawStopReason(message.stop_reason.value),
            tool_calls=[_to_raw_tool_call(call) for call in message.tool_calls],
        )
    raise InvalidRequest(f"unsupported message role: {getattr(message, 'role', type(message).__name__)}")


# --- encoding prompts ---------------------------------------------------------------------------


def encode_dialog(
    messages: Sequence[Message],
    *,
    model_id: str,
    tools: Sequence[ToolDefinition] = (),
    tool_prompt_format: ToolPromptFormat | None = None,
    tool_choice: ToolChoice = ToolChoice.auto,
    allow_images: bool = False,
    today: date | None = None,
) -> list[int]:
    """Token ids of a chat prompt: <|begin_of_text|>, each message with its header and
    <|eot_id|> (or <|eom_id|>), then the assistant header the model continues from.

    With `tools`, the tool definitions are rendered the way Llama 3.1 / 3.2 expect (see
    llama_stack.models.tool_prompts): `tool_prompt_format` is checked against the model (None:
    the model's default) and InvalidRequest names the supported ones. Without tools the prompt is
    the conversation alone, exactly as given.
    """
    return list(
        encode_dialog_input(
            messages,
            model_id=model_id,
            tools=tools,
            tool_prompt_format=tool_prompt_format,
            tool_choice=tool_choice,
            allow_images=allow_images,
            today=today,
        ).tokens
    )


def encode_dialog_input(
    messages: Sequence[Message],
    *,
    model_id: str,
    tools: Sequence[ToolDefinition] = (),
    tool_prompt_format: ToolPromptFormat | None = None,
    tool_choice: ToolChoice = ToolChoice.auto,
    allow_images: bool = False,
    today: date | None = None,
) -> LLMInput:
    """`encode_dialog` with the images too: llama-models' LLMInput, whose tokens hold the
    <|image|> id (128256) where each image goes and whose `vision.images` are the PIL images."""
    fmt = check_tool_prompt_format(model_id, tool_prompt_format) if tools else tool_prompt_format
    if tools:
        messages = with_tool_prompts(
            messages, list(tools), fmt or ToolPromptFormat.json, tool_choice=tool_choice, today=today
        )
    raw_messages = [to_raw_message(m, model_id=model_id, allow_images=allow_images) for m in messages]
    raw_format = RawToolPromptFormat(fmt.value) if fmt else None
    try:
        return get_chat_format().encode_dialog_prompt(raw_messages, raw_format)
    except (OSError, PIL_Image.DecompressionBombError) as exc:  # PIL could not read an image
        raise InvalidRequest(f"an image in the messages could not be read as an image (PNG, JPEG, ...): {exc}") from exc


def with_tool_prompts(
    messages: Sequence[Message],
    tools: list[ToolDefinition],
    fmt: ToolPromptFormat,
    *,
    tool_choice: ToolChoice = ToolChoice.auto,
    today: date | None = None,
) -> list[Message]:
    """The conversation with the tool preamble merged into its (first) system message, and for
    the json / function_tag formats the custom tools described in a user message after it."""
    rest = list(messages)
    system_text: str | None = None
    if rest and isinstance(rest[0], SystemMessage):
        system_text = content_text(rest.pop(0).content)
    system, instructions = tool_prompts(tools, fmt, tool_choice=tool_choice, system_text=system_text, today=today)
    head: list[Message] = [SystemMessage(content=system)]
    if instructions is not None:
        head.append(UserMessage(content=instructions))
    return head + rest


def encode_completion(content: InterleavedContent, *, model_id: str, allow_images: bool = False) -> list[int]:
    """Token ids of a raw completion prompt: <|begin_of_text|> then the text, no headers."""
    raw = to_raw_content(content, model_id=model_id, allow_images=allow_images)
    return list(get_chat_format().encode_content(raw).tokens)


# --- decoding generated tokens ------------------------------------------------------------------


def decode_tokens(token_ids: Sequence[int]) -> str:
    return StreamDecoder().feed_all(token_ids)


class StreamDecoder:
    """Turns token ids into text one token at a time, holding back the bytes of a multi-byte
    UTF-8 character until it is complete, so no delta ever carries half a character.

    Bytes that can never form valid UTF-8 come out as U+FFFD, exactly as a one-shot decode
    would give them: streaming and non-streaming text always agree.
    """

    def __init__(self) -> None:
        self._token_bytes = get_tokenizer().model.decode_single_token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        return self._utf8.decode(self._token_bytes(token_id))

    def flush(self) -> str:
        """The text of any bytes still held back, at the end of generation."""
        return self._utf8.decode(b"", final=True)

    def feed_all(self, token_ids: Sequence[int]) -> str:
        return "".join(self.feed(token_id) for token_id in token_ids) + self.flush()

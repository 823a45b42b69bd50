"""How a loaded model's prompts are written and its tokens read back: one PromptFormat per model.

Llama 3.x checkpoints (text, vision, Llama Guard) share one tokenizer and chat format, those of
`llama-models` (llama_stack.models.chat_format), so their prompts match Meta's reference token
for token. Any other checkpoint (SmolLM2, ...) is prompted with its own Hugging Face tokenizer
and the chat template it ships (`apply_chat_template`), and stops on its own end tokens.

A checkpoint counts as Llama 3 when its vocabulary is Llama 3's (128256 ids, more for vision):
that is what makes the llama-models tokenizer the right one for it, whatever its name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jinja2 import TemplateError

from llama_stack.apis.common import (
    CompletionMessage,
    InterleavedContent,
    Message,
    SystemMessage,
    ToolChoice,
    ToolDefinition,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
    content_has_image,
    content_text,
)
from llama_stack.apis.errors import InvalidRequest, ProviderError
from llama_stack.models.chat_format import (
    StopTokens,
    StreamDecoder,
    encode_completion,
    encode_dialog_input,
    get_tokenizer,
    llama3_stop_tokens,
    text_only_error,
    with_tool_prompts,
)

from .structured import EnforcerVocab, build_enforcer_vocab, llama3_enforcer_vocab

LLAMA3_VOCAB_SIZE = 128256


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]
    images: list[Any]  # PIL images, in prompt order (Llama 3.2 Vision only)


class TokenDecoder(Protocol):
    def feed(self, token_id: int) -> str: ...

    def flush(self) -> str: ...


class PromptFormat(Protocol):
    """Everything about a model that depends on its tokenizer."""

    name: str
    stop_tokens: StopTokens

    def encode_dialog(
        self,
        messages: Sequence[Message],
        *,
        model_id: str,
        tools: Sequence[ToolDefinition],
        tool_prompt_format: ToolPromptFormat | None,
        tool_choice: ToolChoice,
        allow_images: bool,
    ) -> Prompt: ...

    def encode_completion(self, content: InterleavedContent, *, model_id: str) -> list[int]: ...

    def decoder(self) -> TokenDecoder: ...

    def token_text(self, token_id: int) -> str: ...

    def enforcer_vocab(self) -> EnforcerVocab: ...


def is_llama3_vocabulary(text_config: Any) -> bool:
    return int(getattr(text_config, "vocab_size", 0) or 0) >= LLAMA3_VOCAB_SIZE


# --- Llama 3 ------------------------------------------------------------------------------------


class Llama3Format:
    name = "llama3"

    def __init__(self) -> None:
        self.stop_tokens = llama3_stop_tokens()

    def encode_dialog(
        self,
        messages: Sequence[Message],
        *,
        model_id: str,
        tools: Sequence[ToolDefinition],
        tool_prompt_format: ToolPromptFormat | None,
        tool_choice: ToolChoice,
        allow_images: bool,
    ) -> Prompt:
        llm_input = encode_dialog_input(
            messages,
            model_id=model_id,
            tools=tools,
            tool_prompt_format=tool_prompt_format,
            tool_choice=tool_choice,
            allow_images=allow_images,
        )
        images = list(llm_input.vision.images) if llm_input.vision is not None else []
        return Prompt(list(llm_input.tokens), images)

    def encode_completion(self, content: InterleavedContent, *, model_id: str) -> list[int]:
        return encode_completion(content, model_id=model_id)

    def decoder(self) -> TokenDecoder:
        return StreamDecoder()

    def token_text(self, token_id: int) -> str:
        return str(get_tokenizer().decode([token_id]))

    def enforcer_vocab(self) -> EnforcerVocab:
        return llama3_enforcer_vocab()


# --- a checkpoint's own chat template -----------------------------------------------------------


class TemplateFormat:
    """Prompts through the checkpoint's Hugging Face tokenizer and chat template.

    Tools are described the way the json / function_tag / python_list formats describe them
    (a system preamble and a user message, see llama_stack.models.tool_prompts), as plain text
    inside the model's own template: a template that renders no tools of its own (SmolLM2's)
    leaves no more faithful way. Whether a small model then calls them well is its own matter.
    """

    name = "chat-template"

    def __init__(self, tokenizer: Any, end_token_ids: Sequence[int]) -> None:
        self._tokenizer = tokenizer
        self.stop_tokens = StopTokens(end_of_turn=frozenset(end_token_ids), end_of_message=frozenset())
        self._vocab: EnforcerVocab | None = None  # built on the first json_schema request

    @classmethod
    def from_checkpoint(cls, path: Path, model: Any) -> TemplateFormat:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ProviderError(f"could not load the tokenizer of the checkpoint at {path}: {exc}") from exc
        return cls(tokenizer, _end_token_ids(model, tokenizer))

    def encode_dialog(
        self,
        messages: Sequence[Message],
        *,
        model_id: str,
        tools: Sequence[ToolDefinition],
        tool_prompt_format: ToolPromptFormat | None,
        tool_choice: ToolChoice,
        allow_images: bool,
    ) -> Prompt:
        if any(_has_image(message) for message in messages):
            raise text_only_error(model_id)
        if self._tokenizer.chat_template is None:
            raise InvalidRequest(
                f"model {model_id} has no chat template: it is a base model; use completion instead of chat"
            )
        if tools:
            messages = with_tool_prompts(
                messages, list(tools), tool_prompt_format or ToolPromptFormat.json, tool_choice=tool_choice
            )
        try:
            text = self._tokenizer.apply_chat_template(
                [_template_message(m) for m in messages], tokenize=False, add_generation_prompt=True
            )
        except TemplateError as exc:  # the template's own checks (e.g. roles must alternate)
            raise InvalidRequest(f"model {model_id}'s chat template rejected the messages: {exc}") from exc
        # The template writes the special tokens it wants (begin of text, turn markers) itself.
        return Prompt(list(self._tokenizer.encode(text, add_special_tokens=False)), [])

    def encode_completion(self, content: InterleavedContent, *, model_id: str) -> list[int]:
        if content_has_image(content):
            raise text_only_error(model_id)
        return list(self._tokenizer.encode(content_text(content)))

    def decoder(self) -> TokenDecoder:
        return IncrementalDecoder(self._tokenizer)

    def token_text(self, token_id: int) -> str:
        return str(self._tokenizer.decode([token_id]))

    def enforcer_vocab(self) -> EnforcerVocab:
        if self._vocab is None:
            special = set(self._tokenizer.all_special_ids)
            size = len(self._tokenizer)
            # U+FFFD: only part of a UTF-8 character; left out as for Llama 3 (see structured.py).
            texts = [(i, self.token_text(i)) for i in range(size) if i not in special]
            texts = [(i, text) for i, text in texts if "\ufffd" not in text]
            self._vocab = build_enforcer_vocab(size, texts, self._decode_all, sorted(self.stop_tokens.all))
        return self._vocab

    def _decode_all(self, tokens: list[int]) -> str:
        return str(self._tokenizer.decode(tokens))


def _end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end an answer: the generation config's eos ids and the tokenizer's eos."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if not ids:
        raise ProviderError("the checkpoint names no end-of-sequence token, so a generation could never stop")
    return sorted(ids)


def _has_image(message: Message) -> bool:
    context = message.context if isinstance(message, UserMessage) else None
    return content_has_image(message.content) or (context is not None and content_has_image(context))


def _template_message(message: Message) -> dict[str, str]:
    """A message as chat templates take it: {"role", "content"} with text content."""
    text = content_text(message.content)
    if isinstance(message, UserMessage):
        if message.context is not None:  # as the Llama 3 format places it: after the question
            text += "\n\n" + content_text(message.context)
        return {"role": "user", "content": text}
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": text}
    if isinstance(message, ToolResponseMessage):
        return {"role": "tool", "content": text}
    assert isinstance(message, CompletionMessage)
    # Earlier tool calls are written back in the json format the tools prompt asked for.
    calls = [{"type": "function", "name": c.tool_name, "parameters": c.arguments} for c in message.tool_calls]
    if calls:
        text += json.dumps(calls[0] if len(calls) == 1 else calls)
    return {"role": "assistant", "content": text}


class IncrementalDecoder:
    """Text of a Hugging Face tokenizer's tokens, one token at a time.

    Decoding a token alone can be wrong (a leading space a tokenizer drops, half of a UTF-8
    character), so each step decodes a short window of recent tokens twice, with and without
    the new ones, and emits the difference; text ending in U+FFFD (an incomplete character)
    waits for the next token.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # the window starts here: tokens already emitted, kept for context
        self._read = 0  # tokens before this index are emitted

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def feed(self, token_id: int) -> str:
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]

    def flush(self) -> str:
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]

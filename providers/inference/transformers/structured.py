"""response_format json_schema by constrained decoding, with lm-format-enforcer.

At every step the sampler may only pick tokens that keep the text a prefix of some JSON
document valid under the schema, and the end of turn only once the document is complete; so a
generation that ends on its own (stop_reason end_of_turn) is valid JSON under the schema. One
cut short by max_tokens (out_of_tokens) is a valid prefix only: give the request room.

lm-format-enforcer enforces types, required properties, enum / const, anyOf, string minLength /
maxLength / pattern and array minItems / maxItems; it does not enforce numeric bounds (minimum,
maximum, multipleOf), so a number may fall outside them, and it does not count whitespace right
after a string's opening quote towards maxLength.

lm-format-enforcer needs the vocabulary as strings; for Llama 3.x models it is built once from
the Llama 3 tiktoken tokenizer of llama-models, every Llama 3.x model sharing it; other models
build theirs from their own tokenizer (see prompts.py).

Near max_tokens the constraint steers towards closing the document (see JsonSchemaConstraint),
so even a model that would ramble (the tiny random test model does) ends with complete JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llama_stack.apis.errors import InvalidRequest, NotImplementedYet, ProviderError
from llama_stack.apis.inference import GrammarResponseFormat, JsonSchemaResponseFormat, ResponseFormat
from llama_stack.models.chat_format import get_tokenizer


def _lmfe() -> Any:
    try:
        import lmformatenforcer
    except ImportError as exc:
        raise ProviderError(
            "response_format json_schema needs lm-format-enforcer: pip install 'lm-format-enforcer>=0.11'"
        ) from exc
    return lmformatenforcer


@dataclass(frozen=True)
class EnforcerVocab:
    """The Llama 3 vocabulary as lm-format-enforcer needs it, plus token classes for closing."""

    data: Any  # lmformatenforcer.TokenEnforcerTokenizerData
    end_tokens: tuple[int, ...]
    quotes: torch.Tensor  # bool [vocab]: tokens with a quote: inside a string, they end it
    closers: torch.Tensor  # bool [vocab]: tokens with } or ]: they end an object or array
    commas: torch.Tensor  # bool [vocab]: tokens with a comma: they finish a number
    blanks: torch.Tensor  # bool [vocab]: whitespace-only tokens
    exponents: torch.Tensor  # bool [vocab]: tokens with an e or E


def build_enforcer_vocab(
    size: int, token_texts: Iterable[tuple[int, str]], decode: Callable[[list[int]], str], end_tokens: Sequence[int]
) -> EnforcerVocab:
    """The vocabulary for lm-format-enforcer from each regular token's text (special tokens and
    tokens that are only part of a UTF-8 character left out by the caller)."""
    lmfe = _lmfe()
    quotes, closers, commas, blanks, exponents = (torch.zeros(size, dtype=torch.bool) for _ in range(5))
    regular: list[tuple[int, str, bool]] = []
    for token_id, text in token_texts:
        if any(ord(char) < 0x20 for char in text):
            # Control characters (newlines, tabs) are invalid inside JSON strings, and
            # lm-format-enforcer would let them in; outside strings the JSON is just compact.
            continue
        regular.append((token_id, text, True))
        quotes[token_id] = '"' in text
        closers[token_id] = "}" in text or "]" in text
        commas[token_id] = "," in text
        blanks[token_id] = not text.strip()
        exponents[token_id] = "e" in text or "E" in text
    data = lmfe.TokenEnforcerTokenizerData(regular, decode, list(end_tokens), use_bitmask=False, vocab_size=size)
    return EnforcerVocab(data, tuple(end_tokens), quotes, closers, commas, blanks, exponents)


@functools.cache
def llama3_enforcer_vocab() -> EnforcerVocab:
    tokenizer = get_tokenizer()
    model = tokenizer.model
    special = set(tokenizer.special_tokens.values())

    def texts() -> Iterator[tuple[int, str]]:
        for token_id in range(model.n_vocab):
            if token_id in special:
                continue
            try:
                yield token_id, model.decode_single_token_bytes(token_id).decode("utf-8")
            except UnicodeDecodeError:
                # Part of a multi-byte character: left out, as lm-format-enforcer miscounts string
                # lengths through them. Characters that no single token spells cannot be generated.
                continue

    def decode(tokens: list[int]) -> str:
        return str(tokenizer.decode(tokens))

    return build_enforcer_vocab(model.n_vocab, texts(), decode, (tokenizer.eot_id, tokenizer.eos_id))


MAX_BLANKS = 2  # whitespace characters allowed in a row between JSON tokens


def closing_budget(max_new_tokens: int) -> int:
    """How many tokens before max_tokens the constraint starts steering towards the end."""
    return min(max_new_tokens // 2, 64)


class JsonSchemaConstraint:
    """A TokenConstraint that allows only tokens continuing JSON valid under `schema`.

    In the last `closing_budget` tokens before max_tokens it narrows the choice further, to
    finish the document in time: the end of turn if the document is complete, else a token with
    a quote (ends a string), else with } or ] (ends an object or array), else a comma (ends a
    number), else anything but whitespace. The answer stays valid under the schema; only its
    tail is steered.
    """

    def __init__(self, schema: dict[str, Any], prompt_length: int, max_new_tokens: int, vocab: EnforcerVocab) -> None:
        lmfe = _lmfe()
        try:
            parser = lmfe.JsonSchemaParser(schema)
        except Exception as exc:  # lm-format-enforcer's schema model rejects it: the client's to fix
            raise InvalidRequest(f"response_format json_schema is not a schema this server can enforce: {exc}") from exc
        self._vocab = vocab
        self._enforcer = lmfe.TokenEnforcer(self._vocab.data, parser)
        parser.config.max_consecutive_whitespaces = MAX_BLANKS  # set after: TokenEnforcer resets it
        self._prompt_length = prompt_length
        self._closing_from = max_new_tokens - closing_budget(max_new_tokens)

    def allowed(self, history: Sequence[int], width: int, device: torch.device) -> torch.Tensor:
        generated = list(history[self._prompt_length :])
        tokens = self._enforcer.get_allowed_tokens(generated).allowed_tokens
        mask = torch.zeros(width, dtype=torch.bool)
        mask[torch.tensor(tokens, dtype=torch.long)] = True
        if self._in_integer(generated):
            # lm-format-enforcer lets an integer take an exponent (12e999): valid JSON, but
            # a float, or an overflow, to most parsers. Integers here are plain digits.
            size = self._vocab.exponents.shape[0]
            mask[:size] &= ~self._vocab.exponents[: mask.shape[0]]
        if len(generated) >= self._closing_from:
            mask = self._closing(mask)
        return mask.to(device)

    def _in_integer(self, generated: list[int]) -> bool:
        state = self._enforcer.prefix_states.get(tuple(generated))
        stack = getattr(getattr(state, "parser", None), "object_stack", None)
        if not stack:
            return False
        top = stack[-1]
        return type(top).__name__ == "NumberParsingState" and not getattr(top, "allow_floating_point", True)

    def _closing(self, mask: torch.Tensor) -> torch.Tensor:
        vocab = self._vocab
        ends = torch.zeros_like(mask)
        ends[list(vocab.end_tokens)] = True
        size = vocab.closers.shape[0]
        for preferred in (ends, vocab.quotes, vocab.closers, vocab.commas, ~vocab.blanks):
            narrowed = mask.clone()
            narrowed[:size] &= preferred[: mask.shape[0]]
            narrowed[size:] = False
            if bool(narrowed.any()):
                return narrowed
        return mask


def json_schema_of(fmt: ResponseFormat | None, model_id: str) -> dict[str, Any] | None:
    """The schema to enforce for a request's response_format, or None without one."""
    if fmt is None:
        return None
    if isinstance(fmt, GrammarResponseFormat):
        raise NotImplementedYet(
            f"response_format type 'grammar' (BNF) is not supported by inline::transformers (model {model_id}); "
            "use response_format type 'json_schema'"
        )
    assert isinstance(fmt, JsonSchemaResponseFormat)
    return fmt.json_schema


def json_constraint(
    schema: dict[str, Any] | None,
    prompt_length: int,
    max_new_tokens: int,
    vocab: Callable[[], EnforcerVocab] = llama3_enforcer_vocab,
) -> JsonSchemaConstraint | None:
    """The constraint for a schema, or None; `vocab` (the model's tokens) is built only when needed."""
    return None if schema is None else JsonSchemaConstraint(schema, prompt_length, max_new_tokens, vocab())

"""The memory tool (RAG): before inference, a query made from the turn (by the tool's
`query_generator_config`) is sent to the agent's memory banks and to its session's bank, which
holds the documents attached to the session's turns; the best chunks become the `context` of the
last user message, in the v0.0.63 wording. A key-value bank with `keys` contributes the documents
stored under those keys instead of answering the query."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from llama_stack.apis.agents import (
    Attachment,
    LLMQueryGeneratorConfig,
    MemoryBankConfig,
    QueryGeneratorConfig,
    TurnInputMessage,
)
from llama_stack.apis.common import Message, SystemMessage, TextContentItem, UserMessage, content_text
from llama_stack.apis.errors import InvalidRequest, UpstreamError
from llama_stack.apis.inference import ChatCompletionRequest
from llama_stack.apis.memory import InsertDocumentsRequest, Memory, MemoryBankDocument, QueryDocumentsRequest
from llama_stack.apis.memory_banks import MemoryBanks, RegisterMemoryBankRequest, VectorMemoryBankParams
from llama_stack.apis.models import Models, ModelType
from llama_stack.distribution.request_context import current_caller, reset_caller, set_caller
from llama_stack.distribution.spec import ANONYMOUS

CONTEXT_START = "Here are the retrieved documents for relevant context:\n=== START-RETRIEVED-CONTEXT ===\n"
CONTEXT_END = "\n=== END-RETRIEVED-CONTEXT ===\n"
SESSION_BANK_CHUNK_TOKENS = 512
SESSION_BANK_OVERLAP_TOKENS = 64


def session_bank_id(session_id: str) -> str:
    return f"session-{session_id}"


def rag_query(messages: Sequence[TurnInputMessage], sep: str = " ") -> str:
    """The `default` generator: the text of the turn's input messages joined by `sep`."""
    return sep.join(content_text(message.content) for message in messages)


async def generate_query(
    config: QueryGeneratorConfig,
    history: Sequence[Message],
    inputs: Sequence[TurnInputMessage],
    inference: Any,
) -> str:
    """The retrieval query of a turn, made as the memory tool's generator says."""
    if not isinstance(config, LLMQueryGeneratorConfig):
        return rag_query(inputs, getattr(config, "sep", " "))
    from .query_template import render

    conversation = [m for m in [*history, *inputs] if not isinstance(m, SystemMessage)]
    prompt = render(config.template, [m.model_dump(mode="json", exclude_none=True) for m in conversation])
    request = ChatCompletionRequest(model_id=config.model, messages=[UserMessage(content=prompt)])
    response = await inference.chat_completion(request)
    query = content_text(response.completion_message.content).strip()
    if not query:
        raise UpstreamError(f"the query generator model '{config.model}' answered an empty query")
    return query


@contextmanager
def _registering_for(owner: str | None) -> Iterator[None]:
    """A session's bank belongs to the session's owner, even when an admin's turn creates it
    (else the owner's later turns could not read it). The caller keeps its own model scopes."""
    caller = current_caller()
    if caller is None or caller.name == (owner or ANONYMOUS):
        yield
        return
    token = set_caller(replace(caller, name=owner or ANONYMOUS, admin=False))
    try:
        yield
    finally:
        reset_caller(token)


class Retriever:
    """Reaches the memory API and the memory-bank registry when the distribution serves them."""

    def __init__(
        self,
        memory: Memory | None,
        banks: MemoryBanks | None,
        models: Models,
        embedding_model: str | None = None,
    ) -> None:
        self.memory = memory
        self.banks = banks
        self.models = models
        self.embedding_model = embedding_model

    def require(self, why: str) -> tuple[Memory, MemoryBanks]:
        if self.memory is None or self.banks is None:
            raise InvalidRequest(f"{why} needs the memory API, which this distribution does not serve")
        return self.memory, self.banks

    async def _embedding_model(self) -> str:
        if self.embedding_model:
            return self.embedding_model
        for model in await self.models.list_models():
            if model.model_type == ModelType.embedding:
                return model.identifier
        raise InvalidRequest(
            "documents attached to a turn go into a session memory bank, which needs an embedding model: "
            "register one (model_type: embedding) or set session_bank_embedding_model in the agents provider config"
        )

    async def create_session_bank(self, session_id: str, session_owner: str | None) -> str:
        _, banks = self.require("attaching documents to a turn")
        bank_id = session_bank_id(session_id)
        params = VectorMemoryBankParams(
            embedding_model=await self._embedding_model(),
            chunk_size_in_tokens=SESSION_BANK_CHUNK_TOKENS,
            overlap_size_in_tokens=SESSION_BANK_OVERLAP_TOKENS,
        )
        with _registering_for(session_owner):
            await banks.register_memory_bank(RegisterMemoryBankRequest(memory_bank_id=bank_id, params=params))
        return bank_id

    async def drop_session_bank(self, bank_id: str) -> None:
        if self.banks is not None:
            await self.banks.unregister_memory_bank(bank_id)

    async def insert_attachments(self, bank_id: str, turn_id: str, attachments: Sequence[Attachment]) -> None:
        memory, _ = self.require("attaching documents to a turn")
        documents = [
            MemoryBankDocument(
                document_id=f"{turn_id}-{index}",
                content=attachment.content,
                mime_type=attachment.mime_type,
                metadata={"turn_id": turn_id},
            )
            for index, attachment in enumerate(attachments)
        ]
        await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=documents))

    async def retrieve(
        self, banks: Sequence[MemoryBankConfig], query: str, max_chunks: int, max_tokens: int
    ) -> list[TextContentItem]:
        """The context to insert: the best chunks over all banks, within both budgets; [] if none."""
        memory, _ = self.require("the memory tool")
        params: dict[str, object] = {"max_chunks": max_chunks}
        queries = [
            QueryDocumentsRequest(bank_id=bank.bank_id, query=text, params=params)
            for bank in banks
            for text in (bank.keys if bank.keys is not None else [query])
        ]
        answers = await asyncio.gather(*(memory.query_documents(q) for q in queries))
        scored = [(s, chunk) for answer in answers for chunk, s in zip(answer.chunks, answer.scores, strict=False)]
        scored.sort(key=lambda pair: -pair[0])
        picked: list[TextContentItem] = []
        tokens = 0
        for _, chunk in scored[:max_chunks]:
            tokens += chunk.token_count
            if tokens > max_tokens:
                break
            picked.append(TextContentItem(text=f"id:{chunk.document_id}; content:{content_text(chunk.content)}"))
        if not picked:
            return []
        return [TextContentItem(text=CONTEXT_START), *picked, TextContentItem(text=CONTEXT_END)]

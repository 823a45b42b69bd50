"""The OpenAI agent and retrieval surface, assembled over one stack: files, vector stores (a view
of memory banks), responses and conversations (agent turns over the routers), moderations (a
shield call). Every store lives in the stack's metadata kvstore, so every replica serves it."""

from __future__ import annotations

from fastapi import APIRouter

from llama_stack.apis.safety import Guardrails
from llama_stack.distribution.files import KVFiles
from llama_stack.distribution.guardrails import guarded_chat
from llama_stack.distribution.outbound import OutboundPolicy
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack
from llama_stack.distribution.vector_stores import BankVectorStores
from llama_stack.server.openai_files import files_router
from llama_stack.server.openai_moderations import Moderations, moderations_router
from llama_stack.server.openai_responses import conversations_router, responses_router
from llama_stack.server.openai_vector_stores import vector_stores_router
from llama_stack.server.responses.service import Conversations, Responses
from llama_stack.server.responses.turn import ChatStream


def openai_surface(stack: Stack) -> list[APIRouter]:
    files = KVFiles(stack.store)
    memory = stack.routers.get(Api.memory)
    stores = BankVectorStores(stack.store, stack.memory_banks, memory, files, stack.models) if memory else None
    outbound = OutboundPolicy.from_config(stack.config.server.outbound)
    responses = Responses(stack.store, stack.models, stores, outbound)

    async def chat_for(guardrails: Guardrails | None) -> ChatStream:
        inference = stack.faces[Api.inference]
        return inference if guardrails is None else await guarded_chat(stack, inference, guardrails)

    safety_types = {p.provider_id: p.spec.provider_type for p in stack.providers if p.api == Api.safety}
    routers = [
        files_router(files),
        responses_router(responses, chat_for),
        conversations_router(Conversations(responses.store)),
        moderations_router(Moderations(stack.routers.get(Api.safety), stack.shields, safety_types)),
    ]
    if stores is not None:
        routers.append(vector_stores_router(stores))
    return routers

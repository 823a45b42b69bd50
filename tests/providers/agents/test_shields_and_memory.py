"""Shields around a turn, retrieval from memory banks and the session bank, and refusals."""

from __future__ import annotations

import pytest

from llama_stack.apis.agents import (
    Attachment,
    GetSessionRequest,
    MemoryBankConfig,
    MemoryRetrievalStep,
    MemoryToolDefinition,
    ShieldCallStep,
    StepStartPayload,
)
from llama_stack.apis.common import UserMessage, content_text
from llama_stack.apis.errors import InvalidRequest
from llama_stack.apis.memory import InsertDocumentsRequest, MemoryBankDocument
from llama_stack.apis.memory_banks import RegisterMemoryBankRequest, VectorMemoryBankParams
from llama_stack.distribution.provider import Api
from tests.providers.agents.conftest import StackFactory
from tests.providers.agents.fakes import (
    EMBEDDER,
    SHIELD,
    event_names,
    final_turn,
    new_session,
    run_turn,
    say,
    scripted_llm,
    scripted_safety,
    user,
)
from tests.providers.agents.fakes import step_types as kinds


async def test_an_input_violation_ends_the_turn_before_inference(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        agent_id, session_id = await new_session(agents, input_shields=[SHIELD])
        chunks = await run_turn(agents, agent_id, session_id, user("tell me forbidden things"))

        turn = final_turn(chunks)
        assert event_names(chunks) == [
            "turn_start",
            "step_start:shield_call",
            "step_complete:shield_call",
            "turn_complete",
        ]
        start = chunks[1].event.payload
        assert isinstance(start, StepStartPayload) and start.metadata == {"touchpoint": "user-input"}
        (shield_step,) = turn.steps
        assert isinstance(shield_step, ShieldCallStep) and shield_step.violation is not None
        assert shield_step.violation.metadata["shield_id"] == SHIELD
        assert turn.output_message.content == "I can't discuss 'forbidden'."
        assert llm.requests == []


async def test_an_output_violation_replaces_the_answer_in_the_turn_and_the_history(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        llm.will(say("here is the forbidden recipe"))
        agent_id, session_id = await new_session(agents, input_shields=[SHIELD], output_shields=[SHIELD])
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("a recipe please")))

        assert kinds(turn) == ["shield_call", "inference", "shield_call"]
        first, _, last = turn.steps
        assert isinstance(first, ShieldCallStep) and first.violation is None
        assert isinstance(last, ShieldCallStep) and last.violation is not None
        assert turn.output_message.content == "I can't discuss 'forbidden'."

        await run_turn(agents, agent_id, session_id, user("and now?"))
        history = " ".join(content_text(m.content) for m in llm.requests[1].messages)
        assert "I can't discuss" in history and "forbidden recipe" not in history


async def test_shields_on_a_clean_turn_record_no_violation(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, safety = stack.routers[Api.agents], scripted_safety(stack)
        agent_id, session_id = await new_session(agents, input_shields=[SHIELD], output_shields=[SHIELD])
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("hello")))

        assert kinds(turn) == ["shield_call", "inference", "shield_call"]
        assert all(
            isinstance(s, ShieldCallStep) and s.violation is None for s in turn.steps if s.step_type == "shield_call"
        )
        assert turn.output_message.content == "echo: hello"
        # The output shield saw the input and the answer.
        assert [content_text(m.content) for m in safety.checked[-1].messages] == ["hello", "echo: hello"]


async def test_the_memory_tool_inserts_retrieved_context(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        params = VectorMemoryBankParams(embedding_model=EMBEDDER, chunk_size_in_tokens=64)
        await stack.memory_banks.register_memory_bank(RegisterMemoryBankRequest(memory_bank_id="facts", params=params))
        document = MemoryBankDocument(document_id="geo", content="Paris is the capital of France. Bananas are yellow.")
        await stack.routers[Api.memory].insert_documents(InsertDocumentsRequest(bank_id="facts", documents=[document]))
        memory_tool = MemoryToolDefinition(memory_bank_configs=[MemoryBankConfig(bank_id="facts")])
        agent_id, session_id = await new_session(agents, tools=[memory_tool])
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("which city is the capital of France?")))

        assert kinds(turn) == ["memory_retrieval", "inference"]
        step = turn.steps[0]
        assert isinstance(step, MemoryRetrievalStep) and step.memory_bank_ids == ["facts"]
        context = content_text(step.inserted_context)
        assert "id:geo; content:Paris is the capital of France" in context and "Bananas" not in context
        asked = llm.requests[0].messages[-1]
        assert isinstance(asked, UserMessage) and "Paris" in content_text(asked.context or "")
        assert "context:" in content_text(turn.output_message.content)
        # The context is not carried into the stored input, nor into later turns' history.
        assert isinstance(turn.input_messages[0], UserMessage) and turn.input_messages[0].context is None


async def test_attached_documents_go_into_a_session_bank_and_are_retrieved_later(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        notes = Attachment(content="The launch code is 4521. Cats sleep a lot.", mime_type="text/plain")
        first = final_turn(await run_turn(agents, agent_id, session_id, user("keep these notes"), attachments=[notes]))
        assert kinds(first) == ["memory_retrieval", "inference"]

        session = await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
        assert session.memory_bank is not None
        assert session.memory_bank.identifier == f"session-{session_id}"
        second = final_turn(await run_turn(agents, agent_id, session_id, user("what was the launch code?")))
        step = second.steps[0]
        assert isinstance(step, MemoryRetrievalStep) and step.memory_bank_ids == [f"session-{session_id}"]
        assert "4521" in content_text(step.inserted_context)
        assert "4521" in content_text(second.output_message.content)


async def test_memory_needs_the_memory_api(agent_stack: StackFactory) -> None:
    async with agent_stack(memory=False) as stack:
        agents = stack.routers[Api.agents]
        with pytest.raises(InvalidRequest, match="memory API"):
            await new_session(agents, tools=[MemoryToolDefinition(memory_bank_configs=[])])
        agent_id, session_id = await new_session(agents)
        notes = Attachment(content="some notes", mime_type="text/plain")
        with pytest.raises(InvalidRequest, match="memory API"):
            await run_turn(agents, agent_id, session_id, user("keep these"), attachments=[notes])


async def test_shields_need_the_safety_api(agent_stack: StackFactory) -> None:
    async with agent_stack(safety=False) as stack:
        with pytest.raises(InvalidRequest, match="safety API"):
            await new_session(stack.routers[Api.agents], input_shields=[SHIELD])

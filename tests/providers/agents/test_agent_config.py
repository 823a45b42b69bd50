"""Every field of a v0.0.63 agent definition is honoured by the loop or refused when the agent is
created, with an InvalidRequest (400) naming it: query generators, tool-level shields, inline code
execution, memory bank types and keys, fields the server does not know."""

from __future__ import annotations

import re
from typing import Any

import pytest

from llama_stack.apis.agents import (
    AgentConfig,
    CreateAgentRequest,
    CreateTurnRequest,
    GetSessionRequest,
    ShieldCallStep,
    StepStartPayload,
)
from llama_stack.apis.common import ToolResponseMessage, UserMessage, content_text
from llama_stack.apis.errors import InvalidRequest, MemoryBankNotFound, ModelNotFound, ShieldNotFound
from llama_stack.apis.inference import ChatCompletionRequest
from llama_stack.apis.memory import InsertDocumentsRequest, MemoryBankDocument
from llama_stack.apis.memory_banks import KeyValueMemoryBankParams, RegisterMemoryBankRequest, VectorMemoryBankParams
from llama_stack.distribution.provider import Api
from llama_stack.distribution.resolver import Stack
from tests.providers.agents.conftest import StackFactory
from tests.providers.agents.fakes import (
    EMBEDDER,
    MODEL,
    SHIELD,
    call,
    event_names,
    final_turn,
    new_session,
    run_turn,
    say,
    scripted_llm,
    scripted_memory,
    step_types,
    user,
)

WEATHER: dict[str, Any] = {
    "type": "function_call",
    "function_name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"city": {"param_type": "str"}},
}


async def create(stack: Stack, **fields: Any) -> str:
    """Create an agent from raw wire fields, as a client's JSON body would give them."""
    config = AgentConfig.model_validate({"model": MODEL, "instructions": "You are a test agent.", **fields})
    response = await stack.routers[Api.agents].create_agent(CreateAgentRequest(agent_config=config))
    return response.agent_id


async def facts_bank(stack: Stack, bank_id: str = "facts") -> None:
    params = VectorMemoryBankParams(embedding_model=EMBEDDER, chunk_size_in_tokens=64)
    await stack.memory_banks.register_memory_bank(RegisterMemoryBankRequest(memory_bank_id=bank_id, params=params))
    document = MemoryBankDocument(document_id="geo", content="Paris is the capital of France. Bananas are yellow.")
    await stack.routers[Api.memory].insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=[document]))


def memory_tool(**fields: Any) -> dict[str, Any]:
    return {"type": "memory", "memory_bank_configs": [{"bank_id": "facts", "type": "vector"}], **fields}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"temperature_typo": 0.3}, "agent_config.temperature_typo"),
        ({"sampling_params": {"temprature": 0.3}}, "agent_config.sampling_params.temprature"),
        (
            {"tools": [{**WEATHER, "parameters": {"city": {"param_type": "str", "requird": True}}}]},
            "agent_config.tools[0].parameters['city'].requird",
        ),
        ({"tools": [{**WEATHER, "strict": True}]}, "agent_config.tools[0].strict"),
        (
            {"tools": [{"type": "brave_search", "remote_execution": {"url": {"uri": "http://x"}, "method": "GET"}}]},
            "agent_config.tools[0].remote_execution",
        ),
        ({"tools": [{"type": "photogen"}]}, "agent_config.tools[0].type"),
        ({"tools": [memory_tool(max_chunks=5000)]}, "agent_config.tools[0].max_chunks"),
        ({"tools": [memory_tool(query_generator_config={"type": "custom"})]}, "query_generator_config.type"),
        ({"tools": [memory_tool(query_generator_config={"type": "default", "sep": " ", "x": 1})]}, "config.x"),
        (
            {"tools": [memory_tool(memory_bank_configs=[{"bank_id": "facts", "type": "graph", "entities": ["a"]}])]},
            "memory_bank_configs[0].entities",
        ),
        (
            {"tools": [memory_tool(memory_bank_configs=[{"bank_id": "facts", "type": "vector", "keys": ["a"]}])]},
            "memory_bank_configs[0].keys",
        ),
        (
            {"tools": [memory_tool(query_generator_config={"type": "llm", "model": MODEL, "template": "{{ x"})]},
            "query_generator_config.template: not a valid Jinja template",
        ),
        (
            {
                "tools": [
                    memory_tool(query_generator_config={"type": "llm", "model": MODEL, "template": "{{ q|center(9) }}"})
                ]
            },
            "the filter 'center' is not allowed",
        ),
    ],
)
async def test_fields_the_server_cannot_honour_are_refused_by_name(
    agent_stack: StackFactory, fields: dict[str, Any], named: str
) -> None:
    async with agent_stack() as stack:
        await facts_bank(stack)
        with pytest.raises(InvalidRequest, match="cannot honour") as refused:
            await create(stack, **fields)
        assert named in refused.value.message


async def test_what_an_agent_names_must_exist_and_match(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        await facts_bank(stack)
        with pytest.raises(ShieldNotFound, match="no-such-shield"):
            await create(stack, tools=[{**WEATHER, "output_shields": ["no-such-shield"]}])
        with pytest.raises(MemoryBankNotFound, match="nope"):
            await create(stack, tools=[memory_tool(memory_bank_configs=[{"bank_id": "nope", "type": "vector"}])])
        with pytest.raises(InvalidRequest, match=r"memory_bank_configs\[0\].type: bank 'facts' is a vector bank"):
            await create(stack, tools=[memory_tool(memory_bank_configs=[{"bank_id": "facts", "type": "keyword"}])])
        with pytest.raises(ModelNotFound, match="no-such-model"):
            await create(
                stack,
                tools=[memory_tool(query_generator_config={"type": "llm", "model": "no-such-model", "template": "q"})],
            )


async def test_the_default_query_generator_joins_the_input_with_its_separator(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        await facts_bank(stack)
        agents, memory = stack.routers[Api.agents], scripted_memory(stack)
        tool = memory_tool(query_generator_config={"type": "default", "sep": " || "})
        agent_id, session_id = await new_session(agents, tools=[tool])
        await run_turn(agents, agent_id, session_id, user("capital of France?"), user("and bananas?"))
        assert [content_text(q.query) for q in memory.queries] == ["capital of France? || and bananas?"]


async def test_the_llm_query_generator_asks_its_model_for_the_query(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        await facts_bank(stack)
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        template = "Rewrite as a search query: {% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}"
        tool = memory_tool(query_generator_config={"type": "llm", "model": MODEL, "template": template})
        agent_id, session_id = await new_session(agents, tools=[tool])
        await run_turn(agents, agent_id, session_id, user("hello"))
        llm.requests.clear()
        llm.will(say("capital France"))  # the generated query; then the rules answer the turn
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("where do the French govern from?")))

        prompt = content_text(llm.requests[0].messages[0].content)
        assert prompt.startswith("Rewrite as a search query: [user] hello [assistant] ")
        assert prompt.endswith("[user] where do the French govern from? ")
        retrieved = content_text(turn.steps[0].inserted_context)  # type: ignore[union-attr]
        assert "Paris is the capital of France" in retrieved


async def test_a_query_template_that_tries_to_escape_fails_the_turn_with_a_clear_error(
    agent_stack: StackFactory,
) -> None:
    async with agent_stack() as stack:
        await facts_bank(stack)
        agents = stack.routers[Api.agents]
        template = "{{ messages[0].content.__class__.__mro__ }}"
        tool = memory_tool(query_generator_config={"type": "llm", "model": MODEL, "template": template})
        agent_id, session_id = await new_session(agents, tools=[tool])
        with pytest.raises(InvalidRequest, match="template failed to render: access to attribute '__class__'"):
            await run_turn(agents, agent_id, session_id, user("hi"))


async def test_a_key_value_bank_contributes_the_documents_under_its_keys(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, memory = stack.routers[Api.agents], scripted_memory(stack)
        params = KeyValueMemoryBankParams()
        await stack.memory_banks.register_memory_bank(RegisterMemoryBankRequest(memory_bank_id="kv", params=params))
        banks = [{"bank_id": "kv", "type": "keyvalue", "keys": ["profile", "settings"]}]
        agent_id, session_id = await new_session(agents, tools=[memory_tool(memory_bank_configs=banks)])
        await run_turn(agents, agent_id, session_id, user("what do you know about me?"))
        assert [(q.bank_id, content_text(q.query)) for q in memory.queries] == [("kv", "profile"), ("kv", "settings")]


async def test_a_tool_input_shield_stops_a_builtin_call_before_it_runs(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        tool = {"type": "code_interpreter", "input_shields": [SHIELD]}
        agent_id, session_id = await new_session(agents, tools=[tool])
        llm.will(call("code_interpreter", code="print('forbidden')"))
        chunks = await run_turn(agents, agent_id, session_id, user("run something"))

        turn = final_turn(chunks)
        assert step_types(turn) == ["inference", "shield_call"]
        assert turn.output_message.content == "I can't discuss 'forbidden'."
        starts = [c.event.payload for c in chunks if isinstance(c.event.payload, StepStartPayload)]
        assert starts[1].metadata == {"touchpoint": "tool-input", "tool_name": "code_interpreter", "call_id": "call-1"}


async def test_a_tool_output_shield_keeps_a_bad_result_from_the_model(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        tool = {"type": "code_interpreter", "input_shields": [SHIELD], "output_shields": [SHIELD]}
        agent_id, session_id = await new_session(agents, tools=[tool])
        llm.will(call("code_interpreter", code="print('forbid' + 'den')"))
        turn = final_turn(await run_turn(agents, agent_id, session_id, user("run something")))

        assert step_types(turn) == ["inference", "shield_call", "tool_execution", "shield_call"]
        clean, blocked = (s for s in turn.steps if isinstance(s, ShieldCallStep))
        assert clean.violation is None and blocked.violation is not None
        assert turn.output_message.content == "I can't discuss 'forbidden'."
        assert len(llm.requests) == 1  # the model never saw the result


async def test_a_client_tool_s_shields_check_the_call_and_the_app_s_result(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        tool = {**WEATHER, "input_shields": [SHIELD], "output_shields": [SHIELD]}
        agent_id, session_id = await new_session(agents, tools=[tool])
        first = final_turn(await run_turn(agents, agent_id, session_id, user("weather in Paris")))
        assert step_types(first) == ["inference", "shield_call"]
        (tool_call,) = first.output_message.tool_calls  # the call went to the app

        result = ToolResponseMessage(call_id=tool_call.call_id, tool_name="get_weather", content="forbidden weather")
        second = final_turn(await run_turn(agents, agent_id, session_id, result))
        assert step_types(second) == ["shield_call"]
        assert second.output_message.content == "I can't discuss 'forbidden'."
        assert len(llm.requests) == 1

        llm.will(call("get_weather", city="forbidden-city"))
        third = final_turn(await run_turn(agents, agent_id, session_id, user("weather again")))
        assert step_types(third) == ["inference", "shield_call"] and third.output_message.tool_calls == []


async def test_the_memory_tool_s_shields_check_the_query_and_the_retrieved_context(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        await facts_bank(stack)
        document = MemoryBankDocument(document_id="bad", content="The forbidden archive is in France.")
        await stack.routers[Api.memory].insert_documents(InsertDocumentsRequest(bank_id="facts", documents=[document]))
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        tool = memory_tool(input_shields=[SHIELD], output_shields=[SHIELD])
        agent_id, session_id = await new_session(agents, tools=[tool])

        clean = final_turn(await run_turn(agents, agent_id, session_id, user("are bananas yellow?")))
        assert step_types(clean) == ["shield_call", "memory_retrieval", "shield_call", "inference"]
        blocked = final_turn(await run_turn(agents, agent_id, session_id, user("what is in France?")))
        assert step_types(blocked) == ["shield_call", "memory_retrieval", "shield_call"]
        assert blocked.output_message.content == "I can't discuss 'forbidden'."
        assert len(llm.requests) == 1  # only the clean turn reached the model


async def test_code_interpreter_without_inline_execution_is_the_app_s_to_run(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        tool = {"type": "code_interpreter", "enable_inline_code_execution": False}
        agent_id, session_id = await new_session(agents, tools=[tool])
        chunks = await run_turn(agents, agent_id, session_id, user("run: print(6 * 7)"))

        turn = final_turn(chunks)
        assert event_names(chunks)[-2] == "step_complete:inference"  # nothing ran server-side
        assert [c.tool_name for c in turn.output_message.tool_calls] == ["code_interpreter"]
        assert [t.tool_name for t in llm.requests[0].tools] == ["code_interpreter"]  # still offered to the model


async def test_the_app_s_own_context_is_kept_beside_the_retrieved_one(agent_stack: StackFactory) -> None:
    async with agent_stack() as stack:
        await facts_bank(stack)
        agents, llm = stack.routers[Api.agents], scripted_llm(stack)
        agent_id, session_id = await new_session(agents, tools=[memory_tool()])
        message = UserMessage(content="what is the capital of France?", context="The user lives in Lyon.")
        await run_turn(agents, agent_id, session_id, message)

        sent: ChatCompletionRequest = llm.requests[0]
        last = sent.messages[-1]
        assert isinstance(last, UserMessage)
        context = content_text(last.context or "")
        assert context.startswith("The user lives in Lyon.") and "Paris is the capital" in context


async def test_a_turn_request_with_fields_the_server_does_not_know_is_refused_by_name(
    agent_stack: StackFactory,
) -> None:
    async with agent_stack() as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(agents)
        base = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": "hi"}]}
        for extra, named in (
            ({"tool_config": {"tool_choice": "none"}}, "tool_config"),
            ({"attachments": [{"content": "notes", "mime_type": "text/plain", "url": "x"}]}, "attachments[0].url"),
        ):
            request = CreateTurnRequest.model_validate({**base, **extra})
            with pytest.raises(InvalidRequest, match=r"does not know: " + re.escape(named)):
                [chunk async for chunk in agents.create_turn(request)]
        assert (await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))).turns == []

"""The agent loop on a real provider: the tiny random Llama through inline::transformers, prompted
with the Llama 3 chat format (tools included) and streamed token by token. It proves the
mechanics (prompting with history, streaming, stop reasons), never the quality of the answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_stack.apis.agents import CodeInterpreterToolDefinition, GetSessionRequest
from llama_stack.apis.common import SamplingParams
from llama_stack.distribution.provider import Api
from tests.providers.agents.fakes import final_turn, new_session, run_config, run_turn, running, user
from tests.providers.agents.test_agent_loop import WEATHER

TINY = "tiny-random-llama-3"


@pytest.mark.slow  # builds the tiny model once and loads it: about ten seconds
async def test_the_tiny_model_drives_a_multi_turn_session(tiny_model_root: Path, tmp_path: Path) -> None:
    config = run_config(tmp_path, safety=False, memory=False)
    transformers = {"device": "cpu", "tiny_model_dir": str(tiny_model_root), "max_seq_len": 2048}
    config["providers"]["inference"] = [
        {"provider_id": "transformers", "provider_type": "inline::transformers", "config": transformers}
    ]
    config["models"] = [{"model_id": TINY, "provider_id": "transformers"}]
    async with running(config) as stack:
        agents = stack.routers[Api.agents]
        agent_id, session_id = await new_session(
            agents,
            model=TINY,
            tools=[CodeInterpreterToolDefinition(), WEATHER],
            sampling_params=SamplingParams(max_tokens=6),
        )
        for text in ("hello", "and again"):
            chunks = await run_turn(agents, agent_id, session_id, user(text))
            turn = final_turn(chunks)
            assert [s.step_type for s in turn.steps] == ["inference"]
            deltas = [getattr(c.event.payload, "text_delta", None) or "" for c in chunks]
            assert "".join(deltas) == turn.output_message.content
            # A random model rarely stops by itself within six tokens.
            assert turn.output_message.stop_reason in ("out_of_tokens", "end_of_turn", "end_of_message")

        session = await agents.get_session(GetSessionRequest(agent_id=agent_id, session_id=session_id))
        assert [t.input_messages[0].content for t in session.turns] == ["hello", "and again"]

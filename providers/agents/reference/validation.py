"""What creating an agent checks: every field of its definition is either honoured by the loop or
refused here with a 400 naming it, and every resource it names exists and is the caller's to use.

Refused (the server cannot honour them): fields v0.0.63 does not define, a tool's
`remote_execution`, the `photogen` tool, the `custom` query generator (v0.0.63 names it without a
definition), `entities` of a memory bank (no provider serves graph banks), `keys` on a bank that
is not a key-value bank, and a bank `type` other than the bank's own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from llama_stack.apis.agents import (
    AgentConfig,
    CreateTurnRequest,
    CustomQueryGeneratorConfig,
    LLMQueryGeneratorConfig,
    MemoryToolDefinition,
    PhotogenToolDefinition,
)
from llama_stack.apis.errors import InvalidRequest, MemoryBankNotFound, ModelNotFound, ShieldNotFound
from llama_stack.distribution.request_context import require_model
from llama_stack.providers.agents.tools.query_template import check_template

MAX_CHUNKS = 1000  # the most chunks a memory provider returns for one query (memory/common/query.py)


def unknown_fields(model: BaseModel, path: str) -> list[str]:
    """Paths of the fields a client sent that `model` (and the models inside it) does not define."""
    prefix = f"{path}." if path else ""
    found = [prefix + name for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found.extend(unknown_fields(value, prefix + name))
        elif isinstance(value, list | dict):
            keyed = enumerate(value) if isinstance(value, list) else value.items()
            for key, item in keyed:
                if isinstance(item, BaseModel):
                    found.extend(
                        unknown_fields(
                            item, f"{prefix}{name}[{key!r}]" if isinstance(key, str) else f"{prefix}{name}[{key}]"
                        )
                    )
    return found


def check_turn_request(request: CreateTurnRequest) -> None:
    """A turn request with fields v0.0.63 does not define is refused, naming them."""
    unknown = unknown_fields(request, "")
    if unknown:
        raise InvalidRequest(f"the turn request has fields this server does not know: {', '.join(unknown)}")


def refused_fields(config: AgentConfig) -> list[str]:
    """Fields of `config` the loop cannot honour, each as '<path>: <why>'."""
    problems = [f"{path}: not a field of the v0.0.63 agent config" for path in unknown_fields(config, "agent_config")]
    for index, tool in enumerate(config.tools):
        where = f"agent_config.tools[{index}]"
        if tool.remote_execution is not None:
            problems.append(f"{where}.remote_execution: tools run in this server or in the app, never by REST call")
        if isinstance(tool, PhotogenToolDefinition):
            problems.append(f"{where}.type: the photogen tool is not available in this stack")
        if isinstance(tool, MemoryToolDefinition):
            problems.extend(_memory_tool_problems(tool, where))
    return problems


def _memory_tool_problems(tool: MemoryToolDefinition, where: str) -> list[str]:
    problems: list[str] = []
    generator = tool.query_generator_config
    if isinstance(generator, CustomQueryGeneratorConfig):
        problems.append(f"{where}.query_generator_config.type: 'custom' has no definition; use 'default' or 'llm'")
    if isinstance(generator, LLMQueryGeneratorConfig):
        error = check_template(generator.template)
        if error is not None:
            problems.append(f"{where}.query_generator_config.template: {error}")
    if tool.max_chunks > MAX_CHUNKS:
        problems.append(f"{where}.max_chunks: a memory query returns at most {MAX_CHUNKS} chunks")
    for index, bank in enumerate(tool.memory_bank_configs):
        bank_where = f"{where}.memory_bank_configs[{index}]"
        if bank.entities is not None:
            problems.append(f"{bank_where}.entities: graph memory banks are not served by any provider here")
        if bank.keys is not None and bank.type != "keyvalue":
            problems.append(f"{bank_where}.keys: only a keyvalue bank is looked up by keys")
    return problems


async def check_agent_config(config: AgentConfig, models: Any, shields: Any | None, banks: Any | None) -> None:
    """Raise the first reason `config` cannot make an agent for the current caller."""
    problems = refused_fields(config)
    if problems:
        raise InvalidRequest("the agent config has fields this server cannot honour: " + "; ".join(problems))
    for model_id in model_ids(config):
        await _check_model(model_id, models)
    await _check_shields(config, shields)
    await _check_banks(config, banks)


def model_ids(config: AgentConfig) -> list[str]:
    """The models a turn of this agent runs: its own, and an `llm` query generator's."""
    ids = [config.model]
    for tool in config.tools:
        if isinstance(tool, MemoryToolDefinition) and isinstance(tool.query_generator_config, LLMQueryGeneratorConfig):
            ids.append(tool.query_generator_config.model)
    return list(dict.fromkeys(ids))


async def _check_model(model_id: str, models: Any) -> None:
    if await models.get_model(model_id) is None:
        raise ModelNotFound(model_id, available=[m.identifier for m in await models.list_models()])
    require_model(model_id)


def shield_ids(config: AgentConfig) -> list[str]:
    """Every shield the agent runs: its own and its tools'."""
    ids = [*config.input_shields, *config.output_shields]
    for tool in config.tools:
        ids.extend([*tool.input_shields, *tool.output_shields])
    return list(dict.fromkeys(ids))


async def _check_shields(config: AgentConfig, shields: Any | None) -> None:
    wanted = shield_ids(config)
    if not wanted:
        return
    if shields is None:
        raise InvalidRequest("the agent's shields need the safety API, which this distribution does not serve")
    for shield_id in wanted:
        if await shields.get_shield(shield_id) is None:
            raise ShieldNotFound(shield_id)


async def _check_banks(config: AgentConfig, banks: Any | None) -> None:
    """Each bank must exist, be visible to the caller (another key's bank is not found) and be of
    the type the agent says it is: the type decides how it is queried."""
    for index, tool in enumerate(config.tools):
        if not isinstance(tool, MemoryToolDefinition) or banks is None:
            continue
        for position, wanted in enumerate(tool.memory_bank_configs):
            bank = await banks.get_memory_bank(wanted.bank_id)
            if bank is None:
                raise MemoryBankNotFound(wanted.bank_id)
            if bank.memory_bank_type != wanted.type:
                raise InvalidRequest(
                    f"agent_config.tools[{index}].memory_bank_configs[{position}].type: bank '{wanted.bank_id}' "
                    f"is a {bank.memory_bank_type} bank, not {wanted.type}"
                )

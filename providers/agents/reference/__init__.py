"""inline::meta-reference: the agent loop of Llama Stack v0.0.63 (shields, RAG, inference, builtin
and client tools), with agents, sessions, turns and steps kept in a kvstore.

Importing this package stays cheap (pydantic only); the factory imports the implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_stack.distribution.provider import AgentsSpec, Api, Deps, ProviderSpec

from .config import MetaReferenceAgentsConfig

if TYPE_CHECKING:
    from .agents import MetaReferenceAgents


async def get_provider_impl(config: MetaReferenceAgentsConfig, deps: Deps) -> MetaReferenceAgents:
    from .agents import MetaReferenceAgents
    from .persistence import AgentStore

    agents = MetaReferenceAgents(config, deps, AgentStore(deps.kvstore))
    if deps.multi_tenant:  # fail now, not at the first code_interpreter call: tenants need bubblewrap
        try:
            await agents.sandbox.plan()
        except BaseException:
            await agents.shutdown()
            raise
    return agents


provider_spec: AgentsSpec[MetaReferenceAgentsConfig] = ProviderSpec(
    kvstore=lambda config: config.persistence_store,
    api=Api.agents,
    provider_type="inline::meta-reference",
    config_class=MetaReferenceAgentsConfig,
    factory=get_provider_impl,
    description="Agents with sessions, shields, RAG over memory banks, client tools and builtin tools "
    "(code_interpreter in a bubblewrap sandbox, Brave/Tavily/Bing search, Wolfram Alpha); state in a kvstore",
    depends_on=(Api.inference, Api.models),
    optional_depends_on=(Api.safety, Api.shields, Api.memory, Api.memory_banks),
)

__all__ = ["MetaReferenceAgentsConfig", "get_provider_impl", "provider_spec"]

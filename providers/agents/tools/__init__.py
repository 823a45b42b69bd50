"""Builtin tools of the agents provider: code_interpreter (a sandbox), web search, Wolfram Alpha
and the memory tool (RAG). Importing this package stays cheap: no tool starts anything."""

from .config import SandboxConfig, WebToolsConfig

__all__ = ["SandboxConfig", "WebToolsConfig"]

"""Settings of the builtin tools: the code sandbox and the web services' API keys (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SandboxConfig(BaseModel):
    """Where and how code_interpreter runs Python.

    `isolation: auto` picks bubblewrap when `bwrap` works on this machine, else a restricted
    subprocess; naming one mode makes the first run fail when that mode does not work. Where
    server.auth defines API keys, callers are tenants who must not read each other's data: then
    only bubblewrap is accepted, and the server does not start without it.

    Under bubblewrap the program sees an empty root with, read-only, only the interpreter, its
    standard library, the shared libraries in /usr/lib, and `packages` with what they require.
    It runs as `run_as_uid` (nobody): through setuid when the server is root (so the process-count
    limit holds: the kernel never limits root), else in a user namespace.
    """

    model_config = ConfigDict(extra="forbid")

    isolation: Literal["auto", "bubblewrap", "subprocess"] = "auto"
    python: str | None = Field(
        default=None, description="interpreter for the programs; default: the server's own, else a system python3"
    )
    packages: list[str] = Field(
        default_factory=lambda: ["numpy", "pandas", "matplotlib"],
        description="distributions importable under bubblewrap, with what they require (where installed)",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="wall-clock limit of one run")
    cpu_time_s: int = Field(default=10, gt=0, description="CPU seconds per process (RLIMIT_CPU)")
    memory_mb: int = Field(default=1024, ge=64, description="address space per process (RLIMIT_AS)")
    max_processes: int = Field(default=32, ge=1, description="processes and threads of the sandbox user (RLIMIT_NPROC)")
    max_file_mb: int = Field(default=16, ge=1, description="largest file a program may write (RLIMIT_FSIZE)")
    tmp_size_mb: int = Field(default=64, ge=1, description="size of the writable /tmp under bubblewrap")
    max_output_bytes: int = Field(default=100_000, ge=1_000, description="stdout and stderr kept, each")
    max_images: int = Field(default=8, ge=0)
    max_image_bytes: int = Field(default=4_000_000, ge=1_000)
    max_concurrent_runs: int = Field(default=4, ge=1)
    run_as_uid: int = Field(default=65534, ge=1, description="user the program runs as when the server is root")
    run_as_gid: int = Field(default=65534, ge=1)


SearchEngineName = Literal["brave", "tavily", "bing"]


class WebToolsConfig(BaseModel):
    """API keys of the web tools. A key is looked up, in order, in the request's provider data
    (the X-LlamaStack-ProviderData header, e.g. {"brave_search_api_key": "..."}), in the agent's
    tool definition (`api_key`), here, and in the environment variable of the same name in capitals."""

    model_config = ConfigDict(extra="forbid")

    brave_search_api_key: str | None = None
    tavily_search_api_key: str | None = None
    bing_search_api_key: str | None = None
    wolfram_alpha_api_key: str | None = None
    timeout_s: float = Field(default=15.0, gt=0)
    max_results: int = Field(default=3, ge=1, le=20)

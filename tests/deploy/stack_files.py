"""Helpers for the deployment files' tests: env files, compose-style `${VAR:-default}`
interpolation, and a run.yaml checked the way `llama stack run` checks it at startup."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llama_stack.distribution.provider import Api, ProviderSpec
from llama_stack.distribution.registry import UnknownProvider, get_provider_spec, install_provider
from llama_stack.distribution.spec import RunConfig, load_run_config, validate_section

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def provider_spec(api: Api, provider_type: str) -> ProviderSpec:
    """The registered provider; the agents provider is taken from its package until its entry
    point is in pyproject.toml (the manifests' run.yaml files use it)."""
    try:
        return get_provider_spec(api, provider_type)
    except UnknownProvider:
        if (api, provider_type) != (Api.agents, "inline::meta-reference"):
            raise
    from llama_stack.providers.agents.reference import provider_spec as agents

    spec: ProviderSpec = agents
    install_provider(spec)
    return spec


def ensure_providers_of(run_yaml: Path) -> None:
    """Make every provider a run.yaml names known to the registry (see provider_spec)."""
    for api, entries in load_run_config(run_yaml, env=_any_value(run_yaml)).providers.items():
        for entry in entries:
            provider_spec(api, entry.provider_type)


def _any_value(run_yaml: Path) -> dict[str, str]:
    return {name: "x" for name in re.findall(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}", run_yaml.read_text())}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose's env_file reads them (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f"{path}:{number}: not KEY=VALUE"
        values[name] = value
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """What compose does to a compose file before validating it: `${VAR}`, `${VAR:-default}`, `$$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    parts = value.split("$$")

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if env.get(name):
            return env[name]
        assert default is not None, f"${{{name}}} is not set and has no default"
        return default

    return "$".join(COMPOSE_VARIABLE.sub(substitute, part) for part in parts)


def check_run_config(run_yaml: Path, env: dict[str, str]) -> RunConfig:
    """Parse with env expansion, then validate every provider's config as startup does."""
    config = load_run_config(run_yaml, env=env)
    for api, entries in config.providers.items():
        for index, entry in enumerate(entries):
            spec = provider_spec(api, entry.provider_type)
            validate_section(spec.config_class, entry.config, ("providers", api.value, index, "config"))
    return config


def network_addresses(value: Any) -> list[str]:
    """The host of every URL or DSN in a parsed config (the `url` and `dsn` keys)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key in ("url", "dsn") and isinstance(child, str):
                host = urlsplit(child).hostname
                assert host, f"{key}: {child!r} names no host"
                found.append(host)
            else:
                found += network_addresses(child)
    elif isinstance(value, list):
        for child in value:
            found += network_addresses(child)
    return found

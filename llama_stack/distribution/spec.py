"""BuildSpec (build.yaml) and RunConfig (run.yaml), with `${env.NAME:default}` expansion.

Every error names the YAML key path that caused it, so a bad run.yaml fails at startup with
one line a user can act on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llama_stack.apis.common import JsonValue
from llama_stack.apis.memory_banks import BankParams
from llama_stack.apis.models import ModelType
from llama_stack.distribution.provider import PROVIDER_APIS, Api
from llama_stack.distribution.store.api import KVStoreConfig, SqliteKVStoreConfig

ENV_REFERENCE = re.compile(r"\$\{env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<default>[^}]*))?\}")


class ConfigError(Exception):
    """A distribution file that cannot be used; the message starts with the key path."""


def key_path(parts: tuple[str | int, ...]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "<root>"


def expand_env(value: Any, env: Mapping[str, str], path: tuple[str | int, ...] = ()) -> Any:
    """Replace `${env.NAME}` / `${env.NAME:default}` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: expand_env(v, env, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{key_path(path)}: environment variable {name} is not set and has no default")

    # Values stay strings: the pydantic models coerce "5000" to an int where a field wants one.
    return ENV_REFERENCE.sub(substitute, value)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ProviderConfig(StrictModel):
    provider_id: str = Field(min_length=1)
    provider_type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)


class ModelInput(StrictModel):
    model_id: str = Field(min_length=1)
    provider_id: str | None = None
    provider_model_id: str | None = None
    model_type: ModelType = ModelType.llm
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class ShieldInput(StrictModel):
    shield_id: str = Field(min_length=1)
    provider_id: str | None = None
    provider_shield_id: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)


class MemoryBankInput(StrictModel):
    memory_bank_id: str = Field(min_length=1)
    params: BankParams
    provider_id: str | None = None
    provider_memory_bank_id: str | None = None


class ServerConfig(StrictModel):
    host: str = "0.0.0.0"
    port: int = Field(default=5000, ge=0, le=65535)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    graceful_shutdown_s: float = Field(default=10.0, ge=0)


def default_metadata_store(image_name: str) -> SqliteKVStoreConfig:
    return SqliteKVStoreConfig(db_path=str(Path("~/.llama/distributions").expanduser() / image_name / "registry.db"))


class RunConfig(StrictModel):
    version: Literal[2] = 2
    image_name: str = Field(min_length=1)
    apis: list[Api] = Field(default_factory=list)
    providers: dict[Api, list[ProviderConfig]]
    metadata_store: KVStoreConfig | None = None
    models: list[ModelInput] = Field(default_factory=list)
    shields: list[ShieldInput] = Field(default_factory=list)
    memory_banks: list[MemoryBankInput] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)

    def served_apis(self) -> list[Api]:
        listed = self.apis or [api for api in PROVIDER_APIS if self.providers.get(api)]
        return [api for api in PROVIDER_APIS if api in listed]

    def registry_store(self) -> KVStoreConfig:
        return self.metadata_store or default_metadata_store(self.image_name)


class DistributionSpec(StrictModel):
    description: str = ""
    providers: dict[Api, list[str]]


class BuildSpec(StrictModel):
    version: Literal[2] = 2
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    distribution_spec: DistributionSpec
    image_type: Literal["venv", "container"] = "venv"
    docs: str = ""


def _validation_message(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> str:
    first = error.errors()[0]
    location = tuple(part for part in first["loc"] if not str(part).startswith("function-"))
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    return f"{key_path((*prefix, *location))}: {first['msg']}{more}"


def parse_yaml_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: file not found") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_run_config(data: dict[str, Any], env: Mapping[str, str] | None = None) -> RunConfig:
    expanded = expand_env(data, os.environ if env is None else env)
    try:
        return RunConfig.model_validate(expanded)
    except ValidationError as e:
        raise ConfigError(_validation_message(e)) from e


def load_run_config(path: Path, env: Mapping[str, str] | None = None) -> RunConfig:
    try:
        return parse_run_config(parse_yaml_file(path), env)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def load_build_spec(path: Path) -> BuildSpec:
    try:
        return BuildSpec.model_validate(parse_yaml_file(path))
    except ValidationError as e:
        raise ConfigError(f"{path}: {_validation_message(e)}") from e


def validate_section(model: type[BaseModel], data: Any, path: tuple[str | int, ...]) -> BaseModel:
    """Validate one nested section (a provider's config), reporting errors under its key path."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_validation_message(e, path)) from e

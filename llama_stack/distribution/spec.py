"""BuildSpec (build.yaml) and RunConfig (run.yaml), with `${env.NAME:default}` expansion.

Every error names the YAML key path that caused it, so a bad run.yaml fails at startup with
one line a user can act on.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from llama_stack.apis.common import JsonValue
from llama_stack.apis.memory_banks import BankParams
from llama_stack.apis.models import ModelType
from llama_stack.distribution.outbound import OutboundConfig
from llama_stack.distribution.provider import PROVIDER_APIS, Api
from llama_stack.distribution.store.api import KVStoreConfig, SqliteKVStoreConfig

# A default may itself be one reference, `${env.SAFETY_URL:${env.VLLM_URL:http://localhost:8000/v1}}`:
# one setting then follows another unless set on its own.
log = logging.getLogger(__name__)

ENV_REFERENCE = re.compile(
    r"\$\{env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?::(?P<default>\$\{env\.[A-Za-z_][A-Za-z0-9_]*(?::[^}]*)?\}|[^}]*))?\}"
)


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
            # Only the YAML's own default is expanded again, never a value from the environment.
            return ENV_REFERENCE.sub(substitute, default) if ENV_REFERENCE.fullmatch(default) else default
        raise ConfigError(f"{key_path(path)}: environment variable {name} is not set and has no default")

    # Values stay strings: the pydantic models coerce "5000" to an int where a field wants one.
    return ENV_REFERENCE.sub(substitute, value)


def _schema_version(value: object) -> object:
    # Upstream Llama Stack writes `version: '2'`: the string and the number mean the same.
    return 2 if value == "2" else value


SchemaVersion = Annotated[Literal[2], BeforeValidator(_schema_version)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


SECRET_SETTING = re.compile(r"(^|_)(key|secret|password|passwd|token|credentials?)$", re.IGNORECASE)


def redact_secrets(value: Any) -> Any:
    """`value` with the values of secret-looking settings (api_key, password...) masked."""
    if isinstance(value, dict):
        return {k: "***" if SECRET_SETTING.search(str(k)) and v else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value


class ProviderConfig(StrictModel):
    provider_id: str = Field(min_length=1)
    provider_type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)

    def __repr_args__(self) -> Any:
        # The raw config is validated by the provider's own model (SecretStr for keys); until then
        # a repr (a log line, a traceback) must not show its secrets.
        for name, value in super().__repr_args__():
            yield name, redact_secrets(value) if name == "config" else value


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


# Operations: access control, quotas and telemetry (docs/operations.md). All are off by default.

API_KEY_ENV = "LLAMA_STACK_API_KEY"
ANONYMOUS = "anonymous"


class KeyScopes(StrictModel):
    apis: list[Api] = Field(default_factory=lambda: list(Api), description="the APIs the key may call")
    models: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1, description='model ids the key may use, or "*" for all'
    )


class ApiKeyConfig(StrictModel):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.@-]+$",
        description="who holds the key; shown in logs, metrics and quota counters (the key never is)",
    )
    key: SecretStr | None = Field(default=None, description="the bearer token itself")
    key_env: str | None = Field(default=None, description="the environment variable holding the token")
    scopes: KeyScopes = Field(default_factory=KeyScopes)
    admin: bool = Field(default=False, description="sees and manages every key's agents, sessions, banks and files")

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeyConfig:
        if (self.key is None) == (self.key_env is None):
            raise ValueError("give exactly one of key and key_env")
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("the key must be at least 16 characters long")
        return self


class AuthConfig(StrictModel):
    keys: list[ApiKeyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> AuthConfig:
        names = [key.name for key in self.keys]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"key names must be unique; repeated: {', '.join(duplicated)}")
        return self


class QuotaLimits(StrictModel):
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_day: int | None = Field(default=None, gt=0, description="prompt + completion tokens, per UTC day")


class QuotaConfig(QuotaLimits):
    """Limits for every key (or, without auth, for all callers together); `per_key` overrides them
    field by field. Counters live in `store`, by default the metadata store."""

    per_key: dict[str, QuotaLimits] = Field(default_factory=dict)
    store: KVStoreConfig | None = None

    def limits_for(self, name: str) -> QuotaLimits:
        override = self.per_key.get(name)
        if override is None:
            return self
        merged = {field: getattr(override, field) for field in override.model_fields_set}
        return QuotaLimits(**{**self.model_dump(include=set(QuotaLimits.model_fields)), **merged})


class TracingConfig(StrictModel):
    exporter: Literal["otlp", "console"] = "otlp"
    endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces URL; default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or localhost:4318"
    )
    service_name: str = Field(default="llama-stack", min_length=1)


class TelemetryConfig(StrictModel):
    metrics: bool = Field(default=False, description="serve Prometheus metrics on /metrics")
    tracing: TracingConfig | None = Field(default=None, description="OpenTelemetry spans around inference calls")
    request_ids: bool = Field(default=False, description="x-request-id on every answer and one access log per request")
    log_format: Literal["text", "json"] = "text"


class ServerConfig(StrictModel):
    host: str = "0.0.0.0"
    port: int = Field(default=5000, ge=0, le=65535)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    # Above the idle timeouts of common clients (httpx and the SDKs on it: 5 s) and load balancers
    # (60 s), so the server is not the side that closes a connection a client is about to reuse.
    keep_alive_s: float = Field(default=75.0, gt=0)
    auth: AuthConfig | None = None
    quotas: QuotaConfig | None = None
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)

    @model_validator(mode="after")
    def _quota_keys_exist(self) -> ServerConfig:
        known = {key.name for key in self.auth.keys} if self.auth else set()
        unknown = sorted(set(self.quotas.per_key) - known) if self.quotas else []
        if unknown:
            raise ValueError(f"quotas.per_key names keys that server.auth does not define: {', '.join(unknown)}")
        return self


def default_metadata_store(image_name: str) -> SqliteKVStoreConfig:
    return SqliteKVStoreConfig(db_path=str(Path("~/.llama/distributions").expanduser() / image_name / "registry.db"))


class RunConfig(StrictModel):
    version: SchemaVersion = 2
    image_name: str = Field(min_length=1)
    apis: list[Api] = Field(default_factory=list)
    providers: dict[Api, list[ProviderConfig]]
    metadata_store: KVStoreConfig | None = None
    models: list[ModelInput] = Field(default_factory=list)
    shields: list[ShieldInput] = Field(default_factory=list)
    memory_banks: list[MemoryBankInput] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    # Written by upstream Llama Stack's `build`; they say how an image was built, so running
    # takes them as they are and uses neither.
    docker_image: str | None = None
    conda_env: str | None = None

    def served_apis(self) -> list[Api]:
        listed = self.apis or [api for api in PROVIDER_APIS if self.providers.get(api)]
        return [api for api in PROVIDER_APIS if api in listed]

    def registry_store(self) -> KVStoreConfig:
        return self.metadata_store or default_metadata_store(self.image_name)


class DistributionSpec(StrictModel):
    description: str = ""
    providers: dict[Api, list[str]]


class BuildSpec(StrictModel):
    version: SchemaVersion = 2
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


# The resources a run.yaml registers, and the field naming each one.
RESOURCE_IDS = {"models": "model_id", "shields": "shield_id", "memory_banks": "memory_bank_id"}


def skip_switched_off(raw: dict[str, Any], expanded: dict[str, Any]) -> dict[str, Any]:
    """Leave out each registered resource whose id is an env reference that expanded to nothing,
    and say so: `shield_id: ${env.SAFETY_MODEL:Llama-Guard-3-1B}` lets SAFETY_MODEL= turn the
    shield off. An id written empty in the YAML itself stays an error."""
    kept = dict(expanded)
    for section, id_field in RESOURCE_IDS.items():
        entries, raw_entries = expanded.get(section), raw.get(section)
        if not isinstance(entries, list) or not isinstance(raw_entries, list):
            continue
        kept[section] = []
        for index, (entry, raw_entry) in enumerate(zip(entries, raw_entries, strict=True)):
            written = raw_entry.get(id_field) if isinstance(raw_entry, dict) else None
            if isinstance(entry, dict) and entry.get(id_field) == "" and ENV_REFERENCE.search(str(written or "")):
                log.warning("%s[%d] is off: its %s %s expands to nothing", section, index, id_field, written)
                continue
            kept[section].append(entry)
    return kept


def parse_run_config(data: dict[str, Any], env: Mapping[str, str] | None = None) -> RunConfig:
    env = os.environ if env is None else env
    expanded = skip_switched_off(data, expand_env(data, env))
    try:
        config = RunConfig.model_validate(expanded)
    except ValidationError as e:
        raise ConfigError(_validation_message(e)) from e
    return resolve_api_keys(config, env)


def resolve_api_keys(config: RunConfig, env: Mapping[str, str]) -> RunConfig:
    """Read each `key_env`, and add a key from $LLAMA_STACK_API_KEY (every scope) when it is set."""
    auth = config.server.auth or AuthConfig()
    keys: list[ApiKeyConfig] = []
    for index, key in enumerate(auth.keys):
        if key.key is None and key.key_env is not None:
            value = env.get(key.key_env, "")
            if len(value) < 16:
                problem = "is not set" if not value else "holds fewer than 16 characters"
                raise ConfigError(f"server.auth.keys[{index}].key_env: environment variable {key.key_env} {problem}")
            key = key.model_copy(update={"key": SecretStr(value), "key_env": None})
        keys.append(key)
    from_env = env.get(API_KEY_ENV, "")
    if from_env:
        if len(from_env) < 16:
            raise ConfigError(f"environment variable {API_KEY_ENV}: an API key needs at least 16 characters")
        if any(key.name == API_KEY_ENV for key in keys):
            raise ConfigError(f"server.auth.keys: the name {API_KEY_ENV} is taken by the key from the environment")
        keys.append(ApiKeyConfig(name=API_KEY_ENV, key=SecretStr(from_env)))
    if not keys:
        return config
    server = config.server.model_copy(update={"auth": AuthConfig(keys=keys)})
    return config.model_copy(update={"server": server})


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

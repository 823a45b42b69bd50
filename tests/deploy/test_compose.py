"""The single-node compose stacks in deploy/compose/: each compose.yaml is valid against the
official Compose Specification JSON schema (vendored in tests/data/), is healthchecked and keeps
its state in named volumes and its secrets in an env file; the run.yaml it mounts parses as a
RunConfig with the env file's values, on Postgres/Redis stores and remote memory providers; and
the server image its build.yaml describes lints clean."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from llama_stack.cli import build as builder
from llama_stack.distribution.provider import Api
from tests.deploy.dockerfiles import hadolint, write_dockerfile
from tests.deploy.stack_files import (
    DEPLOY,
    ROOT,
    check_run_config,
    ensure_providers_of,
    interpolate,
    network_addresses,
    read_env_file,
)

COMPOSE = DEPLOY / "compose"
STACKS = sorted(p.name for p in COMPOSE.iterdir() if (p / "compose.yaml").is_file())
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
SERVER = "llamastack"


def load_compose(stack: str) -> dict[str, Any]:
    document = yaml.safe_load((COMPOSE / stack / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def env_example(stack: str) -> dict[str, str]:
    return read_env_file(COMPOSE / stack / ".env.example")


def schema_errors(document: Any) -> list[str]:
    validator = Draft202012Validator(SCHEMA)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document))


def test_the_two_stacks_exist() -> None:
    assert STACKS == ["ollama", "vllm"]
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["title"] == "Compose Specification"


@pytest.mark.parametrize("stack", STACKS)
def test_compose_file_is_valid_against_the_compose_spec(stack: str) -> None:
    document = load_compose(stack)
    assert schema_errors(document) == []
    assert schema_errors(interpolate(document, env_example(stack))) == []  # as compose reads it


def test_the_schema_rejects_what_compose_rejects() -> None:
    def test_as_a_mapping(d: dict[str, Any]) -> None:
        d["services"][SERVER]["healthcheck"]["test"] = {"cmd": "true"}

    def unknown_condition(d: dict[str, Any]) -> None:
        d["services"][SERVER]["depends_on"]["postgres"]["condition"] = "healthy"

    def misspelt_key(d: dict[str, Any]) -> None:
        d["services"][SERVER]["restart_policy"] = "always"

    def misspelt_volume_option(d: dict[str, Any]) -> None:
        d["volumes"]["postgres-data"] = {"driverr": "local"}

    for mistake in (test_as_a_mapping, unknown_condition, misspelt_key, misspelt_volume_option):
        broken = copy.deepcopy(load_compose("ollama"))
        mistake(broken)
        assert schema_errors(broken), f"{mistake.__name__} was accepted"


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_is_healthchecked_and_keeps_state_in_named_volumes(stack: str) -> None:
    document = load_compose(stack)
    services: dict[str, Any] = document["services"]
    declared = set(document.get("volumes", {}))
    used: set[str] = set()
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services and condition == {"condition": "service_healthy"}, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
        if name != SERVER:
            assert service.get("volumes"), f"{name} keeps state: it needs a named volume"
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), image
    assert used == declared, f"declared but unused: {declared - used}"
    assert set(services[SERVER]["depends_on"]) == set(services) - {SERVER}


@pytest.mark.parametrize("stack", STACKS)
def test_the_server_mounts_its_run_yaml_and_is_checked_on_alpha_health(stack: str) -> None:
    server = load_compose(stack)["services"][SERVER]
    assert "./run.yaml:/app/run.yaml:ro" in server["volumes"]  # the path the image's ENTRYPOINT runs
    assert (COMPOSE / stack / "run.yaml").is_file()
    assert "/alpha/health" in " ".join(server["healthcheck"]["test"])
    assert interpolate(server, {})["ports"] == ["5000:5000"]  # LLAMA_STACK_PORT picks another host port


@pytest.mark.parametrize("override", ["compose.local.yaml", "compose.replicas.yaml"])
def test_the_ollama_overrides_are_valid_compose_files(override: str) -> None:
    """The files tests/deploy/test_compose_stack.py merges over the Ollama stack's compose.yaml."""
    document = yaml.safe_load((COMPOSE / "ollama" / override).read_text())
    assert schema_errors(document) == []
    assert set(document["services"]) <= set(load_compose("ollama")["services"]) | {"llamastack-b"}


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_come_from_the_env_file(stack: str) -> None:
    text = (COMPOSE / stack / "compose.yaml").read_text()
    example = env_example(stack)
    assert "change-me" not in text and not re.search(r"PASSWORD\s*[:=]\s*\w", text)
    for name, service in load_compose(stack)["services"].items():
        for value in (service.get("environment") or {}).values():
            assert "change-me" not in str(value), name
    assert load_compose(stack)["services"][SERVER]["env_file"] == ".env"
    secrets = [name for name in example if name.endswith(("PASSWORD", "API_KEY", "TOKEN"))]
    assert secrets and all(example[name] == "change-me" for name in secrets)
    assert "*/.env" in (COMPOSE / ".gitignore").read_text().splitlines(), "a filled-in .env is never committed"


@pytest.mark.parametrize("stack", STACKS)
def test_the_mounted_run_yaml_parses_with_the_env_file(stack: str) -> None:
    run_yaml = COMPOSE / stack / "run.yaml"
    example = env_example(stack)
    required = re.findall(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}", run_yaml.read_text())
    assert required and set(required) <= set(example), "every variable without a default is in .env.example"

    config = check_run_config(run_yaml, {**example, "POSTGRES_PASSWORD": "s3cret"})
    store = config.registry_store()
    assert store.type == "postgres" and ":s3cret@postgres:5432/" in store.dsn
    memory = config.providers[Api.memory][0]
    assert memory.provider_type.startswith("remote::")
    agents = config.providers[Api.agents][0]
    assert agents.config["persistence_store"]["type"] == "postgres"
    hosts = set(network_addresses(config.model_dump()))
    assert hosts <= set(load_compose(stack)["services"]), f"{hosts}: every address is a compose service"


def test_the_ollama_stack_uses_postgres_pgvector_and_redis() -> None:
    config = check_run_config(COMPOSE / "ollama" / "run.yaml", env_example("ollama"))
    memory = config.providers[Api.memory][0]
    assert memory.provider_type == "remote::pgvector"
    assert memory.config["kvstore"]["type"] == "redis"
    assert {m.provider_id for m in config.models} == {"ollama"}


def test_the_vllm_stack_uses_qdrant_and_postgres() -> None:
    config = check_run_config(COMPOSE / "vllm" / "run.yaml", env_example("vllm"))
    assert config.providers[Api.memory][0].provider_type == "remote::qdrant"
    assert config.providers[Api.inference][0].config["api_key"] == env_example("vllm")["VLLM_API_KEY"]
    vllm = load_compose("vllm")["services"]["vllm"]
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


@pytest.mark.parametrize(
    ("stack", "extras"),
    [
        ("ollama", {"ollama", "pgvector", "postgres", "redis"}),
        ("vllm", {"embeddings", "multilingual-embeddings", "qdrant", "postgres"}),
    ],
)
def test_the_server_image_lints_clean_with_the_store_extras(stack: str, extras: set[str], tmp_path: Path) -> None:
    ensure_providers_of(COMPOSE / stack / "run.yaml")
    dockerfile, plan = write_dockerfile(tmp_path, COMPOSE / stack / "build.yaml", COMPOSE / stack / "run.yaml")
    assert set(plan.extras) == extras
    assert hadolint(dockerfile) == []


def test_a_venv_built_for_a_compose_run_yaml_gets_the_store_extras_too(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    plan = builder.BuildPlan("compose-ollama", ("ollama", "pgvector"), (), needs_torch=False)
    source = builder.PackageSource(Path("/src/llamastack"), "0.1.0")
    builder.build_venv(plan, tmp_path / "venv", source, COMPOSE / "ollama" / "run.yaml", run=ran.append)
    assert ran[-1][-1] == "/src/llamastack[ollama,pgvector,redis,postgres]"

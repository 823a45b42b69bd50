"""The shipped distributions: found by name, valid against the spec and the providers' configs,
and their `${env.NAME:default}` references listed the way `list-distributions --verbose` shows."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from llama_stack.distribution.provider import Api
from llama_stack.distribution.registry import get_provider_spec
from llama_stack.distribution.spec import ConfigError, load_run_config, validate_section
from llama_stack.distribution.templates import (
    env_references,
    get_template,
    list_templates,
    resolve_run_yaml,
    template_names,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["demo", "local", "ollama", "vllm", "tgi", "together", "fireworks", "databricks", "bedrock"]


def test_the_shipped_distributions_are_found_by_name() -> None:
    names = template_names()
    assert set(SHIPPED) <= set(names)
    for template in list_templates():
        assert template.build_yaml.is_file() and template.run_yaml.is_file() and template.readme.is_file()
        assert template.description()


def test_every_distribution_file_is_package_data() -> None:
    """pyproject ships */*.yaml and */*.md of llama_stack.distributions; nothing else would install."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["llama_stack.distributions"]
    for template in list_templates():
        for path in template.path.iterdir():
            if path.name == "__pycache__":
                continue
            relative = f"{template.name}/{path.name}"
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} would not be installed"


@pytest.mark.parametrize("name", SHIPPED)
def test_run_yaml_is_valid_and_matches_build_yaml(name: str) -> None:
    template = get_template(name)
    config = load_run_config(template.run_yaml, env={})
    spec = template.build_spec()
    assert config.image_name == spec.name == name
    for api, entries in config.providers.items():
        # One type may run twice (vllm's guard model on a server of its own); build.yaml installs it once.
        assert list(dict.fromkeys(e.provider_type for e in entries)) == spec.distribution_spec.providers[api]
        for index, entry in enumerate(entries):
            provider = get_provider_spec(api, entry.provider_type)
            validate_section(provider.config_class, entry.config, ("providers", api.value, index, "config"))
    provider_ids = {e.provider_id for entries in config.providers.values() for e in entries}
    assert {m.provider_id for m in config.models} <= provider_ids
    assert config.server.port == 5000


def test_demo_serves_the_tiny_model_and_minilm_offline() -> None:
    config = load_run_config(get_template("demo").run_yaml, env={})
    transformers = config.providers[Api.inference][0]
    assert transformers.provider_id == "transformers"
    assert transformers.config == {
        "device": "cpu",
        "tiny_model_dir": "~/.llama/tiny-models",
        "gguf_cache_dir": "~/.llama/gguf-cache",
    }
    models = {m.model_id: m for m in config.models}
    assert models["tiny-random-llama-3"].provider_model_id == "tiny-random-llama-3"
    assert models["all-MiniLM-L6-v2"].model_type == "embedding"
    assert models["all-MiniLM-L6-v2"].metadata == {"embedding_dimension": 384}
    assert config.registry_store().model_dump()["db_path"] == "~/.llama/distributions/demo/registry.db"


def test_environment_overrides_the_defaults() -> None:
    env = {"LLAMA_STACK_PORT": "6001", "SQLITE_STORE_DIR": "/data/state", "LLAMA_TINY_MODEL_DIR": "/m"}
    config = load_run_config(get_template("demo").run_yaml, env=env)
    assert config.server.port == 6001
    assert config.registry_store().model_dump()["db_path"] == "/data/state/registry.db"

    local = load_run_config(
        get_template("local").run_yaml,
        env={"INFERENCE_MODEL": "Llama3.2-1B-Instruct", "INFERENCE_CHECKPOINT": "/w/1b", "INFERENCE_DEVICE": "cuda"},
    )
    assert (local.models[0].model_id, local.models[0].provider_model_id) == ("Llama3.2-1B-Instruct", "/w/1b")
    assert local.providers[Api.inference][0].config["device"] == "cuda"


def test_env_references_list_names_defaults_and_keys() -> None:
    refs = {ref.name: ref for ref in env_references(get_template("demo").run_yaml)}
    assert refs["LLAMA_STACK_PORT"].default == "5000"
    assert refs["LLAMA_STACK_PORT"].key == "server.port"
    assert refs["SQLITE_STORE_DIR"].key == "providers.memory[0].config.persist_dir"  # its first use
    local = {ref.name: ref.default for ref in get_template("local").env_references()}
    assert local["INFERENCE_MODEL"] == "meta-llama/Llama-3.2-3B-Instruct"
    assert local["INFERENCE_CHECKPOINT"] == "meta-llama/Llama-3.2-3B-Instruct"
    assert local["INFERENCE_DEVICE"] == "auto"


def test_env_references_skip_comments_and_keep_required_ones(tmp_path: Path) -> None:
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("# ${env.IN_A_COMMENT:x}\nimage_name: ${env.NAME}\nserver:\n  port: ${env.PORT:}\n")
    refs = env_references(run_yaml)
    assert [(r.name, r.default) for r in refs] == [("NAME", None), ("PORT", "")]


def test_resolve_run_yaml_takes_a_name_a_file_or_a_folder(tmp_path: Path) -> None:
    assert resolve_run_yaml("demo") == get_template("demo").run_yaml
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("version: 2\n")
    assert resolve_run_yaml(str(run_yaml)) == run_yaml
    assert resolve_run_yaml(str(tmp_path)) == run_yaml


def test_unknown_names_and_missing_files_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown distribution 'nope' \(known: .*demo.*local"):
        resolve_run_yaml("nope")
    with pytest.raises(ConfigError, match="file not found"):
        resolve_run_yaml(str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match="unknown distribution"):
        get_template("nope")


def test_local_readme_says_how_to_get_the_weights() -> None:
    readme = get_template("local").readme.read_text()
    assert "hf download meta-llama/Llama-3.2-3B-Instruct" in readme
    assert "INFERENCE_CHECKPOINT" in readme

from __future__ import annotations

from pathlib import Path

import pytest

from llama_stack.distribution.provider import Api
from llama_stack.distribution.spec import ConfigError, expand_env, load_build_spec, load_run_config, parse_run_config


def minimal(**overrides: object) -> dict[str, object]:
    config: dict[str, object] = {
        "version": 2,
        "image_name": "t",
        "providers": {"inference": [{"provider_id": "p", "provider_type": "test::scripted", "config": {}}]},
    }
    config.update(overrides)
    return config


def test_env_reference_takes_the_variable_then_the_default() -> None:
    tree = {"a": "${env.PORT:5000}", "b": ["x-${env.NAME:anon}-y"], "c": "${env.EMPTY:}"}
    assert expand_env(tree, {"PORT": "8321"}) == {"a": "8321", "b": ["x-anon-y"], "c": ""}


def test_env_reference_without_default_must_be_set_and_the_error_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"providers\.inference\[0\]\.config\.api_key: environment variable KEY"):
        expand_env({"providers": {"inference": [{"config": {"api_key": "${env.KEY}"}}]}}, {})


def test_env_expansion_is_typed_by_the_schema() -> None:
    config = parse_run_config(minimal(server={"port": "${env.PORT:5001}"}), env={})
    assert config.server.port == 5001


def test_bad_value_names_its_key_path() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port: "):
        parse_run_config(minimal(server={"port": "abc"}), env={})


def test_unknown_key_is_rejected_not_ignored() -> None:
    with pytest.raises(ConfigError, match=r"^providres: Extra inputs are not permitted"):
        parse_run_config(minimal(providres={}), env={})


def test_unknown_api_names_the_providers_key() -> None:
    config = minimal(providers={"infrence": []})
    with pytest.raises(ConfigError, match=r"^providers\.infrence"):
        parse_run_config(config, env={})


def test_served_apis_follow_the_configured_providers() -> None:
    assert parse_run_config(minimal(), env={}).served_apis() == [Api.inference]


def test_run_config_file_errors_start_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("version: 2\nimage_name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: not valid YAML"):
        load_run_config(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_run_config(tmp_path / "absent.yaml")


def test_build_spec_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "build.yaml"
    path.write_text("version: 2\nname: mine\ndistribution_spec:\n  providers:\n    inference: [inline::transformers]\n")
    spec = load_build_spec(path)
    assert spec.distribution_spec.providers[Api.inference] == ["inline::transformers"]
    path.write_text("version: 2\nname: Bad Name\ndistribution_spec: {providers: {}}\n")
    with pytest.raises(ConfigError, match=r"name: String should match pattern"):
        load_build_spec(path)

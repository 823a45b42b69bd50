"""Every shipped distribution's files validate, and what its README tells a user about the
environment is what its run.yaml reads: the same variables, with the same defaults. The
`list-distributions --verbose` listing shows each of them, and docs/distributions.md is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llama_stack.cli.main import app
from llama_stack.distribution.registry import get_provider_spec
from llama_stack.distribution.spec import ConfigError, load_build_spec, load_run_config, validate_section
from llama_stack.distribution.templates import env_references, get_template, template_names
from scripts.gen_distribution_docs import DOC, EnvRow, readme_env_rows, render

DISTRIBUTIONS = template_names()


def readme_defaults(readme: Path) -> dict[str, str | None]:
    defaults: dict[str, str | None] = {}
    for row in readme_env_rows(readme):
        for name in row.names:
            assert name not in defaults, f"{readme}: {name} is listed twice"
            defaults[name] = row.default
    return defaults


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_build_and_run_yaml_parse_and_every_provider_exists(name: str) -> None:
    template = get_template(name)
    spec = load_build_spec(template.build_yaml)
    config = load_run_config(template.run_yaml, env={})
    assert spec.name == config.image_name == name
    assert spec.docs == "README.md" and template.readme.is_file()
    for api, types in spec.distribution_spec.providers.items():
        for provider_type in types:
            get_provider_spec(api, provider_type)  # raises UnknownProvider, naming it
    for api, entries in config.providers.items():
        for index, entry in enumerate(entries):
            provider = get_provider_spec(api, entry.provider_type)
            validate_section(provider.config_class, entry.config, ("providers", api.value, index, "config"))


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_readme_env_table_matches_the_run_yaml(name: str) -> None:
    template = get_template(name)
    read = {ref.name: ref.default for ref in env_references(template.run_yaml)}
    documented = readme_defaults(template.readme)
    assert sorted(documented) == sorted(read), (
        f"{name}: README documents {sorted(set(documented) - set(read))} that run.yaml does not read; "
        f"run.yaml reads {sorted(set(read) - set(documented))} that README does not document"
    )
    for variable, default in read.items():
        assert documented[variable] == default, f"{name}: {variable} defaults to {default!r} in run.yaml"


CANDIDATE_VALUES = ("7001", "true", "cuda", "float16", "/elsewhere")


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_every_env_var_runs_through_the_run_yaml(name: str) -> None:
    """Setting each documented variable to some valid value changes the parsed config."""
    template = get_template(name)
    baseline = load_run_config(template.run_yaml, env={}).model_dump()
    for variable in readme_defaults(template.readme):
        changed = []
        for value in CANDIDATE_VALUES:
            try:
                config = load_run_config(template.run_yaml, env={variable: value}).model_dump()
            except ConfigError:
                continue  # not a value this key takes (a port is a number)
            changed.append(config != baseline)
        assert any(changed), f"{name}: no value of {variable} changes the config"


def test_the_readme_parser_reads_defaults_required_and_shared_rows(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n## Environment\n\n| Variable | Default | What it sets |\n|---|---|---|\n"
        "| `PORT` | `5000` | the port |\n| `A_KEY`, `B_KEY` | (none) | keys |\n| `URL` | (required) | where |\n\n"
        "After the table.\n"
    )
    assert readme_env_rows(readme) == [
        EnvRow(("PORT",), "5000", "the port"),
        EnvRow(("A_KEY", "B_KEY"), "", "keys"),
        EnvRow(("URL",), None, "where"),
    ]
    readme.write_text("# x\n\n## Environment\n\n| Variable | Default | What |\n|---|---|---|\n| `P` | 5000 | p |\n")
    with pytest.raises(ValueError, match="P: default '5000'"):
        readme_env_rows(readme)


def test_list_distributions_verbose_shows_every_env_var_of_every_distribution() -> None:
    result = CliRunner().invoke(app, ["stack", "list-distributions", "--verbose"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    blocks = {block.split(":", 1)[0]: block for block in result.stdout.split("\n\n") if block.strip()}
    assert sorted(blocks) == sorted(DISTRIBUTIONS)
    for name in DISTRIBUTIONS:
        shown = {line.split()[0]: line.split()[1] for line in blocks[name].splitlines() if line.startswith("    ")}
        for ref in env_references(get_template(name).run_yaml):
            expected = "(required)" if ref.default is None else ref.default or "''"
            assert shown.get(ref.name) == expected, f"{name}: {ref.name} shown as {shown.get(ref.name)}"


def test_the_distributions_page_is_generated_from_the_current_files() -> None:
    assert DOC.read_text() == render(), "docs/distributions.md is stale: run python -m scripts.gen_distribution_docs"
    for name in DISTRIBUTIONS:
        assert f"## {name}\n" in DOC.read_text()


# -- the whole stack, in every distribution ----------------------------------------------------

SHIPPED = [name for name in DISTRIBUTIONS if name != "demo"]  # the demo has a README of its own
LLAMA_GUARD = [name for name in SHIPPED if name != "bedrock"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_distribution_serves_the_four_apis(name: str) -> None:
    template = get_template(name)
    config = load_run_config(template.run_yaml, env={})
    assert [api.value for api in config.served_apis()] == ["inference", "safety", "memory", "agents"]
    built = {api.value: types for api, types in template.build_spec().distribution_spec.providers.items()}
    assert built["memory"] == ["inline::faiss"] and built["agents"] == ["inline::meta-reference"]
    state = Path("~/.llama/distributions").expanduser() / name
    memory = config.providers[config.served_apis()[2]][0]
    assert Path(memory.config["persist_dir"]).expanduser() == state / "faiss"


@pytest.mark.parametrize("name", LLAMA_GUARD)
def test_the_llama_guard_shield_asks_a_guard_model_the_backend_serves(name: str) -> None:
    config = load_run_config(get_template(name).run_yaml, env={})
    (shield,) = config.shields
    providers = {entry.provider_id: entry.provider_type for entries in config.providers.values() for entry in entries}
    assert providers[str(shield.provider_id)] == "inline::llama-guard"
    guard = next(model for model in config.models if model.model_id == shield.params["text_model"])
    assert guard.model_id == shield.shield_id and "Llama-Guard-3" in guard.model_id
    assert providers[str(guard.provider_id)] not in ("inline::sentence-transformers",)
    assert guard.model_type.value == "llm"


@pytest.mark.parametrize("name", LLAMA_GUARD)
def test_an_empty_safety_model_turns_the_shield_off_and_says_so(name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="llama_stack.distribution.spec"):
        config = load_run_config(get_template(name).run_yaml, env={"SAFETY_MODEL": ""})
    assert config.shields == []
    assert not any("Guard" in model.model_id for model in config.models)
    warnings = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("shields[0] is off") and "SAFETY_MODEL" in line for line in warnings), warnings


def test_the_bedrock_shield_is_a_guardrail_named_by_the_environment() -> None:
    template = get_template("bedrock")
    assert load_run_config(template.run_yaml, env={}).shields == []
    config = load_run_config(template.run_yaml, env={"BEDROCK_GUARDRAIL_ID": "gr-1"})
    (shield,) = config.shields
    assert shield.shield_id == "gr-1" and shield.provider_id == "bedrock-guardrails"
    safety = next(entries for api, entries in config.providers.items() if api.value == "safety")
    assert safety[0].provider_type == "remote::bedrock" and safety[0].config["guardrail_version"] == "DRAFT"


@pytest.mark.parametrize(("name", "url"), [("vllm", "VLLM_URL"), ("tgi", "TGI_URL")])
def test_the_guard_server_follows_the_inference_url_unless_safety_url_is_set(name: str, url: str) -> None:
    def urls(env: dict[str, str]) -> dict[str, str]:
        config = load_run_config(get_template(name).run_yaml, env=env)
        inference = next(entries for api, entries in config.providers.items() if api.value == "inference")
        return {entry.provider_id: entry.config["url"] for entry in inference if "url" in entry.config}

    assert urls({url: "http://gpu:9000/v1"}) == {name: "http://gpu:9000/v1", f"{name}-safety": "http://gpu:9000/v1"}
    both = urls({url: "http://gpu:9000/v1", "SAFETY_URL": "http://guard:9001/v1"})
    assert both == {name: "http://gpu:9000/v1", f"{name}-safety": "http://guard:9001/v1"}


# -- run.yaml files written for upstream Llama Stack ---------------------------------------------

UPSTREAM_RUN_YAML = """\
version: '2'
image_name: upstream
docker_image: null
conda_env: upstream
apis:
- inference
providers:
  inference:
  - provider_id: fake
    provider_type: {provider_type}
    config: {{}}
"""


def test_an_upstream_version_string_loads(tmp_path: Path) -> None:
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(UPSTREAM_RUN_YAML.format(provider_type="remote::vllm"))
    assert load_run_config(run_yaml, env={}).version == 2
    build_yaml = tmp_path / "build.yaml"
    build_yaml.write_text("version: '2'\nname: upstream\ndistribution_spec:\n  providers: {}\n")
    assert load_build_spec(build_yaml).version == 2
    run_yaml.write_text(UPSTREAM_RUN_YAML.format(provider_type="remote::vllm").replace("'2'", "'3'"))
    with pytest.raises(ConfigError, match="version: Input should be 2"):
        load_run_config(run_yaml, env={})


def test_an_unknown_provider_type_exits_1_naming_the_key_and_the_type(tmp_path: Path) -> None:
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(UPSTREAM_RUN_YAML.format(provider_type="remote::nowhere"))
    llama = str(Path(sys.executable).with_name("llama"))
    completed = subprocess.run(
        [llama, "stack", "run", str(run_yaml), "--port", "0"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    error = completed.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "providers.inference[0].provider_type" in error
    assert "'remote::nowhere'" in error and "Traceback" not in completed.stderr

"""Every shipped distribution's files validate, and what its README tells a user about the
environment is what its run.yaml reads: the same variables, with the same defaults. The
`list-distributions --verbose` listing shows each of them, and docs/distributions.md is current."""

from __future__ import annotations

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
    assert DOC.read_text() == render(), "docs/distributions.md is stale: run python scripts/gen_distribution_docs.py"
    for name in DISTRIBUTIONS:
        assert f"## {name}\n" in DOC.read_text()

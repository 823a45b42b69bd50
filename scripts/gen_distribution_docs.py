"""Write docs/distributions.md from the shipped distributions: each one's description and providers
(build.yaml), the commands that build and run it, and its environment variables (the README's
table, which tests/deploy/test_distributions.py keeps equal to what the run.yaml reads).

    python -m scripts.gen_distribution_docs         # rewrite docs/distributions.md
    python -m scripts.gen_distribution_docs --check # exit 1 if it is out of date
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from llama_stack.distribution.spec import ENV_REFERENCE, load_run_config, parse_yaml_file
from llama_stack.distribution.templates import Template, list_templates
from scripts.generated_docs import write_or_check

DOC = Path(__file__).resolve().parents[1] / "docs" / "distributions.md"
ENV_HEADING = "## Environment"
ENV_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
# The Default column: `value` (the run.yaml's default), (none) (an empty default) or (required).
NONE, REQUIRED = "(none)", "(required)"
NOT_RUN = (
    "<!-- not run: pip builds a whole venv (tests/e2e/test_venv_build.py builds together and bedrock), "
    "and serving needs the distribution's backend -->"
)


@dataclass(frozen=True)
class EnvRow:
    """One row of a README's environment table; a row may name several variables."""

    names: tuple[str, ...]
    default: str | None  # None: required (the run.yaml gives no default); "": an empty default
    description: str


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse_default(cell: str) -> str | None:
    if cell == NONE:
        return ""
    if cell == REQUIRED:
        return None
    match = re.fullmatch(r"`([^`]*)`", cell)
    if match is None:
        raise ValueError(f"default {cell!r}: write `value`, {NONE} or {REQUIRED}")
    return match.group(1)


def readme_env_rows(readme: Path) -> list[EnvRow]:
    """The rows of the table under the README's `## Environment` heading."""
    lines = readme.read_text().splitlines()
    try:
        start = lines.index(ENV_HEADING)
    except ValueError as e:
        raise ValueError(f"{readme}: no '{ENV_HEADING}' section") from e
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line)
        elif table or line.startswith("#"):
            break
    rows = []
    for line in table[2:]:  # the header and its separator
        name_cell, default_cell, description = _cells(line)[:3]
        names = tuple(ENV_NAME.findall(name_cell))
        if not names:
            raise ValueError(f"{readme}: a row of the environment table names no variable: {line}")
        try:
            default = parse_default(default_cell)
        except ValueError as e:
            raise ValueError(f"{readme}: {', '.join(names)}: {e}") from e
        rows.append(EnvRow(names, default, description))
    return rows


def format_default(default: str | None) -> str:
    return REQUIRED if default is None else f"`{default}`" if default else NONE


def section(template: Template) -> list[str]:
    spec = template.build_spec()
    lines = [f"## {template.name}", "", spec.distribution_spec.description.strip(), ""]
    lines += ["| API | Providers |", "|-----|-----------|"]
    for api, types in spec.distribution_spec.providers.items():
        lines.append(f"| {api.value} | {', '.join(f'`{t}`' for t in types)} |")
    lines += [
        "",
        NOT_RUN,
        "```bash",
        f"llama stack build --template {template.name} --image-type venv",
        f"~/.llama/envs/{template.name}/bin/llama stack run {template.name}",
        "```",
        "",
        "| Variable | Default | What it sets |",
        "|----------|---------|--------------|",
    ]
    for row in readme_env_rows(template.readme):
        names = ", ".join(f"`{name}`" for name in row.names)
        lines.append(f"| {names} | {format_default(row.default)} | {row.description} |")
    lines += ["", f"More: [distributions/{template.name}/README.md](../distributions/{template.name}/README.md).", ""]
    return lines


def shield_cell(template: Template) -> str:
    """The shields a run.yaml registers, as written: an env-driven id shows its default and variable."""
    run = parse_yaml_file(template.run_yaml)
    types = {
        entry.get("provider_id"): entry.get("provider_type")
        for entries in (run.get("providers") or {}).values()
        for entry in entries or []
    }
    cells = []
    for shield in run.get("shields") or []:
        written = str(shield.get("shield_id", ""))
        reference = ENV_REFERENCE.fullmatch(written)
        if reference is None:
            name = f"`{written}`"
        elif reference.group("default"):
            name = f"`{reference.group('default')}` (`{reference.group('name')}`; empty: off)"
        else:
            name = f"`${reference.group('name')}` (off unless set)"
        cells.append(f"{name} by `{types.get(shield.get('provider_id'), '?')}`")
    return "<br>".join(cells) or "none"


def served_table(templates: list[Template]) -> list[str]:
    lines = ["| Distribution | APIs served | Shields |", "|--------------|-------------|---------|"]
    # The defaults switch some shields off; the table says so, so the warning would only be noise.
    logging.getLogger("llama_stack.distribution.spec").setLevel(logging.ERROR)
    for template in templates:
        apis = ", ".join(api.value for api in load_run_config(template.run_yaml, env={}).served_apis())
        lines.append(f"| {template.name} | {apis} | {shield_cell(template)} |")
    return lines


def render() -> str:
    templates = list_templates()
    lines = [
        "# Distributions",
        "",
        "<!-- Generated by scripts/gen_distribution_docs.py from distributions/*/: do not edit. -->",
        "",
        "A distribution says which provider backs which API. Each folder of `distributions/` holds",
        "`build.yaml` (what to install), `run.yaml` (how to run it; `${env.NAME:default}` values read",
        "the environment) and a README. `llama stack list-distributions --verbose` prints the same",
        "providers and variables, with the run.yaml key that reads each one. Set a variable in the",
        "environment or with `llama stack run NAME --env NAME=value`.",
        "",
        "| Distribution | What it runs |",
        "|--------------|--------------|",
    ]
    for template in templates:
        lines.append(f"| [{template.name}](#{template.name}) | {template.description()} |")
    lines += ["", "What each one serves out of the box, with its defaults:", ""]
    lines += served_table(templates)
    lines.append("")
    for template in templates:
        lines += section(template)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(DOC, render, __spec__.name if __spec__ else __name__, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())

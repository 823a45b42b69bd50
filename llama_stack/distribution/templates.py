"""The distributions shipped with the package: the top-level distributions/ folder, installed as
the `llama_stack.distributions` package. Each one is a folder holding build.yaml (which providers
to install), run.yaml (how to run them) and README.md.

Everything here reads files only: finding a distribution never imports a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_stack.distribution.spec import (
    ENV_REFERENCE,
    BuildSpec,
    ConfigError,
    key_path,
    load_build_spec,
    parse_yaml_file,
)

BUILD_YAML = "build.yaml"
RUN_YAML = "run.yaml"
README = "README.md"


@dataclass(frozen=True)
class EnvReference:
    """One `${env.NAME:default}` found in a run.yaml; `default` is None when it has none."""

    name: str
    default: str | None
    key: str  # the YAML key path of the first value that reads it, e.g. "server.port"


@dataclass(frozen=True)
class Template:
    name: str
    path: Path

    @property
    def build_yaml(self) -> Path:
        return self.path / BUILD_YAML

    @property
    def run_yaml(self) -> Path:
        return self.path / RUN_YAML

    @property
    def readme(self) -> Path:
        return self.path / README

    def build_spec(self) -> BuildSpec:
        return load_build_spec(self.build_yaml)

    def description(self) -> str:
        if not self.build_yaml.is_file():
            return ""
        return self.build_spec().distribution_spec.description.strip()

    def env_references(self) -> list[EnvReference]:
        return env_references(self.run_yaml)


def distributions_dir() -> Path:
    """The folder of the `llama_stack.distributions` package, wherever it is installed."""
    import llama_stack.distributions as package

    locations = list(getattr(package, "__path__", []))
    if not locations:
        raise ConfigError("the llama_stack.distributions package has no folder; reinstall llamastack-lite")
    return Path(locations[0])


def list_templates() -> list[Template]:
    root = distributions_dir()
    folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / RUN_YAML).is_file())
    return [Template(folder.name, folder) for folder in folders]


def template_names() -> list[str]:
    return [template.name for template in list_templates()]


def get_template(name: str) -> Template:
    for template in list_templates():
        if template.name == name:
            return template
    known = ", ".join(template_names()) or "none installed"
    raise ConfigError(f"unknown distribution '{name}' (known: {known})")


def looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".yaml", ".yml")) or value.startswith((".", "~"))


def resolve_run_yaml(name_or_path: str) -> Path:
    """A distribution name (`demo`) or a path to a run.yaml (or to a folder holding one)."""
    candidate = Path(name_or_path).expanduser()
    if looks_like_path(name_or_path) or candidate.exists():
        if candidate.is_dir():
            candidate = candidate / RUN_YAML
        if not candidate.is_file():
            raise ConfigError(f"{candidate}: file not found")
        return candidate
    try:
        return get_template(name_or_path).run_yaml
    except ConfigError as e:
        raise ConfigError(f"{e}; or pass the path of a run.yaml") from e


def _walk_strings(value: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _walk_strings(v, (*path, str(k)))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _walk_strings(v, (*path, i))]
    return [(path, value)] if isinstance(value, str) else []


def env_references(run_yaml: Path) -> list[EnvReference]:
    """The environment variables a run.yaml reads, in the order they first appear (comments excluded)."""
    found: dict[str, EnvReference] = {}
    for path, text in _walk_strings(parse_yaml_file(run_yaml), ()):
        key = key_path(path)
        for match in ENV_REFERENCE.finditer(text):
            name, default = match.group("name"), match.group("default")
            inner = ENV_REFERENCE.fullmatch(default or "")
            if inner is not None:
                # A default that is another variable is shown as that variable: `$VLLM_URL`.
                default = f"${inner.group('name')}"
                found.setdefault(inner.group("name"), EnvReference(inner.group("name"), inner.group("default"), key))
            found.setdefault(name, EnvReference(name, default, key))
    return list(found.values())

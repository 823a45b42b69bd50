"""`llama stack ...`: list what is installed, build a distribution, run its server.

Commands import the distribution machinery when they run, so `llama --help` stays fast.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .errors import UserError, user_errors

if TYPE_CHECKING:
    from .build import BuildPlan, PackageSource

app = typer.Typer(no_args_is_help=True, help="Build and run Llama Stack distributions.")

API_DESCRIPTIONS = {
    "inference": "chat and text completion, embeddings",
    "safety": "shields that check messages (Llama Guard, Prompt Guard, CodeShield)",
    "memory": "memory banks: insert documents, query the chunks that match",
    "agents": "agent sessions and turns: tools, memory retrieval, shields",
}


class ImageType(StrEnum):
    venv = "venv"
    container = "container"


@app.command("list-apis")
def list_apis() -> None:
    """List the APIs a distribution configures providers for."""
    from llama_stack.distribution.provider import PROVIDER_APIS

    width = max(len(api.value) for api in PROVIDER_APIS)
    for api in PROVIDER_APIS:
        typer.echo(f"{api.value:<{width}}  {API_DESCRIPTIONS.get(api.value, '')}".rstrip())


@app.command("list-providers")
def list_providers(
    api: Annotated[str | None, typer.Argument(help="only this API: inference, safety, memory or agents")] = None,
) -> None:
    """List the installed providers, with what to install for each."""
    with user_errors():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from llama_stack.distribution.provider import PROVIDER_APIS, Api
        from llama_stack.distribution.registry import providers_for

        names = ", ".join(a.value for a in PROVIDER_APIS)
        if api is not None and api not in {a.value for a in PROVIDER_APIS}:
            raise UserError(f"unknown API '{api}' (choose one of: {names})")
        apis = PROVIDER_APIS if api is None else (Api(api),)

        table = Table("API", "Provider type", "Install", "Description")
        table.columns[0].no_wrap = True
        table.columns[1].no_wrap = True
        for each in apis:
            for spec in providers_for(each):
                install = spec.pip_command if (spec.extra or spec.pip_packages) else "(included)"
                table.add_row(*(escape(cell) for cell in (each.value, spec.provider_type, install, spec.description)))
        if not table.rows:
            typer.echo(f"No providers installed for: {api or names}")
            return
        Console().print(table)


@app.command("list-distributions")
def list_distributions(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also show providers and env vars")] = False,
) -> None:
    """List the distributions shipped with this package."""
    with user_errors():
        from llama_stack.distribution.templates import list_templates

        templates = list_templates()
        if not verbose:
            from rich.console import Console
            from rich.table import Table

            table = Table("Name", "Description")
            table.columns[0].no_wrap = True
            for template in templates:
                table.add_row(template.name, template.description())
            Console().print(table)
            return
        for template in templates:
            typer.echo(f"{template.name}: {template.description()}")
            typer.echo(f"  folder: {template.path}")
            if template.build_yaml.is_file():
                typer.echo("  providers:")
                for api, types in template.build_spec().distribution_spec.providers.items():
                    typer.echo(f"    {api.value}: {', '.join(types) or '(none)'}")
            refs = template.env_references()
            typer.echo("  environment variables (default, and the key that reads it):")
            width = max((len(ref.name) for ref in refs), default=0)
            for ref in refs:
                default = "(required)" if ref.default is None else ref.default or "''"
                typer.echo(f"    {ref.name:<{width}}  {default}  [{ref.key}]")
            typer.echo("")


@app.command()
def build(
    template: Annotated[str | None, typer.Option("--template", help="a distribution name: demo, local...")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="a build.yaml")] = None,
    image_type: Annotated[ImageType | None, typer.Option("--image-type", help="default: the build.yaml's")] = None,
    image_name: Annotated[str | None, typer.Option("--image-name", help="the venv's name or the image tag")] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="the venv's folder, or the container build context"),
    ] = None,
    base_image: Annotated[
        str | None, typer.Option("--base-image", help="container: the image to build on (python:3.11-slim)")
    ] = None,
    context_only: Annotated[
        bool, typer.Option("--context-only", help="container: write the build context, do not build the image")
    ] = False,
) -> None:
    """Build a distribution as a venv, or write (and, with an engine, build) its container image."""
    with user_errors():
        from llama_stack.distribution.spec import ConfigError, load_build_spec
        from llama_stack.distribution.templates import get_template

        from . import build as builder

        if (template is None) == (config is None):
            raise UserError("give one of --template NAME or --config PATH/build.yaml")
        run_yaml: Path | None
        if template is not None:
            found = get_template(template)
            build_yaml, run_yaml = found.build_yaml, found.run_yaml
        else:
            assert config is not None
            build_yaml = config
            sibling = config.with_name("run.yaml")
            run_yaml = sibling if sibling.is_file() else None
        spec = load_build_spec(build_yaml)
        source = builder.package_source()
        try:
            plan = builder.with_store_extras(builder.plan_build(spec, builder.extras_needing_torch(source)), run_yaml)
        except ConfigError as e:
            raise ConfigError(f"{build_yaml}: {e}") from e
        kind = image_type or ImageType(spec.image_type)
        typer.echo(f"Distribution '{spec.name}': extras [{', '.join(plan.extras) or 'none'}]")
        if kind == ImageType.venv:
            _build_venv(plan, source, output_dir or builder.default_venv_dir(image_name or spec.name), run_yaml)
        else:
            if run_yaml is None:
                raise UserError(f"a container build needs a run.yaml next to {build_yaml}")
            out_dir = output_dir or builder.default_container_dir(image_name or spec.name)
            tag = image_name or f"llamastack-{spec.name}"
            _build_container(plan, source, out_dir, run_yaml, tag, base_image, context_only)


def _build_venv(plan: BuildPlan, source: PackageSource, venv_dir: Path, run_yaml: Path | None) -> None:
    from . import build as builder

    where = f"source checkout {source.root}" if source.root else f"the index ({builder.DIST_NAME}=={source.version})"
    typer.echo(f"Creating the venv {venv_dir}, installing from {where}")
    result = builder.build_venv(plan, venv_dir.expanduser().resolve(), source, run_yaml)
    typer.echo(f"\nBuilt the venv {result.venv_dir}")
    if result.run_yaml is None:
        typer.echo("No run.yaml was found next to the build.yaml: write one, then run it with:")
    else:
        typer.echo(f"Its run config: {result.run_yaml}\nRun it with:")
    typer.echo(f"  {result.run_command}")


def _build_container(
    plan: BuildPlan,
    source: PackageSource,
    out_dir: Path,
    run_yaml: Path,
    tag: str,
    base_image: str | None = None,
    context_only: bool = False,
) -> None:
    import shlex

    from . import build as builder

    typer.echo("Fetching the image's wheels on this host: the image build itself needs no network")
    dockerfile = builder.write_container_context(plan, out_dir.expanduser().resolve(), source, run_yaml)
    typer.echo(f"Wrote {dockerfile}")
    engine = None if context_only else builder.reachable_engine()
    command = builder.container_build_command(engine or "docker", tag, dockerfile.parent, base_image)
    if context_only:
        typer.echo(f"Build the image with:\n  {shlex.join(command)}")
        return
    if engine is None:
        typer.echo(
            "No container engine is available here (`docker info` and `podman info` both failed), "
            "so the image was not built."
        )
        typer.echo(f"Build it where docker or podman runs:\n  {shlex.join(command)}")
        return
    builder.run_streaming(command)
    typer.echo(f"\nBuilt the image {tag}. Run it with:\n  {Path(engine).name} run -p 5000:5000 {tag}")


def parse_env_overrides(entries: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--env {entry!r}: expected NAME=VALUE")
        overrides[name.strip()] = value
    return overrides


@app.command()
def run(
    config: Annotated[
        str, typer.Argument(metavar="NAME|PATH", help="a distribution name (demo, local...) or a run.yaml")
    ],
    port: Annotated[int | None, typer.Option("--port", help="default: the run.yaml's server.port (5000)")] = None,
    host: Annotated[str | None, typer.Option("--host", help="default: the run.yaml's server.host")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="NAME=VALUE for ${env.NAME} in the run.yaml")] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="server processes on one port; share state via Postgres/Redis")
    ] = 1,
) -> None:
    """Run a distribution's server."""
    with user_errors():
        from llama_stack.distribution.spec import load_run_config
        from llama_stack.distribution.templates import resolve_run_yaml

        overrides = parse_env_overrides(env or [])
        path = resolve_run_yaml(config)
        run_config = load_run_config(path, {**os.environ, **overrides})
        os.environ.update(overrides)

        from llama_stack.server.run import run_server

        run_server(run_config, host, port, workers)

"""A provider spec states the API Protocol its factory returns, so mypy rejects a provider whose
method signatures differ from that Protocol; every shipped spec is annotated with its API's alias."""

from __future__ import annotations

import importlib
import textwrap
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from llama_stack.distribution.provider import Api, ProviderSpec
from llama_stack.distribution.registry import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = textwrap.dedent(
    """
    from pydantic import BaseModel

    from llama_stack.apis.safety import RunShieldRequest, RunShieldResponse
    from llama_stack.distribution.provider import Api, Deps, ProviderSpec, SafetySpec


    class Config(BaseModel):
        threshold: float = 0.5


    class OtherConfig(BaseModel):
        pass


    class RightShield:
        async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
            return RunShieldResponse()


    class WrongShield:
        async def run_shield(self, request: RunShieldRequest, strict: bool) -> RunShieldResponse:
            return RunShieldResponse()


    async def right(config: Config, deps: Deps) -> RightShield:
        return RightShield()


    async def wrong(config: Config, deps: Deps) -> WrongShield:
        return WrongShield()


    right_spec: SafetySpec[Config] = ProviderSpec(Api.safety, "inline::right", Config, right, "matches Safety")
    wrong_spec: SafetySpec[Config] = ProviderSpec(Api.safety, "inline::wrong", Config, wrong, "extra parameter")
    other_cfg: SafetySpec[OtherConfig] = ProviderSpec(Api.safety, "inline::other", OtherConfig, right, "config")
    """
)


def test_mypy_rejects_a_provider_whose_signature_differs_from_its_api(tmp_path: Path) -> None:
    from mypy import api

    snippet = tmp_path / "wrong_provider.py"
    snippet.write_text(SNIPPET)
    lines = SNIPPET.splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, start=1) if line.startswith(text))

    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--follow-imports",
            "silent",
            "--strict",
            str(snippet),
        ]
    )
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout + stderr
    by_line = {int(line.split(":")[1]) for line in errors}
    # The provider with a matching signature passes; the other two are the only errors.
    assert by_line == {line_of("wrong_spec"), line_of("other_cfg")}, stdout
    wrong = next(line for line in errors if int(line.split(":")[1]) == line_of("wrong_spec"))
    assert "WrongShield" in wrong and "Awaitable[Safety]" in wrong, stdout


ALIASES = {Api.inference: "InferenceSpec", Api.safety: "SafetySpec", Api.memory: "MemorySpec", Api.agents: "AgentsSpec"}


SHIPPED: list[EntryPoint] = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda entry: entry.name)


@pytest.mark.parametrize("entry", SHIPPED, ids=[entry.name for entry in SHIPPED])
def test_every_shipped_spec_states_its_api_protocol(entry: EntryPoint) -> None:
    """Checked by mypy only if the spec is annotated with its API's alias: a bare ProviderSpec
    would accept any factory."""
    module_name, _, attr = entry.value.partition(":")
    module = importlib.import_module(module_name)
    spec = getattr(module, attr)
    assert isinstance(spec, ProviderSpec)
    annotation = getattr(module, "__annotations__", {}).get(attr)
    if annotation is None:  # built by a function (openai_compat's vendors): its return annotation
        annotation = module._spec.__annotations__["return"]
    assert str(annotation).startswith(ALIASES[spec.api] + "["), (entry.value, annotation)

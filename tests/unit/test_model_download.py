"""`llama model download` against a fake Hugging Face Hub, and `llama model list --downloaded`.

Nothing can be downloaded here: huggingface_hub talks to tests/unit/fake_hf_hub.py through
HF_ENDPOINT, and the cache (HF_HOME) and ~/.llama (HOME) live in a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from llama_stack.cli.main import app

from .fake_hf_hub import FakeHub, FakeRepo, serve

pytest.importorskip("huggingface_hub")  # now, before any test changes HF_HOME or HF_ENDPOINT

INSTRUCT = "meta-llama/Llama-3.2-1B-Instruct"
GUARD = "meta-llama/Llama-Guard-3-1B"
GUARD_8B = "meta-llama/Llama-Guard-3-8B"  # gated files, metadata that does not say so
GOOD_TOKEN = "hf_accepted_license"
WEIGHTS = bytes(range(256)) * 64  # 16 KiB of "safetensors"
HF_FILES = {
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    "config.json": b'{"model_type": "llama", "hidden_size": 16}\n',
    "generation_config.json": b'{"do_sample": true}\n',
    "tokenizer.json": b'{"version": "1.0"}\n',
    "model.safetensors": WEIGHTS,
    "original/params.json": b'{"dim": 16}\n',
    "original/consolidated.00.pth": WEIGHTS[::-1],
}


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    repos = {
        INSTRUCT: FakeRepo(dict(HF_FILES)),
        GUARD: FakeRepo(dict(HF_FILES), gated=True, allowed_tokens=frozenset({GOOD_TOKEN})),
        GUARD_8B: FakeRepo(dict(HF_FILES), gated=True, says_gated=False),
    }
    with serve(repos) as hub:
        yield hub


@pytest.fixture
def env(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """The fake hub, an empty HF cache and an empty home; no token, no proxy, a wide terminal.

    huggingface_hub was imported above, with the real environment, so its import-time constants
    (cache, endpoint) stay right for the other tests of this process; `llama model download`
    passes the endpoint, cache and token it reads now. Telemetry off keeps its User-Agent
    detection from asking the real Hub for its agent registry.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    # The test command runs with HF_HUB_OFFLINE=1 so that nothing reaches the real Hub; these
    # downloads go to the local fake Hub, so offline mode is lifted for them.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for saved in ("HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH"):  # no token `hf auth login` saved here
        monkeypatch.setattr(constants, saved, str(tmp_path / "no-token" / saved))
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HOME": str(tmp_path / "home"),
        "HF_TOKEN": None,
        "HUGGING_FACE_HUB_TOKEN": None,
        "HF_HUB_CACHE": None,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "COLUMNS": "400",
    }


def llama(env: dict[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit 1, no traceback, and the error is one `Error:` line (after any progress bar output)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts}


# -- downloads --------------------------------------------------------------------------------


def test_descriptor_downloads_its_repo_into_local_dir_without_original(
    env: dict[str, str | None], tmp_path: Path
) -> None:
    target = tmp_path / "weights"
    result = llama(env, "model", "download", "--model-id", "Llama3.2-1B-Instruct", "--local-dir", str(target))
    assert result.exit_code == 0, result.output
    assert tree(target) == {name for name in HF_FILES if not name.startswith("original/")}
    for name in tree(target):
        assert (target / name).read_bytes() == HF_FILES[name]
    assert "Fetching 5 files" in result.stderr  # huggingface_hub's progress bar
    assert f"Downloaded {INSTRUCT} (Llama3.2-1B-Instruct): 5 files" in result.stdout
    assert f"in {target}" in result.stdout
    assert (
        f"llama stack run local --env INFERENCE_MODEL={INSTRUCT} --env INFERENCE_CHECKPOINT={target}" in result.stdout
    )


def test_repo_id_downloads_into_the_hf_cache_and_is_listed(env: dict[str, str | None], tmp_path: Path) -> None:
    result = llama(env, "model", "download", "--model-id", INSTRUCT)
    assert result.exit_code == 0, result.output
    snapshots = tmp_path / "hf" / "hub" / "models--meta-llama--Llama-3.2-1B-Instruct" / "snapshots"
    (snapshot,) = snapshots.iterdir()
    assert (snapshot / "model.safetensors").read_bytes() == WEIGHTS
    assert not (snapshot / "original").exists()
    assert f"--env INFERENCE_MODEL={INSTRUCT} --env INFERENCE_CHECKPOINT={INSTRUCT}" in result.stdout

    listed = llama(env, "model", "list", "--downloaded")
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if "Llama3.2-1B-Instruct " in line]
    assert len(rows) == 1, listed.stdout
    assert INSTRUCT in rows[0] and str(snapshot) in rows[0]
    assert "16.5 KB" in rows[0]  # the blobs: 16 KiB of weights and the small JSON files
    assert "Llama3.2-3B-Instruct" not in listed.stdout

    # the plain listing's Local column agrees
    plain = llama(env, "model", "list")
    (row,) = [line for line in plain.stdout.splitlines() if "Llama3.2-1B-Instruct " in line]
    assert "yes" in row


def test_ignore_patterns_can_be_emptied_or_replaced(env: dict[str, str | None], tmp_path: Path) -> None:
    everything = tmp_path / "all"
    result = llama(
        env, "model", "download", "--model-id", INSTRUCT, "--local-dir", str(everything), "--ignore-patterns", ""
    )
    assert result.exit_code == 0, result.output
    assert tree(everything) == set(HF_FILES)

    some = tmp_path / "some"
    patterns = "*.safetensors, original/*"
    result = llama(
        env, "model", "download", "--model-id", INSTRUCT, "--local-dir", str(some), "--ignore-patterns", patterns
    )
    assert result.exit_code == 0, result.output
    assert tree(some) == {".gitattributes", "config.json", "generation_config.json", "tokenizer.json"}


def test_a_download_without_config_json_warns(env: dict[str, str | None], tmp_path: Path) -> None:
    target = tmp_path / "meta-format"
    args = ("--local-dir", str(target), "--ignore-patterns", "*.json,*.safetensors")
    result = llama(env, "model", "download", "--model-id", INSTRUCT, *args)
    assert result.exit_code == 0, result.output
    assert "no config.json" in result.stderr


# -- gated repos and tokens -------------------------------------------------------------------


@pytest.mark.parametrize(("descriptor", "repo"), [("Llama-Guard-3-1B", GUARD), ("Llama-Guard-3-8B", GUARD_8B)])
def test_gated_repo_without_token_says_how_to_get_access(
    hub: FakeHub, env: dict[str, str | None], tmp_path: Path, descriptor: str, repo: str
) -> None:
    """Refused up front when the metadata says gated, else when the files answer 401 GatedRepo."""
    before = len(hub.requests)
    result = llama(env, "model", "download", "--model-id", descriptor, "--local-dir", str(tmp_path / "g"))
    page = f"{env['HF_ENDPOINT']}/{repo}"
    assert_one_line_error(result, f"access to {repo} is gated", f"accept the license at {page}", "--hf-token")
    resolved = [r for r in hub.requests[before:] if "/resolve/" in r.path]
    assert bool(resolved) == (repo == GUARD_8B)


def test_gated_repo_with_a_token_not_on_its_list(env: dict[str, str | None], tmp_path: Path) -> None:
    args = ("--model-id", GUARD, "--hf-token", "hf_someone_else", "--local-dir", str(tmp_path / "g"))
    result = llama(env, "model", "download", *args)
    assert_one_line_error(result, f"access to {GUARD} is gated", "not on its authorized list")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_gated_repo_with_an_accepted_token(hub: FakeHub, env: dict[str, str | None], tmp_path: Path, how: str) -> None:
    target = tmp_path / "guard"
    args = ["--model-id", "Llama-Guard-3-1B", "--local-dir", str(target)]
    if how == "flag":
        args += ["--hf-token", GOOD_TOKEN]
    else:
        env = {**env, "HF_TOKEN": GOOD_TOKEN}
    before = len(hub.requests)
    result = llama(env, "model", "download", *args)
    assert result.exit_code == 0, result.output
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    seen = hub.requests[before:]
    resolves = [r for r in seen if "/resolve/" in r.path]
    assert resolves and all(r.authorization == f"Bearer {GOOD_TOKEN}" for r in resolves)
    cdn = [r for r in seen if r.path.startswith("/cdn/")]
    assert cdn and all(r.authorization is None for r in cdn)  # the token never leaves the Hub


# -- other failures ---------------------------------------------------------------------------


def test_unknown_model_id_asks_for_the_list(hub: FakeHub, env: dict[str, str | None]) -> None:
    before = len(hub.requests)
    result = llama(env, "model", "download", "--model-id", "Llama9-1B")
    assert_one_line_error(result, "unknown model 'Llama9-1B'", "llama model list --show-all")
    assert len(hub.requests) == before  # nothing was asked of the hub


def test_missing_repo_is_not_found(env: dict[str, str | None], tmp_path: Path) -> None:
    result = llama(env, "model", "download", "--model-id", "nobody/nothing", "--local-dir", str(tmp_path / "n"))
    assert_one_line_error(result, "nobody/nothing was not found on", "--hf-token")


def test_unreachable_hub_is_one_line(env: dict[str, str | None], tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = llama({**env, "HF_ENDPOINT": closed}, "model", "download", "--model-id", INSTRUCT)
    assert_one_line_error(result, f"could not reach {closed} to download {INSTRUCT}")


def test_only_huggingface_is_a_source(env: dict[str, str | None]) -> None:
    result = llama(env, "model", "download", "--model-id", INSTRUCT, "--source", "meta")
    assert_one_line_error(result, "--source 'meta'")


# -- listing ----------------------------------------------------------------------------------


def test_list_downloaded_finds_llama_checkpoints_folders(env: dict[str, str | None], tmp_path: Path) -> None:
    empty = llama(env, "model", "list", "--downloaded")
    assert empty.exit_code == 0, empty.output
    assert "No models downloaded here" in empty.stdout

    checkpoints = tmp_path / "home" / ".llama" / "checkpoints"
    (checkpoints / "Llama3.2-3B-Instruct").mkdir(parents=True)
    (checkpoints / "Llama3.2-3B-Instruct" / "config.json").write_bytes(b"x" * 1500)
    (checkpoints / "my-finetune").mkdir()
    (checkpoints / "my-finetune" / "model.safetensors").write_bytes(b"x" * 10)
    (checkpoints / "empty").mkdir()
    listed = llama(env, "model", "list", "--downloaded")
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.stdout.splitlines() if "Llama3.2-3B-Instruct" in line]
    assert "meta-llama/Llama-3.2-3B-Instruct" in row and "1.5 KB" in row
    assert str(checkpoints / "Llama3.2-3B-Instruct") in row
    (row,) = [line for line in listed.stdout.splitlines() if "my-finetune" in line]
    assert "10 B" in row
    assert "empty" not in listed.stdout


def test_download_help_explains_the_default_ignore_pattern(env: dict[str, str | None]) -> None:
    result = llama(env, "model", "download", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for fragment in ("--model-id", "--hf-token", "--ignore-patterns", "--local-dir", "original/*", "transformers"):
        assert fragment in text, text
    assert "HF_TOKEN" in text and "gated" in text
    assert os.environ.get("HF_ENDPOINT") != env["HF_ENDPOINT"]  # CliRunner restored the environment

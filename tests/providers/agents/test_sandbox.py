"""The code sandbox: what a program gets back, and every escape attempt contained, under
bubblewrap (skipped where `bwrap` cannot run) and in the restricted subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llama_stack.apis.common import ImageContentItem, ToolCall, content_text
from llama_stack.apis.errors import ProviderError
from llama_stack.distribution.provider import Api, Deps
from llama_stack.distribution.store import SqliteKVStoreConfig, kvstore_from_config
from llama_stack.providers.agents.reference import MetaReferenceAgentsConfig, get_provider_impl
from llama_stack.providers.agents.tools.code_interpreter import CodeInterpreterTool
from llama_stack.providers.agents.tools.config import SandboxConfig
from llama_stack.providers.agents.tools.sandbox import Isolation, Sandbox
from tests.providers.agents.fakes import TINY_PNG_PROGRAM

FORK_COUNTER = """
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError:
    print("stopped after", n)
"""
FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
LIMITS = {"timeout_s": 2.0, "cpu_time_s": 1, "max_output_bytes": 10_000, "max_processes": 16, "memory_mb": 512}


@pytest.fixture(params=[Isolation.bubblewrap, Isolation.subprocess], scope="module")
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    box = Sandbox(SandboxConfig(isolation=request.param.value, **LIMITS))
    try:
        await box.plan()
    except ProviderError as e:
        pytest.skip(f"{request.param.value} cannot run here: {e.message}")
    yield box


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        if uid_line and int(uid_line.split()[1]) == uid:
            pids.append(int(entry.name))
    return pids


def _processes_left(uid: int, grace_s: float) -> list[int]:
    deadline = time.perf_counter() + grace_s
    while (left := _processes_of(uid)) and time.perf_counter() < deadline:
        time.sleep(0.05)
    return left


async def test_a_program_gets_its_output_errors_and_exit_code(sandbox: Sandbox) -> None:
    plan, result = await sandbox.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    plan, result = await sandbox.run("1 / 0")
    assert "ZeroDivisionError" in result.stderr and 'main.py", line 1' in result.stderr
    assert "sandbox_boot" not in result.stderr, "the traceback starts in the program"
    description = sandbox.describe(plan)
    if plan.isolation == Isolation.bubblewrap:
        assert description.startswith("bubblewrap sandbox") and "no network" in description
    else:
        assert description.startswith("restricted subprocess") and "NO network isolation" in description


async def test_the_tool_says_which_isolation_is_active_and_returns_images(sandbox: Sandbox) -> None:
    code_call = ToolCall(call_id="c", tool_name="code_interpreter", arguments={"code": TINY_PNG_PROGRAM})
    outcome = await CodeInterpreterTool(sandbox).run(code_call)
    assert isinstance(outcome.content, list)
    text = content_text(outcome.content)
    assert text.startswith(f"[isolation] {sandbox.describe(await sandbox.plan())}")
    assert "[stdout]\nsaved\n[/stdout]" in text and "[images] 1 PNG image(s)" in text
    assert isinstance(outcome.content[1], ImageContentItem)
    assert [a.mime_type for a in outcome.attachments] == ["image/png"]


async def test_matplotlib_figures_come_back_as_images(sandbox: Sandbox) -> None:
    plan = await sandbox.plan()
    if plan.isolation == Isolation.subprocess:
        _, probe = await sandbox.run("import matplotlib")
        if probe.exit_code != 0:
            pytest.skip("matplotlib is not installed for the restricted subprocess's interpreter")
    else:  # bubblewrap offers the configured packages of the server's interpreter, which has them
        assert plan.layout is not None and plan.layout.missing == []
    # matplotlib builds its font cache on each run (the sandbox keeps nothing): more time than LIMITS.
    roomy = Sandbox(SandboxConfig(isolation=plan.isolation.value, timeout_s=30, cpu_time_s=20))
    program = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\nplt.figure()\nplt.plot([3, 1])\n"
    _, result = await roomy.run(program)
    assert result.exit_code == 0, result.stderr
    assert len(result.images) == 2
    _, result = await roomy.run("import numpy, pandas\nprint(pandas.Series(numpy.arange(4)).sum())")
    assert (result.exit_code, result.stdout) == (0, "6\n"), result.stderr


async def test_the_network_is_unreachable_under_bubblewrap(sandbox: Sandbox) -> None:
    plan = await sandbox.plan()
    if plan.isolation != Isolation.bubblewrap:
        pytest.skip("the restricted subprocess has no network isolation (and says so)")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    program = f"""
import socket
for host in ("127.0.0.1", "1.1.1.1"):
    try:
        socket.create_connection((host, {port}), timeout=2)
        print(host, "reached")
    except OSError as e:
        print(host, "blocked", e.errno)
"""
    try:
        _, result = await sandbox.run(program)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # a connection would be waiting in the backlog
    finally:
        listener.close()
    assert "reached" not in result.stdout and result.stdout.count("blocked") == 2


async def test_writes_outside_the_working_directory_are_contained(sandbox: Sandbox, tmp_path: Path) -> None:
    plan = await sandbox.plan()
    if plan.run_as is None and plan.isolation == Isolation.subprocess:
        pytest.skip("not root: the subprocess runs as the server's own user, whose files it may write")
    targets = [Path("/etc/x.txt"), Path.home() / "x.txt", tmp_path / "x.txt"]
    open_folder = None
    if plan.isolation == Isolation.bubblewrap and os.access("/opt", os.W_OK):
        # Even a world-writable folder the sandbox can see is out of reach: it is mounted read-only.
        open_folder = Path(tempfile.mkdtemp(prefix="sandbox-target-", dir="/opt"))
        open_folder.chmod(0o777)
        targets.append(open_folder / "x.txt")
    host_tmp = Path("/tmp") / f"sandbox-escape-{uuid.uuid4().hex}"
    program = f"""
for path in {[str(t) for t in targets]!r}:
    try:
        open(path, "w").write("escaped")
        print("wrote", path)
    except OSError as e:
        print("refused", e.errno)
open("inside.txt", "w").write("fine")
print("inside ok")
"""
    if plan.isolation == Isolation.bubblewrap:
        program += f"open({str(host_tmp)!r}, 'w').write('private tmp')\nprint('tmp ok')\n"
    try:
        _, result = await sandbox.run(program)
        assert "wrote" not in result.stdout and result.stdout.count("refused") == len(targets)
        assert "inside ok" in result.stdout
        assert not any(t.exists() for t in targets)
        assert not host_tmp.exists(), "the sandbox's /tmp is its own"
    finally:
        if open_folder is not None:
            shutil.rmtree(open_folder, ignore_errors=True)


@pytest.mark.slow
async def test_a_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    plan = await sandbox.plan()
    _, result = await sandbox.run(FORK_COUNTER)
    assert result.stdout.startswith("stopped after")
    assert int(result.stdout.split()[-1]) < LIMITS["max_processes"]

    started = time.perf_counter()
    _, result = await sandbox.run(FORK_BOMB)
    assert time.perf_counter() - started < LIMITS["timeout_s"] + 8
    assert result.status.startswith("killed")
    if plan.run_as is not None:
        # The kernel tears the sandbox's processes down right after the run; none may linger.
        lingering = await asyncio.to_thread(_processes_left, plan.run_as[0], 5.0)
        assert lingering == [], "no process of the sandbox user outlives the run"


@pytest.mark.slow
async def test_an_endless_loop_is_stopped(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    _, result = await sandbox.run("while True:\n    pass\n")
    assert time.perf_counter() - started < LIMITS["timeout_s"] + 3
    assert "CPU time limit" in result.status or "wall-clock" in result.status

    _, result = await sandbox.run("import time\ntime.sleep(60)\n")
    assert result.timed_out and result.status == "killed: wall-clock time limit reached"


async def test_a_huge_output_is_cut_short(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    _, result = await sandbox.run("while True:\n    print('x' * 1000)\n")
    assert result.output_truncated and result.status == "killed: output limit reached"
    assert len(result.stdout) == LIMITS["max_output_bytes"]
    assert time.perf_counter() - started < LIMITS["timeout_s"]


async def test_memory_and_file_sizes_are_limited(sandbox: Sandbox) -> None:
    _, result = await sandbox.run("data = bytearray(2 * 1024 ** 3)\n")
    assert "MemoryError" in result.stderr
    limit = SandboxConfig().max_file_mb * 1024 * 1024
    big = f"with open('big.bin', 'wb') as f:\n    f.write(b'0' * {limit + 1})\n"
    _, result = await sandbox.run(big)
    assert "File too large" in result.stderr


async def test_concurrent_runs_do_not_mix(sandbox: Sandbox) -> None:
    results = await asyncio.gather(*(sandbox.run(f"print({n} * 2)") for n in range(4)))
    assert [r.stdout.strip() for _, r in results] == ["0", "2", "4", "6"]


# --- escapes an attacker tries (bubblewrap: the isolation used wherever API keys are configured) ---

READ_ATTEMPTS = """
import os, sys
for path in sys.argv[1:] if len(sys.argv) > 1 else PATHS:
    try:
        with open(path, "rb") as f:
            print("READ", path, f.read(200))
    except OSError as e:
        print("blocked", path, type(e).__name__)
"""


async def _bubblewrap(sandbox: Sandbox) -> None:
    if (await sandbox.plan()).isolation != Isolation.bubblewrap:
        pytest.skip("the restricted subprocess offers only file permissions (and is refused where keys exist)")


async def test_the_servers_files_and_other_tenants_state_are_not_in_the_sandbox(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await _bubblewrap(sandbox)
    secret = f"secret-{uuid.uuid4().hex}"
    private = Path.home() / f".sandbox-test-{uuid.uuid4().hex}"  # mode 600 under the server user's home
    private.write_text(secret)
    private.chmod(0o600)
    state = tmp_path / "agents_store.db"  # another tenant's sessions, even world-readable
    state.write_text(secret)
    state.chmod(0o644)
    targets = [private, state, Path(__file__), Path("/etc/passwd"), Path("/etc/shadow"), Path(sys.executable)]
    program = f"PATHS = {[str(t) for t in targets]!r}\n" + READ_ATTEMPTS
    try:
        _, result = await sandbox.run(program)
    finally:
        private.unlink()
    assert result.exit_code == 0, result.stderr
    assert secret not in result.stdout and "READ" not in result.stdout
    assert result.stdout.count("blocked") == len(targets)


async def test_the_root_holds_only_what_the_interpreter_needs(sandbox: Sandbox) -> None:
    await _bubblewrap(sandbox)
    program = """
import os, importlib.util
print(sorted(os.listdir("/")))
print(sorted(os.listdir("/etc")), sorted(os.listdir("/usr")))
for name in ("numpy", "pandas", "matplotlib", "pydantic", "llama_stack", "httpx", "torch"):
    print(name, importlib.util.find_spec(name) is not None)
"""
    _, result = await sandbox.run(program)
    top, etc_usr, *imports = result.stdout.splitlines()
    plan = await sandbox.plan()
    assert plan.layout is not None
    allowed = {"dev", "etc", "lib", "lib64", "lib32", "opt", "proc", "tmp", "usr"}
    allowed |= {Path(path).parts[1] for path in (plan.layout.executable, *plan.layout.stdlib)}
    assert set(eval(top)) <= allowed and not {"home", "work", "var", "run", "srv", "mnt"} & set(eval(top))
    assert etc_usr.startswith("['ld.so.cache'] ") or etc_usr.startswith("[] ")
    assert imports == [
        "numpy True", "pandas True", "matplotlib True",
        "pydantic False", "llama_stack False", "httpx False", "torch False",
    ]  # fmt: skip


async def test_proc_shows_only_the_sandbox_and_not_the_servers_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _bubblewrap(sandbox)
    secret = f"token-{uuid.uuid4().hex}"
    monkeypatch.setenv("SERVER_SECRET_TOKEN", secret)
    program = """
import os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("pids", pids)
for pid in pids + [1]:
    for name in ("environ", "cmdline"):
        try:
            print(pid, name, open(f"/proc/{pid}/{name}", "rb").read()[:300])
        except OSError as e:
            print(pid, name, "blocked", type(e).__name__)
"""
    _, result = await sandbox.run(program)
    assert result.exit_code == 0, result.stderr
    assert secret not in result.stdout and "pytest" not in result.stdout
    pids = eval(result.stdout.splitlines()[0].removeprefix("pids "))
    assert len(pids) <= 3, "only the sandbox's own processes"


async def test_no_privileges_and_no_host_sockets(sandbox: Sandbox) -> None:
    """setuid programs cannot raise privileges (no_new_privs, no capabilities), and the host's
    abstract Unix sockets (a D-Bus or X11 session, say) are in another network namespace."""
    await _bubblewrap(sandbox)
    name = f"sandbox-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen()
    program = f"""
import socket
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(status["NoNewPrivs"].strip(), status["CapEff"].strip(), status["Uid"].split()[0])
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("\\0{name}")
    print("reached")
except OSError as e:
    print("blocked", e.errno)
"""
    try:
        _, result = await sandbox.run(program)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert result.stdout.splitlines() == ["1 0000000000000000 65534", "blocked 111"], result.stderr


UNPRIVILEGED_SERVER = """
import asyncio, json, site, sys
site.addsitedir(sys.argv[1])
from llama_stack.providers.agents.tools.config import SandboxConfig
from llama_stack.providers.agents.tools.sandbox import Sandbox

async def main():
    box = Sandbox(SandboxConfig(isolation="bubblewrap"), tenants=True)
    plan, result = await box.run(sys.stdin.read())
    print(json.dumps({"run_as": plan.run_as, "stdout": result.stdout, "stderr": result.stderr}))

asyncio.run(main())
"""


def test_a_server_running_as_an_unprivileged_user_runs_code_as_another_uid(tmp_path: Path) -> None:
    """As in the container image: the server is not root, so a user namespace gives the program
    uid 65534, and the server user's private files are not in its root."""
    system_python = "/usr/bin/python3.11"
    if os.geteuid() != 0 or shutil.which("runuser") is None or not os.path.exists(system_python):
        pytest.skip("needs root (to start the server as nobody), runuser and a system Python 3.11")
    if sys.version_info[:2] != (3, 11) or shutil.which("bwrap") is None:
        pytest.skip("the venv's compiled packages must load in the system Python 3.11; needs bwrap")
    home = tmp_path / "server-home"  # the server user's own folder, closed to others
    home.mkdir()
    private = home / "sessions.db"
    secret = f"secret-{uuid.uuid4().hex}"
    private.write_text(secret)
    for path, mode in ((tmp_path, 0o755), (home, 0o700), (private, 0o600)):
        os.chown(path, 65534, 65534)
        path.chmod(mode)
    targets = [str(private), "/proc/1/environ"]
    program = "import os, sys, numpy\nprint('uid', os.getuid(), 'numpy', numpy.arange(3).sum())\n"
    program += f"PATHS = {targets!r}\n" + READ_ATTEMPTS + f"open({str(home / 'planted')!r}, 'w')\n"
    site_packages = next(p for p in sys.path if p.endswith("site-packages") and ".venv" in p)
    done = subprocess.run(
        ["runuser", "-u", "nobody", "--", system_python, "-c", UNPRIVILEGED_SERVER, site_packages],
        input=program, capture_output=True, text=True, timeout=120, cwd="/", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["run_as"] is None  # not root: no setuid, a user namespace instead
    assert "uid 65534 numpy 3" in answer["stdout"], answer["stderr"]
    assert secret not in answer["stdout"] and "SERVER" not in answer["stdout"]
    assert f"blocked {private} FileNotFoundError" in answer["stdout"]
    assert "FileNotFoundError" in answer["stderr"] and not (home / "planted").exists()


# --- where API keys are configured, only bubblewrap -------------------------------------------


async def test_with_api_keys_the_subprocess_is_refused() -> None:
    box = Sandbox(SandboxConfig(isolation="subprocess"), tenants=True)
    with pytest.raises(ProviderError, match="needs isolation: bubblewrap"):
        await box.plan()


async def test_with_api_keys_startup_fails_clearly_without_bwrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where no bwrap is found
    auto = Sandbox(SandboxConfig(), tenants=True)
    with pytest.raises(ProviderError, match=r"`bwrap` is not installed.*only bubblewrap is accepted"):
        await auto.plan()
    config = MetaReferenceAgentsConfig(persistence_store=SqliteKVStoreConfig(db_path=str(tmp_path / "agents.db")))
    kv = await kvstore_from_config(config.persistence_store)
    deps = Deps({Api.inference: object(), Api.models: object()}, multi_tenant=True, kvstore=kv)
    with pytest.raises(ProviderError, match="`bwrap` is not installed"):
        await get_provider_impl(config, deps)
    # Without keys, the same machine falls back to the subprocess, and says so.
    plan = await Sandbox(SandboxConfig()).plan()
    assert plan.isolation == Isolation.subprocess and "bwrap" in plan.note

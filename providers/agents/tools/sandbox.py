"""The code sandbox of code_interpreter: untrusted Python under bubblewrap when `bwrap` works here,
else (only where no API keys are configured) in a restricted subprocess; either way under
resource limits and a wall-clock timeout.

bubblewrap: an empty root holding, read-only, only what the interpreter needs (its executable and
shared library, its standard library with its site-packages hidden, the system's shared
libraries, and the configured packages with what they require, see sandbox_layout.py); a private
size-limited tmpfs as /tmp (the working directory); its own /dev and /proc (it sees only its own
processes); no network (a namespace with a loopback that is down), its own pid, IPC and UTS
namespaces; killing the sandbox kills every process the program started. No /home, /root, /etc,
/work or state folder of the server exists in it. The program runs as `run_as_uid`: through
setuid when the server is root, else in a user namespace (which may not nest).

Subprocess: the same limits, a fresh temporary working directory, but no network isolation and a
file system protected only by the permissions of the sandbox user. Never used where API keys are
configured: tenants would read each other's files.

As root, the program runs as `run_as_uid`: the kernel never applies RLIMIT_NPROC to root, so
that is what makes the process limit (the fork-bomb guard) hold. When no interpreter can run as
that user, code execution is refused rather than run as root.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from llama_stack.apis.errors import ProviderError

from .config import SandboxConfig
from .sandbox_root import SANDBOX_SITE, Layout, root_binds

log = logging.getLogger(__name__)

_BOOT_SOURCE = Path(__file__).with_name("sandbox_boot.py").read_text()
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
_SANDBOX_TMP = "/tmp"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Modules the interpreter has not loaded before dropping root: they prove its library is readable.
_PROBE = "import decimal, socket, sqlite3, email.parser; print('ok')"


class Isolation(StrEnum):
    bubblewrap = "bubblewrap"
    subprocess = "subprocess"


@dataclass(frozen=True)
class SandboxPlan:
    """How programs run here, found by probing once."""

    isolation: Isolation
    python: str
    run_as: tuple[int, int] | None  # (uid, gid) to switch to; None when the server is not root
    note: str = ""  # why bubblewrap is not used, when it is not
    layout: Layout | None = None  # under bubblewrap


@dataclass
class RunResult:
    stdout: str
    stderr: str
    exit_code: int | None
    images: list[bytes] = field(default_factory=list)
    timed_out: bool = False
    output_truncated: bool = False
    duration_s: float = 0.0

    @property
    def status(self) -> str:
        if self.timed_out:
            return "killed: wall-clock time limit reached"
        if self.output_truncated:
            return "killed: output limit reached"
        code = self.exit_code
        if code is not None and (code < 0 or code > 128):
            number = -code if code < 0 else code - 128
            name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
            reason = " (CPU time limit)" if number in (signal.SIGXCPU, signal.SIGKILL) else ""
            return f"killed by signal {name}{reason}"
        return f"completed with exit code {code}"


class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.overflowed = False

    async def drain(self, stream: asyncio.StreamReader, overflow: asyncio.Event) -> None:
        """Keep up to `limit` bytes; past it, signal `overflow` and discard the rest until EOF
        (a pipe left unread would never report its end, and asyncio waits for it)."""
        while chunk := await stream.read(65536):
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room and not self.overflowed:
                self.overflowed = True
                overflow.set()


class Sandbox:
    def __init__(self, config: SandboxConfig, *, tenants: bool = False) -> None:
        """`tenants`: API keys are configured, so only bubblewrap is acceptable."""
        self.config = config
        self.tenants = tenants
        self._plan: SandboxPlan | None = None
        self._plan_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(config.max_concurrent_runs)

    async def plan(self) -> SandboxPlan:
        async with self._plan_lock:
            if self._plan is None:
                self._plan = await self._probe()
                log.info("code_interpreter runs programs in a %s", self.describe(self._plan))
            return self._plan

    def describe(self, plan: SandboxPlan) -> str:
        c = self.config
        who = f"as uid {plan.run_as[0]}" if plan.run_as else f"as uid {os.getuid()}"
        if plan.isolation == Isolation.bubblewrap and plan.run_as is None:
            who = f"as uid {c.run_as_uid} (in a user namespace of uid {os.getuid()})"
        limits = (
            f"limits: {c.timeout_s:g} s wall clock, {c.cpu_time_s} s CPU, {c.memory_mb} MiB memory, "
            f"{c.max_processes} processes, {c.max_output_bytes} bytes of output"
        )
        if plan.isolation == Isolation.bubblewrap:
            packages = ", ".join(sorted(set(c.packages) - set(plan.layout.missing if plan.layout else []))) or "none"
            return (
                f"bubblewrap sandbox {who}: no network, only the interpreter and its packages ({packages}) "
                f"read-only and a private {c.tmp_size_mb} MiB /tmp, own process tree; {limits}"
            )
        return (
            f"restricted subprocess {who} ({plan.note or 'bubblewrap not used'}): NO network isolation, "
            f"files protected only by that user's permissions; {limits}"
        )

    async def run(self, code: str) -> tuple[SandboxPlan, RunResult]:
        plan = await self.plan()
        async with self._slots:
            return plan, await self._execute(plan, code, self.config.timeout_s)

    # Probing ------------------------------------------------------------------------------------

    def _candidates(self) -> list[str]:
        names = [self.config.python] if self.config.python else [sys.executable, *SYSTEM_PYTHONS]
        seen: set[str] = set()
        found = []
        for name in names:
            path = shutil.which(name) or name
            real = os.path.realpath(path)
            if os.path.isfile(real) and real not in seen:
                seen.add(real)
                found.append(path)
        return found

    def _modes(self) -> list[Isolation]:
        wanted = self.config.isolation
        if self.tenants:
            if wanted == "subprocess":
                raise ProviderError(
                    "sandbox.isolation: subprocess lets one tenant's code read another's files; where server.auth "
                    "defines API keys, code_interpreter needs isolation: bubblewrap (apt-get install bubblewrap)"
                )
            return [Isolation.bubblewrap]
        return [Isolation(wanted)] if wanted != "auto" else [Isolation.bubblewrap, Isolation.subprocess]

    async def _probe(self) -> SandboxPlan:
        run_as = (self.config.run_as_uid, self.config.run_as_gid) if os.geteuid() == 0 else None
        failures: list[str] = []
        for mode in self._modes():
            if mode == Isolation.bubblewrap and shutil.which("bwrap") is None:
                failures.append("`bwrap` is not installed (apt-get install bubblewrap)")
                continue
            note = "; ".join(failures) if failures else "subprocess isolation chosen in the config"
            for python in self._candidates():
                try:
                    layout = await self._layout(python) if mode == Isolation.bubblewrap else None
                except (ProviderError, OSError, ValueError) as e:
                    failures.append(f"{mode.value} with {python}: {e}")
                    continue
                plan = SandboxPlan(mode, python, run_as, note, layout)
                result = await self._execute(plan, _PROBE, timeout_s=20.0)
                if result.exit_code == 0 and result.stdout.strip() == "ok":
                    if layout is not None and layout.missing:
                        log.warning("code_interpreter: %s lacks %s", python, ", ".join(layout.missing))
                    return plan
                detail = (result.stderr.strip().splitlines() or [result.status])[-1]
                failures.append(f"{mode.value} with {python}: {detail}")
        who = f" as uid {run_as[0]}" if run_as else ""
        needs = " Where API keys are configured, only bubblewrap is accepted." if self.tenants else ""
        raise ProviderError(
            f"code_interpreter cannot run Python{who} here ({'; '.join(failures)}). Set sandbox.python to an "
            f"interpreter that user may run, or install bubblewrap.{needs}"
        )

    async def _layout(self, python: str) -> Layout:
        return await asyncio.to_thread(Layout.of, python, list(self.config.packages))

    # Running ------------------------------------------------------------------------------------

    def _limits(self) -> dict[str, tuple[int, int]]:
        """(soft, hard) per limit; the CPU limit's soft one sends SIGXCPU a second before SIGKILL."""
        c = self.config
        limits = {
            "RLIMIT_AS": c.memory_mb * 1024 * 1024,
            "RLIMIT_FSIZE": c.max_file_mb * 1024 * 1024,
            "RLIMIT_NPROC": c.max_processes,
            "RLIMIT_NOFILE": 256,
            "RLIMIT_CORE": 0,
        }
        return {"RLIMIT_CPU": (c.cpu_time_s, c.cpu_time_s + 1)} | {name: (v, v) for name, v in limits.items()}

    def _bwrap_command(self, plan: SandboxPlan) -> list[str]:
        assert plan.layout is not None
        args = ["bwrap", *root_binds(plan.layout), "--dev", "/dev", "--proc", "/proc"]
        tmp_bytes = str(self.config.tmp_size_mb * 1024 * 1024)
        args += ["--size", tmp_bytes, "--perms", "1777", "--tmpfs", _SANDBOX_TMP]
        args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if plan.run_as is not None:  # root: the boot code drops to run_as with these two capabilities
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:  # not root: a user namespace gives the program its own uid, and it may not nest another
            uid, gid = self.config.run_as_uid, self.config.run_as_gid
            args += ["--unshare-user", "--uid", str(uid), "--gid", str(gid), "--disable-userns", "--cap-drop", "ALL"]
        args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--chdir", _SANDBOX_TMP]
        return args

    def _environment(self, workdir: str) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": workdir,
            "USER": "sandbox",
            "TMPDIR": workdir,
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": os.path.join(workdir, ".matplotlib"),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }

    async def _execute(self, plan: SandboxPlan, code: str, timeout_s: float) -> RunResult:
        host_dir = None
        if plan.isolation == Isolation.bubblewrap:
            workdir, cwd = _SANDBOX_TMP, "/"
        else:
            host_dir = tempfile.mkdtemp(prefix="code-interpreter-")
            if plan.run_as is not None:
                os.chown(host_dir, *plan.run_as)
            workdir = cwd = host_dir
        read_end, write_end = os.pipe()
        settings = {
            "limits": self._limits(),
            "uid": plan.run_as[0] if plan.run_as else None,
            "gid": plan.run_as[1] if plan.run_as else None,
            "image_fd": write_end,
            "workdir": workdir,
            "max_images": self.config.max_images,
            "max_image_bytes": self.config.max_image_bytes,
            "site_packages": SANDBOX_SITE if plan.layout is not None else None,
        }
        if plan.layout is not None:
            # -S: no site-packages of the interpreter; the boot code adds the sandbox's own.
            python = [plan.layout.executable, "-I", "-S"]
            command = [*self._bwrap_command(plan), *python, "-c", _BOOT_SOURCE, json.dumps(settings)]
        else:
            command = [plan.python, "-I", "-c", _BOOT_SOURCE, json.dumps(settings)]
        started = time.perf_counter()
        try:
            return await self._supervise(command, cwd, workdir, code, timeout_s, read_end, write_end, started)
        finally:
            if host_dir is not None:
                shutil.rmtree(host_dir, ignore_errors=True)

    async def _supervise(
        self,
        command: list[str],
        cwd: str,
        workdir: str,
        code: str,
        timeout_s: float,
        read_end: int,
        write_end: int,
        started: float,
    ) -> RunResult:
        images_file = os.fdopen(read_end, "rb", buffering=0)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=self._environment(workdir),
                pass_fds=(write_end,),
                start_new_session=True,
            )
        except BaseException:
            images_file.close()
            raise
        finally:
            os.close(write_end)
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        stdout, stderr = _Capture(self.config.max_output_bytes), _Capture(self.config.max_output_bytes)
        images = _Capture(self.config.max_images * (self.config.max_image_bytes * 4 // 3 + 64))
        overflow = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        images_transport: asyncio.BaseTransport | None = None
        try:
            images_reader, images_transport = await _pipe_reader(images_file)
            readers = [
                asyncio.create_task(stdout.drain(process.stdout, overflow)),
                asyncio.create_task(stderr.drain(process.stderr, overflow)),
                asyncio.create_task(images.drain(images_reader, overflow)),
            ]
            exited = asyncio.create_task(process.wait())
            tasks = [*readers, exited, asyncio.create_task(overflow.wait())]
            await _feed(process.stdin, code)
            await asyncio.wait(tasks[-2:], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            timed_out = not exited.done() and not overflow.is_set()
            await _kill_group(process.pid)  # also what the program left running in its group
            # Process.wait() also waits for the pipes to close: a process that escaped the group
            # may hold them open, so neither is waited on for long.
            await asyncio.wait([exited, *readers], timeout=2.0)
        finally:
            # Reached early when the turn is cancelled (the client went away): the program dies too.
            if process.returncode is None:
                _signal_group(process.pid)
            for task in tasks:
                task.cancel()
            # Closing the transport closes images_file; closing the file alone would leave its fd polled.
            if images_transport is not None:
                images_transport.close()
            else:
                images_file.close()
        return RunResult(
            stdout=stdout.data.decode(errors="replace"),
            stderr=stderr.data.decode(errors="replace"),
            exit_code=None if timed_out else process.returncode,
            images=_decode_images(bytes(images.data), self.config.max_images),
            timed_out=timed_out,
            output_truncated=stdout.overflowed or stderr.overflowed,
            duration_s=time.perf_counter() - started,
        )


async def _pipe_reader(file: object) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), file)
    return reader, transport


async def _feed(stdin: asyncio.StreamWriter, code: str) -> None:
    try:
        stdin.write(code.encode())
        await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the interpreter died at once; its stderr says why


def _signal_group(pgid: int) -> bool:
    """SIGKILL a process group; False once it is empty."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _kill_group(pgid: int) -> None:
    """SIGKILL the process group until it is empty: a process forked while the signal is being
    delivered would otherwise survive it."""
    for _ in range(500):
        if not _signal_group(pgid):
            return
        await asyncio.sleep(0.01)


def _decode_images(raw: bytes, limit: int) -> list[bytes]:
    images = []
    for line in raw.splitlines()[:limit]:
        try:
            image = base64.b64decode(json.loads(line)["png"], validate=True)
        except (ValueError, KeyError, TypeError):
            continue
        if image.startswith(_PNG_MAGIC):
            images.append(image)
    return images

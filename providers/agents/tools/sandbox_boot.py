"""The first code that runs inside the code sandbox; its source is passed to `python -I -c`.

It reads the program from stdin, applies the resource limits, drops root for the sandbox user,
runs the program as __main__ in its working directory, and finally sends the images the program
made (open matplotlib figures, figures passed to plt.show(), PNG files it wrote) as JSON lines
over the pipe whose number it is given. Standard library only: it runs on whatever Python the
sandbox is given, and it must not import this project.
"""

from __future__ import annotations

import base64
import importlib.abc
import importlib.machinery
import io
import json
import os
import resource
import sys
import traceback
from typing import Any

_shown: list[bytes] = []


def _apply_limits(limits: dict[str, list[int]]) -> None:
    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _drop_privileges(uid: int | None, gid: int | None) -> None:
    if uid is None or gid is None or os.getuid() != 0:
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("sandbox: could not drop root privileges")


def _figures_as_png(pyplot: Any) -> list[bytes]:
    images = []
    for number in pyplot.get_fignums():
        buffer = io.BytesIO()
        pyplot.figure(number).savefig(buffer, format="png")
        images.append(buffer.getvalue())
    return images


class _PyplotHook(importlib.abc.MetaPathFinder):
    """Makes plt.show() keep every open figure as a PNG (and close it), as a notebook would."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "matplotlib.pyplot":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            original_exec(module)

            def show(*args: Any, **kwargs: Any) -> None:
                _shown.extend(_figures_as_png(module))
                module.close("all")

            module.show = show

        loader.exec_module = exec_module
        return spec


def _run(path: str) -> int:
    with open(path, encoding="utf-8") as source:
        code = compile(source.read(), path, "exec")
    try:
        exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except BaseException as error:
        # Leave this file's frame out: the traceback starts in the program.
        traceback.print_exception(type(error), error, error.__traceback__.tb_next if error.__traceback__ else None)
        return 1
    return 0


def _pngs_written(workdir: str, before: set[str], max_bytes: int) -> list[bytes]:
    images = []
    for name in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, name)
        if name in before or not name.lower().endswith(".png") or not os.path.isfile(path):
            continue
        if os.path.getsize(path) <= max_bytes:
            with open(path, "rb") as file:
                images.append(file.read())
    return images


def _send_images(fd: int, workdir: str, before: set[str], settings: dict[str, Any]) -> None:
    written = _pngs_written(workdir, before, settings["max_image_bytes"])
    images = list(_shown) + written
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and not written:  # a program that saved its figures chose what to show
        images += _figures_as_png(pyplot)
    with os.fdopen(fd, "wb") as channel:
        for image in images[: settings["max_images"]]:
            channel.write(json.dumps({"png": base64.b64encode(image).decode()}).encode() + b"\n")


def main() -> None:
    settings = json.loads(sys.argv[1])
    program = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    workdir = settings["workdir"]
    os.chdir(workdir)
    _apply_limits(settings["limits"])
    _drop_privileges(settings["uid"], settings["gid"])
    if settings.get("site_packages"):  # the packages bound into the sandbox (run with -S)
        import site

        site.addsitedir(settings["site_packages"])
    path = os.path.join(workdir, "main.py")
    with open(path, "wb") as file:
        file.write(program)
    before = set(os.listdir(workdir))
    fd = settings["image_fd"]
    os.set_inheritable(fd, False)
    sys.argv = [path]
    sys.meta_path.insert(0, _PyplotHook())
    status = _run(path)
    try:
        _send_images(fd, workdir, before, settings)
    except Exception as error:  # the program's own output matters more than its pictures
        print(f"sandbox: could not collect images: {error}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()

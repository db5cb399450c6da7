"""Warm worker starts: one launcher process imports torch, transformers and ONNX Runtime once and forks every
recipe's worker from there, instead of each worker importing them again (about 4.5 s of CPU per recipe on
a 2-core machine, most of a small model's recipe).

A forked worker is still a process of its own: its own pid and memory (the engine samples its RSS as
before), a crash or a kill costs only its recipe, it runs in the engine's directory with the engine's
environment, below the window's priority. POSIX source installs only: Windows has no fork and the frozen
bundle has no `python -m`, so they start each worker fresh, as does QSTUDIO_WORKER_START=fresh.

The engine writes a start file (job, directory, environment) and sends its path with two descriptors (the
event pipe's write end and the worker's log file) over a datagram socket; the launcher answers with the
worker's pid and, when it ends, its exit status (negative: the signal that ended it, as subprocess says).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Protocol

log = logging.getLogger(__name__)

START_VARIABLE = "QSTUDIO_WORKER_START"
# What most workers import; each costs seconds when a worker imports it itself.
PRELOAD = (
    "numpy",
    "torch",
    "onnxruntime",
    "transformers",
    "studio.core.worker",
    "studio.core.model",
    "studio.core.loading",
    "studio.core.rounds",
)
IDLE_EXIT_SECONDS = 600.0  # an idle launcher (the window left open) gives its memory back
PROCESS_NAME = b"qstudio-worker"


class WorkerProcess(Protocol):
    """What the engine needs of a worker: `subprocess.Popen`'s names, so either kind of start serves."""

    pid: int
    stdout: IO[str] | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


def warm_starts_possible() -> bool:
    if os.environ.get(START_VARIABLE, "").lower() == "fresh":
        return False
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and not getattr(sys, "frozen", False)


# -- the launcher process ---------------------------------------------------------------------------------
def _preload() -> None:
    from studio.core.model import quiet_transformers
    from studio.core.quiet import quiet_torch_imports

    quiet_torch_imports()
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    quiet_transformers()
    with contextlib.suppress(ImportError):
        # transformers imports lazily: touch what every worker's model opening uses
        from transformers import AutoConfig, AutoTokenizer  # noqa: F401
        from transformers.models.auto import modeling_auto  # noqa: F401


def _name_process() -> None:
    """`qstudio-worker` in top and ps (Linux only; the command line stays the launcher's)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, PROCESS_NAME, 0, 0, 0)  # PR_SET_NAME


def _run_worker(start_file: str, out_fd: int, err_fd: int) -> int:
    """In the forked child: become the worker the engine asked for, then run it."""
    request = json.loads(Path(start_file).read_text(encoding="utf-8"))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _name_process()
    from studio.core.worker import main

    return main([request["job"]])


def _fork_worker(channel: socket.socket, wakeup: tuple[int, int], start_file: str, fds: list[int]) -> int:
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    code = 1
    try:
        channel.close()
        signal.set_wakeup_fd(-1)
        for fd in wakeup:
            os.close(fd)
        code = _run_worker(start_file, fds[0], fds[1])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    return 0  # not reached


def serve(fd: int) -> None:
    """The launcher's loop: fork a worker per request, report each one's exit, leave when the engine does."""
    channel = socket.socket(fileno=fd)
    _preload()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    parent = os.getppid()
    children: set[int] = set()
    idle_since = time.monotonic()
    channel.send(b'{"ready": true}')
    while True:
        ready = selector.select(timeout=1.0)
        for key, _ in ready:
            if key.fileobj is wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(channel, 65536, 2)
            except OSError:
                return
            if not message:
                return
            request = json.loads(message)
            try:
                pid = _fork_worker(channel, (wake_r, wake_w), request["start"], fds)
            except OSError as error:
                for descriptor in fds:
                    os.close(descriptor)
                channel.send(json.dumps({"id": request["id"], "error": str(error)}).encode())
                continue
            children.add(pid)
            channel.send(json.dumps({"id": request["id"], "pid": pid}).encode())
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                code = os.waitstatus_to_exitcode(status)
                channel.send(json.dumps({"exited": pid, "code": code}).encode())
        if children:
            idle_since = time.monotonic()
        if os.getppid() != parent or time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
            return


# -- the engine's side --------------------------------------------------------------------------------------
class ForkedWorker:
    """A worker forked by the launcher, behind the same calls as `subprocess.Popen`."""

    def __init__(self, launcher: Launcher, pid: int, stdout: IO[str]) -> None:
        self.launcher = launcher
        self.pid = pid
        self.stdout: IO[str] | None = stdout
        self.args = [f"<worker {pid} forked by the launcher>"]

    def poll(self) -> int | None:
        return self.launcher.exit_code(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        code = self.launcher.wait_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code  # stdout stays open, as Popen's does: the engine's reader may still be draining it

    def _signal(self, number: signal.Signals) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, number)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


class LauncherGone(RuntimeError):
    """The launcher ended (killed, or idle); the engine starts another."""


class Launcher:
    """The engine's handle on one launcher process; one per studio process, shared by its engines."""

    def __init__(self, command: list[str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.channel = ours
        self.process = subprocess.Popen(
            [*command, str(theirs.fileno())], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
        )
        theirs.close()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._next_id = 0
        self._gone = False
        self._ready = threading.Event()
        threading.Thread(target=self._read, name="launcher-replies", daemon=True).start()

    def _read(self) -> None:
        self.channel.settimeout(0.5)
        while True:
            try:
                message = self.channel.recv(65536)
            except TimeoutError:
                if self.process.poll() is not None:
                    break
                continue
            except OSError:
                break
            if not message:
                break
            reply = json.loads(message)
            with self._changed:
                if "ready" in reply:
                    self._ready.set()
                elif "exited" in reply:
                    self._exits[reply["exited"]] = reply["code"]
                else:
                    self._replies[reply["id"]] = reply
                self._changed.notify_all()
        with self._changed:
            self._gone = True
            self._changed.notify_all()
        self._ready.set()

    @property
    def alive(self) -> bool:
        return not self._gone and self.process.poll() is None

    def start(self, start_file: Path, stdout_fd: int, stderr_fd: int, timeout: float = 120.0) -> int:
        """The pid of a new worker running `start_file`'s request."""
        if not self._ready.wait(timeout) or not self.alive:
            raise LauncherGone("the worker launcher did not start")
        with self._changed:
            self._next_id += 1
            ident = self._next_id
        message = json.dumps({"id": ident, "start": str(start_file)}).encode()
        socket.send_fds(self.channel, [message], [stdout_fd, stderr_fd])
        with self._changed:
            self._changed.wait_for(lambda: ident in self._replies or self._gone, timeout)
            reply = self._replies.pop(ident, None)
        if reply is None:
            raise LauncherGone("the worker launcher stopped answering")
        if "error" in reply:
            raise OSError(f"the worker launcher could not fork: {reply['error']}")
        return int(reply["pid"])

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            if pid in self._exits:
                return self._exits[pid]
            gone = self._gone
        if gone and not _running(pid):
            return -int(signal.SIGKILL)  # its launcher died with it unreported: the status is lost
        return None

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = self.exit_code(pid)
            if code is not None:
                return code
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            with self._changed:
                self._changed.wait(0.2 if left is None else min(left, 0.2))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.channel.close()
        with contextlib.suppress(Exception):
            self.process.wait(5)


def _running(pid: int) -> bool:
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


_shared: Launcher | None = None
_shared_lock = threading.Lock()


def shared_launcher(command: list[str]) -> Launcher:
    """This process's launcher, started on first use and again when the last one has ended."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive:
            if _shared is not None:
                _shared.close()
            _shared = Launcher(command)
        return _shared


def start_forked(command: list[str], job_file: Path, stderr_file: IO[str]) -> ForkedWorker:
    """A worker for `job_file` forked by this process's launcher (started with `command` if needed)."""
    start_file = job_file.with_suffix(".start.json")
    start_file.write_text(
        json.dumps({"job": str(job_file), "cwd": os.getcwd(), "env": dict(os.environ)}), encoding="utf-8"
    )
    read_fd, write_fd = os.pipe()
    try:
        for attempt in range(2):
            launcher = shared_launcher(command)
            try:
                pid = launcher.start(start_file, write_fd, stderr_file.fileno())
                break
            except LauncherGone:
                if attempt:
                    raise
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return ForkedWorker(launcher, pid, os.fdopen(read_fd, "r", encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    serve(int(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

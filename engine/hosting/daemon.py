"""Starting, finding and stopping a host process, and the host's own main loop.

A host serves one folder (its place): `host.pid`, `host.lock`, `host.log` and, when the path is
short enough for a Unix socket, `host.sock` live there. It is started detached (a session of
its own, reparented to init), so the runner or console that started it may end; a lock keeps it
to one host per folder. It ends on `shutdown`, on SIGTERM or SIGINT, or once its folder is
gone (the workspace was removed), closing what it hosts first."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from engine.hosting.rpc import (
    LINE_LIMIT,
    Handler,
    HostUnreachable,
    RemoteError,
    answer_connection,
    call,
)
from engine.private_files import private_folder

PID_FILE = "host.pid"
LOCK_FILE = "host.lock"
START_LOCK_FILE = "host.starting.lock"
LOG_FILE = "host.log"
FAILED_FILE = "host.failed"  # why a host could not start, for the one waiting on it
SOCKET_FILE = "host.sock"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL
FOLDER_CHECK_SECONDS = 2.0
POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 1.0  # calls under way may finish (and answer) before they are cancelled
# Tests name a file here; every host started is listed in it, so none outlives its test.
HOSTS_LOG_ENV = "DEPLOYDECK_HOSTS_LOG"

OpenHandlers = Callable[[], AbstractAsyncContextManager[Mapping[str, Handler]]]


class HostStartError(Exception):
    """A host did not start; the message says why, from its log."""


@dataclass(frozen=True)
class HostPlace:
    """Where one host keeps its files; `folder` is made absolute."""

    folder: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(os.path.abspath(self.folder)))

    @property
    def socket(self) -> Path:
        """The host's socket: in its folder, or (a path too long for a socket) in a private
        folder under the temporary directory, named by a digest of the folder."""
        inside = self.folder / SOCKET_FILE
        if len(os.fsencode(inside)) <= MAX_SOCKET_PATH:
            return inside
        digest = hashlib.sha256(os.fsencode(self.folder)).hexdigest()[:24]
        return short_socket_folder() / f"{digest}.sock"

    @property
    def log(self) -> Path:
        return self.folder / LOG_FILE

    def pid(self) -> int | None:
        """The pid of the host serving this folder, None when none runs."""
        try:
            pid = int((self.folder / PID_FILE).read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        # a reused pid (any other process) lacks the `--folder FOLDER` a host was started with
        given = [command[i + 1] for i, word in enumerate(command[:-1]) if word == b"--folder"]
        return pid if os.fsencode(self.folder) in given else None


def short_socket_folder() -> Path:
    """The private folder for sockets whose own folder's path is too long for one: under the
    temporary directory, or under /tmp when even that is too deep (a test's TMPDIR)."""
    name = f"deploydeck-{os.getuid()}"
    longest_socket = "x" * 24 + ".sock"
    for base in (tempfile.gettempdir(), "/tmp"):
        if len(os.fsencode(Path(base) / name / longest_socket)) <= MAX_SOCKET_PATH:
            return Path(base) / name
    return Path(tempfile.gettempdir()) / name


def check_socket_folder(socket: Path) -> None:
    """Make the folder of a socket under the temporary directory (owner-only), or refuse one
    another user could reach: not a folder, another user's, or open to others."""
    folder = socket.parent
    if folder != short_socket_folder():
        return
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
        raise HostStartError(
            f"the host's socket {socket} would be longer than {MAX_SOCKET_PATH} bytes, which a "
            "Unix socket cannot be; set TMPDIR to a shorter folder"
        )
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise HostStartError(f"{folder} is not a folder; remove it, then run again")
    if info.st_uid != os.getuid():
        raise HostStartError(
            f"{folder} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): another "
            "user could answer for deploydeck's hosts there; remove it, or set TMPDIR to a "
            "folder of your own"
        )
    if info.st_mode & 0o077:
        raise HostStartError(
            f"{folder} is mode {stat.S_IMODE(info.st_mode):04o}, not 0700: other users could "
            f"reach deploydeck's hosts there; run `chmod 700 {folder}`, or remove it"
        )


async def ensure_host(
    place: HostPlace, module: str, args: Sequence[str] = (), start_timeout: float = 10.0
) -> int:
    """The pid of the host serving `place`, started first (`python -m module --folder FOLDER
    *args`, detached) when none answers there."""
    check_socket_folder(place.socket)
    with contextlib.suppress(HostUnreachable):
        try:
            return int((await call(place.socket, "ping", timeout=start_timeout))["pid"])
        except TimeoutError:  # it listens but does not answer: another would not get its lock
            pid = place.pid()
            raise HostStartError(
                f"the host for {place.folder}{f' (pid {pid})' if pid else ''} takes calls but "
                f"answered none within {start_timeout:g} s: it is stuck; end it "
                f"(`kill {pid or 'PID'}`) and run again; its log: {place.log}"
            ) from None
    private_folder(place.folder)
    async with _starting(place):
        with contextlib.suppress(HostUnreachable, TimeoutError):  # another caller started it
            return int((await call(place.socket, "ping", timeout=start_timeout))["pid"])
        return await _start(place, module, args, start_timeout)


@contextlib.asynccontextmanager
async def _starting(place: HostPlace) -> AsyncIterator[None]:
    """One start at a time per folder: a second caller waits, then finds the first's host
    (a host launched late could otherwise outlive a stop that came in between)."""
    lock = os.open(place.folder / START_LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(lock)


async def _start(place: HostPlace, module: str, args: Sequence[str], start_timeout: float) -> int:
    setsid = shutil.which("setsid")
    if setsid is None:
        raise HostStartError("`setsid` (util-linux) is not installed; install util-linux")
    failed = place.folder / FAILED_FILE
    failed.unlink(missing_ok=True)
    with open(place.log, "ab") as log:
        launcher = await asyncio.create_subprocess_exec(
            setsid,
            "--fork",  # the host is a grandchild: nothing here has to reap it
            sys.executable,
            "-m",
            module,
            "--folder",
            str(place.folder),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=place.folder,
        )
        await launcher.wait()
    if hosts_log := os.environ.get(HOSTS_LOG_ENV):
        with open(hosts_log, "a") as listing:
            listing.write(f"{place.folder}\n")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + start_timeout
    while True:
        with contextlib.suppress(HostUnreachable, TimeoutError):
            return int((await call(place.socket, "ping", timeout=start_timeout))["pid"])
        if failed.exists():
            raise HostStartError(failed.read_text().strip())
        if loop.time() > deadline:
            raise HostStartError(
                f"the host for {place.folder} did not answer within {start_timeout:g} s; "
                f"see {place.log}{_tail(place.log)}"
            )
        await asyncio.sleep(POLL_SECONDS)


async def stop_host(place: HostPlace, grace: float = 5.0) -> bool:
    """End the host serving `place` (it closes what it hosts); True when one was running.
    A host that does not end within `grace` seconds is sent SIGTERM, then SIGKILL."""
    pid = place.pid()
    try:
        await call(place.socket, "shutdown", timeout=grace)
    except (HostUnreachable, RemoteError, TimeoutError):
        if pid is None:
            return False
    if pid is None:
        pid = place.pid()
    if pid is not None:
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if await _gone(pid, grace):
                break
    return True


async def _gone(pid: int, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() <= deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        await asyncio.sleep(POLL_SECONDS)
    return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (":\n  " + "\n  ".join(text)) if text else ""


def serve_host(place: HostPlace, open_handlers: OpenHandlers) -> int:
    """A host process's main: serve `place` until told to stop; the exit status."""
    private_folder(place.folder)
    lock = os.open(place.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another host serves this folder; callers reach that one
    try:
        asyncio.run(_serve(place, open_handlers))
        return 0
    except Exception as error:  # its reason goes to whoever waits for the start, and the log
        message = f"the host for {place.folder} failed: {error}"
        with contextlib.suppress(OSError):
            (place.folder / FAILED_FILE).write_text(message + "\n")
        print(f"deploydeck host: {message}", file=sys.stderr)
        return 1
    finally:
        os.close(lock)


async def _serve(place: HostPlace, open_handlers: OpenHandlers) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    async def ping() -> dict[str, object]:
        return {"pid": os.getpid(), "folder": str(place.folder)}

    async def shutdown() -> dict[str, object]:
        loop.call_soon(stop.set)
        return {"pid": os.getpid()}

    socket = place.socket
    check_socket_folder(socket)
    socket.unlink(missing_ok=True)  # left by a host that was killed
    connections: set[asyncio.Task[None]] = set()
    async with open_handlers() as handlers:
        served = {**handlers, "ping": ping, "shutdown": shutdown}

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await answer_connection(reader, writer, served)
            except asyncio.CancelledError:
                pass  # the host is stopping; the caller sees its connection close
            finally:
                connections.discard(task)

        server = await asyncio.start_unix_server(accept, path=str(socket), limit=LINE_LIMIT)
        pid_file = place.folder / PID_FILE
        try:
            os.chmod(socket, 0o600)
            pid_file.write_text(f"{os.getpid()}\n")
            while not stop.is_set() and place.folder.is_dir():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FOLDER_CHECK_SECONDS):
                        await stop.wait()
        finally:
            server.close()
            if connections:
                await asyncio.wait(list(connections), timeout=STOP_GRACE_SECONDS)
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            with contextlib.suppress(OSError):
                if pid_file.read_text().strip() == str(os.getpid()):
                    pid_file.unlink()
            socket.unlink(missing_ok=True)

"""Faults of the long-lived hosts (engine/hosting): killed mid-call, stale pid and socket files,
an unsafe socket folder, racing starts, bad clients, Ctrl-C while one starts, and the CLI's
`balancer`/`service` verbs when nothing runs. Real host processes (tests/hosting/echo_host.py
and the balancer host), real sockets, real deploydeck commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.hosting.daemon import HostPlace, HostStartError, ensure_host, stop_host
from engine.hosting.rpc import LINE_LIMIT, call
from engine.services.client import HostLost, ServiceClient
from engine.traffic.hosted import HostedBalancer, host_call
from engine.traffic.model import Target, TrafficError
from tests.command_line import create_deployment
from tests.conftest import REPO, require_tool, sigint_as_at_a_terminal
from tests.console.conftest import wait_for as console_wait
from tests.console.test_gauges import screen_rows
from tests.ecs.test_ecs_deployments import EcsWorkspace
from tests.engine.fleet import make_revision
from tests.functions.test_lambda_deployments import wait_for
from tests.hosting.test_daemon import MODULE, _alive, _until
from tests.services.conftest import living_in_group
from tests.services.test_host import gone, status, task_pids
from tests.services.test_live_counts import pending_replacement_on_screen
from tests.traffic.conftest import FAST, free_port, short_dir  # noqa: F401 (a fixture)

DEPLOYDECK = [sys.executable, "-m", "tui.cli"]
HELD_START = Path(__file__).parent / "held_start"
BALANCED = """\
applications:
  app:
    deployment_groups:
      fleet:
        tag_filters: [{key: role, value: web}]
        deployment_style: {deployment_option: WITH_TRAFFIC_CONTROL}
        load_balancer: {kind: builtin, port: 0, port_env: WEB_PORT}
instances:
  i01:
    tags: {role: web}
    environment: {WEB_PORT: "%d", INSTANCE_NAME: i01, PID_FILE: pids.txt}
"""


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


@pytest.fixture(autouse=True)
def _no_host_outlives_its_test(tmp_path: Path) -> Iterator[None]:
    """Hosts outlive the commands that start them, as a fleet's do: a test that leaves one
    (an interrupted start, say) has it ended here, not running on after the suite."""
    yield
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(str(tmp_path) in part for part in cmdline):
            with contextlib.suppress(psutil.Error):
                process.kill()


def clean(log: Path) -> bool:
    """No traceback and no library warning in a host's log."""
    return quiet(log.read_text() if log.exists() else "")


def quiet(text: str) -> bool:
    return "Traceback" not in text and "Warning" not in text and "Error" not in text


def balanced_workspace(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deploydeck.yml").write_text(BALANCED % free_port())
    return folder


def deploydeck(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEPLOYDECK, *args], cwd=folder, capture_output=True, text=True, timeout=300
    )


def balancer_place(folder: Path) -> HostPlace:
    return HostPlace(folder / ".deploydeck" / "lb" / "app.fleet" / "balancer")


async def test_host_killed_during_a_balancer_call(tmp_path: Path) -> None:
    """a balancer host is SIGKILLed while a call runs -> the caller gets a TrafficError naming the host's log, and the next ensure starts a new host despite the stale socket and pid files"""
    place = HostPlace(tmp_path / "host")
    pid = await ensure_host(place, MODULE)
    calling = asyncio.ensure_future(host_call(place, "app/fleet", "sleep", seconds=600))
    await asyncio.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(TrafficError) as raised:
        await calling
    assert str(place.log) in str(raised.value)
    assert "the balancer host of app/fleet is not answering" in str(raised.value)
    await _until(lambda: not _alive(pid))
    assert place.socket.exists() and (place.folder / "host.pid").exists()  # left by the kill
    again = await ensure_host(place, MODULE)
    assert again != pid and place.pid() == again
    assert await call(place.socket, "echo", value=1) == 1
    assert clean(place.log)


async def test_host_killed_during_a_service_call(tmp_path: Path) -> None:
    """a service host is SIGKILLed while a call runs -> the caller gets HostLost naming the service, the host's pid and its log"""
    folder = tmp_path / "services" / "web"
    client = ServiceClient(folder)
    client.pid = await ensure_host(client.place, MODULE)
    calling = asyncio.ensure_future(client._call("sleep", seconds=600))
    await asyncio.sleep(0.3)
    os.kill(client.pid, signal.SIGKILL)
    with pytest.raises(HostLost) as raised:
        await calling
    message = str(raised.value)
    assert f"the host of service web (pid {client.pid}) is gone" in message
    assert str(client.log) in message


async def test_stale_socket_file_from_a_killed_host(tmp_path: Path) -> None:
    """a killed host left its socket file and no host answers on it -> ensure starts a new host in its place"""
    place = HostPlace(tmp_path / "host")
    place.folder.mkdir()
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(place.socket))  # bound, never listening: what a killed host leaves
    pid = await ensure_host(place, MODULE)
    assert await call(place.socket, "echo", value="new") == "new"
    assert place.pid() == pid


async def test_stale_pid_file_names_an_unrelated_live_process(tmp_path: Path) -> None:
    """host.pid names a live process that is not the host (pid reuse), even one whose command line names the folder -> it is not taken for the host: status says none runs, stop leaves it alone, ensure starts a real host"""
    place = HostPlace(tmp_path / "host")
    place.folder.mkdir()
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", str(place.folder)],
        start_new_session=True,
    )
    try:
        (place.folder / "host.pid").write_text(f"{other.pid}\n")
        assert place.pid() is None
        assert not await stop_host(place, grace=1.0)
        assert other.poll() is None
        pid = await ensure_host(place, MODULE)
        assert pid != other.pid and place.pid() == pid
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


async def test_folder_removed_under_a_balancer_host_with_haproxy(short_dir: Path) -> None:  # noqa: F811
    """the folder of a balancer host running HAProxy is removed -> the host ends and its HAProxy ends with it"""
    require_tool("haproxy")
    place = HostPlace(short_dir / "balancer")
    target = Target("i1", "127.0.0.1", free_port())
    balancer = HostedBalancer(
        place, "app/fleet", "haproxy", ("127.0.0.1", free_port()), [target], FAST
    )
    await balancer.start()
    assert balancer.status is not None
    host, haproxy = balancer.status.pid, balancer.status.haproxy_pid
    assert haproxy is not None and _alive(haproxy)
    with open(place.log) as log:
        subprocess.run(["rm", "-rf", str(short_dir)], check=True)
        await _until(lambda: not _alive(host) and not _alive(haproxy))
        assert log.read() == ""


def test_folder_removed_under_a_service_host_with_tasks(tmp_path: Path) -> None:
    """the folder of a service's host running tasks is removed -> the host ends, every task ends with it, and its log (read through a handle kept open) holds no traceback"""
    workspace = EcsWorkspace(tmp_path)
    workspace.first(workspace.register())
    before = status(workspace)
    pids = task_pids(before)
    assert pids and all(living_in_group(p) for p in pids)
    with open(before["hostLog"]) as log:
        subprocess.run(["rm", "-rf", str(Path(before["hostLog"]).parent)], check=True)
        wait_for(lambda: gone(before["hostPid"]))
        wait_for(lambda: not any(living_in_group(p) for p in pids))
        assert quiet(log.read())


def test_balancer_commands_on_a_hung_host(tmp_path: Path) -> None:
    """a balancer host hangs (SIGSTOP) -> `balancer status` and `balancer start` end with status 1 saying it is stuck, naming its pid or the stop command and its log (no new host is started beside it); `balancer stop` ends it"""
    folder = balanced_workspace(tmp_path / "ws")
    place = balancer_place(folder)
    started = deploydeck(folder, "balancer", "start", "fleet", "--output", "json")
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["host"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        shown = deploydeck(folder, "balancer", "status", "fleet")
        assert shown.returncode == 1
        said = shown.stdout.replace("\n", "")
        assert "the balancer host of app/fleet is not answering (no answer in time): it is " in said
        assert "stuck. `deploydeck balancer stop app/fleet` ends it" in said
        assert str(place.log) in said
        again = deploydeck(folder, "balancer", "start", "fleet")
        assert again.returncode == 1
        said = again.stdout.replace("\n", "")
        assert f"(pid {pid}) takes calls but answered none within 10 s: it is stuck" in said
        assert f"`kill {pid}`" in said and str(place.log) in said
        assert place.pid() == pid
        stopped = deploydeck(folder, "balancer", "stop", "fleet")
        assert stopped.stdout == "app/fleet: balancer host ended, with what it ran\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    asyncio.run(_until(lambda: not _alive(pid)))
    assert clean(place.log)


def test_balancer_stop_after_its_host_was_killed(short_dir: Path) -> None:  # noqa: F811
    """a balancer host running HAProxy is SIGKILLed, then `deploydeck balancer stop GROUP` runs -> the HAProxy the host left ends too (the port stops answering) and the command says something ran"""
    require_tool("haproxy")
    folder = short_dir / "ws"
    folder.mkdir()
    lb_port = free_port()
    (folder / "deploydeck.yml").write_text(
        (BALANCED % free_port()).replace(
            "kind: builtin, port: 0", f"kind: haproxy, port: {lb_port}"
        )
    )
    started = deploydeck(folder, "balancer", "start", "fleet", "--output", "json")
    assert started.returncode == 0, started.stderr
    host = json.loads(started.stdout)["host"]
    os.kill(host["pid"], signal.SIGKILL)
    asyncio.run(_until(lambda: not _alive(host["pid"])))
    assert _alive(host["haproxyPid"])  # an orphan, still holding the port
    stopped = deploydeck(folder, "balancer", "stop", "fleet")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "app/fleet: balancer host ended, with what it ran\n"
    assert not _alive(host["haproxyPid"])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", lb_port), timeout=5).close()


@pytest.fixture
def deep(
    tmp_path: Path,
    short_dir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[HostPlace, Path]:
    """A host's place too deep for its socket, and the folder its socket goes to instead, under
    a temporary directory of the test's own (for the host too)."""
    monkeypatch.setattr(tempfile, "tempdir", str(short_dir))
    monkeypatch.setenv("TMPDIR", str(short_dir))
    place = HostPlace(tmp_path / ("deep-" * 25) / "host")
    shared = short_dir / f"deploydeck-{os.getuid()}"
    assert place.socket.parent == shared
    return place, shared


async def test_socket_folder_of_another_user(deep: tuple[HostPlace, Path]) -> None:
    """the folder under the temporary directory for a deep workspace's sockets belongs to another user -> ensure refuses with the folder, its owner and what to do, and starts nothing"""
    place, shared = deep
    shared.mkdir(mode=0o700)
    os.chown(shared, 65534, 65534)  # the tests run as root: hand it to nobody
    with pytest.raises(HostStartError, match=f"{shared} belongs to uid 65534, not to you"):
        await ensure_host(place, MODULE)
    assert not place.folder.exists() and list(shared.iterdir()) == []


async def test_socket_folder_open_to_others(deep: tuple[HostPlace, Path]) -> None:
    """the folder for a deep workspace's sockets is mode 0755, not 0700 -> ensure refuses naming the mode and the chmod to run, and starts nothing"""
    place, shared = deep
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.raises(HostStartError, match=f"mode 0755, not 0700.*chmod 700 {shared}"):
        await ensure_host(place, MODULE)
    assert not place.folder.exists()
    shared.chmod(0o700)
    await ensure_host(place, MODULE)
    assert await call(place.socket, "echo", value="deep") == "deep"


async def test_temporary_directory_too_deep_for_a_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a deep workspace and a temporary directory too deep for its socket too -> the socket goes to /tmp's private folder and the host serves"""
    temporary = tmp_path / ("tmp-" * 25)
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    place = HostPlace(tmp_path / ("deep-" * 25) / "host")
    assert place.socket.parent == Path("/tmp") / f"deploydeck-{os.getuid()}"
    await ensure_host(place, MODULE)
    assert await call(place.socket, "echo", value=3) == 3
    assert await stop_host(place)


async def test_two_starts_of_one_host_at_once(tmp_path: Path) -> None:
    """two processes start the same folder's host at the same moment -> exactly one host runs and both get its pid"""
    place = HostPlace(tmp_path / "host")
    starter = (
        "import asyncio, sys; from engine.hosting.daemon import HostPlace, ensure_host; "
        f"print(asyncio.run(ensure_host(HostPlace(sys.argv[1]), {MODULE!r})))"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", starter, str(place.folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [s.communicate(timeout=120) for s in starts]
    assert [e for _, e in outputs] == ["", ""]
    pids = {int(out) for out, _ in outputs}
    assert pids == {place.pid()}
    hosts = [
        p
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _command(p) and str(place.folder).encode() in _command(p)
    ]
    assert [int(p.name) for p in hosts] == list(pids)


def _command(proc: Path) -> list[bytes]:
    try:
        return (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


async def test_hosts_of_two_folders_started_at_once(tmp_path: Path) -> None:
    """two folders' hosts (two groups sharing nothing) are each started by two callers at once -> one host per folder, each answering for its own folder"""
    places = [HostPlace(tmp_path / name) for name in ("a", "b")]
    pids = await asyncio.gather(*(ensure_host(p, MODULE) for p in places for _ in range(2)))
    assert pids[0] == pids[1] != pids[2] == pids[3]
    for place, pid in zip(places, pids[::2], strict=True):
        assert place.pid() == pid
        assert (await call(place.socket, "ping"))["folder"] == str(place.folder)


async def test_hung_host_is_stopped(tmp_path: Path) -> None:
    """a host hangs (SIGSTOP) and answers nothing -> stop ends it anyway (SIGTERM, then SIGKILL) and says one ran; the next ensure starts a new one"""
    place = HostPlace(tmp_path / "host")
    pid = await ensure_host(place, MODULE)
    os.kill(pid, signal.SIGSTOP)
    try:
        assert await stop_host(place, grace=1.0)
        assert not _alive(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    again = await ensure_host(place, MODULE)
    assert again != pid and await call(place.socket, "echo", value=2) == 2


async def test_two_balancer_start_commands_at_once(tmp_path: Path) -> None:
    """two `deploydeck balancer start GROUP` run at the same moment -> both succeed naming the same host pid, one host runs"""
    folder = balanced_workspace(tmp_path / "ws")
    command = [*DEPLOYDECK, "balancer", "start", "fleet", "--output", "json"]
    starts = [
        subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [s.communicate(timeout=300) for s in starts]
    assert [s.returncode for s in starts] == [0, 0], outputs
    pids = {json.loads(out)["host"]["pid"] for out, _ in outputs}
    place = balancer_place(folder)
    assert pids == {place.pid()}
    assert clean(place.log)


async def test_garbage_huge_and_silent_clients(tmp_path: Path) -> None:
    """a client sends garbage, one a request line over the limit, one connects and says nothing -> each bad one gets a BadRequest or is closed, the host keeps answering others, and host.log stays clean"""
    place = HostPlace(tmp_path / "host")
    pid = await ensure_host(place, MODULE)
    _, silent = await asyncio.open_unix_connection(str(place.socket))

    async def raw(data: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(place.socket))
        writer.write(data)
        await writer.drain()
        answer = await reader.readline()
        writer.close()
        return answer

    for garbage in (
        b"\xff\xfe not json\n",
        b"[1, 2]\n",
        b'"x"\n',
        b'{"method": "echo", "args": 3}\n',
    ):
        assert b"BadRequest" in await raw(garbage)
    assert b"at most" in await raw(b"x" * (LINE_LIMIT + 10) + b"\n")
    assert await call(place.socket, "echo", value="still") == "still"
    assert await stop_host(place)
    assert not _alive(pid)
    silent.close()
    assert place.log.read_text() == ""


def interrupted_while_starting(folder: Path, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """`deploydeck ARGS` in a process group of its own, sent SIGINT (Ctrl-C) while the group's
    balancer host it launched is held starting (held_start/sitecustomize.py); the host is let
    go once the command has ended. The process and its output."""
    gate = folder / "let-the-host-start"
    started = subprocess.Popen(
        [*DEPLOYDECK, *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_as_at_a_terminal,
        env={
            **os.environ,
            "PYTHONPATH": f"{HELD_START}{os.pathsep}{REPO}",
            "HOLD_HOST_START": str(gate),
        },
    )
    place = balancer_place(folder)
    asyncio.run(_until(lambda: _held_host(place), 120))
    os.killpg(started.pid, signal.SIGINT)
    out, err = started.communicate(timeout=300)
    gate.touch()
    asyncio.run(_until(lambda: place.pid() is not None, 120))
    return started, out, err


def _held_host(place: HostPlace) -> bool:
    """Whether a host for `place` was launched (it is held before it can listen)."""
    folder = str(place.folder).encode()
    return any(
        command[i : i + 2] == [b"--folder", folder]
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        for command in [_command(p)]
        for i in range(len(command))
    )


def test_ctrl_c_of_balancer_start_while_the_host_starts(tmp_path: Path) -> None:
    """SIGINT reaches `deploydeck balancer start`'s process group while its host starts -> the command ends with status 130 and one line, no traceback; a host left is whole (pid file, answers), and the next start works"""
    folder = balanced_workspace(tmp_path / "ws")
    place = balancer_place(folder)
    start, out, err = interrupted_while_starting(folder, "balancer", "start", "fleet")
    assert start.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip() == "interrupted"
    host = place.pid()  # the host it launched came up whole: pid file, socket
    again = deploydeck(folder, "balancer", "start", "fleet")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("app/fleet: builtin listening on 127.0.0.1:")
    assert f"host pid {host}" in again.stdout
    assert clean(place.log)


def test_ctrl_c_of_create_deployment_wait_while_the_host_starts(tmp_path: Path) -> None:
    """SIGINT reaches `deploydeck create-deployment --wait`'s process group while the group's balancer host starts -> no traceback, the deployment ends (stopped or failed), a host left is whole, and `balancer start` then works"""
    folder = balanced_workspace(tmp_path / "ws")
    place = balancer_place(folder)
    revision = make_revision(tmp_path, "v1")
    _, out, err = interrupted_while_starting(folder, *create_deployment(revision), "--wait")
    assert "Traceback" not in out + err, (out, err)
    listed = deploydeck(folder, "list-deployments", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    (deployment,) = json.loads(listed.stdout)["deployments"]
    assert deployment["status"] in ("Stopped", "Failed"), deployment
    again = deploydeck(folder, "balancer", "start", "fleet")
    assert again.returncode == 0, again.stderr
    assert place.pid() is not None
    assert clean(place.log)


def test_balancer_stop_when_nothing_runs(tmp_path: Path) -> None:
    """`deploydeck balancer stop GROUP` with no host running -> one line saying so, status 0; --output json gives {application, group, stopped: false}"""
    folder = balanced_workspace(tmp_path / "ws")
    text = deploydeck(folder, "balancer", "stop", "fleet")
    assert (text.returncode, text.stdout, text.stderr) == (
        0,
        "app/fleet: no balancer host was running\n",
        "",
    )
    plain = deploydeck(folder, "balancer", "stop", "fleet", "--output", "json")
    assert plain.returncode == 0
    assert json.loads(plain.stdout) == {"application": "app", "group": "fleet", "stopped": False}


def test_balancer_status_json_when_nothing_runs(tmp_path: Path) -> None:
    """`deploydeck balancer status --output json` with no host running -> status 0 and the same shape as when one runs, host null"""
    folder = balanced_workspace(tmp_path / "ws")
    shown = deploydeck(folder, "balancer", "status", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "balancers": [{"application": "app", "group": "fleet", "host": None}]
    }


def test_service_stop_when_no_service_was_deployed(tmp_path: Path) -> None:
    """`deploydeck service stop SERVICE` when no service was deployed -> one line naming the services there are, status 1; --output json gives {error}"""
    folder = balanced_workspace(tmp_path / "ws")
    text = deploydeck(folder, "service", "stop", "web")
    assert text.returncode == 1
    assert text.stdout.strip().splitlines() == [
        "ERROR: no service 'web' has been deployed here (services: none)"
    ]
    plain = deploydeck(folder, "service", "stop", "web", "--output", "json")
    assert plain.returncode == 1
    assert set(json.loads(plain.stdout)) == {"error"}


def test_service_stop_and_status_when_its_host_is_not_running(tmp_path: Path) -> None:
    """`deploydeck service stop web` when its host is already stopped -> one line saying so, status 0, json {service, stopped: false}; `service status --output json` keeps the shape it has while the host runs, hostPid null"""
    workspace = EcsWorkspace(tmp_path)
    workspace.first(workspace.register())
    running = status(workspace)
    assert deploydeck(tmp_path, "service", "stop", "web").returncode == 0
    text = deploydeck(tmp_path, "service", "stop", "web")
    assert (text.returncode, text.stdout, text.stderr) == (
        0,
        "service web: no host was running\n",
        "",
    )
    plain = deploydeck(tmp_path, "service", "stop", "web", "--output", "json")
    assert plain.returncode == 0
    assert json.loads(plain.stdout) == {"service": "web", "stopped": False}
    stopped = status(workspace)
    assert set(stopped) == set(running) and stopped["hostPid"] is None
    assert set(stopped["listeners"]) == set(running["listeners"]) == {"production", "test"}
    assert clean(Path(running["hostLog"]))


def test_service_status_of_a_hung_host(tmp_path: Path) -> None:
    """a service's host hangs (SIGSTOP) -> `service status` ends with status 1 saying the host is stuck, naming its pid, the command that ends it and its log; `service stop` then ends the host and its tasks"""
    workspace = EcsWorkspace(tmp_path)
    workspace.first(workspace.register())
    running = status(workspace)
    pid = running["hostPid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        shown = deploydeck(tmp_path, "service", "status", "web")
        assert shown.returncode == 1
        assert shown.stdout.startswith(
            f"ERROR: the host of service web (pid {pid}) did not answer within 10 s: it is "
            "stuck; `deploydeck service stop web` ends it"
        )
        assert running["hostLog"] in shown.stdout.replace("\n", "")
        stopped = deploydeck(tmp_path, "service", "stop", "web")
        assert stopped.stdout == "service web: its host and tasks are stopped\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: gone(pid))
    wait_for(lambda: not any(living_in_group(p) for p in task_pids(running)))


async def test_service_host_killed_under_the_open_console(tmp_path: Path) -> None:
    """the service's host is SIGKILLed while the console shows the deployment's task sets -> the console stays up and shows the deployment failed, and keys still work"""
    async with pending_replacement_on_screen(tmp_path, 2, tmp_path / "never") as opened:
        workspace, deployment, app, pilot = opened
        os.kill(status(workspace)["hostPid"], signal.SIGKILL)
        await console_wait(
            pilot, lambda: "Failed" in screen_rows(app), timeout=120, what="the failure"
        )
        assert "ECS_UPDATE_ERROR" in screen_rows(app)
        for key in ("tab", "down", "enter", "escape", "t", "escape"):
            await pilot.press(key)
        await pilot.pause()
        assert app.is_running
    assert workspace.wait(deployment)["status"] == "Failed"

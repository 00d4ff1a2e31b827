"""Hook scripts run for real: error codes, timeouts, process groups, output capture."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from engine.host import results
from engine.host.hooks import run_script, script_argv
from engine.host.logs import ScriptsLog
from engine.host.processes import group_members
from tests.host.harness import hook, pid_alive, write_tree
from tests.host.test_agent import ensure_user


async def run(
    tmp_path: Path,
    body: str,
    timeout: int = 30,
    mode: int = 0o755,
    runas: str | None = None,
    **kw,
):
    write_tree(tmp_path / "archive", {"s.sh": (body, mode)})
    if runas:
        (tmp_path / "archive").chmod(0o777)  # the script writes its children's pids there
    lines: list[tuple[str, str]] = []
    log = ScriptsLog(str(tmp_path / "logs" / "scripts.log"), "d-1", None)
    result = await run_script(
        hook("s.sh", timeout=timeout, runas=runas),
        event="ApplicationStart",
        index=0,
        archive_dir=str(tmp_path / "archive"),
        logs_dir=str(tmp_path / "logs"),
        env=dict(os.environ, **kw.pop("env", {})),
        log=log,
        on_output=lambda stream, line, when: lines.append((stream, line)),
        kill_grace=kw.pop("kill_grace", 1.0),
    )
    log.close()
    return result, lines


def script_in(folder: Path, location: str = "s.sh", *, timeout: int = 3600, **kw):
    """run_script for `location` in `folder`/archive, logging to `folder`/scripts.log, with the
    defaults of these tests (kill_grace 1 s); keyword arguments override."""
    kw.setdefault("kill_grace", 1)
    return run_script(
        hook(location, timeout=timeout),
        event="X",
        index=0,
        archive_dir=str(folder / "archive"),
        logs_dir=str(folder),
        env=dict(os.environ),
        log=ScriptsLog(str(folder / "scripts.log"), "d-1", None),
        **kw,
    )


async def test_success_captures_both_streams_in_order(tmp_path: Path) -> None:
    result, lines = await run(
        tmp_path, "#!/bin/sh\necho one\necho two >&2\necho three\nprintf tail"
    )
    assert result.error_code == results.SUCCESS and result.exit_code == 0
    assert [line for stream, line in lines if stream == "stdout"] == ["one\n", "three\n", "tail"]
    assert [line for stream, line in lines if stream == "stderr"] == ["two\n"]
    log = (tmp_path / "logs" / "scripts.log").read_text()
    assert "Script - s.sh\n" in log and "[stdout]one\n" in log and "[stderr]two\n" in log
    assert log.rstrip().endswith("[stdout]tail")
    # capture files are removed when nothing is left running
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["scripts.log"]


async def test_failure_reports_exit_code_and_tail(tmp_path: Path) -> None:
    result, _ = await run(tmp_path, "#!/bin/sh\necho about to fail\nexit 3\n")
    assert result.error_code == results.SCRIPT_FAILED
    assert result.exit_code == 3
    assert "exit code 3" in result.message
    assert "[stdout]about to fail" in result.log_tail


async def test_missing_script(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    log = ScriptsLog(str(tmp_path / "scripts.log"), "d-1", None)
    result = await run_script(
        hook("nope.sh"),
        event="X",
        index=0,
        archive_dir=str(tmp_path / "archive"),
        logs_dir=str(tmp_path),
        env={},
        log=log,
    )
    assert result.error_code == results.SCRIPT_MISSING
    assert str(tmp_path / "archive" / "nope.sh") in result.message


async def test_not_executable_is_made_executable(tmp_path: Path) -> None:
    result, lines = await run(tmp_path, "#!/bin/sh\necho ran\n", mode=0o644)
    assert result.ok and lines == [("stdout", "ran\n")]
    assert os.access(tmp_path / "archive" / "s.sh", os.X_OK)
    assert "not executable" in (tmp_path / "logs" / "scripts.log").read_text()


async def test_no_shebang_fails_with_a_hint(tmp_path: Path) -> None:
    result, _ = await run(tmp_path, "echo no shebang\n")
    assert result.error_code == results.SCRIPT_FAILED
    assert "#!/bin/bash" in result.message


@pytest.mark.parametrize(
    ("shebang", "failure"),
    [("#!/bin/sh", "exception FileNotFoundError"), ("#!/usr/bin/env sh", "exit code 127")],
)
async def test_windows_line_endings_are_named_with_the_fix(
    tmp_path: Path, shebang: str, failure: str
) -> None:
    result, _ = await run(tmp_path, shebang + "\r\necho hi\r\n")
    assert result.error_code == results.SCRIPT_FAILED
    assert failure in result.message
    assert "Windows (CRLF) line endings" in result.message and "dos2unix s.sh" in result.message


async def test_a_missing_interpreter_without_carriage_return_gets_no_crlf_hint(
    tmp_path: Path,
) -> None:
    result, _ = await run(tmp_path, "#!/usr/bin/env no-such-shell-xyz\necho hi\n")
    assert "exit code 127" in result.message and "CRLF" not in result.message


async def test_leading_slash_location_is_archive_relative(tmp_path: Path) -> None:
    write_tree(tmp_path / "archive", {"scripts/a.sh": "#!/bin/sh\necho hi\n"})
    log = ScriptsLog(str(tmp_path / "scripts.log"), "d-1", None)
    result = await run_script(
        hook("/scripts/a.sh"),
        event="X",
        index=0,
        archive_dir=str(tmp_path / "archive"),
        logs_dir=str(tmp_path),
        env=dict(os.environ),
        log=log,
    )
    assert result.ok


@pytest.mark.parametrize("climb", ["../outside.sh", "/../outside.sh", "scripts/../../outside.sh"])
async def test_a_location_outside_the_revision_is_not_run(tmp_path: Path, climb: str) -> None:
    """The appspec parser refuses `..` locations; the agent refuses them again on its own."""
    write_tree(tmp_path, {"outside.sh": f"#!/bin/sh\ntouch {tmp_path}/ran\n"})
    (tmp_path / "outside.sh").chmod(0o755)
    (tmp_path / "archive" / "scripts").mkdir(parents=True)
    result = await run_script(
        hook(climb),
        event="X",
        index=0,
        archive_dir=str(tmp_path / "archive"),
        logs_dir=str(tmp_path / "logs"),
        env=dict(os.environ),
        log=ScriptsLog(str(tmp_path / "scripts.log"), "d-1", None),
    )
    assert result.error_code == results.SCRIPT_FAILED
    assert "outside the revision" in result.message
    assert not (tmp_path / "ran").exists()


async def test_symlinks_in_the_revision_are_followed_only_while_they_stay_inside(
    tmp_path: Path,
) -> None:
    """A script reached through a symlinked folder of the revision runs; one whose link, or
    whose folder's link, leads out of the revision does not (its real path is checked, however
    the path to it was resolved before)."""
    archive = tmp_path / "archive"
    write_tree(archive, {"real/s.sh": f"#!/bin/sh\ntouch {tmp_path}/inside\n"})
    write_tree(tmp_path, {"outside/s.sh": f"#!/bin/sh\ntouch {tmp_path}/outside-ran\n"})
    for script in (archive / "real" / "s.sh", tmp_path / "outside" / "s.sh"):
        script.chmod(0o755)
    (archive / "linked").symlink_to("real")  # a folder link that stays inside
    (archive / "away").symlink_to(tmp_path / "outside")  # a folder link that leads out
    (archive / "out.sh").symlink_to(tmp_path / "outside" / "s.sh")  # a script link out

    async def location(where: str) -> results.ScriptResult:
        return await run_script(
            hook(where),
            event="X",
            index=0,
            archive_dir=str(archive),
            logs_dir=str(tmp_path / "logs"),
            env=dict(os.environ),
            log=ScriptsLog(str(tmp_path / "scripts.log"), "d-1", None),
        )

    assert (await location("linked/s.sh")).ok and (tmp_path / "inside").exists()
    for leading_out in ("away/s.sh", "out.sh"):
        result = await location(leading_out)
        assert result.error_code == results.SCRIPT_FAILED
        assert "outside the revision" in result.message
    assert not (tmp_path / "outside-ran").exists()
    missing = await location("real/gone.sh")
    assert missing.error_code == results.SCRIPT_MISSING


async def test_stdin_is_closed_and_cwd_is_the_revision(tmp_path: Path) -> None:
    result, lines = await run(
        tmp_path, "#!/bin/sh\npwd\nif read x; then echo got-input; else echo eof; fi\n"
    )
    assert result.ok
    assert [line for _, line in lines] == [f"{tmp_path / 'archive'}\n", "eof\n"]


async def test_own_process_group(tmp_path: Path) -> None:
    _, lines = await run(tmp_path, "#!/bin/sh\nps -o pgid= -p $$\necho $$\n")
    pgid, pid = (int(line.strip()) for _, line in lines)
    assert pgid == pid != os.getpgrp()


async def test_timeout_ends_the_whole_group(tmp_path: Path) -> None:
    body = "#!/bin/sh\nsleep 300 &\necho $! > child.pid\nsleep 300\n"
    started = time.monotonic()
    result, _ = await run(tmp_path, body, timeout=1)
    assert result.error_code == results.SCRIPT_TIMED_OUT
    assert "within 1 seconds" in result.message
    assert time.monotonic() - started < 60  # not the 300 s the script would run
    child = int((tmp_path / "archive" / "child.pid").read_text())
    assert not pid_alive(child)


async def test_timeout_kills_a_term_ignoring_script(tmp_path: Path) -> None:
    body = "#!/bin/bash\ntrap '' TERM\n(trap '' TERM; sleep 300) &\necho $! > child.pid\nwhile true; do sleep 0.1; done\n"
    result, _ = await run(tmp_path, body, timeout=1, kill_grace=0.5)
    assert result.error_code == results.SCRIPT_TIMED_OUT
    assert "killed" in result.message
    child = int((tmp_path / "archive" / "child.pid").read_text())
    assert not pid_alive(child)


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


async def test_timeout_ends_groups_the_script_opened(tmp_path: Path) -> None:
    """A child the script moved to a session of its own (setsid) is ended with the script."""
    body = "#!/bin/sh\nsetsid sleep 301 &\necho $! > child.pid\nsleep 300\n"
    result, _ = await run(tmp_path, body, timeout=1)
    assert result.error_code == results.SCRIPT_TIMED_OUT
    (child,) = pids_in(tmp_path / "archive" / "child.pid")
    assert not pid_alive(child)


@pytest.mark.parametrize("ending", ["timeout", "stop"])
async def test_an_orphan_in_a_session_of_its_own_is_ended_too(tmp_path: Path, ending: str) -> None:
    """`(setsid cmd &)` leaves a process no group or parent links to the script: the
    DEPLOYDECK_HOOK_RUN value it inherited still marks it, and a timeout or stop ends it."""
    body = "#!/bin/sh\n(setsid sleep 301 & echo $! > child.pid)\nsleep 300\n"
    child_file = tmp_path / "archive" / "child.pid"
    if ending == "timeout":
        result, _ = await run(tmp_path, body, timeout=2)
        assert result.error_code == results.SCRIPT_TIMED_OUT
    else:
        task = asyncio.ensure_future(run(tmp_path, body, timeout=60))
        while not child_file.exists() or not child_file.read_text().strip():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the subshell has exited: the child's parent is init
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (child,) = pids_in(child_file)
    assert not pid_alive(child)


async def test_each_run_carries_its_own_marker(tmp_path: Path) -> None:
    """The hook sees DEPLOYDECK_HOOK_RUN, different on every run, so one run's stop can never
    end what another run (an earlier ApplicationStart's server) left running."""
    body = '#!/bin/sh\necho "$DEPLOYDECK_HOOK_RUN"\n'
    first, lines_a = await run(tmp_path / "a", body)
    second, lines_b = await run(tmp_path / "b", body)
    assert first.error_code == second.error_code == results.SUCCESS
    (a,), (b,) = [line for _, line in lines_a], [line for _, line in lines_b]
    assert a.strip() and b.strip() and a != b


@pytest.mark.parametrize("ending", ["timeout", "stop"])
async def test_runas_scripts_end_with_everything_they_started(
    world_readable_tmp: Path, ending: str
) -> None:
    """`su USER -c` runs the script in a new session; a timeout or a stop still ends the
    script and its background children, and none is left running as that user."""
    ensure_user("deploydeck-test")
    body = "#!/bin/sh\nsleep 301 &\necho $! >> pids\necho $$ >> pids\nsleep 302\n"
    pid_file = world_readable_tmp / "archive" / "pids"
    if ending == "timeout":
        result, _ = await run(world_readable_tmp, body, timeout=2, runas="deploydeck-test")
        assert result.error_code == results.SCRIPT_TIMED_OUT
    else:
        task = asyncio.ensure_future(
            run(world_readable_tmp, body, timeout=60, runas="deploydeck-test")
        )
        while not pid_file.exists() or len(pids_in(pid_file)) < 2:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    pids = pids_in(pid_file)
    assert len(pids) == 2
    assert [pid for pid in pids if pid_alive(pid)] == []


async def test_output_during_the_grace_period_shows_as_it_is_written(tmp_path: Path) -> None:
    """A script that handles SIGTERM by saying so, then takes its time: the line is passed on
    when written, not when the grace period ends."""
    body = (
        "#!/bin/bash\ntrap 'echo got TERM; sleep 2; exit 1' TERM\nwhile true; do sleep 0.1; done\n"
    )
    write_tree(tmp_path / "archive", {"s.sh": body})
    seen: dict[str, float] = {}
    started = time.monotonic()
    result = await script_in(
        tmp_path,
        timeout=1,
        on_output=lambda stream, line, when: seen.setdefault(line, time.monotonic()),
        kill_grace=5,
    )
    assert result.error_code == results.SCRIPT_TIMED_OUT
    assert seen["got TERM\n"] - started < 2.0  # SIGTERM at 1 s; the script ends at about 3 s


async def test_a_runas_script_outliving_su_is_reported(world_readable_tmp: Path) -> None:
    """`su` dies (SIGKILL) while the script it started runs on in its own session: the hook
    fails with the signal, and what is still running is reported, not lost."""
    ensure_user("deploydeck-test")
    body = "#!/bin/sh\nsleep 313 &\necho $! >> pids\necho $PPID > su.pid\nsleep 314\n"
    archive = world_readable_tmp / "archive"
    pid_file = archive / "pids"

    async def kill_su() -> None:
        while not (archive / "su.pid").exists() or not (archive / "su.pid").read_text().strip():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the hook notes the script's group meanwhile
        os.kill(int((archive / "su.pid").read_text()), signal.SIGKILL)

    killer = asyncio.ensure_future(kill_su())
    result, _ = await run(world_readable_tmp, body, timeout=60, runas="deploydeck-test")
    await killer
    try:
        assert result.error_code == results.SCRIPT_FAILED  # su reports its death as exit 137
        (child,) = pids_in(pid_file)
        assert child in result.left_running
    finally:
        for pid in result.left_running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_background_child_holding_stdout_does_not_hang(tmp_path: Path) -> None:
    # The classic agent hang: a server started with & that keeps the hook's stdout open.
    body = "#!/bin/sh\n(sleep 1; echo late; sleep 300) &\necho $! > child.pid\necho started\n"
    started = time.monotonic()
    result, _ = await run(tmp_path, body, timeout=60)
    assert time.monotonic() - started < 30  # not held until the 60 s timeout
    assert result.ok
    child = int((tmp_path / "archive" / "child.pid").read_text())
    try:
        assert result.left_running and child in result.left_running
        assert result.output_files and all(Path(p).exists() for p in result.output_files)
        # the child keeps writing to the kept capture file, not into a broken pipe
        stdout_file = Path(result.output_files[0])
        deadline = time.monotonic() + 5
        while "late" not in stdout_file.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "late" in stdout_file.read_text()
        assert pid_alive(child)
    finally:
        os.killpg(os.getpgid(child), 9)


async def test_cancellation_ends_the_group(tmp_path: Path) -> None:
    write_tree(
        tmp_path / "archive", {"s.sh": "#!/bin/sh\nsleep 300 &\necho $! > child.pid\nsleep 300\n"}
    )
    task = asyncio.ensure_future(script_in(tmp_path))
    child_pid = tmp_path / "archive" / "child.pid"
    while not child_pid.exists() or not child_pid.read_text().strip():
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int(child_pid.read_text())
    assert not pid_alive(child)
    assert group_members(child) == []


async def test_an_error_while_it_runs_still_ends_the_group(tmp_path: Path) -> None:
    """If passing output on fails (the engine's pipe broke), the error ends the script's
    group before it propagates: nothing is left running."""
    body = "#!/bin/sh\nsleep 300 &\necho $! > child.pid\necho ready\nsleep 300\n"
    write_tree(tmp_path / "archive", {"s.sh": body})

    def broken_pipe(stream: str, line: str, when: float) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        await script_in(tmp_path, on_output=broken_pipe)
    child = int((tmp_path / "archive" / "child.pid").read_text())
    assert not pid_alive(child)
    assert (
        "Interrupted; ending the script's process group" in (tmp_path / "scripts.log").read_text()
    )


async def test_a_stop_while_the_script_starts_leaves_nothing(tmp_path: Path) -> None:
    """Cancel at many moments around the spawn: whenever the script got to run, its
    background child is ended with it."""
    body = "#!/bin/sh\nsleep 300 &\necho $! > child.pid\nwait\n"
    for attempt in range(30):
        folder = tmp_path / str(attempt)
        write_tree(folder / "archive", {"s.sh": body})
        task = asyncio.ensure_future(script_in(folder))
        for _ in range(attempt):  # cancel after `attempt` turns of the event loop
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # a script left running would write its child's pid by now
        pid_file = folder / "archive" / "child.pid"
        if pid_file.exists() and pid_file.read_text().strip():
            assert not pid_alive(int(pid_file.read_text())), attempt


async def test_signal_death_is_a_failure(tmp_path: Path) -> None:
    result, _ = await run(tmp_path, "#!/bin/sh\nkill -9 $$\n")
    assert result.error_code == results.SCRIPT_FAILED
    assert result.signal == 9 and result.exit_code is None


async def test_environment_is_passed(tmp_path: Path) -> None:
    _, lines = await run(tmp_path, "#!/bin/sh\necho $CUSTOM\n", env={"CUSTOM": "value"})
    assert lines == [("stdout", "value\n")]


def test_command_lines_for_runas_and_sudo() -> None:
    assert script_argv("/a b/s.sh", None, False) == ["/a b/s.sh"]
    assert script_argv("/s.sh", None, True) == ["sudo", "/s.sh"]
    assert script_argv("/a b/s.sh", "bob", False) == ["su", "bob", "-c", "'/a b/s.sh'"]
    assert script_argv("/s.sh", "bob", True) == ["sudo", "su", "bob", "-c", "/s.sh"]
    # the values stay in the environment, out of the command line
    assert script_argv("/s.sh", None, True, {"B": "2", "A": "1"}) == [
        "sudo",
        "--preserve-env=A,B",
        "/s.sh",
    ]


async def test_runas_unknown_user(tmp_path: Path) -> None:
    write_tree(tmp_path / "archive", {"s.sh": "#!/bin/sh\nid -un\n"})
    log = ScriptsLog(str(tmp_path / "scripts.log"), "d-1", None)
    result = await run_script(
        hook("s.sh", runas="no-such-user-xyz"),
        event="X",
        index=0,
        archive_dir=str(tmp_path / "archive"),
        logs_dir=str(tmp_path),
        env=dict(os.environ),
        log=log,
    )
    assert result.error_code == results.SCRIPT_FAILED
    assert "no-such-user-xyz" in result.message


def test_a_stray_whose_pid_was_reused_is_not_signalled() -> None:
    """A marked process noted at SIGTERM time may die and its pid go to an unrelated process
    before the SIGKILL: the start time recorded with the pid tells them apart."""
    import subprocess

    from engine.host.processes import _read_stat, _send

    other = subprocess.Popen(["sleep", "60"])
    try:
        started = _read_stat(other.pid).started
        _send(set(), {other.pid: started - 1}, signal.SIGKILL)  # an older process
        time.sleep(0.2)
        assert other.poll() is None
        _send(set(), {other.pid: started}, signal.SIGKILL)
        assert other.wait(timeout=10) == -signal.SIGKILL
    finally:
        other.kill()


async def test_daemons_started_during_a_stop_are_ended_too(tmp_path: Path) -> None:
    """Hooks stopped together, one of them starting a `setsid` daemon every few ms: those it
    starts while the stop is under way are swept up at each poll, not only before the signal."""
    tasks, pid_file = [], tmp_path / "0" / "archive" / "pids"
    for n in range(30):
        body = (
            "while :; do setsid sleep 301 & echo $! >> pids; sleep 0.003; done\n"
            if n == 0
            else "sleep 300\n"
        )
        folder = tmp_path / str(n)
        write_tree(folder / "archive", {"s.sh": "#!/bin/sh\n" + body})
        tasks.append(asyncio.ensure_future(script_in(folder)))
    while not pid_file.exists() or len(pids_in(pid_file)) < 20:
        await asyncio.sleep(0.05)
    for task in reversed(tasks):  # the spawning hook is stopped last
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    left = [pid for pid in pids_in(pid_file) if pid_alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


async def test_a_long_line_of_multibyte_characters_is_cut_between_characters(
    tmp_path: Path,
) -> None:
    """A line longer than a piece is logged whole, with no character split at a cut, and the
    engine gets its first 64 Ki characters and how many follow."""
    script = "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x | sed 's/x/é/g'\necho\n"
    result, lines = await run(tmp_path, script)
    assert result.ok
    logged = (tmp_path / "logs" / "scripts.log").read_text()
    assert "é" * 100000 + "\n" in logged and "\ufffd" not in logged
    assert lines == [("stdout", "é" * 65536 + "... [34465 more characters in scripts.log]\n")]


def test_a_cut_never_splits_a_secret() -> None:
    from engine.host.hooks import cut_point

    data = b"a" * 10 + b"SECRET" + b"b" * 10
    assert cut_point(data, 12, [b"SECRET"]) == 10
    assert cut_point(data, 16, [b"SECRET"]) == 16
    assert cut_point("aé".encode(), 2) == 1


def test_each_long_line_of_a_multi_line_secret_is_masked() -> None:
    from engine.host.logs import Redactor

    redact = Redactor(["-----BEGIN KEY-----\nMIIEowIBAAKCAQEAx9Qk2v\nab\n-----END KEY-----\n"])
    assert redact("[stdout]MIIEowIBAAKCAQEAx9Qk2v\n") == "[stdout]***\n"
    assert redact("[stdout]ab\n") == "[stdout]ab\n"  # too short to mask on its own

"""What the agent's per-instance work costs grows with the fleet, not faster: hooks ending
together share their /proc scans, marker scans skip processes older than the running hooks,
the tree writer opens each directory once, and the cleanup replay looks at each path once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from engine.host import bundle_read, extract, install, processes
from engine.host.hooks import run_script
from engine.host.logs import ScriptsLog
from tests.host.harness import hook, write_tree


async def run_hooks(tmp_path: Path, bodies: list[str]) -> list:
    """The scripts `bodies`, each in a folder of its own, run together."""

    async def one(n: int, body: str):
        folder = tmp_path / str(n)
        write_tree(folder / "archive", {"s.sh": (body, 0o755)})
        log = ScriptsLog(str(folder / "logs" / "scripts.log"), "d-1", None)
        try:
            return await run_script(
                hook("s.sh", timeout=60),
                event="ApplicationStart",
                index=0,
                archive_dir=str(folder / "archive"),
                logs_dir=str(folder / "logs"),
                env=dict(os.environ),
                log=log,
                kill_grace=1.0,
            )
        finally:
            log.close()

    return await asyncio.gather(*(one(n, body) for n, body in enumerate(bodies)))


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[object]:
    """Record the first argument of every call to owner.name."""
    calls: list[object] = []
    real = getattr(owner, name)

    def counting(*args, **kwargs):
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


async def test_hooks_ending_together_share_their_proc_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 hooks released at once: far fewer /proc scans than hooks, and none is missed."""
    gate = tmp_path / "gate"
    scans = count_calls(monkeypatch, processes, "_read_process_table")
    body = f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.01; done\necho done\n"

    async def open_gate() -> None:
        await asyncio.sleep(0.5)
        gate.touch()

    opener = asyncio.ensure_future(open_gate())
    results = await run_hooks(tmp_path, [body] * 20)
    await opener
    assert all(r.ok and not r.left_running for r in results)
    assert 1 <= len(scans) < 10


async def test_an_orphan_daemon_a_hook_left_is_still_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`(setsid daemon &)` left by a hook that succeeded is reported by its marker, while the
    marker scan reads no environment of a process older than the hook (this test's own)."""
    environ_reads = []
    real_read = processes._read_proc_file

    def reading(pid: object, name: str) -> bytes:
        if name == "environ":
            environ_reads.append(int(str(pid)))
        return real_read(pid, name)

    monkeypatch.setattr(processes, "_read_proc_file", reading)
    # the daemon says when it runs (not mid-exec, when /proc cannot show its environment)
    body = (
        "#!/bin/sh\n(setsid sh -c 'echo > up; while :; do sleep 1; done' & echo $! > child.pid)\n"
        "while [ ! -e up ]; do sleep 0.01; done\necho started\n"
    )
    (result,) = await run_hooks(tmp_path, [body])
    child = int((tmp_path / "0" / "archive" / "child.pid").read_text())
    try:
        assert result.ok
        assert child in result.left_running
        assert child in environ_reads
        assert os.getpid() not in environ_reads and 1 not in environ_reads
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    assert processes._runs == {}  # the run is forgotten once it ended


def test_a_directory_bundle_opens_each_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 files in two folders: each folder is opened once on each side, not once per file."""
    files = {f"site/css/s{n}.css": "body {}\n" for n in range(15)}
    files.update({f"site/js/m{n}.js": "let x;\n" for n in range(15)})
    bundle = write_tree(tmp_path / "bundle", files)
    opened = count_calls(monkeypatch, bundle_read, "_open_child_directory")
    extract.copy_directory_bundle(bundle, tmp_path / "dest")
    assert sorted(p.name for p in (tmp_path / "dest" / "site" / "js").iterdir()) == sorted(
        f"m{n}.js" for n in range(15)
    )
    assert len(opened) <= 6  # site, site/css, site/js on each side


def test_cleanup_replay_removes_each_file_with_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying the cleanup of 20 files, a link and their folder stats none of them."""
    folder = tmp_path / "srv"
    folder.mkdir()
    paths = [str(folder / f"f{n}") for n in range(20)]
    for path in paths:
        Path(path).write_text("x")
    (tmp_path / "link").symlink_to(folder)  # a link is removed, never what it points to
    stats = count_calls(monkeypatch, os, "stat")
    lstats = count_calls(monkeypatch, os, "lstat")
    install.replay_cleanup([str(tmp_path / "link"), *reversed(paths), str(folder)])
    monkeypatch.undo()
    assert not folder.exists() and not (tmp_path / "link").is_symlink()
    assert stats == [] and lstats == []

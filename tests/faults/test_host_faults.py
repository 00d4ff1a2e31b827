"""Fault matrix: the per-host agent (bundles, Install, hooks, logs) under hostile input."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

from engine.host.layout import DeploymentRoot
from tests import command_line
from tests.command_line import DEPLOYDECK, REPO, environment, group_args
from tests.host.harness import Host, appspec, hook, permission, pid_alive, write_tree


def run_local(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DEPLOYDECK, "local", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def add_file(tar: tarfile.TarFile, name: str, content: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(content), mode
    tar.addfile(info, io.BytesIO(content))


def tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            add_file(tar, name, content)
    return path


def local_env(tmp_path: Path) -> dict:
    return dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))


def copy_all_appspec(destination: Path) -> bytes:
    return (
        f"version: 0.0\nos: linux\nfiles:\n  - source: /\n    destination: {destination}\n".encode()
    )


# -- 1. file names holding a newline -------------------------------------------------------


def test_a_member_name_with_a_newline_is_refused_by_deploydeck_local(tmp_path: Path) -> None:
    """A bundle member named "a\\n/some/path" -> refused before anything runs, naming the member; the file at /some/path survives."""
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    dest = tmp_path / "scratch"
    bundle = tgz(
        tmp_path / "it.tgz",
        {"appspec.yml": copy_all_appspec(dest), f"a\n{victim}": b"x"},
    )
    done = run_local("-l", str(bundle), "-t", "tgz", "-g", "g1", env=local_env(tmp_path))
    assert done.returncode == 1
    assert "control character '\\n'" in done.stdout and repr(f"a\n{victim}") in done.stdout
    assert not dest.exists()
    other = tgz(tmp_path / "other.tgz", {"appspec.yml": copy_all_appspec(dest), "b": b"b"})
    done = run_local("-l", str(other), "-t", "tgz", "-g", "g1", env=local_env(tmp_path))
    assert done.returncode == 0, done.stdout
    assert victim.read_text() == "keep me"


async def test_a_directory_revision_with_a_newline_name_is_refused_on_a_fleet_instance(
    tmp_path: Path,
) -> None:
    """A directory revision holding a file named "a\\n<path>" -> DownloadBundle refuses it on the instance, naming the member."""
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    revision = write_tree(tmp_path / "rev", {"appspec.yml": "", f"a\n{victim}": "x"})
    host = Host(root=tmp_path / "instance" / "agent")
    spec = appspec([("/", "/srv/app")])
    (result,) = await host.deploy(
        revision, spec, ["DownloadBundle"], fs_root=str(tmp_path / "instance" / "fs")
    )
    assert not result.ok
    # a folder cannot hold "/" in a name: the member refused is the folder "a\n" above it
    assert "control character" in result.message and "member 'a\\n'" in result.message
    assert victim.read_text() == "keep me"


async def test_a_newline_name_made_by_a_hook_cannot_pose_as_a_cleanup_entry(
    tmp_path: Path,
) -> None:
    """A hook creates "a\\n<path>" in the revision before Install -> the cleanup record keeps it one entry; the next install removes only what was placed."""
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    dest = tmp_path / "dest"
    maker = (
        f"#!/bin/sh\nf=$(printf 'site/a\\n%s' '{victim}')\n"
        'mkdir -p "$(dirname "$f")" && printf x > "$f"\n'
    )
    v1 = write_tree(tmp_path / "v1", {"appspec.yml": "", "site/b": "b", "make.sh": maker})
    spec = appspec([("site", str(dest))], hooks={"BeforeInstall": [hook("make.sh")]})
    host = Host(root=tmp_path / "root")
    results = await host.deploy(v1, spec, ["DownloadBundle", "BeforeInstall", "Install"])
    assert all(r.ok for r in results), results[-1].message
    assert (dest / f"a\n{victim}").exists()
    v2 = write_tree(tmp_path / "v2", {"appspec.yml": "", "site/c": "c"})
    results = await host.deploy(v2, appspec([("site", str(dest))]), ["DownloadBundle", "Install"])
    assert all(r.ok for r in results), results[-1].message
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in dest.iterdir()) == ["c"]


async def test_a_cleanup_file_poisoned_by_an_older_agent_is_not_replayed(tmp_path: Path) -> None:
    """An old one-path-per-line cleanup file listing a path the install never placed -> Install fails before removing anything, naming the entry."""
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    dest = tmp_path / "dest"
    host = Host(root=tmp_path / "root")
    v1 = write_tree(tmp_path / "v1", {"appspec.yml": "", "site/a": "a"})
    assert all(
        r.ok
        for r in await host.deploy(
            v1, appspec([("site", str(dest))]), ["DownloadBundle", "Install"]
        )
    )
    cleanup = Path(DeploymentRoot(str(host.root)).cleanup_file(host.group))
    # what the one-path-per-line format recorded for a member named "a\n<victim>"
    cleanup.write_text(f"{dest}\n{dest / 'a'}\n{victim}\n")
    v2 = write_tree(tmp_path / "v2", {"appspec.yml": "", "site/b": "b"})
    results = await host.deploy(v2, appspec([("site", str(dest))]), ["DownloadBundle", "Install"])
    assert not results[-1].ok
    assert repr(str(victim)) in results[-1].message and "nothing was removed" in results[-1].message
    assert victim.read_text() == "keep me" and (dest / "a").exists()


async def test_a_cleanup_entry_outside_the_instance_folder_is_not_replayed(tmp_path: Path) -> None:
    """A cleanup entry outside a local instance's folder -> Install refuses it before removing anything."""
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    fs_root = tmp_path / "instance" / "fs"
    host = Host(root=tmp_path / "instance" / "agent")
    v1 = write_tree(tmp_path / "v1", {"appspec.yml": "", "site/a": "a"})
    spec = appspec([("site", "/srv/app")])
    assert all(
        r.ok
        for r in await host.deploy(v1, spec, ["DownloadBundle", "Install"], fs_root=str(fs_root))
    )
    cleanup = Path(DeploymentRoot(str(host.root)).cleanup_file(host.group))
    os.remove(DeploymentRoot(str(host.root)).install_json(host.group))  # no instructions on record
    with cleanup.open("a") as f:
        f.write(json.dumps({"remove": str(victim)}) + "\n")
    results = await host.deploy(v1, spec, ["DownloadBundle", "Install"], fs_root=str(fs_root))
    assert not results[-1].ok and "outside the instance folder" in results[-1].message
    assert victim.read_text() == "keep me"


# -- 6. ACLs naming unknown users ----------------------------------------------------------


async def test_an_acl_naming_an_unknown_user_fails_install_before_cleanup(tmp_path: Path) -> None:
    """An ACL entry naming a user this host lacks -> Install fails naming the entry, with the previous revision's files still in place."""
    dest = tmp_path / "dest"
    host = Host(root=tmp_path / "root")
    v1 = write_tree(tmp_path / "v1", {"appspec.yml": "", "site/a": "a"})
    events = ["DownloadBundle", "Install"]
    assert all(r.ok for r in await host.deploy(v1, appspec([("site", str(dest))]), events))
    v2 = write_tree(tmp_path / "v2", {"appspec.yml": "", "site/b": "b"})
    for acl, problem in (
        ("user:nosuchuser:rwx", "names the user 'nosuchuser', which does not exist"),
        ("group:nosuchgroup:r--", "names the group 'nosuchgroup', which does not exist"),
        ("user:bob:rwz", "is not a valid entry"),
    ):
        spec = appspec([("site", str(dest))], permissions=[permission(str(dest), acls=[acl])])
        results = await host.deploy(v2, spec, events)
        assert not results[-1].ok and repr(acl) in results[-1].message
        assert problem in results[-1].message and "setfacl" not in results[-1].message
        assert sorted(p.name for p in dest.iterdir()) == ["a"]


# -- 9. bundles that are not files ---------------------------------------------------------


def test_a_device_or_fifo_as_the_bundle_is_refused_by_deploydeck_local(tmp_path: Path) -> None:
    """`deploydeck local -l /dev/zero` or a FIFO -> refused at once, before anything reads it."""
    fifo = tmp_path / "bundle.tar"
    os.mkfifo(fifo)
    for location in ("/dev/zero", str(fifo)):
        for kind in ("tar", "directory"):
            done = run_local("-l", location, "-t", kind, env=local_env(tmp_path))
            assert done.returncode == 1
            assert f"Refusing bundle {location!r}" in done.stdout, done.stdout
            assert "not a regular file or a directory" in done.stdout, done.stdout


def test_a_device_or_fifo_is_refused_by_the_revision_scan(tmp_path: Path) -> None:
    """A fleet deployment's bundle path that is a device or a FIFO -> a BundleError naming it."""
    from engine.revision import BundleError, open_bundle

    fifo = tmp_path / "bundle.tgz"
    os.mkfifo(fifo)
    for location in ("/dev/zero", str(fifo)):
        for kind in ("tar", None):
            try:
                open_bundle(location, kind)
            except BundleError as error:
                assert error.reason == "not_a_file" and location in str(error)
            else:
                raise AssertionError(f"{location} was accepted")


async def test_a_fifo_as_the_bundle_is_refused_by_download_bundle(tmp_path: Path) -> None:
    """DownloadBundle given a FIFO (or a device) as the bundle -> it fails naming the path instead of blocking."""
    fifo = tmp_path / "bundle.tgz"
    os.mkfifo(fifo)
    host = Host(root=tmp_path / "root")
    for location in (fifo, Path("/dev/zero")):
        (result,) = await host.deploy(
            location,
            appspec(),
            ["DownloadBundle"],
            bundle={"path": str(location), "type": "tgz", "sha256": "0" * 64},
        )
        assert not result.ok and "not a regular file or a directory" in result.message


# -- 2. secrets in hooks and logs ----------------------------------------------------------

SECRET = "s3cr3t-Pa55-word"


def secret_workspace(folder: Path) -> Path:
    """One local instance whose DB_PASSWORD is secret."""
    from tests.engine.fleet import write_workspace

    env = {"i01": {"DB_PASSWORD": {"value": SECRET, "secret": True}}}  # type: ignore[dict-item]
    return write_workspace(folder, 1, env=env)


async def test_a_sudo_hook_never_shows_a_secret_on_a_command_line(tmp_path: Path) -> None:
    """A `sudo: true` hook on an instance with a secret variable -> the value reaches the script through its environment, never a command line ps can show."""
    from engine.deployments.fleet import build_targets
    from engine.workspace import load_workspace
    from tests.conftest import require_tool

    require_tool("sudo")
    target = build_targets(load_workspace(secret_workspace(tmp_path)).unwrap(), ["i01"])["i01"]
    out = tmp_path / "out"
    script = (
        "#!/bin/sh\n"
        f'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done > "{out}.cmdlines"\n'
        f'[ "$DB_PASSWORD" = "{SECRET}" ] && echo got-it > "{out}.env"\n'
    )
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "ps.sh": script})
    spec = appspec(hooks={"AfterInstall": [hook("ps.sh", sudo=True)]})
    host = Host(root=target.agent_root)
    for event in ("DownloadBundle", "Install", "AfterInstall"):
        command = host.command(event, "d-SUDO00001", revision, spec)
        result = await target.run(command, lambda message: None)
        assert result.ok, result.message
    cmdlines = Path(f"{out}.cmdlines").read_text()
    assert "sudo --preserve-env=" in cmdlines  # the sudo process was there to be seen
    assert SECRET not in cmdlines
    assert Path(f"{out}.env").read_text() == "got-it\n"


async def test_hook_output_with_a_secret_is_masked_in_every_agent_log(tmp_path: Path) -> None:
    """A hook printing a secret value -> scripts.log, the deployments log, the output sent and the tail show `***`; the logs are 0600 in 0700 folders."""
    from engine.deployments.fleet import build_targets
    from engine.workspace import load_workspace

    target = build_targets(load_workspace(secret_workspace(tmp_path)).unwrap(), ["i01"])["i01"]
    long_line = "y" * (3 * 65536 - 7) + SECRET + "z" * 1000  # a secret across a piece boundary
    script = (
        f'#!/bin/sh\necho "password is $DB_PASSWORD"\necho "$DB_PASSWORD" >&2\necho "{long_line}"\n'
        "printf 'no newline at the end %s' \"$DB_PASSWORD\"\n"
    )
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "leak.sh": script})
    spec = appspec(hooks={"AfterInstall": [hook("leak.sh")]})
    host = Host(root=target.agent_root)
    messages: list[dict] = []
    for event in ("DownloadBundle", "Install", "AfterInstall"):
        result = await target.run(
            host.command(event, "d-LEAK00001", revision, spec), messages.append
        )
        assert result.ok, result.message
    scripts_log = host.deployment_dir("d-LEAK00001") / "logs" / "scripts.log"
    deployments_log = host.root / "deployment-logs" / "codedeploy-agent-deployments.log"
    for log in (scripts_log, deployments_log):
        text = log.read_text()
        assert (
            SECRET not in text and "password is ***" in text and "no newline at the end ***" in text
        )
        assert "y" * 100 + "***" + "z" * 100 in text.replace("\n", "")
        assert log.stat().st_mode & 0o777 == 0o600
        assert log.parent.stat().st_mode & 0o777 == 0o700
    output = [m["line"] for m in messages if m.get("type") == "output"]
    assert output and not any(SECRET in line for line in output)
    assert SECRET not in result.log_tail and "***" in result.log_tail


# -- 8. memory and hook output -------------------------------------------------------------

MEMORY_DRIVER = """
import asyncio, json, resource, sys
from engine.host import agent

def kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def main(root, revision):
    sink = open("/dev/null", "w")
    command = {
        "deployment_id": "d-BIG000001", "deployment_group_id": "g", "root_dir": root,
        "bundle": {"path": revision, "type": "directory"}, "kill_grace_seconds": 1,
        "appspec": {"hooks": {"AfterInstall": [{"location": "big.sh", "timeout": 3600}]}},
    }
    done = await agent.execute(dict(command, command="DownloadBundle"))
    assert done.ok, done.message
    before = kib()
    done = await agent.execute(
        dict(command, command="AfterInstall"), lambda m: sink.write(json.dumps(m) + "\\n")
    )
    print(json.dumps({"ok": done.ok, "message": done.message, "before": before, "after": kib()}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_hook_printing_200_mb_keeps_the_agent_memory_bounded(tmp_path: Path) -> None:
    """A hook printing ~200 MB, 120 MB of it on one line -> the agent's memory stays flat (output streams to scripts.log in bounded pieces)."""
    script = (
        "#!/bin/sh\nhead -c 120000000 /dev/zero | tr '\\0' x\necho\n"
        "yes \"$(head -c 999 /dev/zero | tr '\\0' y)\" | head -n 80000\n"
    )
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "big.sh": script})
    root = tmp_path / "root"
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_DRIVER, str(root), str(revision)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    assert measured["ok"], measured["message"]
    growth_mb = (measured["after"] - measured["before"]) / 1024
    assert growth_mb < 300, f"peak RSS grew by {growth_mb:.0f} MB"
    scripts_log = root / "g" / "d-BIG000001" / "logs" / "scripts.log"
    assert scripts_log.stat().st_size > 200_000_000  # every byte streamed to the log


# -- 11. daemons left by a hook ------------------------------------------------------------


async def test_every_process_a_hook_leaves_running_is_reported(tmp_path: Path) -> None:
    """A hook starting a server and a setsid daemon -> the result names every surviving pid, not only those left in its process group."""
    import signal

    pids = tmp_path / "pids"
    script = (
        "#!/bin/sh\n"
        f'sleep 300 > /dev/null 2>&1 &\necho $! >> "{pids}"\n'
        f'setsid sleep 300 > /dev/null 2>&1 &\necho $! >> "{pids}"\n'
        f"(setsid sh -c 'sleep 300 & echo $! >> \"{pids}\"; wait' > /dev/null 2>&1 &)\n"
        f'while [ "$(wc -l < "{pids}")" -lt 3 ]; do sleep 0.05; done\n'
    )
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "start.sh": script})
    host = Host(root=tmp_path / "root")
    spec = appspec(hooks={"ApplicationStart": [hook("start.sh")]})
    try:
        results = await host.deploy(revision, spec, ["DownloadBundle", "ApplicationStart"])
        assert all(r.ok for r in results), results[-1].message
        started = {int(p) for p in pids.read_text().split()}
        left = set(results[-1].scripts[0].left_running)
        assert started <= left, f"started {sorted(started)}, reported {sorted(left)}"
        note = results[-1].notes[0]
        assert "processes" in note and all(str(pid) in note for pid in started)
    finally:
        for pid in [int(p) for p in pids.read_text().split()] if pids.exists() else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- 10. the deployment's files vanish; the disk fills -------------------------------------


async def test_a_hook_deleting_the_deployment_root_is_named_by_the_next_event(
    tmp_path: Path,
) -> None:
    """A hook that deletes the agent's deployment root -> the next event says the deployment's files vanished after DownloadBundle and which hook ran last, not "run DownloadBundle first"."""
    host = Host(root=tmp_path / "root")
    wipe = f'#!/bin/sh\nrm -rf "{host.root}"\n'
    revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "wipe.sh": wipe, "site/a": "a"})
    spec = appspec([("site", str(tmp_path / "dest"))], hooks={"BeforeInstall": [hook("wipe.sh")]})
    results = await host.deploy(revision, spec, ["DownloadBundle", "BeforeInstall", "Install"])
    assert [r.ok for r in results] == [True, True, False]
    message = results[-1].message
    assert "vanished after DownloadBundle" in message and "run DownloadBundle" not in message
    assert "BeforeInstall's script wipe.sh" in message and "deployment-archive" in message


async def test_a_hook_deleting_its_revision_is_named_by_the_next_hook(tmp_path: Path) -> None:
    """A hook that deletes its own unpacked revision -> the next hook event fails saying the files vanished after DownloadBundle, not "AppSpec not found"."""
    host = Host(root=tmp_path / "root")
    revision = write_tree(
        tmp_path / "v1", {"appspec.yml": "", "wipe.sh": '#!/bin/sh\nrm -rf "$PWD"\n'}
    )
    hooks = {"AfterInstall": [hook("wipe.sh")], "ApplicationStart": [hook("wipe.sh")]}
    results = await host.deploy(
        revision,
        appspec(hooks=hooks),
        ["DownloadBundle", "Install", "AfterInstall", "ApplicationStart"],
    )
    assert [r.ok for r in results] == [True, True, True, False]
    assert "vanished after DownloadBundle" in results[-1].message
    assert "AfterInstall's script wipe.sh" in results[-1].message


async def test_download_bundle_on_a_full_disk_names_the_path_and_the_free_space(
    tmp_path: Path,
) -> None:
    """DownloadBundle failing with "no space left" -> the message names the folder it unpacked into and the space free there."""
    from tests.conftest import require_tool

    require_tool("mount")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        host = Host(root=small / "root")
        revision = write_tree(tmp_path / "v1", {"appspec.yml": "", "big": "x" * 4_000_000})
        (result,) = await host.deploy(revision, appspec(), ["DownloadBundle"])
        assert not result.ok
        archive = host.deployment_dir("d-TEST00001") / "deployment-archive"
        assert (
            f"No space left on the device while unpacking the directory bundle into {archive}"
            in result.message
        )
        assert " MiB (" in result.message and "bytes) free there" in result.message
    finally:
        subprocess.run(["umount", str(small)], check=True)


# -- 12b. a DownloadBundle cut short ---------------------------------------------------------


async def test_a_download_bundle_killed_midway_does_not_break_application_stop_on_resume(
    tmp_path: Path,
) -> None:
    """An agent SIGKILLed while DownloadBundle unpacks -> on resume ApplicationStop runs the last successful revision's script and DownloadBundle is redone."""
    import signal
    import time

    record = tmp_path / "stops.txt"
    stop = "#!/bin/sh\necho {tag} >> " + f'"{record}"\n'
    host = Host(root=tmp_path / "root")
    spec = appspec(hooks={"ApplicationStop": [hook("stop.sh")]})
    v1 = write_tree(tmp_path / "v1", {"appspec.yml": "", "stop.sh": stop.format(tag="v1")})
    assert all(r.ok for r in await host.deploy(v1, spec, ["DownloadBundle", "Install"]))
    files = {f"data/f{i:04d}": "x" * 100_000 for i in range(1500)}  # 150 MB to unpack
    v2 = write_tree(tmp_path / "v2", {"appspec.yml": "", "stop.sh": stop.format(tag="v2"), **files})
    command = host.command("DownloadBundle", "d-RESUMED01", v2, spec)
    agent_process = subprocess.Popen(
        [sys.executable, "-m", "engine.host", "run"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert agent_process.stdin is not None
    agent_process.stdin.write(json.dumps(command) + "\n")
    agent_process.stdin.flush()
    archive = host.deployment_dir("d-RESUMED01") / "deployment-archive"
    while not (archive / "data").exists() and agent_process.poll() is None:
        time.sleep(0.005)
    agent_process.send_signal(signal.SIGSTOP)  # frozen mid-copy, then killed as the runner was
    unpacked = len(list((archive / "data").iterdir()))
    agent_process.kill()
    agent_process.wait()
    assert 0 < unpacked < len(files), "the copy was not cut short; make the revision larger"
    results = await host.deploy(
        v2, spec, ["ApplicationStop", "DownloadBundle", "Install"], deployment_id="d-RESUMED01"
    )
    assert all(r.ok for r in results), [r.message for r in results]
    assert results[0].revision == "last_successful"
    assert record.read_text().splitlines() == ["v1"]  # the last successful revision's script
    assert len(list((archive / "data").iterdir())) == len(files)


async def test_hook_output_with_a_secret_is_masked_in_an_ssh_hosts_agent_logs(
    world_readable_tmp: Path,
) -> None:
    """A hook on an SSH host printing a secret value -> the host's scripts.log and deployments log show `***`, owner-only."""
    from tests.conftest import require_tool
    from tests.ssh import helpers as h
    from tests.ssh.sshd import SSHD, SshFleet

    require_tool(SSHD)
    fleet = SshFleet(world_readable_tmp / "ssh")
    try:
        fleet.add_hosts(["i01"])
        env = {"i01": {"DB_PASSWORD": {"value": SECRET, "secret": True}}}  # type: ignore[dict-item]
        path = fleet.write_workspace(world_readable_tmp / "workspace", ["i01"], env=env)
        leak = '#!/bin/sh\necho "password is $DB_PASSWORD"\necho "$DB_PASSWORD" >&2\n'
        revision = h.write_revision(world_readable_tmp, "v1", {"AfterInstall": leak})
        final = await h.deploy(h.engine_for(path), revision)
        assert final.status == "Succeeded"
        agent_root = fleet.hosts["i01"].agent_root
        logs = [*agent_root.glob("*/*/logs/scripts.log"), *agent_root.glob("deployment-logs/*")]
        assert len(logs) == 2
        for log in logs:
            assert SECRET not in log.read_text() and "password is ***" in log.read_text()
            assert log.stat().st_mode & 0o777 == 0o600
            assert log.parent.stat().st_mode & 0o777 == 0o700
    finally:
        await h.close_engines()
        fleet.shutdown()


def test_a_runner_killed_during_download_bundle_resumes_to_success(tmp_path: Path) -> None:
    """The runner SIGKILLed while DownloadBundle unpacks on an instance that ran a revision before -> `resume-deployment` succeeds: ApplicationStop uses the last complete revision."""
    import signal
    import time

    from tests.engine.fleet import make_revision, write_workspace

    write_workspace(tmp_path, 1)
    env = environment(HOME=str(tmp_path / "home"))

    def dd(*args: str) -> subprocess.CompletedProcess:
        return command_line.dd(tmp_path, *args, env=env, timeout=None)

    target = group_args()
    first = dd(
        "create-deployment", *target, "--revision", str(make_revision(tmp_path, "v1")), "--wait"
    )
    assert first.returncode == 0, first.stdout + first.stderr
    files = {f"data/f{i:04d}": "x" * 100_000 for i in range(1500)}  # 150 MB to unpack
    v2 = make_revision(tmp_path, "v2", files)
    created = dd("create-deployment", *target, "--revision", str(v2), "--output", "json")
    assert created.returncode == 0, created.stdout + created.stderr
    deployment_id = json.loads(created.stdout)["deploymentId"]
    agent_root = tmp_path / ".deploydeck" / "instances" / "i01" / "agent"
    deadline = time.monotonic() + 120
    while not list(agent_root.glob(f"*/{deployment_id}/deployment-archive/site/data")):
        assert time.monotonic() < deadline, "DownloadBundle never started unpacking"
        time.sleep(0.005)
    with sqlite3.connect(tmp_path / ".deploydeck" / "state.db") as db:
        (runner,) = db.execute(
            "SELECT engine_pid FROM deployments WHERE id=?", (deployment_id,)
        ).fetchone()
    os.kill(runner, signal.SIGSTOP)  # frozen mid-copy, then killed
    (archive,) = agent_root.glob(f"*/{deployment_id}/deployment-archive")
    unpacked = len(list((archive / "site" / "data").iterdir()))
    os.kill(runner, signal.SIGKILL)
    assert 0 < unpacked < len(files), "the copy was not cut short; make the revision larger"
    while pid_alive(runner):
        time.sleep(0.05)
    resumed = dd("resume-deployment", "--deployment-id", deployment_id, "--wait")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    shown = dd("get-deployment", "--deployment-id", deployment_id, "--output", "json")
    assert json.loads(shown.stdout)["deploymentInfo"]["status"] == "Succeeded", shown.stdout
    assert len(list((archive / "site" / "data").iterdir())) == len(files)

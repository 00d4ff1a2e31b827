"""One lifecycle command on one host: DownloadBundle, Install or a hook event.

The engine sends a command as a dict (see `docs/agent-protocol.md`); `execute` carries it out
and returns a CommandResult. Progress (scripts starting, output lines, notes) is reported
through `emit` as it happens. Nothing here raises for deployment problems: they become a Failed
result with CodeDeploy's error code and a message that says what to do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import os
import shutil
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from . import results
from .bundle_model import DEFAULT_MAX_BUNDLE_BYTES, UnsafeBundle
from .bundle_scan import check_bundle_path
from .extract import copy_directory_bundle, extract_bundle, strip_leading_directory
from .hashing import sha256_file
from .hooks import DEFAULT_KILL_GRACE_SECONDS, run_script
from .install import InstallError, install
from .layout import (
    DeploymentRoot,
    appspec_json,
    archive_dir,
    bundle_file,
    plain_name_problem,
    read_marker,
    scripts_log,
    write_atomically,
)
from .logs import Redactor, ScriptsLog
from .variables import AGENT_VARIABLES

Emit = Callable[[Dict[str, Any]], None]
# Runs DownloadBundle or Install (name, command, deployment dir) to its note; a stop cancels it,
# and it returns only once nothing of the step runs any more.
FileWork = Callable[[str, Dict[str, Any], str], Awaitable[str]]

DOWNLOAD_BUNDLE = "DownloadBundle"
INSTALL = "Install"
FILE_STEPS = (DOWNLOAD_BUNDLE, INSTALL)  # the steps that are file work, not scripts
# Events whose scripts come from an earlier revision while the current one is not unpacked yet.
PREVIOUS_REVISION_EVENTS = ("BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop")
DEFAULT_MAX_REVISIONS = 5


def _no_emit(_: Dict[str, Any]) -> None:
    pass


async def execute(
    command: Dict[str, Any], emit: Optional[Emit] = None, file_work: Optional[FileWork] = None
) -> results.CommandResult:
    """Carry out one command; cancellation (a stop) ends any running script's process group.
    `file_work` runs DownloadBundle and Install (by default in this process's threads)."""
    emit = emit or _no_emit
    name = command["command"]
    started = time.time()
    root = DeploymentRoot(command["root_dir"])
    group = command["deployment_group_id"]
    for key in ("deployment_group_id", "deployment_id"):
        problem = plain_name_problem(str(command[key]))
        if problem:
            return _failed(name, started, "The %s %r %s" % (key, command[key], problem))
    deployment_dir = root.deployment_dir(group, command["deployment_id"])
    try:
        os.makedirs(deployment_dir, exist_ok=True)
    except OSError as error:
        return _failed(
            name,
            started,
            "The deployment directory %s could not be created: %s"
            % (deployment_dir, error.strerror),
        )
    if name in FILE_STEPS:
        try:
            note = await (file_work or threaded_file_work)(name, command, deployment_dir)
        except (InstallError, DownloadError, UnsafeBundle, OSError, ValueError) as error:
            message = _describe(error)
            emit({"type": "note", "message": message, "time": time.time()})
            return _failed(name, started, message)
        if name == DOWNLOAD_BUNDLE:
            _note_step(deployment_dir, DOWNLOAD_BUNDLE)
        return _succeeded(name, started, [note])
    return await run_hook_event(command, root, deployment_dir, emit)


def file_step(
    name: str,
    command: Dict[str, Any],
    deployment_dir: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """DownloadBundle or Install (`name`) of `command`, in the calling thread: its note, or
    the error that ended it. Install asks `should_stop` before each change."""
    root = DeploymentRoot(command["root_dir"])
    if name == DOWNLOAD_BUNDLE:
        return download_bundle(command, root, deployment_dir)
    return install_revision(command, root, deployment_dir, should_stop)


async def threaded_file_work(name: str, command: Dict[str, Any], deployment_dir: str) -> str:
    """`file_step` in one of this process's agent threads."""
    return await _in_thread(lambda stop: file_step(name, command, deployment_dir, stop.is_set))


# DownloadBundle and Install run here, off the event loop; their own pool, so that work
# stopped while still queued can be taken back before it starts. One thread per CPU (at most
# four): the work is file system calls, and more threads only trade the interpreter lock.
_WORKERS = concurrent.futures.ThreadPoolExecutor(
    max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="deploydeck-agent"
)
_WORKER_POLL_SECONDS = 0.02


async def _in_thread(work: Callable[[threading.Event], str]) -> str:
    """Run `work` in a worker thread. A stop (cancellation) takes back work that has not
    started; work already running is told through the event it is given, and waited for,
    so a stopped command has nothing left running."""
    stop = threading.Event()
    job = _WORKERS.submit(work, stop)
    try:
        return await asyncio.wrap_future(job)
    except asyncio.CancelledError:
        if job.cancel():  # still queued: it never runs
            raise
        stop.set()
        while not job.done():
            try:
                await asyncio.sleep(_WORKER_POLL_SECONDS)
            except asyncio.CancelledError:
                pass  # a second stop: the thread still has to end first
        raise


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename:
        return "%s: %s" % (error.filename, error.strerror)
    return str(error)


def _succeeded(name: str, started: float, notes: List[str]) -> results.CommandResult:
    return results.CommandResult(
        name,
        results.SUCCEEDED,
        started=started,
        ended=time.time(),
        message=notes[0] if notes else "",
        notes=notes,
    )


def _failed(name: str, started: float, message: str, **extra: Any) -> results.CommandResult:
    return results.CommandResult(
        name,
        results.FAILED,
        error_code=results.UNKNOWN_ERROR,
        message=message,
        started=started,
        ended=time.time(),
        **extra,
    )


def remove_old_revisions(
    root: DeploymentRoot, group: str, current: str, max_revisions: int
) -> List[str]:
    """Keep at most `max_revisions` deployment dirs including the current one
    (docs/codedeploy-agent.md#revision-retention).

    The last successful one is never removed. Returns the directories removed.
    """
    group_dir = root.group_dir(group)
    try:
        entries = [os.path.join(group_dir, e) for e in os.listdir(group_dir)]
    except FileNotFoundError:
        return []
    current_dir = os.path.join(group_dir, current)
    others = [e for e in entries if os.path.normpath(e) != os.path.normpath(current_dir)]
    extra = len(others) - max_revisions + 1
    if extra <= 0:
        return []
    last = read_marker(root.last_successful_marker(group))
    candidates = [
        e for e in others if last is None or os.path.normpath(e) != os.path.normpath(last)
    ]
    candidates.sort(key=lambda p: os.path.getmtime(p))
    removed = candidates[:extra]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def download_bundle(command: Dict[str, Any], root: DeploymentRoot, deployment_dir: str) -> str:
    """Fetch and unpack the revision (docs/codedeploy-agent.md#downloadbundle); runs in a worker
    thread."""
    group = command["deployment_group_id"]
    max_revisions = int(command.get("max_revisions") or DEFAULT_MAX_REVISIONS)
    removed = remove_old_revisions(root, group, command["deployment_id"], max_revisions)
    bundle = command["bundle"]
    source, kind = bundle["path"], bundle["type"]
    check_bundle_path(source)  # before reading: /dev/zero never ends, a FIFO blocks
    max_bytes = int(command.get("max_bundle_bytes") or DEFAULT_MAX_BUNDLE_BYTES)
    target = archive_dir(deployment_dir)
    if os.path.lexists(appspec_json(deployment_dir)):
        os.remove(appspec_json(deployment_dir))  # recorded again once the unpacking is whole
    if os.path.lexists(target):
        shutil.rmtree(target)
    try:
        _unpack(command, deployment_dir, target, max_bytes)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise DownloadError(
            "No space left on the device while unpacking the %s bundle into %s: %s free there "
            "now (the partial copy was removed). Free space on that file system (older "
            "revisions are kept under %s, max_revisions %d) and deploy again."
            % (kind, target, _free_space(deployment_dir), root.root_dir, max_revisions)
        ) from None
    os.makedirs(root.instructions_dir, exist_ok=True)
    if command.get("appspec") is not None:
        write_atomically(appspec_json(deployment_dir), json.dumps(command["appspec"], indent=1))
    write_atomically(root.most_recent_marker(group), deployment_dir)
    note = "unpacked the %s bundle into %s" % (kind, target)
    if removed:
        note += "; removed %d old revision(s) (max_revisions %d)" % (len(removed), max_revisions)
    return note


class DownloadError(Exception):
    """DownloadBundle could not finish; the message names the path and what to do."""


def _unpack(command: Dict[str, Any], deployment_dir: str, target: str, max_bytes: int) -> None:
    bundle = command["bundle"]
    source, kind = bundle["path"], bundle["type"]
    if kind == "directory":
        copy_directory_bundle(source, target, max_bytes)
        return
    expected = bundle.get("sha256")
    if expected and sha256_file(source) != expected:
        raise ValueError(
            "The bundle %s does not match its sha256 %s: it changed or was damaged in "
            "transfer. Deploy it again." % (source, expected)
        )
    link = bundle_file(deployment_dir)
    if os.path.lexists(link):
        os.remove(link)
    try:
        os.symlink(os.path.abspath(source), link)
    except OSError:
        shutil.copyfile(source, link)
    extract_bundle(link, kind, target, max_bytes)
    strip_leading_directory(target)


def _free_space(path: str) -> str:
    try:
        st = os.statvfs(path)
    except OSError:
        return "an unknown amount"
    free = st.f_bavail * st.f_frsize
    return "%.1f MiB (%d bytes)" % (free / 1048576.0, free)


# This process's last step per deployment folder ("DownloadBundle", or a hook event and its
# scripts), to say what ran before a deployment's files vanished; the oldest are forgotten.
_LAST_STEPS: Dict[str, str] = {}
_MAX_LAST_STEPS = 1000


def _note_step(deployment_dir: str, step: str) -> None:
    key = os.path.normpath(deployment_dir)
    _LAST_STEPS.pop(key, None)
    _LAST_STEPS[key] = step
    while len(_LAST_STEPS) > _MAX_LAST_STEPS:
        _LAST_STEPS.pop(next(iter(_LAST_STEPS)))


def last_step(deployment_dir: str) -> Optional[str]:
    """This process's last step in `deployment_dir`, or None (handed to a worker process)."""
    return _LAST_STEPS.get(os.path.normpath(deployment_dir))


def recall_step(deployment_dir: str, step: Optional[str]) -> None:
    """Take `last_step` of another process as this one's."""
    if step is None:
        _LAST_STEPS.pop(os.path.normpath(deployment_dir), None)
    else:
        _note_step(deployment_dir, step)


def _vanished(root: DeploymentRoot, group: str, deployment_dir: str) -> Optional[str]:
    """Why this deployment's unpacked revision is missing although its DownloadBundle ran, or
    None when there is no sign that it ran."""
    last = _LAST_STEPS.get(os.path.normpath(deployment_dir))
    recorded = read_marker(root.most_recent_marker(group))
    downloaded = recorded is not None and os.path.normpath(recorded) == os.path.normpath(
        deployment_dir
    )
    if last is None and not downloaded:
        return None
    missing = [p for p in (archive_dir(deployment_dir), appspec_json(deployment_dir))]
    missing = [p for p in missing if not os.path.lexists(p)] or [deployment_dir]
    if last is None or last == DOWNLOAD_BUNDLE:
        who = "a hook or another process removed it"
    else:
        who = "the last step here was %s: it, or another process, removed it" % last
    return (
        "The deployment's files vanished after DownloadBundle unpacked them (%s is gone); %s. "
        "Keep hooks and other programs from deleting files under %s, then deploy again."
        % (" and ".join(missing), who, root.root_dir)
    )


def install_revision(
    command: Dict[str, Any],
    root: DeploymentRoot,
    deployment_dir: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> str:
    """Install (docs/codedeploy-agent.md#install) and mark this deployment as the last successful
    install."""
    group = command["deployment_group_id"]
    appspec = _load_appspec(deployment_dir)
    if appspec is None or not os.path.isdir(archive_dir(deployment_dir)):
        raise InstallError(
            _vanished(root, group, deployment_dir)
            or "No appspec was recorded for %s: run DownloadBundle for this deployment first."
            % deployment_dir
        )
    report = install(
        root,
        group,
        archive_dir(deployment_dir),
        appspec,
        command.get("file_exists_behavior") or "DISALLOW",
        command.get("fs_root"),
        should_stop,
    )
    write_atomically(root.last_successful_marker(group), deployment_dir)
    return report.summary()


def _load_appspec(deployment_dir: str) -> Optional[Dict[str, Any]]:
    try:
        with open(appspec_json(deployment_dir), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def revision_for_event(command: Dict[str, Any], root: DeploymentRoot, deployment_dir: str):
    """Which deployment directory's scripts an event runs
    (docs/codedeploy-agent.md#which-revision-an-event-uses), and its label.

    ApplicationStop and the block-traffic events run the last successful install's scripts
    (the most recent download's, for a blue/green rollback's block-traffic events): this
    deployment's own only once it is that install. Returns (directory or None, label); None
    means there is no such revision: a no-op.
    """
    event = command["command"]
    group = command["deployment_group_id"]
    rollback_bg = (
        command.get("deployment_creator") == "codeDeployRollback"
        and command.get("deployment_type") == "BLUE_GREEN"
    )
    if rollback_bg and event in ("BeforeBlockTraffic", "AfterBlockTraffic"):
        use = "most_recent"
    elif event in PREVIOUS_REVISION_EVENTS or (
        rollback_bg and event in ("BeforeAllowTraffic", "AfterAllowTraffic")
    ):
        use = "last_successful"
    else:
        use = "current"
    if use == "current":
        return deployment_dir, "current"
    # The marker names the last complete revision: a DownloadBundle or Install cut short (an
    # engine killed mid-way, then resumed) never makes its half-made revision the one used.
    marker = read_marker(
        root.last_successful_marker(group)
        if use == "last_successful"
        else root.most_recent_marker(group)
    )
    if marker is not None and os.path.normpath(marker) == os.path.normpath(deployment_dir):
        return deployment_dir, "current"
    return marker, use


async def run_hook_event(
    command: Dict[str, Any], root: DeploymentRoot, deployment_dir: str, emit: Emit
) -> results.CommandResult:
    event = command["command"]
    started = time.time()
    source_dir, label = revision_for_event(command, root, deployment_dir)
    if source_dir is None:
        note = "no previous successful revision on this host: nothing to run"
        return results.CommandResult(
            event,
            results.SUCCEEDED,
            started=started,
            ended=time.time(),
            message=note,
            revision="none",
            notes=[note],
        )
    appspec = _load_appspec(source_dir)
    if appspec is None or not os.path.isdir(archive_dir(source_dir)):
        gone = _vanished(root, command["deployment_group_id"], source_dir)
        if label == "current" and gone:
            return _failed(event, started, gone, revision=label)
        which = (
            "this deployment" if label == "current" else "the %s revision" % label.replace("_", " ")
        )
        message = (
            "AppSpec not found for %s: %s has no unpacked revision with a recorded appspec. "
            "If that revision was removed by hand, deploy with ignore-application-stop-failures "
            "or delete the marker in %s." % (which, source_dir, root.instructions_dir)
        )
        return _failed(event, started, message, revision=label)
    scripts = (appspec.get("hooks") or {}).get(event) or []
    if not scripts:
        return results.CommandResult(
            event,
            results.SUCCEEDED,
            started=started,
            ended=time.time(),
            message="no scripts for this event",
            revision=label,
        )

    env = hook_environment(command)
    redact = secret_redactor(command, env)
    log = ScriptsLog(
        scripts_log(deployment_dir), command["deployment_id"], root.deployments_log, redact
    )
    keep_env = {k: env[k] for k in deployment_variables(command) if k in env}
    done: List[results.ScriptResult] = []
    try:
        log.write("LifecycleEvent - %s\n" % event)
        for index, script in enumerate(scripts):
            emit({"type": "script_started", "location": script["location"], "time": time.time()})

            def on_output(stream: str, line: str, when: float, location=script["location"]) -> None:
                emit(
                    {
                        "type": "output",
                        "location": location,
                        "stream": stream,
                        "line": line,
                        "time": when,
                    }
                )

            def on_spawn(pid: int, location=script["location"]) -> None:
                emit(
                    {
                        "type": "script_spawned",
                        "location": location,
                        "pid": pid,
                        "time": time.time(),
                    }
                )

            result = await run_script(
                script,
                event=event,
                index=index,
                archive_dir=archive_dir(source_dir),
                logs_dir=os.path.dirname(scripts_log(deployment_dir)),
                env=env,
                log=log,
                keep_env=keep_env,
                on_output=on_output,
                on_spawn=on_spawn,
                kill_grace=float(command.get("kill_grace_seconds") or DEFAULT_KILL_GRACE_SECONDS),
                redact=redact,
            )
            done.append(result)
            emit(
                {
                    "type": "script_finished",
                    "location": result.location,
                    "error_code": result.error_code,
                    "message": result.message,
                    "exit_code": result.exit_code,
                    "time": time.time(),
                }
            )
            if not result.ok:
                return results.CommandResult(
                    event,
                    results.FAILED,
                    error_code=result.error_code,
                    script_name=result.location,
                    message=result.message,
                    log_tail=result.log_tail,
                    exit_code=result.exit_code,
                    started=started,
                    ended=time.time(),
                    revision=label,
                    scripts=done,
                )
    finally:
        log.close()
        if done:
            _note_step(
                deployment_dir,
                "%s's %s %s"
                % (
                    event,
                    "script" if len(done) == 1 else "scripts",
                    ", ".join(r.location for r in done),
                ),
            )
    notes = [
        "%s left %s running (as a server would): pid %s; output it inherited goes to %s"
        % (
            r.location,
            "a process" if len(r.left_running) == 1 else "processes",
            " ".join(map(str, r.left_running)),
            " and ".join(os.path.basename(p) for p in r.output_files),
        )
        for r in done
        if r.left_running
    ]
    return results.CommandResult(
        event,
        results.SUCCEEDED,
        started=started,
        ended=time.time(),
        revision=label,
        scripts=done,
        notes=notes,
        log_tail=done[-1].log_tail if done else "",
    )


def deployment_variables(command: Dict[str, Any]) -> List[str]:
    """The variables a hook gets from the deployment (kept across sudo)."""
    return list(AGENT_VARIABLES) + sorted(command.get("environment") or {})


def secret_redactor(command: Dict[str, Any], env: Dict[str, str]) -> Redactor:
    """Masks the values of the variables the command names in `secret_environment`."""
    names = command.get("secret_environment") or []
    return Redactor(env[name] for name in names if env.get(name))


# the agent's environment as last copied: the encoded variables it was copied from, the copy
_environment_copy: Tuple[Dict[Any, Any], Dict[str, str]] = ({}, {})


def agent_environment() -> Dict[str, str]:
    """A copy of this process's environment. os.environ is decoded afresh only when it changed
    since the last copy: decoding every variable takes longer than the rest of a hook's setup,
    and a deployment's hooks all start from the same environment."""
    global _environment_copy
    encoded = getattr(os.environ, "_data", None)  # CPython's encoded variables
    if not isinstance(encoded, dict):
        return dict(os.environ)
    seen, decoded = _environment_copy
    if encoded != seen:
        seen, decoded = dict(encoded), dict(os.environ)
        _environment_copy = (seen, decoded)
    return dict(decoded)


def hook_environment(command: Dict[str, Any]) -> Dict[str, str]:
    """The agent's environment plus the instance's variables and the reference's
    (docs/codedeploy-agent.md#hook-environment)."""
    env = dict(command.get("base_environment") or agent_environment())
    overlay: Dict[str, Optional[str]] = dict(command.get("environment") or {})
    overlay.update(
        {
            "LIFECYCLE_EVENT": command["command"],
            "DEPLOYMENT_ID": command["deployment_id"],
            "APPLICATION_NAME": command.get("application_name"),
            "DEPLOYMENT_GROUP_NAME": command.get("deployment_group_name"),
            "DEPLOYMENT_GROUP_ID": command["deployment_group_id"],
        }
    )
    if command.get("fs_root"):
        overlay["DEPLOYDECK_FS_ROOT"] = command["fs_root"]
    for key, value in overlay.items():
        if value is None:
            env.pop(key, None)  # a nil value unsets the variable, as Ruby's spawn does
        else:
            env[key] = str(value)
    return env

"""Process groups: find what is still running in one, and end it with the groups opened
under it (SIGTERM, grace, SIGKILL).

Every hook run also carries a unique value in its environment (HOOK_RUN_VARIABLE), which its
descendants inherit: a process that left the hook's groups and lost its parent (`(setsid cmd
&)`) is still found by it, unless it cleared its environment."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple

GROUP_POLL_SECONDS = 0.05
HOOK_RUN_VARIABLE = "DEPLOYDECK_HOOK_RUN"
# While ending groups, a /proc scan this recent (and begun after the signal it must see) is
# reused: a stop of many hooks at once (200 local instances share one process) then reads
# /proc a few times, not once per hook.
SHARED_SCAN_SECONDS = 0.02
FRESH = float("inf")  # `not_before` for a scan of its own

_scans: Dict[str, Tuple[float, Dict]] = {}
_scan_seconds = 0.0  # how long the last scan took: on a busy machine, longer than the window


def _scan(kind: str, not_before: float, read: Callable[[], Dict]) -> Dict:
    """`read()`, or the last result of this kind if that scan began at `not_before`
    (time.monotonic()) or later."""
    last = _scans.get(kind)
    if last is not None and last[0] >= not_before:
        return last[1]
    global _scan_seconds
    began = time.monotonic()
    result = read()
    _scans[kind] = (began, result)
    _scan_seconds = time.monotonic() - began
    return result


def _recent() -> float:
    """Scans begun since then count as recent: within the window, or within two scans'
    time when one takes longer (else hooks ending together would each scan in turn)."""
    return time.monotonic() - max(SHARED_SCAN_SECONDS, 2 * _scan_seconds)


class _Process(NamedTuple):
    ppid: int
    pgrp: int
    started: int  # start time in clock ticks since boot: tells a reused pid apart
    state: str


def group_members(pgid: int, not_before: float = FRESH) -> List[int]:
    """Live (non-zombie) processes in process group `pgid`; empty when the group is gone."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # members exist but belong to another user (runas); look them up below
    if not os.path.isdir("/proc"):
        return [pgid]  # no /proc (not Linux): the group exists, members unknown
    return list(_index(_process_table(not_before))[0].get(pgid, ()))


def _process_table(not_before: float = FRESH) -> Dict[int, _Process]:
    """Every live, non-zombie process by pid (Linux /proc)."""
    return _scan("stat", not_before, _read_process_table)


def _read_proc_file(pid: object, name: str) -> bytes:
    """The whole of /proc/PID/NAME, read with bare system calls (scans read hundreds)."""
    fd = os.open("/proc/%s/%s" % (pid, name), os.O_RDONLY)
    try:
        chunks: List[bytes] = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _stat_fields(pid: object) -> List[str]:
    """The fields of /proc/PID/stat after the command name, from the state on; empty when the
    process is gone."""
    try:
        fd = os.open("/proc/%s/stat" % pid, os.O_RDONLY)
    except OSError:
        return []
    try:
        # one read: a stat line is well under 4 KB (scans read hundreds of them)
        stat = os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return []
    finally:
        os.close(fd)
    return stat[stat.rfind(")") + 2 :].split()  # the name in parentheses may hold spaces


def _read_stat(pid: object) -> Optional[_Process]:
    fields = _stat_fields(pid)
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return _Process(int(fields[1]), int(fields[2]), int(fields[19]), fields[0])


def _read_process_table() -> Dict[int, _Process]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = _read_stat(entry)
            if proc is not None:
                table[int(entry)] = proc
    return table


def groups_under(groups: Set[int], not_before: float = FRESH) -> Set[int]:
    """`groups` plus every process group a member's child opened, transitively: `su -c`
    runs the script in a new session, and a script may `setsid` a child of its own."""
    if not os.path.isdir("/proc"):
        return set(groups)
    members_of, child_groups = _index(_process_table(not_before))
    found = set(groups)
    newest = set(groups)
    while newest:
        members = [pid for pgid in newest for pid in members_of.get(pgid, ())]
        newest = {pgid for pid in members for pgid in child_groups.get(pid, ())} - found
        found |= newest
    return found


# the last process table indexed, and its indexes: the hooks ending together look up their
# groups in one table, each in a few steps rather than a pass over every process
_indexed: Optional[Tuple[Dict, Dict[int, List[int]], Dict[int, Set[int]]]] = None


def _index(table: Dict[int, _Process]) -> Tuple[Dict[int, List[int]], Dict[int, Set[int]]]:
    """(pgid -> its members, pid -> the groups of its children) of a process table."""
    global _indexed
    if _indexed is None or _indexed[0] is not table:
        members: Dict[int, List[int]] = {}
        child_groups: Dict[int, Set[int]] = {}
        for pid, proc in table.items():
            members.setdefault(proc.pgrp, []).append(pid)
            child_groups.setdefault(proc.ppid, set()).add(proc.pgrp)
        _indexed = (table, members, child_groups)
    return _indexed[1], _indexed[2]


# marker -> start time (clock ticks since boot) of the hook run carrying it, while it runs:
# its processes all started then or later, so a marker scan skips the environments of older
# processes (most of the machine's), which cannot carry a marker of a running hook.
_runs: Dict[str, int] = {}
# (began, oldest start time read, pid -> marker) of the last marker scan
_marker_scan: Optional[Tuple[float, int, Dict[int, str]]] = None


def note_run_started(marker: str, pid: int) -> None:
    """Hook run `marker` started as process `pid` (a zombie too: it may have ended already)."""
    _runs[marker] = _start_ticks(pid)


def note_run_ended(marker: str) -> None:
    _runs.pop(marker, None)


def _start_ticks(pid: int) -> int:
    """When `pid` started, in clock ticks since boot; 0 (the oldest) where unknown."""
    try:
        return int(_stat_fields(pid)[19])
    except (ValueError, IndexError):
        return 0


def marked_processes(marker: str, not_before: float = FRESH) -> Dict[int, _Process]:
    """Every live process whose environment holds HOOK_RUN_VARIABLE=`marker` (readable for
    our own processes, or all of them as root), by pid."""
    if not marker or not os.path.isdir("/proc"):
        return {}
    table = _process_table(not_before)
    markers = _markers(table, not_before, _runs.get(marker, 0))
    return {pid: table[pid] for pid, value in markers.items() if value == marker and pid in table}


def _markers(table: Dict[int, _Process], not_before: float, since: int) -> Dict[int, str]:
    """The markers of the processes started at `since` or later, from the last scan if it
    began at `not_before` or later and covered them; else from a new scan, which covers the
    processes of every running hook."""
    global _marker_scan
    last = _marker_scan
    if last is not None and last[0] >= not_before and last[1] <= since:
        return last[2]
    oldest = min(min(_runs.values(), default=since), since)
    began = time.monotonic()
    found = _read_markers(table, oldest)
    _marker_scan = (began, oldest, found)
    return found


def _read_markers(table: Dict[int, _Process], since: int = 0) -> Dict[int, str]:
    """pid -> its HOOK_RUN_VARIABLE value, for the processes in `table` started at `since` or
    later that have one. Processes in uninterruptible sleep (D) are left out: reading them
    could block."""
    key = ("\0%s=" % HOOK_RUN_VARIABLE).encode()
    found = {}
    for pid, proc in table.items():
        if proc.state == "D" or proc.started < since:
            continue
        try:
            environ = b"\0" + _read_proc_file(pid, "environ")
        except OSError:
            continue
        start = environ.find(key)
        if start >= 0:
            start += len(key)
            end = environ.find(b"\0", start)
            found[pid] = environ[start : end if end >= 0 else len(environ)].decode(
                "utf-8", "replace"
            )
    return found


async def survivors_after(groups: Set[int], marker: str, exited: float) -> List[int]:
    """survivors() for a hook that ended at `exited`, from /proc scans begun after it that
    hooks ending in the same pass of the event loop share: a fleet of hooks ending together
    then reads /proc once per pass, not once per hook."""
    last = _marker_scan
    if last is None or last[0] < exited:
        await _shared_scan()
    return survivors(groups, marker, exited)


_pending_scan: Optional["asyncio.Future[None]"] = None
# Shared scans of a process take at most about this share of its time: the next one begins
# no sooner than the last one's duration / SCAN_SHARE after it began, so when many hooks end
# one after another (a large fleet) each scan serves more of them, instead of the scans'
# count and size both growing with the fleet. A hook waits at most a few scans' time for it.
SCAN_SHARE = 0.25
_last_shared_scan = (float("-inf"), 0.0)  # (began, seconds) of the last shared scan


def _shared_scan() -> "asyncio.Future[None]":
    """A scan of every process and its marker, run once for all who ask until it begins: at
    the next pass of the event loop, or later if scans would otherwise take more than
    SCAN_SHARE of the time."""
    global _pending_scan
    loop = asyncio.get_running_loop()
    if _pending_scan is None or _pending_scan.done() or _pending_scan.get_loop() is not loop:
        pending: "asyncio.Future[None]" = loop.create_future()

        def scan() -> None:
            global _pending_scan, _last_shared_scan
            if _pending_scan is pending:
                _pending_scan = None
            began = time.monotonic()
            try:
                # the process table, and the markers of every running hook's processes
                _markers(_process_table(FRESH), FRESH, min(_runs.values(), default=0))
            except Exception as error:  # pragma: no cover - reading /proc does not raise
                if not pending.done():
                    pending.set_exception(error)
                return
            finally:
                _last_shared_scan = (began, time.monotonic() - began)
            if not pending.done():
                pending.set_result(None)

        began, seconds = _last_shared_scan
        wait = began + seconds / SCAN_SHARE - time.monotonic()
        if wait > 0:
            loop.call_later(wait, scan)
        else:
            loop.call_soon(scan)
        _pending_scan = pending
    return asyncio.shield(_pending_scan)


def survivors(groups: Set[int], marker: str, not_before: float = FRESH) -> List[int]:
    """Every process a finished hook left running: the members of its process groups and of
    the groups opened under them, and every process still carrying its `marker` (a daemon
    that called setsid and lost its parent). Scans begun at `not_before` or later (after the
    script ended) are shared by hooks ending together."""
    found = {
        pid for pgid in groups_under(groups, not_before) for pid in group_members(pgid, not_before)
    }
    found |= set(marked_processes(marker, not_before))
    return sorted(found)


def _same_process(pid: int, started: int) -> bool:
    """`pid` still is the live process that started at `started`, not a reuse of its pid."""
    proc = _read_stat(pid)
    return proc is not None and proc.started == started


def _send(groups: Set[int], strays: Dict[int, int], sig: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid, started in strays.items():
        if _same_process(pid, started):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


class _Ending:
    """What ending one hook covers: its process groups, the groups opened under them, the
    groups led by processes carrying its marker (they called setsid) and, as strays (pid ->
    start time), marked processes in any other group. Whatever joins after a signal was sent
    gets that signal at once."""

    def __init__(self, groups: Set[int], marker: str) -> None:
        self.groups: Set[int] = set(groups)
        self.strays: Dict[int, int] = {}
        self.marker = marker
        self.sig = 0  # none sent yet

    def sweep(self, not_before: float) -> None:
        found = groups_under(self.groups, not_before)
        marked = marked_processes(self.marker, not_before)
        found |= {pid for pid, proc in marked.items() if pid == proc.pgrp}
        new_groups = found - self.groups
        new_strays = {
            pid: proc.started
            for pid, proc in marked.items()
            if proc.pgrp not in found and pid not in self.strays
        }
        self.groups |= new_groups
        self.strays.update(new_strays)
        if self.sig:
            _send(new_groups, new_strays, self.sig)

    def signal(self, sig: int) -> None:
        self.sig = sig
        _send(self.groups, self.strays, sig)

    def forget_ended(self, not_before: float) -> bool:
        """Drop the groups found empty and the strays gone (so a reused id is never
        signalled); True when nothing is left."""
        self.groups -= {pgid for pgid in self.groups if not group_members(pgid, not_before)}
        for pid in [pid for pid, started in self.strays.items() if not _same_process(pid, started)]:
            del self.strays[pid]
        return not self.groups and not self.strays


async def _wait_until_ended(
    ending: _Ending,
    seconds: float,
    while_waiting: Optional[Callable[[], object]],
    signalled: float,
) -> bool:
    """Until nothing `ending` covers is left, judged only from scans begun after the signal
    (at `signalled`), sweeping for newcomers at each poll; False if `seconds` pass first.
    `while_waiting` runs at each poll."""
    loop = asyncio.get_event_loop()
    end = loop.time() + seconds
    await asyncio.sleep(0)  # hooks stopped together signal first, then share one scan
    while True:
        if while_waiting is not None:
            while_waiting()
        not_before = max(signalled, _recent())
        ending.sweep(not_before)
        if ending.forget_ended(not_before):
            # Confirm from scans begun after this: a child forked just before its parent
            # died may have been missed by the one that saw the parent gone. Hooks that saw
            # their end together share the confirming scan.
            observed = time.monotonic()
            await asyncio.sleep(0)
            ending.sweep(observed)
            if ending.forget_ended(observed):
                return True
        if loop.time() >= end:
            return False
        await asyncio.sleep(GROUP_POLL_SECONDS)


async def end_process_group(
    pgid: int,
    grace_seconds: float,
    while_waiting: Optional[Callable[[], object]] = None,
    also: Optional[Set[int]] = None,
    marker: str = "",
) -> str:
    """SIGTERM the whole group and the groups opened under it (and the groups in `also`,
    noted earlier, and every process carrying `marker`), wait up to `grace_seconds`, then
    SIGKILL what is left.

    Returns how it ended: "terminated" or "killed". If this task is cancelled while waiting
    out the grace period, the groups are killed at once before the cancellation propagates.
    """
    ending = _Ending({pgid} | (also or set()), marker)
    ending.sweep(_recent())  # before the signal: `su` ends at once
    ending.signal(signal.SIGTERM)
    try:
        if await _wait_until_ended(ending, grace_seconds, while_waiting, time.monotonic()):
            return "terminated"
    except asyncio.CancelledError:
        ending.signal(signal.SIGKILL)
        raise
    ending.signal(signal.SIGKILL)
    await _wait_until_ended(ending, 5.0, while_waiting, time.monotonic())
    return "killed"

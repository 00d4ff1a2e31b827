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
from typing import Callable, Dict, List, Optional, Set, Tuple

GROUP_POLL_SECONDS = 0.05
HOOK_RUN_VARIABLE = "DEPLOYDECK_HOOK_RUN"
# While ending groups, a /proc scan younger than this is reused: a stop of many hooks at once
# (200 local instances share one process) then reads /proc a few times, not once per hook.
SHARED_SCAN_SECONDS = 0.02

_scans: Dict[str, Tuple[float, Dict]] = {}


def _scan(kind: str, max_age: float, read: Callable[[], Dict]) -> Dict:
    """`read()`, or its last result if it is younger than `max_age` seconds."""
    now = time.monotonic()
    last = _scans.get(kind)
    if max_age > 0 and last is not None and now - last[0] < max_age:
        return last[1]
    result = read()
    _scans[kind] = (now, result)
    return result


def group_members(pgid: int, max_age: float = 0.0) -> List[int]:
    """Live (non-zombie) processes in process group `pgid`; empty when the group is gone."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # members exist but belong to another user (runas); look them up below
    if not os.path.isdir("/proc"):
        return [pgid]  # no /proc (not Linux): the group exists, members unknown
    return [pid for pid, (_, pgrp) in _process_table(max_age).items() if pgrp == pgid]


def _process_table(max_age: float = 0.0) -> Dict[int, Tuple[int, int]]:
    """pid -> (parent pid, process group) of every live, non-zombie process (Linux /proc)."""
    return _scan("stat", max_age, _read_process_table)


def _read_process_table() -> Dict[int, Tuple[int, int]]:
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def groups_under(groups: Set[int], max_age: float = 0.0) -> Set[int]:
    """`groups` plus every process group a member's child opened, transitively: `su -c`
    runs the script in a new session, and a script may `setsid` a child of its own."""
    if not os.path.isdir("/proc"):
        return set(groups)
    table = _process_table(max_age)
    found = set(groups)
    while True:
        members = {pid for pid, (_, pgrp) in table.items() if pgrp in found}
        more = {pgrp for pid, (ppid, pgrp) in table.items() if ppid in members} - found
        if not more:
            return found
        found |= more


def marked_processes(marker: str, max_age: float = 0.0) -> Dict[int, int]:
    """pid -> process group of every live process whose environment holds
    HOOK_RUN_VARIABLE=`marker` (readable for our own processes, or all of them as root)."""
    if not marker or not os.path.isdir("/proc"):
        return {}
    table = _process_table(max_age)
    markers = _scan("environ", max_age, lambda: _read_markers(table))
    return {
        pid: table[pid][1] for pid, value in markers.items() if value == marker and pid in table
    }


def _read_markers(table: Dict[int, Tuple[int, int]]) -> Dict[int, str]:
    """pid -> its HOOK_RUN_VARIABLE value, for the processes in `table` that have one."""
    key = ("\0%s=" % HOOK_RUN_VARIABLE).encode()
    found = {}
    for pid in table:
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = b"\0" + f.read()
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


def _take_in_marked(groups: Set[int], strays: Set[int], marker: str) -> None:
    """Add to `groups` the groups led by marked processes (they called setsid), and to
    `strays` the marked processes in any other group, to be signalled one by one."""
    marked = marked_processes(marker, SHARED_SCAN_SECONDS)
    groups |= {pgrp for pid, pgrp in marked.items() if pid == pgrp}
    strays |= {pid for pid, pgrp in marked.items() if pgrp not in groups}


def _signal_groups(groups: Set[int], sig: int, strays: Optional[Set[int]] = None) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in strays or ():
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _stray_alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


async def _wait_groups_empty(
    groups: Set[int],
    seconds: float,
    while_waiting: Optional[Callable[[], object]] = None,
    strays: Optional[Set[int]] = None,
) -> bool:
    """Until no group in `groups` has a member and no pid in `strays` lives; groups members
    open meanwhile join the set (and get the signals that follow). `while_waiting` runs at
    each poll."""
    loop = asyncio.get_event_loop()
    end = loop.time() + seconds
    while True:
        if while_waiting is not None:
            while_waiting()
        groups |= groups_under(groups, SHARED_SCAN_SECONDS)
        if not any(group_members(pgid, SHARED_SCAN_SECONDS) for pgid in groups) and not any(
            _stray_alive(pid) for pid in strays or ()
        ):
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
    # before the signal (`su` ends at once)
    groups = groups_under({pgid} | (also or set()), SHARED_SCAN_SECONDS)
    strays: Set[int] = set()
    _take_in_marked(groups, strays, marker)
    _signal_groups(groups, signal.SIGTERM, strays)
    try:
        if await _wait_groups_empty(groups, grace_seconds, while_waiting, strays):
            return "terminated"
    except asyncio.CancelledError:
        _signal_groups(groups, signal.SIGKILL, strays)
        raise
    _take_in_marked(groups, strays, marker)  # started since the SIGTERM
    _signal_groups(groups, signal.SIGKILL, strays)
    await _wait_groups_empty(groups, 5.0, while_waiting, strays)
    return "killed"

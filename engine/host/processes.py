"""Process groups: find what is still running in one, and end it with the groups opened
under it (SIGTERM, grace, SIGKILL).

Every hook run also carries a unique value in its environment (HOOK_RUN_VARIABLE), which its
descendants inherit: a process that left the hook's groups and lost its parent (`(setsid cmd
&)`) is still found by it, unless it cleared its environment."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Callable, Dict, List, Optional, Set, Tuple

GROUP_POLL_SECONDS = 0.05
HOOK_RUN_VARIABLE = "DEPLOYDECK_HOOK_RUN"


def group_members(pgid: int) -> List[int]:
    """Live (non-zombie) processes in process group `pgid`; empty when the group is gone."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # members exist but belong to another user (runas); look them up below
    if not os.path.isdir("/proc"):
        return [pgid]  # no /proc (not Linux): the group exists, members unknown
    return [pid for pid, (_, pgrp) in _process_table().items() if pgrp == pgid]


def _process_table() -> Dict[int, Tuple[int, int]]:
    """pid -> (parent pid, process group) of every live, non-zombie process (Linux /proc)."""
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


def groups_under(groups: Set[int]) -> Set[int]:
    """`groups` plus every process group a member's child opened, transitively: `su -c`
    runs the script in a new session, and a script may `setsid` a child of its own."""
    if not os.path.isdir("/proc"):
        return set(groups)
    table = _process_table()
    found = set(groups)
    while True:
        members = {pid for pid, (_, pgrp) in table.items() if pgrp in found}
        more = {pgrp for pid, (ppid, pgrp) in table.items() if ppid in members} - found
        if not more:
            return found
        found |= more


def marked_processes(marker: str) -> Dict[int, int]:
    """pid -> process group of every live process whose environment holds
    HOOK_RUN_VARIABLE=`marker` (readable for our own processes, or all of them as root)."""
    if not marker or not os.path.isdir("/proc"):
        return {}
    needle = ("\0%s=%s\0" % (HOOK_RUN_VARIABLE, marker)).encode()
    found = {}
    for pid, (_, pgrp) in _process_table().items():
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in b"\0" + environ + b"\0":
            found[pid] = pgrp
    return found


def _take_in_marked(groups: Set[int], strays: Set[int], marker: str) -> None:
    """Add to `groups` the groups led by marked processes (they called setsid), and to
    `strays` the marked processes in any other group, to be signalled one by one."""
    marked = marked_processes(marker)
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
        groups |= groups_under(groups)
        if not any(group_members(pgid) for pgid in groups) and not any(
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
    groups = groups_under({pgid} | (also or set()))  # before the signal: `su` ends at once
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

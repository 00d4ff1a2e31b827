"""Process groups: find what is still running in one, and end it (SIGTERM, grace, SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import List

GROUP_POLL_SECONDS = 0.05


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
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _wait_group_empty(pgid: int, seconds: float) -> bool:
    loop = asyncio.get_event_loop()
    end = loop.time() + seconds
    while True:
        if not group_members(pgid):
            return True
        if loop.time() >= end:
            return False
        await asyncio.sleep(GROUP_POLL_SECONDS)


async def end_process_group(pgid: int, grace_seconds: float) -> str:
    """SIGTERM the whole group, wait up to `grace_seconds`, then SIGKILL what is left.

    Returns how it ended: "terminated" or "killed". If this task is cancelled while waiting
    out the grace period, the group is killed at once before the cancellation propagates.
    """
    _signal_group(pgid, signal.SIGTERM)
    try:
        if await _wait_group_empty(pgid, grace_seconds):
            return "terminated"
    except asyncio.CancelledError:
        _signal_group(pgid, signal.SIGKILL)
        raise
    _signal_group(pgid, signal.SIGKILL)
    await _wait_group_empty(pgid, 5.0)
    return "killed"

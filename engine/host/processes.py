"""Process groups: find what is still running in one, and end it with the groups opened
under it (SIGTERM, grace, SIGKILL).

Every hook run also carries a unique value in its environment (HOOK_RUN_VARIABLE), which its
descendants inherit: a process that left the hook's groups and lost its parent (`(setsid cmd
&)`) is still found by it, unless it cleared its environment."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import select
import signal
import threading
import time
from typing import Callable, Dict, FrozenSet, List, NamedTuple, Optional, Set, Tuple

from .variables import HOOK_RUN_VARIABLE

GROUP_POLL_SECONDS = 0.05
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


_proc_listed: Optional[bool] = None


def _have_proc() -> bool:
    """Whether /proc lists the processes (Linux); looked at once."""
    global _proc_listed
    if _proc_listed is None:
        _proc_listed = os.path.isdir("/proc")
    return _proc_listed


class _Process(NamedTuple):
    ppid: int
    pgrp: int
    started: int  # start time in clock ticks since boot: tells a reused pid apart
    state: str


def groups_empty(groups: Set[int]) -> bool:
    """Whether every one of the process groups `groups` is gone (False when unsure)."""
    for pgid in groups:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            continue
        except OSError:
            return False  # members exist but belong to another user
        return False
    return True


def group_members(pgid: int, not_before: float = FRESH) -> List[int]:
    """Live (non-zombie) processes in process group `pgid`; empty when the group is gone."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # members exist but belong to another user (runas); look them up below
    if not _have_proc():
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
    if not _have_proc():
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
# (began, oldest start time read, pid -> marker, groups left out) of the last marker scan
_marker_scan: Optional[Tuple[float, int, Dict[int, str], FrozenSet[int]]] = None
_NOTHING: FrozenSet[int] = frozenset()


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


def marked_processes(
    marker: str, not_before: float = FRESH, skip: FrozenSet[int] = _NOTHING
) -> Dict[int, _Process]:
    """Every live process whose environment holds HOOK_RUN_VARIABLE=`marker` (readable for
    our own processes, or all of them as root), by pid; those in the groups `skip` may be
    left out (they are known already)."""
    if not marker or not _have_proc():
        return {}
    table = _process_table(not_before)
    markers = _markers(table, not_before, _runs.get(marker, 0), skip)
    return {pid: table[pid] for pid in _by_marker(markers).get(marker, ()) if pid in table}


# the last marker scan looked up, and its pids by marker: the hooks ending together each find
# their processes in a few steps rather than a pass over every marked process
_marker_index: Optional[Tuple[Dict[int, str], Dict[str, List[int]]]] = None


def _by_marker(markers: Dict[int, str]) -> Dict[str, List[int]]:
    global _marker_index
    if _marker_index is None or _marker_index[0] is not markers:
        index: Dict[str, List[int]] = {}
        for pid, value in markers.items():
            index.setdefault(value, []).append(pid)
        _marker_index = (markers, index)
    return _marker_index[1]


def _markers(
    table: Dict[int, _Process], not_before: float, since: int, skip: FrozenSet[int] = _NOTHING
) -> Dict[int, str]:
    """The markers of the processes started at `since` or later, but for those in the groups
    `skip`, from the last scan if it began at `not_before` or later and covered them; else
    from a new scan, which covers the processes of every running hook."""
    global _marker_scan
    last = _marker_scan
    if last is not None and last[0] >= not_before and last[1] <= since and last[3] <= skip:
        return last[2]
    oldest = min(min(_runs.values(), default=since), since)
    began = time.monotonic()
    found = _read_markers(table, oldest, skip)
    _marker_scan = (began, oldest, found, skip)
    return found


def _read_markers(
    table: Dict[int, _Process], since: int = 0, skip: FrozenSet[int] = _NOTHING
) -> Dict[int, str]:
    """pid -> its HOOK_RUN_VARIABLE value, for the processes in `table` started at `since` or
    later, outside the groups `skip`, that have one. Processes in uninterruptible sleep (D)
    are left out: reading them could block."""
    key = ("\0%s=" % HOOK_RUN_VARIABLE).encode()
    found = {}
    for pid, proc in table.items():
        if proc.state == "D" or proc.started < since or proc.pgrp in skip:
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

    def __init__(
        self,
        groups: Set[int],
        marker: str,
        grace: float = 0.0,
        while_waiting: Optional[Callable[[], object]] = None,
        signalled: Optional[Callable[[], object]] = None,
    ) -> None:
        self.groups: Set[int] = set(groups)
        self.strays: Dict[int, int] = {}
        self.marker = marker
        self.sig = 0  # none sent yet
        self.grace = grace
        self.while_waiting = while_waiting
        self.signalled = signalled
        self.swept = False
        self.how = "terminated"
        self.deadline = 0.0  # when the wait after the last signal runs out (time.monotonic())
        # its live processes in the last scan not seen exiting since (None: not watched, as
        # where pidfds are missing); empty once all have exited
        self.waiting: Optional[Set[int]] = None
        self.future: "Optional[asyncio.Future[str]]" = None

    def sweep(self, not_before: float, skip: FrozenSet[int] = _NOTHING) -> None:
        """Look for what joined since (from scans begun at `not_before` or later): the
        processes in the groups `skip` (known to someone ending them) need no marker read."""
        found = groups_under(self.groups, not_before)
        marked = marked_processes(self.marker, not_before, skip)
        found |= {pid for pid, proc in marked.items() if pid == proc.pgrp}
        new_groups = found - self.groups
        new_strays = {
            pid: proc.started
            for pid, proc in marked.items()
            if proc.pgrp not in found and pid not in self.strays
        }
        self.groups |= new_groups
        self.strays.update(new_strays)
        self.swept = True
        if self.sig:
            _send(new_groups, new_strays, self.sig)

    def signal(self, sig: int) -> None:
        self.sig = sig
        _send(self.groups, self.strays, sig)

    def live(self, not_before: float) -> Set[int]:
        """Every live process it covers, from a scan begun at `not_before` or later."""
        table = _process_table(not_before)
        members_of = _index(table)[0]
        found = {pid for pgid in self.groups for pid in members_of.get(pgid, ())}
        for pid, started in self.strays.items():
            proc = table.get(pid)
            if proc is not None and proc.started == started:
                found.add(pid)
        return found

    def forget_ended(self, not_before: float) -> bool:
        """Drop the groups found empty and the strays gone (so a reused id is never
        signalled); True when nothing is left."""
        if _have_proc():
            table = _process_table(not_before)
            members_of = _index(table)[0]
            self.groups = {pgid for pgid in self.groups if members_of.get(pgid)}
            self.strays = {
                pid: started
                for pid, started in self.strays.items()
                if pid in table and table[pid].started == started
            }
        else:
            self.groups = {pgid for pgid in self.groups if group_members(pgid, not_before)}
            self.strays = {}  # none are found without /proc
        return not self.groups and not self.strays


_pidfd_open: Optional[Callable[[int], int]] = getattr(os, "pidfd_open", None)
# With pidfds a reaper sleeps until processes exit, and looks at /proc at least this often
# (to pass output on and sweep up newcomers); without, it polls every GROUP_POLL_SECONDS.
WAKE_SECONDS = 0.25
# pidfds a reaper holds at once (and at most a quarter of the descriptors the process may
# open); the other processes wait their turn
PIDFD_BUDGET = 1024
KILL_WAIT_SECONDS = 5.0  # after SIGKILL, how long to wait for the processes to go


class _Reaper:
    """Ends the process groups of every end_process_group call in one event loop together, in
    rounds: one /proc scan per round serves every ending (those joining since the last round
    are swept and get SIGTERM; the others are swept, and resolved when nothing is left), then
    the reaper sleeps until every process it saw has exited (a pidfd each) or a deadline or
    WAKE_SECONDS come. A stop of N hooks so reads /proc about twice, not once per hook.

    An ending is resolved only from a scan begun after all its processes were seen exiting (by
    their pidfds, or by an earlier scan): a child forked just before its parent died is in it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.joining: List[_Ending] = []
        self.ending: List[_Ending] = []  # signalled
        self.task: "Optional[asyncio.Task[None]]" = None
        self.wake: "Optional[asyncio.Future[None]]" = None
        self.pidfds = _pidfd_open is not None and _have_proc()
        self.fds: Dict[int, int] = {}  # pid -> its pidfd
        self.pids: Dict[int, int] = {}  # pidfd -> its pid
        # the pidfds, watched by the loop as one descriptor (cheaper than a reader each)
        self.epoll: Optional[select.epoll] = None
        self.budget = min(PIDFD_BUDGET, _descriptor_limit() // 4)
        self.wanted: Dict[int, List[_Ending]] = {}  # pid -> the endings waiting for it to exit
        self.queue: List[int] = []  # pids waiting for a pidfd
        self.last_round = (float("-inf"), 0.0)  # (began, seconds) of the last round's scan

    def join(self, ending: _Ending) -> "asyncio.Future[str]":
        ending.future = self.loop.create_future()
        self.joining.append(ending)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())  # its first round: the next pass
        else:
            self._wake()
        return ending.future

    def leave(self, ending: _Ending) -> None:
        for endings in (self.joining, self.ending):
            if ending in endings:
                endings.remove(ending)
        self._wake()

    async def _run(self) -> None:
        try:
            while self.joining or self.ending:
                if not self.joining:
                    await self._sleep()
                if self.joining or self.ending:
                    self._round()
        except BaseException as error:
            for ending in self.joining + self.ending:
                if ending.future is not None and not ending.future.done():
                    if isinstance(error, asyncio.CancelledError):
                        ending.future.cancel()  # its caller kills what it covers
                    else:
                        ending.future.set_exception(error)
            self.joining, self.ending = [], []
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            self._poll_instead(self.pidfds)

    def _wake(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def _sleep(self) -> None:
        """Until the next round is due: when every ending saw its processes exit (or some
        did, and scans would take no more than SCAN_SHARE of the time), someone joins, a
        deadline passes, or the wake period ends."""
        while self.ending and not self.joining:
            ready = sum(1 for e in self.ending if e.waiting is not None and not e.waiting)
            if ready == len(self.ending):
                return
            began, seconds = self.last_round
            period = WAKE_SECONDS if self.pidfds else GROUP_POLL_SECONDS
            until = min([e.deadline for e in self.ending] + [began + period])
            if ready:
                until = min(until, began + seconds / SCAN_SHARE)
            now = time.monotonic()
            if now >= until:
                return
            self.wake = self.loop.create_future()
            timer = self.loop.call_later(until - now, self._wake)
            try:
                await self.wake
            finally:
                timer.cancel()
                self.wake = None

    def _round(self) -> None:
        ready = {id(e) for e in self.ending if e.waiting is not None and not e.waiting}
        for ending in list(self.ending):
            if ending.while_waiting is not None:
                try:
                    ending.while_waiting()
                except Exception as error:  # its caller gets it, as if raised while it waited
                    self.ending.remove(ending)
                    if ending.future is not None and not ending.future.done():
                        ending.future.set_exception(error)
        began = time.monotonic()
        table = _process_table(FRESH)
        endings = self.ending + self.joining
        markers = [e.marker for e in endings if e.marker]
        # one marker scan covering every ending's processes, but for those in groups being
        # ended already (most of them): what carries a marker elsewhere is what it is for
        known = frozenset(pgid for e in endings for pgid in e.groups)
        if markers:
            _markers(table, FRESH, min(_runs.get(marker, 0) for marker in markers), known)
        self.last_round = (began, time.monotonic() - began)
        joining, self.joining = self.joining, []
        kept = []
        kill = []
        for ending in self.ending:
            if ending.future is None or ending.future.done():
                continue  # its caller is gone (cancelled: it killed what it covers)
            ending.sweep(began, known)
            if ending.forget_ended(began):
                if id(ending) in ready:
                    ending.future.set_result(ending.how)
                    continue
            elif time.monotonic() >= ending.deadline:
                if ending.sig != signal.SIGTERM:
                    ending.future.set_result(ending.how)  # killed, and given up on
                    continue
                kill.append(ending)
            kept.append(ending)
        term = [e for e in joining if e.future is not None and not e.future.done()]
        for ending in term:
            ending.sweep(began, known)  # before the signal: `su` ends at once
        self.ending = kept + term
        # waited for before the signals: the processes then die while nothing else runs here
        self._watch(began)
        for ending in term:
            ending.signal(signal.SIGTERM)
            ending.deadline = time.monotonic() + ending.grace
        for ending in term:  # once every group got its signal
            if ending.signalled is not None:
                with contextlib.suppress(Exception):  # the processes end all the same
                    ending.signalled()
        for ending in kill:
            ending.signal(signal.SIGKILL)
            ending.how = "killed"
            ending.deadline = time.monotonic() + KILL_WAIT_SECONDS

    def _watch(self, not_before: float) -> None:
        """Wait for the live processes of every ending, as of the scan begun at `not_before`."""
        wanted: Dict[int, List[_Ending]] = {}
        for ending in self.ending:
            live = ending.live(not_before)
            if not self.pidfds:
                ending.waiting = None if live else set()
                continue
            ending.waiting = live
            for pid in live:
                wanted.setdefault(pid, []).append(ending)
        if not self.pidfds:
            return
        for pid in [pid for pid in self.fds if pid not in wanted]:
            self._close(pid)
        self.wanted = wanted
        self.queue = [pid for pid in wanted if pid not in self.fds]
        self._open_queued()

    def _open_queued(self) -> None:
        while self.queue and len(self.fds) < self.budget and _pidfd_open is not None:
            # soon after the scan that saw it: a pid reused meanwhile (32k processes later)
            # would only put the next round off to the wake period
            pid = self.queue.pop()
            try:
                fd = _pidfd_open(pid)
            except ProcessLookupError:
                self._exited(pid)
                continue
            except OSError:  # none left, or not allowed here: poll /proc instead
                self._poll_instead(False)
                return
            if self.epoll is None:
                self.epoll = select.epoll()
                self.loop.add_reader(self.epoll.fileno(), self._fds_ready)
            self.epoll.register(fd, select.EPOLLIN)
            self.fds[pid] = fd
            self.pids[fd] = pid

    def _fds_ready(self) -> None:
        """Some of the processes waited for have exited."""
        while self.epoll is not None:
            events = self.epoll.poll(0)
            if not events:
                break
            for fd, _ in events:
                pid = self.pids.get(fd)
                if pid is not None:
                    self._close(pid)
                    self._exited(pid)
        self._open_queued()

    def _exited(self, pid: int) -> None:
        for ending in self.wanted.pop(pid, ()):
            if ending.waiting is not None:
                ending.waiting.discard(pid)
                if not ending.waiting:
                    self._wake()

    def _close(self, pid: int) -> None:
        fd = self.fds.pop(pid)
        del self.pids[fd]
        if self.epoll is not None:
            self.epoll.unregister(fd)
        os.close(fd)

    def _poll_instead(self, pidfds: bool) -> None:
        """Let go of every pidfd (and their epoll); with `pidfds` False, wait by polling from
        now on."""
        for pid in list(self.fds):
            self._close(pid)
        if self.epoll is not None:
            self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()
            self.epoll = None
        self.wanted, self.queue = {}, []
        if not pidfds and self.pidfds:
            self.pidfds = False
            for ending in self.ending:
                ending.waiting = None


def _descriptor_limit() -> int:
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return 1024
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


_local = threading.local()  # each thread's reaper, for the event loop it runs


def _reaper() -> _Reaper:
    loop = asyncio.get_running_loop()
    reaper: Optional[_Reaper] = getattr(_local, "reaper", None)
    if reaper is None or reaper.loop is not loop:
        reaper = _local.reaper = _Reaper(loop)
    return reaper


async def end_process_group(
    pgid: int,
    grace_seconds: float,
    while_waiting: Optional[Callable[[], object]] = None,
    also: Optional[Set[int]] = None,
    marker: str = "",
    signalled: Optional[Callable[[], object]] = None,
) -> str:
    """SIGTERM the whole group and the groups opened under it (and the groups in `also`,
    noted earlier, and every process carrying `marker`), wait up to `grace_seconds`, then
    SIGKILL what is left. Calls made together in one event loop are served together (one
    /proc scan per round for all of them). `while_waiting` runs at each round; `signalled`
    once SIGTERM went out (to every group of the calls made together).

    Returns how it ended: "terminated" or "killed". If this task is cancelled while waiting
    out the grace period, the groups are killed at once before the cancellation propagates.
    """
    ending = _Ending({pgid} | (also or set()), marker, grace_seconds, while_waiting, signalled)
    reaper = _reaper()
    try:
        return await reaper.join(ending)
    except asyncio.CancelledError:
        reaper.leave(ending)
        if not ending.swept:
            ending.sweep(_recent())
        first = not ending.sig
        ending.signal(signal.SIGKILL)
        if first and signalled is not None:
            with contextlib.suppress(Exception):
                signalled()
        raise

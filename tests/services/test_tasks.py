"""A task set on its own (no listeners): counts while starting, the port each task is given,
and the output kept from a task that fails."""

from __future__ import annotations

import sys

import pytest

from engine.clock import RealClock
from engine.services import TaskSet, TaskSetStartError
from tests.services.conftest import FAST_START, get, living_in_group, register


async def test_a_task_set_reports_pending_then_running_and_gives_each_task_its_port(definitions):
    counts: list[tuple[int, int]] = []
    task_set = TaskSet(
        "ts-1",
        register(definitions, count=3),
        RealClock(),
        FAST_START,
        on_change=lambda: counts.append((task_set.pending_count, task_set.running_count)),
    )
    await task_set.start()
    try:
        assert counts[0] == (3, 0) and counts[-1] == (0, 3)
        ports = [t.port for t in task_set.tasks]
        assert len(set(ports)) == 3
        for task in task_set.tasks:
            status, revision, body = await get(task.port)
            assert (status, revision) == (200, "1") and task.task_id in body
            assert task.info().status == "RUNNING" and task.info().pid == task.pid
    finally:
        await task_set.stop()
    assert (task_set.pending_count, task_set.running_count) == (0, 0)
    assert all(t.info().status == "STOPPED" for t in task_set.tasks)
    assert all(not living_in_group(t.pid) for t in task_set.tasks)


async def test_the_output_kept_from_a_failed_task_is_its_last_lines_however_long(definitions):
    noisy = definitions.register(
        "noisy",
        [
            sys.executable,
            "-c",
            "import sys\n"
            "for n in range(100): print('line', n)\n"
            "sys.stdout.write('x' * 300000)\n"  # one line far past any read limit
            "sys.exit(9)",
        ],
    )
    task_set = TaskSet("ts-2", noisy, RealClock(), FAST_START)
    with pytest.raises(TaskSetStartError, match="exited with status 9 while starting") as caught:
        await task_set.start()
    lines = caught.value.output.splitlines()
    assert len(lines) == 40 and lines[0] == "line 61" and lines[-2] == "line 99"
    assert lines[-1] == "x" * 4096

"""Faults of the ECS-like service runtime (engine/services): tasks that crash, hang or cannot
start, ports already taken. Real task processes and real HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.services import (
    Service,
    ServiceError,
    ServiceRuntime,
    StartPolicy,
    TaskDefinitions,
    TaskSetStartError,
    load_service_state,
)
from tests.services.conftest import FAST_START, FAST_TRAFFIC, get, living_in_group, register


@pytest.fixture
def definitions(tmp_path: Path) -> TaskDefinitions:
    return TaskDefinitions(tmp_path / "state")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    rt = ServiceRuntime(
        Service("web", production_port=0),
        tmp_path / "state",
        traffic=FAST_TRAFFIC,
        policy=FAST_START,
    )
    await rt.start()
    yield rt
    await rt.close()


async def test_task_never_healthy_at_start(runtime, definitions, tmp_path: Path) -> None:
    """a task that runs but never passes its health check -> the start fails at its timeout naming the last check, with the task's output, and no process is left"""
    runtime.policy = StartPolicy(timeout=1.0, interval=0.05, stop_grace=1.0)
    started = tmp_path / "pids"
    started.mkdir()
    mute = definitions.register(
        "mute",
        [
            sys.executable,
            "-c",
            "import os,time; print('warming up', flush=True); "
            "open(os.path.join(os.environ['PID_DIR'], str(os.getpid())), 'w').close(); "
            "time.sleep(300)",
        ],
        environment={"PID_DIR": str(started)},
        desired_count=2,
        health_check_path="/ready",
    )
    with pytest.raises(TaskSetStartError) as caught:
        await runtime.create_primary(mute)
    message = str(caught.value)
    assert "did not pass its health check (GET /ready on 127.0.0.1:" in message
    assert "within 1 s; last check: connection refused" in message and "$PORT" in message
    assert caught.value.output == "warming up"
    assert runtime.task_sets() == []
    pids = [int(p.name) for p in started.iterdir()]
    assert len(pids) == 2 and all(not living_in_group(p) for p in pids)


async def test_task_command_missing(runtime, definitions, tmp_path: Path) -> None:
    """a task definition whose command does not exist -> a clear error naming the command and what to check, and nothing is left running"""
    missing = definitions.register("web", [str(tmp_path / "no-such-server")], desired_count=2)
    with pytest.raises(TaskSetStartError, match=r"could not start '.*no-such-server': No such"):
        await runtime.create_primary(missing)
    assert runtime.task_sets() == []
    assert load_service_state(runtime.state_dir).task_sets == ()


async def test_listener_port_taken(tmp_path: Path) -> None:
    """a listener port already in use -> the runtime refuses to start, naming the port, and starts no task"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = ServiceRuntime(
            Service("web", production_port=0, test_port=port),
            tmp_path / "state",
            traffic=FAST_TRAFFIC,
            policy=FAST_START,
        )
        with pytest.raises(ServiceError, match=f"cannot listen on 127.0.0.1:{port}"):
            await runtime.start()
        await runtime.close()


async def test_task_killed_while_serving(runtime, definitions) -> None:
    """a running task's process group is killed -> the task set replaces the task and the listener keeps answering"""
    await runtime.create_primary(register(definitions, count=2))
    (blue,) = runtime.task_sets()
    victim = blue.tasks[0]
    os.killpg(victim.pid, signal.SIGKILL)
    while victim.task_id in {t.task_id for t in runtime.task_sets()[0].tasks}:
        await asyncio.sleep(0.02)
    while runtime.task_sets()[0].running_count < 2:
        await asyncio.sleep(0.02)
    while len([s for s in (await runtime.production.states()).values() if s.serving]) < 2:
        await asyncio.sleep(0.02)
    answers = [await get(runtime.production_address[1]) for _ in range(6)]
    assert {(status, revision) for status, revision, _ in answers} == {(200, "1")}
    assert len({body for _, _, body in answers}) == 2  # both tasks, one of them new


async def test_replacement_crashes_again_and_again(runtime, definitions, tmp_path: Path) -> None:
    """a replacement task that keeps crashing after the first start -> it is retried after a delay while the healthy tasks keep serving, and close ends all of it"""
    flag = tmp_path / "broken"
    defs: TaskDefinitions = definitions
    flaky = defs.register(
        "web",
        [
            sys.executable,
            "-c",
            "import os, runpy, sys; "
            f"sys.exit(4) if os.path.exists({str(flag)!r}) else "
            f"runpy.run_path({str(Path(__file__).parents[1] / 'services' / 'sample_task.py')!r}, "
            "run_name='__main__')",
        ],
        desired_count=2,
        health_check_path="/healthz",
    )
    await runtime.create_primary(flaky)
    flag.touch()
    victim = runtime.task_sets()[0].tasks[0]
    os.killpg(victim.pid, signal.SIGKILL)
    while max(t.restarts for t in runtime.task_sets()[0].tasks) < 3:
        await asyncio.sleep(0.02)
    answers = [await get(runtime.production_address[1]) for _ in range(4)]
    assert {status for status, _, _ in answers} == {200}
    (blue,) = runtime.task_sets()
    assert blue.running_count == 1 and blue.desired_count == 2


HOLDER = """
import asyncio, sys
from pathlib import Path
from engine.services import Service, ServiceRuntime, TaskDefinitions
from tests.services.conftest import FAST_START, FAST_TRAFFIC, register

async def main():
    state = Path(sys.argv[1])
    runtime = ServiceRuntime(Service("web"), state, traffic=FAST_TRAFFIC, policy=FAST_START)
    await runtime.start()
    await runtime.create_primary(register(TaskDefinitions(state), count=2, PID_DIR=sys.argv[2]))
    print("ready", flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


async def test_runtime_killed_leaves_tasks(tmp_path: Path) -> None:
    """the process running a service is killed with SIGKILL -> its tasks keep running only until the next runtime of that service starts, which stops them (and a second runtime of the same service is refused while the first lives)"""
    state = tmp_path / "state"
    started = tmp_path / "pids"
    started.mkdir()
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(state),
        str(started),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
        start_new_session=True,
    )
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"ready\n"
    second = ServiceRuntime(Service("web"), state, traffic=FAST_TRAFFIC, policy=FAST_START)
    with pytest.raises(ServiceError, match=f"another process runs it from state folder {state}"):
        await second.start()
    await second.close()
    assert load_service_state(state).running  # the refused runtime wrote nothing
    os.killpg(holder.pid, signal.SIGKILL)
    await holder.wait()
    task_pids = [int(p.name) for p in started.iterdir()]
    assert len(task_pids) == 2 and all(living_in_group(p) for p in task_pids)
    async with ServiceRuntime(
        Service("web"), state, traffic=FAST_TRAFFIC, policy=FAST_START
    ) as runtime:
        assert sorted(runtime.leftovers_stopped) == ["ecs-svc/web/1-1", "ecs-svc/web/1-2"]
        assert all(not living_in_group(p) for p in task_pids)
        assert runtime.task_sets() == []

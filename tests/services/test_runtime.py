"""The service runtime with real task processes and real HTTP on loopback: task sets behind
the production and test listeners, weight shifts, draining, rollback and clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter

import pytest

from engine.services import (
    Service,
    ServiceError,
    ServiceRuntime,
    TaskSetLabel,
    TaskSetStartError,
    TaskSetStatus,
    load_service_state,
)
from tests.services.conftest import (
    FAST_START,
    FAST_TRAFFIC,
    get,
    living_in_group,
    register,
    settle,
)
from tests.traffic.conftest import read_response
from tests.traffic.loadgen import run_load


def pids(runtime) -> list[int]:
    return [t.pid for info in runtime.task_sets() for t in info.tasks if t.pid]


async def test_production_serves_blue_while_the_test_listener_serves_green(runtime, definitions):
    blue = await runtime.create_primary(register(definitions))
    green = await runtime.create_replacement(register(definitions))
    assert await runtime.route_test_traffic()
    prod = runtime.production_address[1]
    test = runtime.test_address[1]
    prod_answers = [await get(prod) for _ in range(9)]
    test_answers = [await get(test) for _ in range(9)]
    assert {(s, r) for s, r, _ in prod_answers} == {(200, "1")}
    assert {(s, r) for s, r, _ in test_answers} == {(200, "2")}
    # Round robin within the group: every one of the three tasks answered.
    assert len({body for _, _, body in prod_answers}) == 3
    assert len({body for _, _, body in test_answers}) == 3
    blue, green = runtime.task_sets()
    assert (blue.label, blue.status, blue.traffic_weight, blue.test_traffic_weight) == (
        TaskSetLabel.BLUE,
        TaskSetStatus.PRIMARY,
        100.0,
        0.0,
    )
    assert (green.label, green.status, green.traffic_weight, green.test_traffic_weight) == (
        TaskSetLabel.GREEN,
        TaskSetStatus.ACTIVE,
        0.0,
        100.0,
    )
    assert (green.desired_count, green.pending_count, green.running_count) == (3, 0, 3)
    assert (blue.task_definition, green.task_definition) == ("web:1", "web:2")
    assert blue.target_group == "web-tg-1" and green.target_group == "web-tg-2"
    # A CLI reads the same from the state folder.
    state = load_service_state(runtime.state_dir)
    assert state.running and state.production == ("127.0.0.1", prod)
    assert [t.to_json() for t in state.task_sets] == [t.to_json() for t in runtime.task_sets()]
    assert dict(state.test_weights) == {"web-tg-2": 100}
    assert dict(state.production_weights) == {"web-tg-1": 100}


async def test_weight_shifts_split_production_requests_exactly(runtime, definitions):
    await runtime.create_primary(register(definitions))
    await runtime.create_replacement(register(definitions))
    host, port = runtime.production_address
    for percent in (0, 10, 37, 90):
        await runtime.shift_traffic(percent)
        report = await run_load(host, port, total=200, concurrency=4)
        assert not report.failures
        assert Counter(report.versions) == Counter({"2": 2 * percent, "1": 200 - 2 * percent})
        blue, green = runtime.task_sets()
        assert (blue.traffic_weight, green.traffic_weight) == (100 - percent, percent)
        if percent == 0:
            assert dict(load_service_state(runtime.state_dir).production_weights) == {
                "web-tg-1": 100,
                "web-tg-2": 0,
            }
    assert dict(load_service_state(runtime.state_dir).production_weights) == {
        "web-tg-1": 10,
        "web-tg-2": 90,
    }


async def test_a_keep_alive_client_alternating_groups_reuses_one_connection_per_group(
    runtime, definitions
):
    await runtime.create_primary(register(definitions, count=1))
    await runtime.create_replacement(register(definitions, count=1))
    await runtime.shift_traffic(50)
    reader, writer = await asyncio.open_connection("127.0.0.1", runtime.production_address[1])
    seen = []
    for _ in range(20):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 200
        seen.append((headers["x-revision"], headers["x-peer-port"]))
    writer.close()
    assert [revision for revision, _ in seen] == ["1", "2"] * 10  # 50/50 alternates exactly
    assert len(set(seen)) == 2  # each group's upstream connection kept while the other served


async def test_a_task_crashing_during_start_fails_the_start_with_its_output_and_leaves_no_process(
    runtime, definitions, tmp_path
):
    await runtime.create_primary(register(definitions))
    before = runtime.task_sets()
    started = tmp_path / "pids"
    started.mkdir()
    broken = register(definitions, CRASH_AT_START="2", PID_DIR=str(started), CHILD="1")
    with pytest.raises(TaskSetStartError) as caught:
        await runtime.create_replacement(broken)
    message = str(caught.value)
    assert "task ecs-svc/web/2-2 of web:2 exited with status 3 while starting" in message
    assert "error: the settings file is missing" in message
    assert caught.value.output.splitlines() == [
        "sample task revision 2 starting",
        "loading settings",
        "error: the settings file is missing",
    ]
    assert runtime.task_sets() == before  # no green left behind
    state = load_service_state(runtime.state_dir)
    assert [s.task_definition for s in state.task_sets] == ["web:1"]
    # The two tasks that did start, and the helpers they started, are gone too.
    task_pids = [int(p.name) for p in started.iterdir()]
    assert len(task_pids) == 3
    assert all(not living_in_group(pid) for pid in task_pids)
    status, revision, _ = await get(runtime.production_address[1])
    assert (status, revision) == (200, "1")


async def test_draining_lets_an_open_request_finish(runtime, definitions):
    await runtime.create_primary(register(definitions))
    await runtime.create_replacement(register(definitions))
    blue_pids = [t.pid for t in runtime.task_sets()[0].tasks]
    slow = asyncio.ensure_future(get(runtime.production_address[1], "/slow?seconds=1"))
    while not any(s.open_connections for s in (await runtime.production.states()).values()):
        await asyncio.sleep(0.01)
    new_primary = await runtime.complete()
    status, revision, _ = await slow
    assert (status, revision) == (200, "1")  # finished on blue while it drained
    assert new_primary.status is TaskSetStatus.PRIMARY and new_primary.task_definition == "web:2"
    assert [s.identifier for s in runtime.task_sets()] == [new_primary.identifier]
    assert all(not living_in_group(pid) for pid in blue_pids)
    status, revision, _ = await get(runtime.production_address[1])
    assert (status, revision) == (200, "2")


async def test_rollback_routes_back_and_removes_green_with_no_failed_request(runtime, definitions):
    await runtime.create_primary(register(definitions))
    await runtime.create_replacement(register(definitions))
    await runtime.route_test_traffic()
    await runtime.shift_traffic(50)
    green_pids = [t.pid for t in runtime.task_sets()[1].tasks]
    host, port = runtime.production_address
    load = asyncio.ensure_future(run_load(host, port, total=1000, concurrency=4, pause=0.002))
    await asyncio.sleep(0.2)
    assert not load.done()
    await runtime.rollback()
    assert not load.done()  # the rollback happened under load
    after_rollback = asyncio.ensure_future(run_load(host, port, total=60, concurrency=2))
    report, after = await load, await after_rollback
    assert not report.failures and report.ok == 1000
    assert {"1", "2"} <= set(report.versions)  # the load saw both before the rollback
    assert report.versions[-100:] == ["1"] * 100  # and only blue after it
    assert not after.failures and set(after.versions) == {"1"}
    status, revision, _ = await get(runtime.test_address[1])
    assert (status, revision) == (200, "1")  # the test listener went back too
    (blue,) = runtime.task_sets()
    assert (blue.status, blue.traffic_weight, blue.test_traffic_weight) == (
        TaskSetStatus.PRIMARY,
        100.0,
        100.0,
    )
    assert all(not living_in_group(pid) for pid in green_pids)
    assert len(load_service_state(runtime.state_dir).task_sets) == 1


async def test_target_groups_alternate_between_deployments(runtime, definitions):
    await runtime.create_primary(register(definitions, count=1))
    green = await runtime.create_replacement(register(definitions, count=1))
    assert green.target_group == "web-tg-2"
    await runtime.shift_traffic(100)
    primary = await runtime.complete()
    assert (primary.label, primary.target_group) == (TaskSetLabel.BLUE, "web-tg-2")
    third = await runtime.create_replacement(register(definitions, count=1))
    assert (third.label, third.target_group, third.task_definition) == (
        TaskSetLabel.GREEN,
        "web-tg-1",
        "web:3",
    )
    await runtime.rollback()
    assert load_service_state(runtime.state_dir).primary_target_group == "web-tg-2"
    status, revision, _ = await get(runtime.production_address[1])
    assert (status, revision) == (200, "2")


async def test_a_task_that_exits_after_start_is_replaced(runtime, definitions):
    await runtime.create_primary(register(definitions))
    (blue,) = runtime.task_sets()
    victim = blue.tasks[0]
    with contextlib.suppress(OSError, ValueError, IndexError):
        await get(victim.port, "/exit")  # the process ends without answering
    await settle(lambda: victim.task_id not in _task_ids(runtime))
    await settle(lambda: runtime.task_sets()[0].running_count == 3)
    while len([s for s in (await runtime.production.states()).values() if s.serving]) < 3:
        await asyncio.sleep(0.02)
    (blue,) = runtime.task_sets()
    assert blue.pending_count == 0 and len(blue.tasks) == 3
    assert sorted(t.restarts for t in blue.tasks) == [0, 0, 1]
    assert victim.task_id not in runtime.production.groups()
    assert not living_in_group(victim.pid)
    host, port = runtime.production_address
    report = await run_load(host, port, total=60, concurrency=3)
    assert not report.failures and set(report.versions) == {"1"}


async def test_closing_the_runtime_leaves_no_process(tmp_path, definitions):
    service = Service("web", production_port=0, test_port=0)
    runtime = ServiceRuntime(service, tmp_path / "state", traffic=FAST_TRAFFIC, policy=FAST_START)
    await runtime.start()
    started = tmp_path / "pids"
    started.mkdir()
    await runtime.create_primary(register(definitions, PID_DIR=str(started), CHILD="1"))
    await runtime.create_replacement(register(definitions, PID_DIR=str(started), CHILD="1"))
    task_pids = [int(p.name) for p in started.iterdir()]
    assert len(task_pids) == 6 and all(len(living_in_group(p)) >= 1 for p in task_pids)
    await runtime.close()
    assert all(not living_in_group(pid) for pid in task_pids)
    state = load_service_state(tmp_path / "state")
    assert not state.running
    assert all(t.status == "STOPPED" for s in state.task_sets for t in s.tasks)
    with pytest.raises(OSError):
        await get(state.production[1])  # the listener is closed


async def test_bad_weights_and_out_of_order_operations_are_refused_and_change_nothing(
    runtime, definitions
):
    with pytest.raises(ServiceError, match="no primary task set; create one first"):
        await runtime.create_replacement(register(definitions, count=1))
    await runtime.create_primary(register(definitions, count=1))
    with pytest.raises(ServiceError, match="no replacement task set to shift traffic"):
        await runtime.shift_traffic(10)
    await runtime.create_replacement(register(definitions, count=1))
    await runtime.shift_traffic(20)
    before = (runtime.task_sets(), runtime.state_dir.joinpath("service.json").read_text())
    for bad in (101, -1, 2.5, True, "10"):
        with pytest.raises(ServiceError, match="whole percentage from 0 to 100"):
            await runtime.shift_traffic(bad)
    with pytest.raises(ServiceError, match="already has a replacement task set"):
        await runtime.create_replacement(register(definitions, count=1))
    after = (runtime.task_sets(), runtime.state_dir.joinpath("service.json").read_text())
    assert [t.to_json() for t in after[0]] == [t.to_json() for t in before[0]]
    assert json.loads(after[1])["taskSets"] == json.loads(before[1])["taskSets"]


def _task_ids(runtime) -> set[str]:
    return {t.task_id for s in runtime.task_sets() for t in s.tasks}


async def test_a_service_without_a_test_listener_skips_test_traffic(tmp_path, definitions):
    runtime = ServiceRuntime(
        Service("api", production_port=0),
        tmp_path / "state",
        traffic=FAST_TRAFFIC,
        policy=FAST_START,
    )
    async with runtime:
        await runtime.create_primary(register(definitions, count=1))
        await runtime.create_replacement(register(definitions, count=1))
        assert runtime.test_address is None
        assert await runtime.route_test_traffic() is False
        await runtime.shift_traffic(100)
        status, revision, _ = await get(runtime.production_address[1])
        assert (status, revision) == (200, "2")
        state = load_service_state(runtime.state_dir)
        assert state.test is None and state.task_sets[1].test_traffic_weight == 0.0


async def test_a_replacement_failing_the_listeners_health_checks_gets_no_request(
    runtime, definitions, tmp_path
):
    """the replacement's tasks fail GET /healthz through the listener while half of production
    is on it -> the listener takes them out, and every request is answered by the original"""
    sick = tmp_path / "sick"
    await runtime.create_primary(register(definitions, count=2))
    await runtime.create_replacement(register(definitions, count=2, SICK_FLAG=str(sick)))
    await runtime.shift_traffic(50)
    host, port = runtime.production_address
    before = await run_load(host, port, total=40, concurrency=2)
    assert not before.failures and set(before.versions) == {"1", "2"}
    sick.touch()
    green = {t.task_id for t in runtime.task_sets()[1].tasks}

    async def green_serving() -> bool:
        states = await runtime.production.states()
        return any(states[name].serving for name in green)

    while await green_serving():
        await asyncio.sleep(0.02)
    after = await run_load(host, port, total=200, concurrency=4)
    assert not after.failures and after.ok == 200
    assert set(after.versions) == {"1"}
    assert runtime.task_sets()[1].traffic_weight == 50.0  # the weight stays; health decides

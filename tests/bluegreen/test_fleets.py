"""Where a blue/green deployment's green fleet comes from and what becomes of blue: copies
made and removed, discovered instances, KEEP_ALIVE, and a green fleet that fails its install."""

from __future__ import annotations

import json
from typing import Any

from tests.bluegreen.conftest import BlueGreenFleet, until_exists, versions


def membership(fleet: BlueGreenFleet) -> dict[str, Any]:
    return json.loads((fleet.folder / ".deploydeck" / "bluegreen" / "app.fleet.json").read_text())


async def test_a_green_fleet_that_fails_its_install_never_takes_traffic(bg_fleet: Any) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green({}, auto_rollback={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]})
    (fleet.gates / "fail-ValidateService-v2").touch()
    hold = fleet.gates / "hold-ValidateService-v2"
    hold.touch()
    deployment = await fleet.deploy("v2")
    for blue in fleet.blue:  # both copies serve v2, held: what do clients get now?
        await until_exists(fleet.gates / f"at-ValidateService-v2-{blue}-{deployment}")
    assert set(await versions(fleet.lb_port)) == {"v1"}
    hold.unlink()
    final = await fleet.e.wait(deployment, timeout=300)
    assert final.status == "Failed"
    assert final.error_code == "HEALTH_CONSTRAINTS"
    assert "install on the replacement (green) instances failed" in (final.error_message or "")
    for instance in final.instances:
        events = {e.name: e.status for e in instance.events}
        assert events["AllowTraffic"] == events["BlockTraffic"] == "Skipped"
    assert final.blue_green is not None and final.blue_green.traffic_on == "Blue"
    for blue in fleet.blue:
        assert fleet.server_running(blue)
        assert fleet.events(blue)[-1] == "ValidateService v1"  # untouched by v2
    assert not (fleet.folder / ".deploydeck" / "bluegreen" / "app.fleet.json").exists() or (
        membership(fleet)["live"] == fleet.blue
    )


async def test_terminate_removes_copied_blue_instances_on_the_next_deployment(
    bg_fleet: Any,
) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green({})
    first = await fleet.e.wait(await fleet.deploy("v2"), timeout=300)
    assert first.status == "Succeeded", first.error_message
    copies = [f"{b}-{first.id}" for b in fleet.blue]
    assert membership(fleet)["live"] == copies
    for copy in copies:
        assert fleet.server_running(copy)
    second = await fleet.e.wait(await fleet.deploy("v3"), timeout=300)
    assert second.status == "Succeeded", second.error_message
    assert second.blue_green is not None
    assert list(second.blue_green.blue) == copies  # v2's copies were blue this time
    for copy in copies:
        assert not fleet.root(copy).exists()  # terminated: ApplicationStop, then removed
    live = [f"{b}-{second.id}" for b in fleet.blue]
    assert membership(fleet)["live"] == live
    assert [c["name"] for c in membership(fleet)["copies"]] == live
    assert [c["source"] for c in membership(fleet)["copies"]] == fleet.blue


async def test_keep_alive_leaves_blue_running_out_of_the_group(bg_fleet: Any) -> None:
    fleet: BlueGreenFleet = bg_fleet()
    await fleet.seed()
    await fleet.blue_green(
        {"terminate_blue_instances_on_deployment_success": {"action": "KEEP_ALIVE"}}
    )
    final = await fleet.e.wait(await fleet.deploy("v2"), timeout=300)
    assert final.status == "Succeeded", final.error_message
    for blue in fleet.blue:
        assert fleet.server_running(blue)
        assert fleet.events(blue)[-2:] == ["BeforeBlockTraffic v1", "AfterBlockTraffic v1"]
        events = {e.name: e.status for e in final.instance(blue).events}  # type: ignore[union-attr]
        assert events["ApplicationStop"] == "Skipped"
    assert final.to_api()["blueGreenDeploymentInfo"]["instanceTerminationWaitTimeStarted"] is False
    assert membership(fleet)["live"] == [f"{b}-{final.id}" for b in fleet.blue]


async def test_discover_existing_takes_green_from_tagged_instances(bg_fleet: Any) -> None:
    fleet: BlueGreenFleet = bg_fleet(discover=2)
    await fleet.seed()
    await fleet.blue_green(
        {
            "green_fleet_provisioning_option": {
                "action": "DISCOVER_EXISTING",
                "tag_filters": [{"key": "fleet", "value": "green"}],
            }
        }
    )
    final = await fleet.e.wait(await fleet.deploy("v2"), timeout=300)
    assert final.status == "Succeeded", final.error_message
    assert final.blue_green is not None
    assert list(final.blue_green.green) == fleet.discovered
    assert final.blue_green.copied == ()
    for green in fleet.discovered:
        assert fleet.server_running(green)
    assert membership(fleet) == {"live": fleet.discovered, "copies": []}

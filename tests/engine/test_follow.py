"""Following a deployment reads its own journal entries (and its rollback's), nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import events as ev
from engine.api import CreateDeploymentRequest, Engine
from engine.workspace import load_workspace
from tests.engine.fleet import make_revision, write_workspace


@pytest.fixture
async def engine(tmp_path: Path):
    path = write_workspace(
        tmp_path,
        2,
        env={n: {"FAIL_ON": "ValidateService@v2"} for n in ("i01", "i02")},
        auto_rollback=["DEPLOYMENT_FAILURE"],
    )
    engine = Engine(load_workspace(path).unwrap(), run_mode="inline")
    yield engine
    await engine.aclose()


async def deploy(engine: Engine, revision: Path):
    created = await engine.create_deployment(
        CreateDeploymentRequest("app", "fleet", revision_path=revision)
    )
    final = await engine.wait(created.id, timeout=120)
    if final.rollback.rollback_deployment_id:
        await engine.wait(final.rollback.rollback_deployment_id, timeout=120)
    return final


async def test_follow_yields_the_deployment_and_its_rollback_only(engine, tmp_path, monkeypatch):
    v1, v2 = make_revision(tmp_path, "v1"), make_revision(tmp_path, "v2")
    history = [await deploy(engine, v1), await deploy(engine, v2), await deploy(engine, v1)]
    assert [d.status for d in history] == ["Succeeded", "Failed", "Succeeded"]
    failed = await deploy(engine, v2)
    rollback_id = failed.rollback.rollback_deployment_id
    assert failed.status == "Failed" and rollback_id
    later = await deploy(engine, v1)  # entries after the followed ones, of another deployment
    assert later.status == "Succeeded"
    expected = sorted(engine.journal(failed.id) + engine.journal(rollback_id), key=lambda e: e.seq)
    decoded: list[str] = []
    decode = ev.decode

    def counting(kind: str, deployment_id: str, time: float, payload: str) -> ev.Event:
        decoded.append(deployment_id)
        return decode(kind, deployment_id, time, payload)

    monkeypatch.setattr(ev, "decode", counting)
    followed = [entry async for entry in engine.follow(failed.id, follow=False)]
    assert [e.seq for e in followed] == [e.seq for e in expected]
    assert isinstance(followed[0].event, ev.DeploymentCreated)  # from its very first entry
    # other deployments' entries, before and after, were never read
    assert set(decoded) == {failed.id, rollback_id}

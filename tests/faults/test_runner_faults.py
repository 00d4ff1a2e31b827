"""Faults around the deployment runner: its process dies, its database is locked or corrupt,
two deployments race for one revision. Each test names the fault and what deploydeck promises."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli.test_local_cli import REPO
from tests.engine.fleet import make_revision

KEEP_SNAPSHOT = textwrap.dedent(
    """\
    import sys, time
    from pathlib import Path
    from engine.deployments.revisions import RevisionSnapshots, check_revision
    state, revision, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    checked = check_revision(revision)
    while not go.exists():
        time.sleep(0.001)
    print(RevisionSnapshots(state).keep(checked))
    """
)


def test_two_deployments_snapshot_one_new_revision_at_once(tmp_path: Path) -> None:
    """Two processes first using the same new revision at once -> both get the same complete
    snapshot, no traceback."""
    state = tmp_path / ".deploydeck"
    for round_ in range(4):
        files = {f"f{n:03d}.txt": f"{round_} {n}\n" * 200 for n in range(300)}
        revision = make_revision(tmp_path / f"round{round_}", "v1", files)
        go = tmp_path / f"go{round_}"
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", KEEP_SNAPSHOT, str(state), str(revision), str(go)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        go.touch()
        outputs = [racer.communicate() for racer in racers]
        assert all(r.returncode == 0 for r in racers), [err for _, err in outputs]
        paths = {out.strip() for out, _ in outputs}
        assert len(paths) == 1
        snapshot = Path(paths.pop())
        copied = sorted(p.name for p in (snapshot / "site").iterdir())
        assert copied == sorted(files)
    assert [p.name for p in state.joinpath("revisions").iterdir() if "partial" in p.name] == []

"""`deploydeck validate`: all diagnostics at once with file:line, exit 0 only when accepted."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.cli.test_local_cli import run
from tests.host.harness import write_tree


@pytest.mark.parametrize(
    "path",
    [
        "sample_revisions/web-v1",
        "sample_revisions/web-v2",
        "sample_revisions/web-broken",
        "sample_revisions/web-v1/appspec.yml",
        "sample_revisions/lambda-hello/appspec.yaml",
        "sample_revisions/ecs-web/appspec.yaml",
        "sample_revisions/ecs-web/appspec.json",
    ],
)
def test_samples_are_valid(path: str) -> None:
    done = run("validate", path)
    assert done.returncode == 0, done.stdout
    assert "is a valid" in done.stdout


def test_every_error_and_warning_at_once(tmp_path: Path) -> None:
    appspec = tmp_path / "appspec.yml"
    appspec.write_text(
        "version: 0.0\n"
        "os: linux\n"
        "permissions:\n"
        "  - object: /srv\n"
        "    mode: 0644\n"  # warning: octal trap
        "  - object: /srv/x\n"
        "    mode: 0755\n"  # error: 493 has a 9
        "hooks:\n"
        "  AplicationStart:\n"  # warning: closest is ApplicationStart
        "    - location: a.sh\n"
        "      timeout: foo\n"  # error
    )
    done = run("validate", str(appspec))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"{appspec}:5:") and "warning" in line for line in lines)
    assert any(line.startswith(f"{appspec}:7:") and "error" in line for line in lines)
    assert any(f"{appspec}:9:" in line and "ApplicationStart" in line for line in lines)
    assert any(line.startswith(f"{appspec}:11:") and "error" in line for line in lines)
    assert "2 errors" in done.stdout


def test_json_output(tmp_path: Path) -> None:
    appspec = write_tree(tmp_path / "r", {"appspec.yml": "version: 0.0\nos: windows\n"})
    done = run("validate", str(appspec), "--output", "json")
    data = json.loads(done.stdout)
    assert done.returncode == 1 and data["valid"] is False
    assert data["diagnostics"][0]["line"] == 2 and data["diagnostics"][0]["key"] == "os"


def test_archive_with_leading_directory(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src" / "app", {"appspec.yml": "version: 0.0\nos: linux\n"})
    bundle = tmp_path / "app.tgz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(source, "app")
    done = run("validate", str(bundle))
    assert done.returncode == 0, done.stdout
    assert "app/appspec.yml" in done.stdout


def test_missing_path_and_broken_yaml(tmp_path: Path) -> None:
    assert run("validate", str(tmp_path / "nope")).returncode == 1
    broken = tmp_path / "appspec.yml"
    broken.write_text("version: 0.0\nos: [linux\n")
    done = run("validate", str(broken))
    assert done.returncode == 1 and f"{broken}:" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("packed", [False, True])
def test_scripts_and_sources_missing_from_the_revision_are_warnings(
    tmp_path: Path, packed: bool
) -> None:
    """CodeDeploy accepts the appspec and fails only when the deployment reaches the missing
    script (ScriptMissing) or source (Install): a warning at the line that names it."""
    revision = write_tree(
        tmp_path / "rev",
        {
            "appspec.yml": "version: 0.0\n"
            "os: linux\n"
            "files:\n"
            "  - source: site\n"
            "    destination: /srv/site\n"
            "  - source: config/app.json\n"
            "    destination: /etc/app\n"
            "hooks:\n"
            "  ApplicationStart:\n"
            "    - location: scripts/start.sh\n"
            "      timeout: 60\n"
            "    - location: /scripts/gone.sh\n"
            "      timeout: 60\n",
            "site/index.html": "hi",
            "scripts/start.sh": "#!/bin/sh\n",
        },
    )
    target = revision
    if packed:
        target = tmp_path / "rev.tgz"
        with tarfile.open(target, "w:gz") as archive:
            archive.add(revision, arcname="rev")  # a leading directory, stripped as the agent does
    done = run("validate", str(target))
    assert done.returncode == 0, done.stdout
    lines = [line for line in done.stdout.splitlines() if ": warning: " in line]
    assert len(lines) == 2, done.stdout
    assert "appspec.yml:6:13: warning: files[1].source: config/app.json is not in" in lines[0]
    assert (
        "appspec.yml:12:17: warning: hooks.ApplicationStart[1].location: /scripts/gone.sh"
        in (lines[1])
    )
    assert "ScriptMissing" in lines[1]


def test_folders_implied_by_archive_members_count_as_present(tmp_path: Path) -> None:
    """A zip may list only files: `config/a.conf` makes `config` a folder of the revision."""
    import zipfile

    archive = tmp_path / "v.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(
            "appspec.yml",
            "version: 0.0\nos: linux\nfiles:\n  - source: config\n    destination: /etc/app\n",
        )
        z.writestr("config/a.conf", "x=1\n")
    done = run("validate", str(archive))
    assert done.returncode == 0 and "not in the revision" not in done.stdout, done.stdout


def test_a_server_appspec_with_an_unknown_resources_key_stays_a_server_appspec(
    tmp_path: Path,
) -> None:
    appspec = tmp_path / "appspec.yml"
    appspec.write_text("version: 0.0\nos: linux\nresources:\n  - web: {Type: AWS::Lambda}\n")
    done = run("validate", str(appspec))
    assert done.returncode == 0, done.stdout
    assert "is a valid server appspec" in done.stdout
    assert "unknown key 'resources'" in done.stdout  # ignored, as the agent does, with a warning
    # A mapping of hooks is a Server appspec's too (a Lambda or ECS one lists its hooks).
    appspec.write_text(
        "version: 0.0\nhooks:\n  ApplicationStart: []\nresources:\n  - web: {Type: AWS::Lambda}\n"
    )
    done = run("validate", str(appspec))
    assert "is not a valid server appspec" in done.stdout
    assert "the appspec has no os" in done.stdout

"""Fault matrix: hostile or broken YAML in the three files deploydeck reads, through the real
command line. An appspec goes through `deploydeck local`, a workspace deploydeck.yml through
`deploydeck create-deployment --wait`, the agent configuration through `deploydeck local -c`.
Each gets a clear error naming file:line (or a warning, where the reference accepts the file),
exit status 1, no traceback, in well under a second of parsing, and nothing is run or written."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.command_line import create_deployment, dd_at_home
from tests.engine.fleet import make_revision, write_workspace
from tests.host.harness import write_tree

# Nine levels of nine aliases: 9**9 (387 million) strings if anything expanded it.
LAUGHS = "".join(
    f"x-{level}: &l{level} [{', '.join([f'*l{level - 1}' if level else 'lol'] * 9)}]\n"
    for level in range(9)
)
BOMB = "*l8"


def dd(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return dd_at_home(folder, *args, timeout=120)


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ---- appspec.yml, through `deploydeck local` --------------------------------------------------


def local(tmp_path: Path, appspec: str | bytes) -> tuple[subprocess.CompletedProcess, str]:
    """`deploydeck local` on a revision with this appspec and a hook that would leave a mark."""
    revision = write_tree(tmp_path / "rev", {"mark.sh": f"#!/bin/sh\ntouch {tmp_path}/hook-ran\n"})
    path = revision / "appspec.yml"
    if isinstance(appspec, bytes):
        path.write_bytes(appspec)
    else:
        path.write_text(appspec)
    (tmp_path / "agent.yml").write_text(f":root_dir: {tmp_path / 'root'}\n")
    done = dd(tmp_path, "local", "-l", str(revision), "-c", str(tmp_path / "agent.yml"))
    return done, done.stdout + done.stderr


def assert_appspec_refused(tmp_path: Path, appspec: str | bytes, where: str) -> str:
    started = time.monotonic()
    done, out = local(tmp_path, appspec)
    assert done.returncode == 1, out
    assert "Traceback" not in out, out
    assert where in out, out
    assert time.monotonic() - started < 60
    assert not (tmp_path / "root").exists()  # no deployment folder
    assert not (tmp_path / "hook-ran").exists()
    return out


SPEC = "version: 0.0\nos: linux\n"
MARK_HOOK = "hooks:\n  AfterInstall:\n    - location: mark.sh\n"


def test_appspec_billion_laughs_in_hooks(tmp_path: Path) -> None:
    """An appspec whose hooks are a billion-laughs alias -> errors naming the key at the anchored value's line; nothing expanded or run."""
    out = assert_appspec_refused(
        tmp_path,
        SPEC + LAUGHS + f"hooks:\n  AfterInstall: {BOMB}\n",
        "appspec.yml:10:6: error: hooks.AfterInstall[0]:",
    )
    assert "must be a mapping with a location" in out
    assert len(out) < 100_000  # the errors are not 387 million lines long


def test_appspec_python_object_tag_runs_nothing(tmp_path: Path) -> None:
    """An appspec with !!python/object/apply:os.system -> an error at its line; the command never runs."""
    out = assert_appspec_refused(
        tmp_path,
        SPEC + f"hooks: !!python/object/apply:os.system ['touch {tmp_path}/pwned']\n",
        "appspec.yml:3:",
    )
    assert "hooks" in out
    assert not (tmp_path / "pwned").exists()


def test_appspec_duplicate_key_is_a_warning_naming_both_lines(tmp_path: Path) -> None:
    """`hooks:` twice in an appspec -> a warning naming both lines; the later one is used, as YAML loaders do."""
    first = "hooks:\n  BeforeInstall:\n    - location: missing.sh\n"
    done, out = local(tmp_path, SPEC + first + MARK_HOOK)
    assert done.returncode == 0, out
    assert "appspec.yml:6:" in out and "first at line 3, again at line 6" in out
    assert (tmp_path / "hook-ran").exists()


def test_appspec_indented_with_tabs(tmp_path: Path) -> None:
    """An appspec indented with a tab -> an error at that line saying to indent with spaces."""
    out = assert_appspec_refused(
        tmp_path, SPEC + "hooks:\n\tAfterInstall:\n\t\t- location: mark.sh\n", "appspec.yml:4:"
    )
    assert "indent with spaces" in out


def test_appspec_of_thirty_megabytes(tmp_path: Path) -> None:
    """A 30 MB appspec -> refused by its size before parsing, naming the limit."""
    out = assert_appspec_refused(
        tmp_path, SPEC + "# " + "a" * (30 * 1024 * 1024) + "\n", "appspec.yml"
    )
    assert "more than the 1048576 an appspec may have" in out


def test_appspec_in_latin1(tmp_path: Path) -> None:
    """An appspec saved as Latin-1 -> refused as not UTF-8, with the byte offset and the fix."""
    out = assert_appspec_refused(tmp_path, SPEC.encode() + b"# caf\xe9\n", "appspec.yml")
    assert "not UTF-8" in out and "offset 28" in out


def test_empty_appspec(tmp_path: Path) -> None:
    """An empty appspec.yml -> an error at line 1 saying how to start it."""
    out = assert_appspec_refused(tmp_path, "", "appspec.yml:1:")
    assert "the appspec is empty" in out and "version: 0.0" in out


def test_appspec_that_is_a_list(tmp_path: Path) -> None:
    """An appspec whose top level is a list -> an error at line 1: it must be a mapping."""
    out = assert_appspec_refused(tmp_path, "- version: 0.0\n- os: linux\n", "appspec.yml:1:")
    assert "must be a mapping" in out and "got a list" in out


def test_appspec_with_a_nul_byte(tmp_path: Path) -> None:
    """An appspec holding a NUL byte -> a YAML error at its line, not a crash."""
    out = assert_appspec_refused(tmp_path, SPEC + MARK_HOOK + "\x00\n", "appspec.yml:6:")
    assert "YAML syntax error" in out


def test_appspec_anchors_and_aliases_are_plain_yaml(tmp_path: Path) -> None:
    """An appspec reusing one hook entry through an anchor and an alias -> accepted; the hook runs for both events."""
    spec = (
        SPEC
        + "hooks:\n  AfterInstall:\n    - &mark {location: mark.sh, timeout: 30}\n"
        + "  ApplicationStart:\n    - *mark\n"
    )
    done, out = local(tmp_path, spec)
    assert done.returncode == 0, out
    assert out.count("◌") == 2 and "ApplicationStart: mark.sh" in out


def test_appspec_with_windows_line_endings(tmp_path: Path) -> None:
    """An appspec saved with CRLF line endings -> read as the same YAML; the deployment runs its hook."""
    done, out = local(tmp_path, (SPEC + MARK_HOOK).replace("\n", "\r\n").encode())
    assert done.returncode == 0, out
    assert (tmp_path / "hook-ran").exists()


# ---- deploydeck.yml, through `deploydeck create-deployment --wait` ---------------------------


def deploy(tmp_path: Path, workspace: str | bytes) -> tuple[subprocess.CompletedProcess, str]:
    """Replace a working deploydeck.yml (one local instance) by `workspace` and deploy."""
    write_workspace(tmp_path, 1)
    path = tmp_path / "deploydeck.yml"
    if isinstance(workspace, bytes):
        path.write_bytes(workspace)
    else:
        path.write_text(workspace)
    revision = make_revision(tmp_path / "revisions", "v1")
    before = listing(tmp_path)
    done = dd(
        tmp_path,
        *create_deployment(str(revision)),
        "--wait",
    )
    out = done.stdout + done.stderr
    if done.returncode != 0:
        assert listing(tmp_path) == before, "a refused workspace wrote something"
    return done, out


WORKSPACE = (
    "settings: {kill_grace_seconds: 1}\n"
    "applications:\n"
    "  app:\n"
    "    deployment_groups:\n"
    "      fleet:\n"
    "        deployment_config: CodeDeployDefault.AllAtOnce\n"
    "        tag_filters: [{key: role, value: web}]\n"
    "instances:\n"
    "  i01:\n"
    "    tags: {role: web}\n"
)


def assert_workspace_refused(tmp_path: Path, workspace: str | bytes, where: str) -> str:
    done, out = deploy(tmp_path, workspace)
    assert done.returncode == 1, out
    assert "Traceback" not in out, out
    assert where in out, out
    assert not (tmp_path / ".deploydeck").exists()  # no store, no instance folders
    return out


def test_workspace_billion_laughs_in_an_environment(tmp_path: Path) -> None:
    """deploydeck.yml with a billion-laughs alias as an environment value -> an error naming the key at the anchored value's line; nothing expanded."""
    out = assert_workspace_refused(
        tmp_path,
        LAUGHS + WORKSPACE + f"    environment: {{A: {BOMB}}}\n",
        "deploydeck.yml:9:6: error: instances.i01.environment.A:",
    )
    assert "must be a string" in out and len(out) < 100_000


def test_workspace_billion_laughs_in_an_unknown_key(tmp_path: Path) -> None:
    """Billion-laughs anchors under unknown keys of deploydeck.yml -> warnings only, never expanded; the deployment runs."""
    done, out = deploy(tmp_path, LAUGHS + WORKSPACE)
    assert done.returncode == 0, out
    assert "deploydeck.yml:9:1: warning: x-8: unknown key" in out
    assert len(out) < 100_000


def test_workspace_python_object_tag_runs_nothing(tmp_path: Path) -> None:
    """deploydeck.yml with !!python/object/apply:os.system -> an error at its line; the command never runs."""
    assert_workspace_refused(
        tmp_path,
        WORKSPACE
        + f"    environment: !!python/object/apply:os.system ['touch {tmp_path}/pwned']\n",
        "deploydeck.yml:11:",
    )
    assert not (tmp_path / "pwned").exists()


def test_workspace_duplicate_key_is_a_warning_naming_both_lines(tmp_path: Path) -> None:
    """`instances:` twice in deploydeck.yml -> a warning naming both lines; the later mapping is used."""
    later = "instances:\n  i02:\n    tags: {role: web}\n"
    done, out = deploy(tmp_path, WORKSPACE + later)
    assert "deploydeck.yml:11:" in out and "first at line 8, again at line 11" in out, out
    assert done.returncode == 0, out
    assert "i02" in out


def test_workspace_indented_with_tabs(tmp_path: Path) -> None:
    """deploydeck.yml indented with a tab -> an error at that line saying to indent with spaces."""
    out = assert_workspace_refused(
        tmp_path, WORKSPACE.replace("    tags:", "\ttags:"), "deploydeck.yml:10:"
    )
    assert "indent with spaces" in out


def test_workspace_in_latin1(tmp_path: Path) -> None:
    """deploydeck.yml with a Latin-1 byte -> an error at its line and column: save it as UTF-8."""
    out = assert_workspace_refused(
        tmp_path, WORKSPACE.encode() + b"# caf\xe9\n", "deploydeck.yml:11:"
    )
    assert "UTF-8" in out


def test_empty_workspace(tmp_path: Path) -> None:
    """An empty deploydeck.yml -> an error at line 1 pointing to `deploydeck init --force`."""
    out = assert_workspace_refused(tmp_path, "", "deploydeck.yml:1:")
    assert "deploydeck init --force" in out


def test_workspace_that_is_a_list(tmp_path: Path) -> None:
    """A deploydeck.yml whose top level is a list -> an error at line 1: it must be a mapping."""
    out = assert_workspace_refused(tmp_path, "- app\n- fleet\n", "deploydeck.yml:1:")
    assert "must be a mapping" in out


def test_workspace_nested_three_thousand_levels_deep(tmp_path: Path) -> None:
    """A deploydeck.yml value nested 3,000 brackets deep -> an error naming the file: nested too deeply; no RecursionError."""
    out = assert_workspace_refused(
        tmp_path, WORKSPACE + "x-deep: " + "[" * 3000 + "]" * 3000 + "\n", "deploydeck.yml:"
    )
    assert "nested too deeply" in out and "RecursionError" not in out


def test_workspace_of_twelve_megabytes(tmp_path: Path) -> None:
    """A 12 MB deploydeck.yml -> refused by its size before parsing, naming the limit."""
    out = assert_workspace_refused(
        tmp_path, WORKSPACE + "# " + "a" * (12 * 1024 * 1024) + "\n", "deploydeck.yml:1:"
    )
    assert "larger than 4 MiB" in out and len(out) < 2000, out[:2000]


# ---- the agent configuration, through `deploydeck local -c` -----------------------------------


def test_agent_config_python_object_tag_runs_nothing(tmp_path: Path) -> None:
    """An agent configuration with !!python/object/apply -> refused naming file:line:column; the command never runs."""
    revision = write_tree(tmp_path / "rev", {"appspec.yml": SPEC})
    config = tmp_path / "agent.yml"
    config.write_text(f":root_dir: !!python/object/apply:os.system ['touch {tmp_path}/pwned']\n")
    done = dd(tmp_path, "local", "-l", str(revision), "-c", str(config))
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out, out
    assert "agent.yml:1:12:" in out
    assert not (tmp_path / "pwned").exists()


def test_agent_config_root_dir_that_is_a_list(tmp_path: Path) -> None:
    """An agent configuration whose :root_dir: is a list -> refused naming the line; no folder is created."""
    revision = write_tree(tmp_path / "rev", {"appspec.yml": SPEC})
    config = tmp_path / "agent.yml"
    config.write_text(":root_dir: [a, b]\n")
    before = listing(tmp_path)
    done = dd(tmp_path, "local", "-l", str(revision), "-c", str(config))
    out = done.stdout + done.stderr
    assert listing(tmp_path) == before, "a folder was created from the list"
    assert done.returncode == 1 and "agent.yml:1:" in out, out


def test_agent_config_nested_three_thousand_levels_deep(tmp_path: Path) -> None:
    """An agent configuration nested 3,000 brackets deep -> refused as not valid YAML, nested too deeply; nothing created."""
    revision = write_tree(tmp_path / "rev", {"appspec.yml": SPEC})
    config = tmp_path / "agent.yml"
    config.write_text(":root_dir: " + "[" * 3000 + "]" * 3000 + "\n")
    before = listing(tmp_path)
    done = dd(tmp_path, "local", "-l", str(revision), "-c", str(config))
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out, out
    assert "agent.yml" in out and "nested too deeply" in out
    assert listing(tmp_path) == before

"""Install for real: copy semantics, file_exists_behavior, cleanup, conflicts, permissions."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from engine.host.install import InstallError, install, read_cleanup
from engine.host.layout import DeploymentRoot
from tests.conftest import require_tool
from tests.host.harness import appspec, permission, snapshot, write_tree

INSTALL_ONLY = ("DownloadBundle", "Install")


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dest"


def rev(tmp_path: Path, name: str, files: dict) -> Path:
    return write_tree(tmp_path / name, {"appspec.yml": "version: 0.0\nos: linux\n", **files})


async def deploy(host, revision: Path, spec: dict, **extra):
    results = await host.deploy(revision, spec, INSTALL_ONLY, **extra)
    return results[-1]


async def test_directory_source_copies_children_preserving_modes(host, tmp_path, dest) -> None:
    revision = rev(
        tmp_path,
        "r1",
        {"app/bin/run": ("#!/bin/sh\n", 0o750), "app/conf/a.txt": "A", "app/.hidden": "h"},
    )
    result = await deploy(host, revision, appspec([("app", str(dest))]))
    assert result.ok, result.message
    assert (dest / "bin" / "run").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((dest / "bin" / "run").stat().st_mode) == 0o750
    assert (dest / "conf" / "a.txt").read_text() == "A"
    assert (dest / ".hidden").exists()
    assert not (dest / "app").exists()  # the directory itself is not nested


async def test_file_source_goes_into_destination_directory(host, tmp_path, dest) -> None:
    revision = rev(tmp_path, "r1", {"config/app.conf": "x=1"})
    result = await deploy(host, revision, appspec([("config/app.conf", str(dest / "etc"))]))
    assert result.ok
    assert (dest / "etc" / "app.conf").read_text() == "x=1"  # no rename-on-copy


async def test_source_slash_is_the_whole_archive(host, tmp_path, dest) -> None:
    revision = rev(tmp_path, "r1", {"a.txt": "a"})
    result = await deploy(host, revision, appspec([("/", str(dest))]))
    assert result.ok
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "appspec.yml"]


async def test_missing_source_fails_and_changes_nothing(host, tmp_path, dest) -> None:
    revision = rev(tmp_path, "r1", {"a.txt": "a"})
    result = await deploy(host, revision, appspec([("a.txt", str(dest)), ("nope", str(dest))]))
    assert not result.ok and "nope" in result.message
    assert not dest.exists()


async def test_disallow_conflict_fails_and_keeps_previous_install(host, tmp_path, dest) -> None:
    v1 = rev(tmp_path, "v1", {"site/index.html": "v1"})
    assert (await deploy(host, v1, appspec([("site", str(dest))]))).ok
    (dest / "stray.txt").write_text("not ours")
    v2 = rev(tmp_path, "v2", {"site/index.html": "v2", "site/stray.txt": "ours"})
    before = snapshot(dest)
    result = await deploy(host, v2, appspec([("site", str(dest))]))
    assert not result.ok
    assert str(dest / "stray.txt") in result.message and "DISALLOW" in result.message
    assert snapshot(dest) == before  # the previous revision's files are still there


async def test_overwrite_replaces_and_then_owns_the_file(host, tmp_path, dest) -> None:
    dest.mkdir()
    (dest / "keep.txt").write_text("pre-existing")
    v1 = rev(tmp_path, "v1", {"site/keep.txt": "from v1"})
    result = await deploy(
        host, v1, appspec([("site", str(dest))]), file_exists_behavior="OVERWRITE"
    )
    assert result.ok
    assert (dest / "keep.txt").read_text() == "from v1"
    # the overwritten file is now in the cleanup list: the next deployment deletes it
    v2 = rev(tmp_path, "v2", {"other.txt": "x"})
    assert (await deploy(host, v2, appspec([("other.txt", str(tmp_path / "elsewhere"))]))).ok
    assert not (dest / "keep.txt").exists()


async def test_overwrite_never_writes_through_a_symlink(host, tmp_path, dest) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    dest.mkdir()
    (dest / "a.txt").symlink_to(outside)
    v1 = rev(tmp_path, "v1", {"site/a.txt": "new"})
    result = await deploy(
        host, v1, appspec([("site", str(dest))]), file_exists_behavior="OVERWRITE"
    )
    assert result.ok
    assert outside.read_text() == "precious"
    assert not (dest / "a.txt").is_symlink() and (dest / "a.txt").read_text() == "new"


async def test_retain_keeps_the_file_and_never_cleans_it(host, tmp_path, dest) -> None:
    dest.mkdir()
    (dest / "keep.txt").write_text("pre-existing")
    v1 = rev(tmp_path, "v1", {"site/keep.txt": "from v1", "site/new.txt": "new"})
    result = await deploy(host, v1, appspec([("site", str(dest))]), file_exists_behavior="RETAIN")
    assert result.ok
    assert (dest / "keep.txt").read_text() == "pre-existing"
    assert str(dest / "keep.txt") not in read_cleanup(
        str(host.root / "deployment-instructions" / "dg-1-cleanup")
    )
    v2 = rev(tmp_path, "v2", {"x": "x"})
    assert (await deploy(host, v2, appspec([("x", str(tmp_path / "elsewhere"))]))).ok
    assert (dest / "keep.txt").read_text() == "pre-existing"
    assert not (dest / "new.txt").exists()


@pytest.mark.parametrize(
    ("in_appspec", "in_deployment", "expect_ok"),
    [("OVERWRITE", "DISALLOW", True), ("DISALLOW", "OVERWRITE", False), (None, "overwrite", True)],
)
async def test_appspec_file_exists_behavior_wins(
    host, tmp_path, dest, in_appspec, in_deployment, expect_ok
) -> None:
    dest.mkdir()
    (dest / "a.txt").write_text("old")
    v1 = rev(tmp_path, "v1", {"site/a.txt": "new"})
    spec = appspec([("site", str(dest))], file_exists_behavior=in_appspec)
    result = await deploy(host, v1, spec, file_exists_behavior=in_deployment)
    assert result.ok is expect_ok
    assert (dest / "a.txt").read_text() == ("new" if expect_ok else "old")


async def test_cleanup_across_consecutive_deployments(host, tmp_path, dest) -> None:
    dest.mkdir()
    (dest / "foreign.txt").write_text("someone else's")
    v1 = rev(tmp_path, "v1", {"site/a.txt": "a1", "site/old/b.txt": "b", "site/shared/s.txt": "s"})
    assert (await deploy(host, v1, appspec([("site", str(dest))]))).ok
    (dest / "shared" / "user-file.txt").write_text("made by hand")
    v2 = rev(tmp_path, "v2", {"site/a.txt": "a2", "site/new/c.txt": "c"})
    assert (await deploy(host, v2, appspec([("site", str(dest))]))).ok
    assert (dest / "a.txt").read_text() == "a2"
    assert not (dest / "old").exists()  # emptied and removed
    assert (dest / "new" / "c.txt").read_text() == "c"
    assert (dest / "shared" / "user-file.txt").exists()  # non-empty directory kept
    assert not (dest / "shared" / "s.txt").exists()
    assert (dest / "foreign.txt").exists()  # never installed by us


async def test_redeploying_the_same_revision_recreates_its_directories(
    host, tmp_path, dest
) -> None:
    v1 = rev(tmp_path, "v1", {"site/a/b/c.txt": "c"})
    spec = appspec([("site", str(dest / "deep" / "app"))])
    assert (await deploy(host, v1, spec)).ok
    assert (await deploy(host, v1, spec)).ok
    assert (dest / "deep" / "app" / "a" / "b" / "c.txt").read_text() == "c"


async def test_no_files_still_removes_the_previous_install(host, tmp_path, dest) -> None:
    v1 = rev(tmp_path, "v1", {"site/a.txt": "a"})
    assert (await deploy(host, v1, appspec([("site", str(dest / "app"))]))).ok
    assert (await deploy(host, rev(tmp_path, "v2", {}), appspec())).ok
    assert not (dest / "app").exists()


def test_torn_cleanup_line_is_ignored(tmp_path: Path) -> None:
    cleanup = tmp_path / "g-cleanup"
    cleanup.write_text("/a\n/b\n/c-torn")
    assert read_cleanup(str(cleanup)) == ["/b", "/a"]


async def test_two_sources_for_one_destination(host, tmp_path, dest) -> None:
    v1 = rev(tmp_path, "v1", {"one/a.txt": "1", "two/a.txt": "2"})
    result = await deploy(host, v1, appspec([("one", str(dest)), ("two", str(dest))]))
    assert not result.ok and "same destination" in result.message
    assert not dest.exists()


async def test_file_onto_directory_being_created(host, tmp_path, dest) -> None:
    v1 = rev(tmp_path, "v1", {"tree/x/y.txt": "y", "file/x": "i am a file"})
    result = await deploy(host, v1, appspec([("tree", str(dest)), ("file/x", str(dest))]))
    assert not result.ok and "creates a directory" in result.message


async def test_symlinks_are_installed_as_symlinks(host, tmp_path, dest) -> None:
    v1 = rev(tmp_path, "v1", {"site/real/f.txt": "f"})
    (tmp_path / "v1" / "site" / "link.txt").symlink_to("real/f.txt")
    (tmp_path / "v1" / "site" / "dirlink").symlink_to("real")
    assert (await deploy(host, v1, appspec([("site", str(dest))]))).ok
    assert os.readlink(dest / "link.txt") == "real/f.txt"
    assert os.readlink(dest / "dirlink") == "real"


async def test_install_json_and_cleanup_file(host, tmp_path, dest) -> None:
    v1 = rev(tmp_path, "v1", {"site/a.txt": "a"})
    assert (await deploy(host, v1, appspec([("site", str(dest / "app"))]))).ok
    instructions = host.root / "deployment-instructions"
    import json

    data = json.loads((instructions / "dg-1-install.json").read_text())
    assert {"type": "mkdir", "directory": str(dest)} in data["instructions"]
    assert {
        "type": "copy",
        "source": str(host.deployment_dir("d-TEST00001") / "deployment-archive" / "site" / "a.txt"),
        "destination": str(dest / "app" / "a.txt"),
    } in data["instructions"]
    records = [
        json.loads(line) for line in (instructions / "dg-1-cleanup").read_text().splitlines()
    ]
    assert records == [
        {"deploydeck_cleanup": 2},
        {"remove": str(dest)},
        {"remove": str(dest / "app")},
        {"remove": str(dest / "app" / "a.txt")},
    ]


async def test_fs_root_places_everything_under_the_instance(host, tmp_path) -> None:
    fs_root = tmp_path / "instance" / "fs"
    v1 = rev(tmp_path, "v1", {"site/a.txt": "a"})
    spec = appspec(
        [("site", "/srv/app"), ("site/a.txt", "relative/dir")],
        permissions=[permission("/srv/app", mode="600", type=["file"])],
    )
    assert (await deploy(host, v1, spec, fs_root=str(fs_root))).ok
    assert (fs_root / "srv" / "app" / "a.txt").read_text() == "a"
    assert (fs_root / "relative" / "dir" / "a.txt").exists()
    assert stat.S_IMODE((fs_root / "srv" / "app" / "a.txt").stat().st_mode) == 0o600
    assert not Path("/srv/app/a.txt").exists()


async def test_a_source_outside_the_revision_is_refused(host, tmp_path, dest) -> None:
    """The appspec parser refuses `..` sources; the agent refuses them again on its own."""
    (tmp_path / "secret").write_text("host secret")
    v1 = rev(tmp_path, "v1", {"a.txt": "a"})
    for source in ("../../../secret", "/../../../secret"):
        result = await deploy(host, v1, appspec([(source, str(dest))]))
        assert not result.ok and "outside the revision" in result.message, result.message
    assert not dest.exists()


async def test_a_link_pointing_above_fs_root_is_refused(host, tmp_path) -> None:
    fs_root = tmp_path / "instance" / "fs"
    v1 = rev(tmp_path, "v1", {"a/b/c/inside": "x"})
    (v1 / "a" / "b" / "c" / "up").symlink_to("../../..")  # inside the revision
    (v1 / "a" / "b" / "c" / "ok").symlink_to("inside")
    result = await deploy(host, v1, appspec([("a/b/c", "/srv")]), fs_root=str(fs_root))
    assert not result.ok
    assert "up -> ../../.." in result.message and "outside the instance folder" in result.message
    assert not (fs_root / "srv").exists()
    v2 = rev(tmp_path, "v2", {"a/b/c/inside": "x"})
    (v2 / "a" / "b" / "c" / "ok").symlink_to("inside")
    (v2 / "a" / "b" / "c" / "deep").symlink_to("../srv/inside")  # /srv/deep -> /srv/inside
    assert (await deploy(host, v2, appspec([("a/b/c", "/srv")]), fs_root=str(fs_root))).ok
    assert (fs_root / "srv" / "ok").read_text() == "x"


async def test_nothing_is_installed_through_a_link_leaving_fs_root(host, tmp_path) -> None:
    fs_root = tmp_path / "instance" / "fs"
    outside = tmp_path / "outside"
    outside.mkdir()
    (fs_root / "srv").mkdir(parents=True)
    (fs_root / "srv" / "l").symlink_to(outside)  # placed by a hook, or an older agent
    v1 = rev(tmp_path, "v1", {"payload/evil": "pwned", "one": "1"})
    for source, destination in (("payload", "/srv/l"), ("one", "/srv/l/x/y")):
        result = await deploy(host, v1, appspec([(source, destination)]), fs_root=str(fs_root))
        assert not result.ok and "outside the instance folder" in result.message
    assert list(outside.iterdir()) == []


# ---- permissions ----------------------------------------------------------------------------


def tree_revision(tmp_path: Path) -> Path:
    return rev(
        tmp_path,
        "v1",
        {
            "site/run.sh": "#!/bin/sh\n",
            "site/readme.txt": "r",
            "site/sub/deep.sh": "#!/bin/sh\n",
            "site/sub/data.txt": "d",
        },
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_double_star_reaches_every_depth_and_except_only_direct_children(
    host, tmp_path, dest
) -> None:
    spec = appspec(
        [("site", str(dest))],
        permissions=[
            permission(
                str(dest), mode="640", type=["file"], **{"except": ["readme.txt", "deep.sh"]}
            )
        ],
    )
    assert (await deploy(host, tree_revision(tmp_path), spec)).ok
    assert mode(dest / "run.sh") == 0o640
    assert mode(dest / "readme.txt") == 0o644  # excluded: a direct child
    assert mode(dest / "sub" / "deep.sh") == 0o640  # except never looks below direct children
    assert mode(dest / "sub" / "data.txt") == 0o640


async def test_pattern_matches_direct_children_only(host, tmp_path, dest) -> None:
    spec = appspec(
        [("site", str(dest))], permissions=[permission(str(dest), pattern="*.sh", mode="700")]
    )
    assert (await deploy(host, tree_revision(tmp_path), spec)).ok
    assert mode(dest / "run.sh") == 0o700
    assert mode(dest / "sub" / "deep.sh") == 0o755  # not a direct child


async def test_type_directory_only_touches_created_directories(host, tmp_path, dest) -> None:
    dest.mkdir()
    dest.chmod(0o755)
    spec = appspec(
        [("site", str(dest))], permissions=[permission(str(dest), mode="700", type=["directory"])]
    )
    assert (await deploy(host, tree_revision(tmp_path), spec)).ok
    assert mode(dest / "sub") == 0o700
    assert mode(dest / "run.sh") == 0o755
    assert mode(dest) == 0o755  # the object itself is never changed


async def test_file_object_rules(host, tmp_path, dest) -> None:
    revision = tree_revision(tmp_path)
    target = str(dest / "run.sh")
    for bad, words in (
        ({"pattern": "*.sh"}, "pattern"),
        ({"except": ["x"]}, "except"),
        ({"acls": ["default:user:root:rwx"]}, "default ACL"),
    ):
        spec = appspec([("site", str(dest))], permissions=[permission(target, **bad)])
        result = await deploy(host, revision, spec)
        assert not result.ok and words in result.message
        assert not dest.exists()
    spec = appspec([("site", str(dest))], permissions=[permission(target, mode="600")])
    assert (await deploy(host, revision, spec)).ok
    assert mode(dest / "run.sh") == 0o600


async def test_same_path_twice_is_rejected(host, tmp_path, dest) -> None:
    spec = appspec(
        [("site", str(dest))],
        permissions=[permission(str(dest), mode="600"), permission(str(dest / "sub"), mode="700")],
    )
    result = await deploy(host, tree_revision(tmp_path), spec)
    assert not result.ok and "more than once" in result.message


async def test_owner_and_group_as_root(host, tmp_path, dest) -> None:
    assert os.geteuid() == 0, "the suite runs as root (CI does)"
    nobody, nogroup = pwd.getpwnam("nobody"), grp.getgrgid(pwd.getpwnam("nobody").pw_gid)
    spec = appspec(
        [("site", str(dest))],
        permissions=[
            permission(str(dest), owner="nobody", group=nogroup.gr_name, mode="640", type=["file"])
        ],
    )
    assert (await deploy(host, tree_revision(tmp_path), spec)).ok
    st = (dest / "sub" / "data.txt").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        nobody.pw_uid,
        nogroup.gr_gid,
        0o640,
    )
    assert (dest / "sub").stat().st_uid == 0  # type file only


async def test_unknown_owner_fails_before_anything_changes(host, tmp_path, dest) -> None:
    spec = appspec(
        [("site", str(dest))], permissions=[permission(str(dest), owner="no-such-user-q")]
    )
    result = await deploy(host, tree_revision(tmp_path), spec)
    assert not result.ok and "no-such-user-q" in result.message
    assert not dest.exists()


async def test_permission_order_chmod_then_acl_then_chown(tmp_path: Path, dest: Path) -> None:
    require_tool("setfacl")
    archive = write_tree(tmp_path / "archive", {"site/a.txt": "a"})
    spec = appspec(
        [("site", str(dest))],
        permissions=[
            permission(
                str(dest), mode="640", acls=["user:nobody:rw-"], owner="nobody", type=["file"]
            )
        ],
    )
    install(DeploymentRoot(str(tmp_path / "root")), "g", str(archive), spec, "DISALLOW")
    acl = subprocess.run(
        ["getfacl", "-p", str(dest / "a.txt")], capture_output=True, text=True
    ).stdout
    assert "user:nobody:rw-" in acl and "group::r--" in acl and "mask::r--" in acl
    assert (dest / "a.txt").stat().st_uid == pwd.getpwnam("nobody").pw_uid
    commands = __import__("json").loads(
        (tmp_path / "root/deployment-instructions/g-install.json").read_text()
    )
    assert [c["type"] for c in commands["instructions"]] == [
        "mkdir",
        "copy",
        "chmod",
        "setfacl",
        "chown",
    ]


def test_install_error_is_raised_directly(tmp_path: Path) -> None:
    archive = write_tree(tmp_path / "archive", {"a.txt": "a"})
    spec = appspec([("a.txt", str(tmp_path / "d")), ("a.txt", str(tmp_path / "d"))])
    with pytest.raises(InstallError):
        install(DeploymentRoot(str(tmp_path / "root")), "g", str(archive), spec, "DISALLOW")


async def test_selinux_context_without_semanage_is_a_clear_failure(host, tmp_path, dest) -> None:
    """A context needs semanage; where it is missing, Install says so before it changes anything
    (the reference finds out while executing, with the files already copied)."""
    import shutil

    assert shutil.which("semanage") is None, "this test expects a host without SELinux tools"
    spec = appspec(
        [("site", str(dest))],
        permissions=[
            permission(
                str(dest),
                context={"user": None, "type": "httpd_sys_content_t", "range": None},
                type=["file"],
            )
        ],
    )
    result = await deploy(host, tree_revision(tmp_path), spec)
    assert not result.ok
    assert "semanage" in result.message and "not installed" in result.message
    assert not dest.exists()


async def test_a_stopped_install_leaves_a_cleanup_file_the_next_install_replays(
    host, tmp_path, dest
) -> None:
    """A stop between two copies: what was placed is in the cleanup file, so the next install
    (DISALLOW) removes it first instead of failing on it."""
    from engine.host.install import InstallStopped
    from engine.host.layout import archive_dir

    v1 = rev(tmp_path, "v1", {f"site/f{i}.txt": str(i) for i in range(10)})
    spec = appspec([("site", str(dest))])
    (download,) = await host.deploy(v1, spec, ("DownloadBundle",), deployment_id="d-STOPPED")
    assert download.ok
    asked = []

    def stop_after_four() -> bool:
        asked.append(1)
        return len(asked) > 4

    with pytest.raises(InstallStopped):
        install(
            DeploymentRoot(str(host.root)),
            host.group,
            archive_dir(str(host.deployment_dir("d-STOPPED"))),
            spec,
            "DISALLOW",
            should_stop=stop_after_four,
        )
    placed = sorted([str(dest), *(str(p) for p in dest.rglob("*"))])  # dest was created too
    assert 1 < len(placed) < 11
    cleanup = read_cleanup(str(host.root / "deployment-instructions" / "dg-1-cleanup"))
    assert sorted(cleanup) == placed
    v2 = rev(tmp_path, "v2", {"site/other.txt": "v2"})
    assert (await deploy(host, v2, spec)).ok
    assert sorted(p.name for p in dest.iterdir()) == ["other.txt"]


@pytest.mark.parametrize("stops", [1, 2])
async def test_a_stop_waits_for_the_worker_thread_to_end(stops: int) -> None:
    """Install and DownloadBundle run in a thread: a stop asks it to stop and returns only once
    it has, so nothing keeps copying after the command reports Stopped. A second stop (Ctrl-C
    twice, or a signal and then the end of input) still waits."""
    import asyncio
    import threading
    import time

    from engine.host.agent import _in_thread

    started, ended = threading.Event(), threading.Event()

    def work(stop: threading.Event) -> str:
        started.set()
        stop.wait()
        time.sleep(0.5)  # finishing the file it was copying
        ended.set()
        return "done"

    task = asyncio.ensure_future(_in_thread(work))
    while not started.is_set():
        await asyncio.sleep(0.01)
    for _ in range(stops):
        task.cancel()
        await asyncio.sleep(0.05)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set()


async def test_work_stopped_while_queued_never_runs() -> None:
    """With every worker busy (other instances' downloads), a stopped command's work is taken
    back at once instead of running later."""
    import asyncio
    import threading

    from engine.host import agent

    release = threading.Event()
    busy = [agent._WORKERS.submit(release.wait) for _ in range(agent._WORKERS._max_workers)]
    ran: list[bool] = []
    try:
        task = asyncio.ensure_future(agent._in_thread(lambda stop: str(ran.append(True))))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        release.set()
    for job in busy:
        job.result(timeout=10)
    assert ran == []


def test_an_install_stopped_before_it_starts_changes_nothing(tmp_path: Path) -> None:
    """The previous install's files stay, and so does its cleanup file."""
    from engine.host.install import InstallStopped

    root = DeploymentRoot(str(tmp_path / "root"))
    dest = tmp_path / "dest"
    v1 = rev(tmp_path, "v1", {"site/a.txt": "v1"})
    install(root, "g", str(v1), appspec([("site", str(dest))]), "DISALLOW")
    cleanup = Path(root.cleanup_file("g")).read_text()
    v2 = rev(tmp_path, "v2", {"site/b.txt": "v2"})
    with pytest.raises(InstallStopped):
        install(
            root, "g", str(v2), appspec([("site", str(dest))]), "DISALLOW", should_stop=lambda: True
        )
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
    assert Path(root.cleanup_file("g")).read_text() == cleanup


async def test_a_cleanup_file_in_the_older_format_is_still_replayed(host, tmp_path, dest) -> None:
    """Hosts installed by an agent that wrote one path per line keep their cleanup."""
    v1 = rev(tmp_path, "v1", {"site/a.txt": "a"})
    assert (await deploy(host, v1, appspec([("site", str(dest / "app"))]))).ok
    cleanup = host.root / "deployment-instructions" / "dg-1-cleanup"
    cleanup.write_text(f"{dest}\n{dest / 'app'}\n{dest / 'app' / 'a.txt'}\n")
    assert read_cleanup(str(cleanup)) == [str(dest / "app" / "a.txt"), str(dest / "app"), str(dest)]
    assert (await deploy(host, rev(tmp_path, "v2", {}), appspec())).ok
    assert not dest.exists()


def test_cleanup_records_are_json_lines_for_every_kind_of_name(tmp_path: Path) -> None:
    """Each placed path is one JSON object on its own line, whether written the quick way
    (plain ASCII names) or through the encoder (quotes, backslashes, newlines, non-ASCII,
    DEL), and read back as written."""
    import json

    from engine.host.install import CleanupWriter

    names = ["/srv/app/a b.txt", '/srv/q"uote', "/srv/back\\slash", "/srv/new\nline"]
    names += ["/srv/ünï", "/srv/del\x7f", "/srv/tab\tx", "/srv/plain-1_2.html"]
    cleanup = tmp_path / "cleanup"
    with open(cleanup, "w", encoding="utf-8") as handle:
        writer = CleanupWriter(handle)
        for name in names:
            writer.placed(name)
    lines = cleanup.read_text(encoding="utf-8").splitlines()
    assert lines[1:] == [json.dumps({"remove": name}) for name in names]
    assert read_cleanup(str(cleanup)) == list(reversed(names))

"""Detection by content, leading-directory stripping
(docs/codedeploy-agent.md#leading-directory-stripping) and tree hashes."""

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from engine.host.bundle_model import UnsafeBundle
from engine.host.bundle_scan import detect_bundle_type
from engine.host.extract import (
    LEADING_DIRECTORY_TEMP_NAME,
    extract_bundle,
    leading_directory,
    strip_leading_directory,
)
from engine.host.hashing import sha256_directory, sha256_file

from .factory import SAMPLE_REVISION, build_bundle, d, f, link, write_directory, write_tar

# ---- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar", "tgz", "zip", "directory"])
def test_detection_goes_by_content_not_by_name(fmt: str, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path, fmt, SAMPLE_REVISION)
    if fmt != "directory":
        misnamed = bundle.rename(tmp_path / "bundle.misleading.rar")
        assert detect_bundle_type(misnamed) == fmt
    else:
        assert detect_bundle_type(bundle) == "directory"


@pytest.mark.parametrize("compression", ["bz2", "xz"])
def test_other_compressed_tars_are_tars(compression: str, tmp_path: Path) -> None:
    bundle = write_tar(tmp_path / "bundle", SAMPLE_REVISION, compression)
    assert detect_bundle_type(bundle) == "tar"


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"version: 0.0\nos: linux\n", "not a tar", id="text"),
        pytest.param(bytes((i * 7919) % 251 for i in range(2048)), "not a tar", id="noise"),
    ],
)
def test_unknown_content_is_refused(content: bytes, detail: str, tmp_path: Path) -> None:
    path = tmp_path / "bundle.tgz"
    path.write_bytes(content)
    with pytest.raises(UnsafeBundle, match=detail) as refused:
        detect_bundle_type(path)
    assert refused.value.reason == "unknown_type"


def test_a_missing_bundle_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(UnsafeBundle, match="does not exist") as refused:
        detect_bundle_type(tmp_path / "nope.tgz")
    assert refused.value.reason == "not_found"


# ---- leading directory, by names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["web-v1/", "web-v1/appspec.yml", "web-v1/scripts/start.sh"], "web-v1"),
        (["./", "./web-v1/", "./web-v1/AppSpec.YAML"], "web-v1"),  # tar -C parent .
        (["web-v1/appspec.yml"], "web-v1"),  # no explicit directory entry
        (["web-v1", "web-v1/my-appspec-notes.txt"], "web-v1"),  # /appspec/i matches anywhere
        (["web-v1/appspec.yml", "README.md"], None),  # two root entries
        (["appspec.yml"], None),  # the root entry is a file
        (["web-v1/", "web-v1/index.html"], None),  # a directory without an appspec
        (["web-v1/config/appspec.yml"], None),  # only direct children count
        (["web-v1/"], None),
        ([], None),
    ],
)
def test_leading_directory_by_member_names(names: list[str], expected: str | None) -> None:
    assert leading_directory(names) == expected


# ---- leading directory, on disk --------------------------------------------------------------


def _extract(tmp_path: Path, entries: list) -> Path:
    bundle = build_bundle(tmp_path / "bundles", "tgz", entries)
    archive_dir = tmp_path / "d-123" / "deployment-archive"
    extract_bundle(bundle, "tgz", archive_dir)
    return archive_dir


def test_the_leading_directory_is_stripped_via_the_temp_sibling(tmp_path: Path) -> None:
    entries = [d("web-v1"), f("web-v1/appspec.yml", b"version: 0.0\n"), d("web-v1/scripts")]
    entries.append(f("web-v1/scripts/start.sh", b"#!/bin/sh\n", 0o755))
    archive_dir = _extract(tmp_path, entries)
    stale = archive_dir.parent / LEADING_DIRECTORY_TEMP_NAME
    stale.mkdir()
    (stale / "left-over").write_text("from a crashed run")

    assert leading_directory(["web-v1/appspec.yml", "web-v1/scripts/start.sh"]) == "web-v1"
    assert strip_leading_directory(archive_dir) is True

    assert sorted(p.name for p in archive_dir.iterdir()) == ["appspec.yml", "scripts"]
    assert os.access(archive_dir / "scripts" / "start.sh", os.X_OK)
    assert sorted(p.name for p in archive_dir.parent.iterdir()) == ["deployment-archive"]


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([f("web-v1/appspec.yml"), f("README.md")], id="two root entries"),
        pytest.param([f("appspec.yml")], id="root file"),
        pytest.param([d("web-v1"), f("web-v1/index.html")], id="directory without appspec"),
        pytest.param([f("web-v1/config/appspec.yml")], id="appspec too deep"),
    ],
)
def test_the_leading_directory_stays_when_the_rule_does_not_hold(
    entries: list, tmp_path: Path
) -> None:
    archive_dir = _extract(tmp_path, entries)
    before = sorted(p.relative_to(archive_dir) for p in archive_dir.rglob("*"))
    assert leading_directory([e.name for e in entries]) is None
    assert strip_leading_directory(archive_dir) is False
    assert sorted(p.relative_to(archive_dir) for p in archive_dir.rglob("*")) == before


def test_a_single_symlinked_directory_is_not_stripped(tmp_path: Path) -> None:
    archive_dir = tmp_path / "deployment-archive"
    archive_dir.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "appspec.yml").write_text("version: 0.0\n")
    (archive_dir / "web").symlink_to(tmp_path / "elsewhere")
    assert strip_leading_directory(archive_dir) is False
    assert (archive_dir / "web").is_symlink()


def test_names_and_disk_agree_on_the_sample_layouts(tmp_path: Path) -> None:
    layouts = {
        "nested": [f("app/appspec.yml"), f("app/src/main.py")],
        "flat": [f("appspec.yml"), f("src/main.py")],
        "nested-no-appspec": [f("app/src/main.py")],
    }
    for name, entries in layouts.items():
        archive_dir = _extract(tmp_path / name, entries)
        by_names = leading_directory([e.name for e in entries]) is not None
        assert strip_leading_directory(archive_dir) is by_names, name


# ---- hashes --------------------------------------------------------------------------------


def test_sha256_file_is_the_plain_digest(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"deploydeck" * 100_000)
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_sha256_directory_is_stable_across_copies_and_times(tmp_path: Path) -> None:
    original = write_directory(tmp_path / "a", SAMPLE_REVISION)
    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(original, copy, symlinks=True)  # new inodes, new mtimes, another path
    os.utime(copy / "appspec.yml", (0, 0))
    assert sha256_directory(original) == sha256_directory(copy)
    assert len(sha256_directory(original)) == 64


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: (root / "scripts" / "start.sh").chmod(0o644), id="mode"),
        pytest.param(lambda root: (root / "config").chmod(0o755), id="directory mode"),
        pytest.param(
            lambda root: (root / "config" / "app.conf").write_bytes(b"port = 8081\n"), id="byte"
        ),
        pytest.param(
            lambda root: ((root / "current").unlink(), (root / "current").symlink_to("static")),
            id="link target",
        ),
        pytest.param(
            lambda root: (root / "appspec.yml").rename(root / "appspec.yaml"), id="rename"
        ),
        pytest.param(lambda root: (root / "logs" / "new").mkdir(), id="new directory"),
        pytest.param(lambda root: (root / "logs").rmdir(), id="removed directory"),
    ],
)
def test_sha256_directory_changes_with_content_modes_links_and_names(
    change, tmp_path: Path
) -> None:
    tree = write_directory(tmp_path / "tree", SAMPLE_REVISION)
    before = sha256_directory(tree)
    change(tree)
    assert sha256_directory(tree) != before


def test_sha256_directory_does_not_follow_symlinks(tmp_path: Path) -> None:
    tree = write_directory(tmp_path / "tree", [f("appspec.yml"), link("ext", str(tmp_path))])
    before = sha256_directory(tree)
    (tmp_path / "unrelated.txt").write_text("changes outside the tree")
    assert sha256_directory(tree) == before

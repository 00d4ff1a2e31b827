"""Extraction and copy: the reference's `tar -xpsf` / `unzip` outcome, written safely."""

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from engine.host import extract
from engine.host.bundle_model import BundleMember, UnsafeBundle
from engine.host.bundle_scan import scan_bundle
from engine.host.extract import copy_directory_bundle, extract_bundle
from engine.host.hashing import sha256_directory
from tests.conftest import require_tool, unavailable

from .factory import (
    ALL_FORMATS,
    MTIME,
    SAMPLE_REVISION,
    build_bundle,
    d,
    f,
    hardlink,
    link,
    snapshot,
    write_directory,
    write_tar,
)

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def reference_tree(tmp_path: Path) -> Path:
    """The sample revision written as a plain directory, to compare extractions with."""
    return write_directory(tmp_path / "reference", SAMPLE_REVISION)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_each_format_extracts_the_revision_exactly(
    fmt: str, tmp_path: Path, reference_tree: Path
) -> None:
    bundle = build_bundle(tmp_path / "bundles", fmt, SAMPLE_REVISION)
    dest = tmp_path / "deploy" / "deployment-archive"

    members = extract_bundle(bundle, fmt, dest)

    assert {m.name for m in members} >= {"appspec.yml", "scripts/start.sh", "current"}
    # Contents, names, modes and link targets all agree with the tree the bundle was made from.
    assert sha256_directory(dest) == sha256_directory(reference_tree)
    start = dest / "scripts" / "start.sh"
    assert stat.S_IMODE(start.stat().st_mode) == 0o755
    assert os.access(start, os.X_OK)
    assert stat.S_IMODE((dest / "config" / "app.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((dest / "config").stat().st_mode) == 0o750
    assert stat.S_IMODE((dest / "logs").stat().st_mode) == 0o700
    assert (dest / "current").is_symlink() and os.readlink(dest / "current") == "scripts"
    assert (dest / "scripts" / "run").is_symlink()
    assert (dest / "current" / "run").read_text() == "#!/bin/sh\necho started\n"
    # mtimes: files, directories (set after their content was written) and symlinks.
    assert start.stat().st_mtime == MTIME
    assert (dest / "config").stat().st_mtime == MTIME
    assert (dest / "static" / "css").stat().st_mtime == MTIME
    assert (dest / "current").lstat().st_mtime == MTIME


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_tar_compression_is_detected_like_gnu_tar(compression: str, tmp_path: Path) -> None:
    bundle = write_tar(tmp_path / "bundle", SAMPLE_REVISION, compression)
    dest = tmp_path / "out"
    extract_bundle(bundle, "tar", dest)
    assert (dest / "appspec.yml").read_bytes().startswith(b"version: 0.0")


@pytest.mark.parametrize("fmt", ["tar", "tgz"])
def test_hard_links_are_restored_as_hard_links(fmt: str, tmp_path: Path) -> None:
    entries = [d("bin"), f("bin/tool", b"#!/bin/sh\n", 0o755), hardlink("bin/alias", "bin/tool")]
    bundle = build_bundle(tmp_path, fmt, entries)
    dest = tmp_path / "out"
    extract_bundle(bundle, fmt, dest)
    assert (dest / "bin" / "alias").stat().st_ino == (dest / "bin" / "tool").stat().st_ino
    assert os.access(dest / "bin" / "alias", os.X_OK)


def test_owners_and_setuid_are_restored_when_root(tmp_path: Path) -> None:
    if not IS_ROOT:
        unavailable("restoring owners needs root, as with GNU tar")
    bundle = tmp_path / "owned.tar"
    with tarfile.open(bundle, "w") as tar:
        info = tarfile.TarInfo("suid-tool")
        info.mode, info.uid, info.gid, info.uname, info.gname = 0o4755, 4321, 4322, "", ""
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))

    extract_bundle(bundle, "tar", tmp_path / "as-root")
    restored = (tmp_path / "as-root" / "suid-tool").stat()
    assert (restored.st_uid, restored.st_gid) == (4321, 4322)
    assert stat.S_IMODE(restored.st_mode) == 0o4755

    extract_bundle(bundle, "tar", tmp_path / "not-preserved", preserve_owner=False)
    plain = (tmp_path / "not-preserved" / "suid-tool").stat()
    assert plain.st_uid == os.getuid()
    assert stat.S_IMODE(plain.st_mode) == 0o755, "setuid is dropped when owners are not kept"


def test_a_tar_root_entry_gives_its_mode_to_the_destination(tmp_path: Path) -> None:
    bundle = write_tar(tmp_path / "b.tar", [d(".", 0o751), f("./appspec.yml", b"x")])
    dest = tmp_path / "out"
    members = extract_bundle(bundle, "tar", dest)
    assert [m.name for m in members] == [".", "appspec.yml"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o751  # what GNU tar -p does with "./"


def test_directory_bundle_is_copied_with_modes_times_and_symlinks(
    tmp_path: Path, reference_tree: Path
) -> None:
    dest = tmp_path / "deployment-archive"
    copy_directory_bundle(reference_tree, dest)
    assert sha256_directory(dest) == sha256_directory(reference_tree)
    assert (dest / "current").is_symlink()
    assert (dest / "static" / "css").stat().st_mtime == MTIME


# ---- the real tools ------------------------------------------------------------------------


def _run(*command: str, cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)


@pytest.mark.parametrize("flags", ["-cf", "-czf"])
def test_archives_made_by_gnu_tar_extract_like_gnu_tar(
    flags: str, tmp_path: Path, reference_tree: Path
) -> None:
    require_tool("tar")
    bundle = tmp_path / "made-by-tar"
    _run("tar", flags, str(bundle), "-C", str(reference_tree), ".", cwd=tmp_path)
    ours = tmp_path / "ours"
    extract_bundle(bundle, "tgz" if "z" in flags else "tar", ours)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    _run("tar", "-xpsf", str(bundle), cwd=theirs)  # the reference's own command
    assert sha256_directory(ours) == sha256_directory(theirs) == sha256_directory(reference_tree)
    assert ours.stat().st_mode == theirs.stat().st_mode  # the "./" entry, applied by both
    assert (ours / "scripts" / "start.sh").stat().st_mtime == MTIME


def test_zips_made_by_info_zip_keep_modes_and_symlinks(
    tmp_path: Path, reference_tree: Path
) -> None:
    require_tool("zip")
    bundle = tmp_path / "made-by-zip.zip"
    _run("zip", "-qry", str(bundle), ".", cwd=reference_tree)  # -y: store symlinks as links
    ours = tmp_path / "ours"
    extract_bundle(bundle, "zip", ours)
    assert sha256_directory(ours) == sha256_directory(reference_tree)
    assert (ours / "scripts" / "start.sh").stat().st_mtime == MTIME
    if shutil.which("unzip"):
        theirs = tmp_path / "theirs"
        _run("unzip", "-qo", str(bundle), "-d", str(theirs), cwd=tmp_path)
        assert sha256_directory(ours) == sha256_directory(theirs)


# ---- destination rules and failures while writing -------------------------------------------


def test_the_destination_must_be_missing_or_empty(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path, "tgz", SAMPLE_REVISION)
    empty = tmp_path / "empty"
    empty.mkdir()
    extract_bundle(bundle, "tgz", empty)
    assert (empty / "appspec.yml").is_file()

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        extract_bundle(bundle, "tgz", busy)
    assert snapshot(busy) == {"keep.txt": snapshot(busy)["keep.txt"]}

    (tmp_path / "target").mkdir()
    (tmp_path / "dest-link").symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError, match="not a directory"):
        extract_bundle(bundle, "tgz", tmp_path / "dest-link")
    assert list((tmp_path / "target").iterdir()) == []


def test_a_tar_changed_between_scan_and_extraction_is_refused_and_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_tar(tmp_path / "b.tar", [f("a.txt", b"small"), f("b.txt", b"x")])
    real_scan = extract.scan_bundle

    def scan_then_swap(path: object, bundle_type: str, max_bytes: int) -> list:
        members = real_scan(path, bundle_type, max_bytes)
        # Same names, but a symlink where the scan saw a file: the writer must not trust it.
        write_tar(tmp_path / "b.tar", [f("a.txt", b"small"), link("b.txt", "/etc/passwd")])
        return members

    monkeypatch.setattr(extract, "scan_bundle", scan_then_swap)
    parent = tmp_path / "deploy"
    parent.mkdir()
    with pytest.raises(UnsafeBundle) as refused:
        extract_bundle(bundle, "tar", parent / "deployment-archive")
    assert refused.value.reason == "changed"
    assert snapshot(parent) == {}, "the half-written destination is removed"


def test_a_directory_file_that_grows_after_the_scan_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_directory(tmp_path / "src", [f("appspec.yml", b"x"), f("z-big.bin", b"1")])
    real_scan = extract.scan_bundle

    def scan_then_grow(path: object, bundle_type: str, max_bytes: int) -> list:
        members = real_scan(path, bundle_type, max_bytes)
        (source / "z-big.bin").write_bytes(b"1" * 100_000)
        return members

    monkeypatch.setattr(extract, "scan_bundle", scan_then_grow)
    dest = tmp_path / "deploy" / "deployment-archive"
    with pytest.raises(UnsafeBundle) as refused:
        copy_directory_bundle(source, dest)
    assert refused.value.reason == "changed"
    assert not dest.exists()


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_the_size_limit_also_holds_while_writing(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if the scan were fooled about sizes, the writer counts the bytes itself."""
    bundle = build_bundle(tmp_path / "bundles", fmt, SAMPLE_REVISION)
    real_scan = extract.scan_bundle
    monkeypatch.setattr(
        extract, "scan_bundle", lambda path, kind, limit: real_scan(path, kind, sys.maxsize)
    )
    dest = tmp_path / "deploy" / "deployment-archive"
    with pytest.raises(UnsafeBundle) as refused:
        extract_bundle(bundle, fmt, dest, max_bytes=1000)
    assert refused.value.reason == "too_large"
    assert not dest.exists()


def test_a_symlink_planted_in_the_destination_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process swapping a directory for a link mid-extraction cannot redirect writes."""
    bundle = write_tar(tmp_path / "b.tar", [d("www"), f("www/index.html", b"<h1>hi</h1>")])
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "deployment-archive"
    real_add = extract._TreeWriter.add

    def add_and_plant(writer: extract._TreeWriter, member: BundleMember, content) -> None:
        real_add(writer, member, content)
        if member.name == "www":
            (dest / "www").rmdir()
            (dest / "www").symlink_to(outside)

    monkeypatch.setattr(extract._TreeWriter, "add", add_and_plant)
    with pytest.raises(UnsafeBundle) as refused:
        extract_bundle(bundle, "tar", dest)
    assert refused.value.reason == "through_link"
    assert list(outside.iterdir()) == []
    assert not dest.exists()


def test_scan_lists_members_in_archive_order_with_their_metadata(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path, "tgz", SAMPLE_REVISION)
    members = scan_bundle(bundle, "tgz")
    assert [m.index for m in members] == list(range(len(SAMPLE_REVISION)))
    by_name = {m.name: m for m in members}
    assert by_name["scripts/start.sh"].kind == "file"
    assert by_name["scripts/start.sh"].mode == 0o755
    assert by_name["scripts/start.sh"].size == len(b"#!/bin/sh\necho started\n")
    assert by_name["current"].kind == "symlink" and by_name["current"].link_target == "scripts"
    assert by_name["logs"].kind == "directory"


def test_a_file_worker_scans_each_directory_bundle_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once remember_directory_scans is called (a runner's file workers: their bundles are
    snapshots), a directory bundle copied to several instances is scanned once and every
    copy is exact; before, each copy scans it; a file changed since the scan is refused."""
    bundle = tmp_path / "bundle"
    (bundle / "site").mkdir(parents=True)
    for n in range(5):
        (bundle / "site" / f"f{n}.txt").write_text(f"{n}\n" * 100)
    scans: list[str] = []

    def counted(path: str, kind: str, max_bytes: int) -> list[BundleMember]:
        scans.append(path)
        return scan_bundle(path, kind, max_bytes)

    monkeypatch.setattr(extract, "scan_bundle", counted)
    monkeypatch.setattr(extract, "_scans", None)
    copy_directory_bundle(bundle, tmp_path / "a")
    copy_directory_bundle(bundle, tmp_path / "b")
    assert len(scans) == 2
    extract.remember_directory_scans()
    for name in ("c", "d", "e"):
        copy_directory_bundle(bundle, tmp_path / name)
        assert sha256_directory(tmp_path / name) == sha256_directory(bundle)
    assert len(scans) == 3
    (bundle / "site" / "f0.txt").write_text("longer than it was when scanned\n" * 100)
    with pytest.raises(UnsafeBundle):
        copy_directory_bundle(bundle, tmp_path / "f")
    assert not (tmp_path / "f").exists()  # nothing half-copied is left

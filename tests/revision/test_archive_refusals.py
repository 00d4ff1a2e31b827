"""ARCHITECTURE.md invariant 7: a bundle with paths escaping its root, links pointing outside,
special files or absurd sizes is refused for every format, and nothing at all is written
anywhere."""

import os
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.host.bundle_model import UnsafeBundle
from engine.host.bundle_scan import scan_bundle
from engine.host.extract import extract_bundle
from tests.conftest import unavailable

from .factory import (
    ALL_FORMATS,
    ARCHIVE_FORMATS,
    CHARDEV,
    FIFO,
    Entry,
    build_bundle,
    d,
    f,
    gzip_file,
    hardlink,
    link,
    snapshot,
    write_tar,
    write_zip,
)

LIMIT = 64 * 1024

# name -> (entries, refusal reason, formats it can be built in). "{outside}" is replaced by an
# absolute path inside the test's own directory, so a write there would show in the snapshot.
MALICIOUS = {
    "absolute path": ([f("{outside}/evil", b"pwned")], "absolute_path", ARCHIVE_FORMATS),
    "../ escape": ([f("../evil", b"pwned")], "parent_escape", ARCHIVE_FORMATS),
    "a/../../x escape": (
        [d("a"), f("a/../../evil", b"pwned")],
        "parent_escape",
        ARCHIVE_FORMATS,
    ),
    "symlink to /etc": ([link("etc", "/etc")], "link_outside", ALL_FORMATS),
    "symlink climbing out": ([link("up", "../../outside")], "link_outside", ALL_FORMATS),
    "symlink chain link -> .. then link/x": (
        [link("link", ".."), f("link/x", b"pwned")],
        "link_outside",
        ARCHIVE_FORMATS,
    ),
    "symlink chain through an inner link": (
        # sub/up -> .. is the root (inside), but esc -> sub/up/.. climbs from there.
        [d("sub"), link("sub/up", ".."), link("esc", "sub/up/..")],
        "link_outside",
        ALL_FORMATS,
    ),
    "write through an inside symlink": (
        [d("sub"), link("sub/up", ".."), f("sub/up/x", b"redirected")],
        "through_link",
        ARCHIVE_FORMATS,
    ),
    "name through a symlink then ..": (
        [d("sub"), link("sub/up", ".."), f("sub/up/../../evil", b"pwned")],
        "through_link",
        ARCHIVE_FORMATS,
    ),
    "hardlink to an absolute path": (
        [hardlink("passwd", "/etc/passwd")],
        "link_outside",
        ("tar", "tgz"),
    ),
    "hardlink climbing out": ([hardlink("h", "../outside/x")], "link_outside", ("tar", "tgz")),
    "hardlink to nothing in the bundle": (
        [hardlink("h", "not-archived")],
        "bad_link",
        ("tar", "tgz"),
    ),
    "character device": ([Entry(CHARDEV, "null")], "device_file", ALL_FORMATS),
    "fifo": ([Entry(FIFO, "pipe")], "special_file", ALL_FORMATS),
    "one file beyond the limit": ([f("big.bin", b"\0" * (LIMIT + 1))], "too_large", ALL_FORMATS),
    "files adding up beyond the limit": (
        [f(f"part{i}.bin", b"\0" * (LIMIT // 4)) for i in range(5)],
        "too_large",
        ALL_FORMATS,
    ),
    "a name used as file and directory": (
        [f("a", b"file"), f("a/b", b"under a file")],
        "conflicting_member",
        ARCHIVE_FORMATS,
    ),
    "a name used as file and symlink": (
        [f("a", b"file"), link("a", "b")],
        "conflicting_member",
        ARCHIVE_FORMATS,
    ),
    "symlink loop": ([link("a", "b"), link("b", "a")], "link_loop", ALL_FORMATS),
    # each member costs 512 bytes (a tar header) against the limit: an inode bomb is refused
    "empty files beyond the limit": (
        [f(f"e{i}", b"") for i in range(LIMIT // 512 + 1)],
        "too_large",
        ALL_FORMATS,
    ),
}

CASES = [
    pytest.param(entries, reason, fmt, id=f"{name}-{fmt}")
    for name, (entries, reason, formats) in MALICIOUS.items()
    for fmt in formats
]


def _materialise(entries: list[Entry], outside: Path) -> list[Entry]:
    return [
        Entry(entry.kind, entry.name.replace("{outside}", str(outside)), entry.payload, entry.mode)
        for entry in entries
    ]


def assert_refused_without_a_trace(
    bundle: Path, fmt: str, root: Path, reason: str, max_bytes: int = LIMIT
) -> UnsafeBundle:
    """Extraction into root/deploy/deployment-archive is refused and changes nothing in root."""
    dest = root / "deploy" / "deployment-archive"
    before = snapshot(root)
    with pytest.raises(UnsafeBundle) as refused:
        extract_bundle(bundle, fmt, dest, max_bytes=max_bytes)
    assert refused.value.reason == reason, str(refused.value)
    assert snapshot(root) == before
    assert not dest.exists()
    # The message names the bundle and says what to do.
    assert str(bundle) in str(refused.value)
    assert refused.value.advice and refused.value.advice in str(refused.value)
    return refused.value


@pytest.mark.parametrize(("entries", "reason", "fmt"), CASES)
def test_malicious_bundles_are_refused_and_nothing_is_written(
    entries: list[Entry], reason: str, fmt: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "deploy").mkdir()
    try:
        bundle = build_bundle(tmp_path / "bundles", fmt, _materialise(entries, outside))
    except PermissionError:
        unavailable("making a device file needs privileges")
    refused = assert_refused_without_a_trace(bundle, fmt, tmp_path, reason)
    member_names = {entry.name.replace("{outside}", str(outside)) for entry in entries}
    if reason not in ("too_large",):
        assert refused.member is not None
        assert refused.member.lstrip("./") in {n.lstrip("./") for n in member_names} | {"."}
        assert repr(refused.member) in str(refused)
    with pytest.raises(UnsafeBundle):  # the scan alone says the same
        scan_bundle(bundle, fmt, LIMIT)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_directories_nested_beyond_256_levels_are_refused(fmt: str, tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    bundle = build_bundle(tmp_path / "bundles", fmt, [f("d/" * 257 + "leaf", b"x")])
    refused = assert_refused_without_a_trace(bundle, fmt, tmp_path, "too_deep", 1024 * 1024)
    assert "257 directories deep, more than the 256" in str(refused)
    assert refused.member is not None and refused.member.lstrip("./").startswith("d/" * 256)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_directories_nested_256_levels_are_extracted(fmt: str, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundles", fmt, [f("d/" * 256 + "leaf", b"x")])
    dest = tmp_path / "deploy" / "deployment-archive"
    extract_bundle(bundle, fmt, dest, max_bytes=1024 * 1024)
    assert (dest / ("d/" * 256 + "leaf")).read_bytes() == b"x"


def _patch_tar_size(data: bytearray, header_offset: int, size: int) -> None:
    data[header_offset + 124 : header_offset + 136] = b"%011o\0" % size
    data[header_offset + 148 : header_offset + 156] = b" " * 8
    checksum = sum(data[header_offset : header_offset + 512])
    data[header_offset + 148 : header_offset + 156] = b"%06o\0 " % checksum


def _lying_tar(path: Path) -> Path:
    """A tar whose first header declares 10 bytes for a member holding 256 KiB."""
    write_tar(path, [f("liar.bin", b"A" * (4 * LIMIT)), f("appspec.yml", b"x")])
    data = bytearray(path.read_bytes())
    _patch_tar_size(data, 0, 10)
    path.write_bytes(bytes(data))
    return path


def _lying_zip(path: Path) -> Path:
    """A zip whose headers declare 10 bytes for a member that inflates to 256 KiB."""
    write_zip(path, [f("liar.bin", b"A" * (4 * LIMIT))])
    data = bytearray(path.read_bytes())
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        header = data.index(signature)
        data[header + size_offset : header + size_offset + 4] = struct.pack("<I", 10)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_a_header_that_lies_about_its_size_is_refused(fmt: str, tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    if fmt == "zip":
        bundle = _lying_zip(bundles / "liar.zip")
    else:
        bundle = _lying_tar(bundles / "liar.tar")
        if fmt == "tgz":
            bundle = gzip_file(bundle, bundles / "liar.tgz")
            (bundles / "liar.tar").unlink()
    refused = assert_refused_without_a_trace(bundle, fmt, tmp_path, "bad_archive")
    assert "rebuild" in str(refused).lower()


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_truncated_and_corrupt_archives_are_refused(fmt: str, tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    good = build_bundle(tmp_path / "bundles", fmt, [f("appspec.yml", os.urandom(20_000))])
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    assert_refused_without_a_trace(good, fmt, tmp_path, "bad_archive")


def test_a_zip_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    bundle = write_zip(tmp_path / "bundles.zip", [f("bomb.bin", b"\0" * (8 * LIMIT))])
    assert bundle.stat().st_size < LIMIT // 8  # it compresses to almost nothing
    assert_refused_without_a_trace(bundle, "zip", tmp_path, "too_large")


def test_an_encrypted_zip_member_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    bundle = write_zip(tmp_path / "secret.zip", [f("appspec.yml", b"x")])
    data = bytearray(bundle.read_bytes())
    for signature, flags_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        header = data.index(signature)
        data[header + flags_offset] |= 0x1
    bundle.write_bytes(bytes(data))
    assert_refused_without_a_trace(bundle, "zip", tmp_path, "bad_archive")


def test_a_directory_bundle_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    bundle = build_bundle(tmp_path / "bundles", "tgz", [f("appspec.yml")])
    assert_refused_without_a_trace(bundle, "directory", tmp_path, "wrong_type")
    assert_refused_without_a_trace(bundle.parent, "tar", tmp_path, "wrong_type")


def test_crc_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    bundle = write_zip(tmp_path / "b.zip", [f("a.txt", b"first"), f("b.txt", b"second")])
    data = bytearray(bundle.read_bytes())
    header = data.rindex(b"PK\x01\x02")  # the second member's central entry: break its CRC
    data[header + 16 : header + 20] = struct.pack("<I", zlib.crc32(b"other"))
    bundle.write_bytes(bytes(data))
    assert_refused_without_a_trace(bundle, "zip", tmp_path, "bad_archive")


# Member names made of a few components, with ".." and "." sprinkled in, sometimes absolute.
_NAMES = st.lists(st.sampled_from(["a", "b", "..", ".", ""]), min_size=1, max_size=5).map("/".join)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(_NAMES, min_size=1, max_size=4))
def test_any_member_names_either_are_refused_or_stay_inside(
    names: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("names")
    (root / "deploy").mkdir()
    bundle = write_tar(root / "names.tar", [f(name, name.encode()) for name in names])
    dest = root / "deploy" / "deployment-archive"
    before = snapshot(root)
    try:
        extract_bundle(bundle, "tar", dest)
    except UnsafeBundle as refused:
        assert refused.reason in {"absolute_path", "parent_escape", "conflicting_member"}
        assert snapshot(root) == before
        return
    after = snapshot(root)
    new = {path for path in after if path not in before}
    assert all(path.startswith("deploy/deployment-archive") for path in new)

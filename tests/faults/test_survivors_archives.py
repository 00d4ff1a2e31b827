"""Fault matrix: hostile or broken bundles given to the real `deploydeck local`, as an attacker
or an unlucky operator would. Each is refused with a clear error naming the bundle (and the
member), exit status 1, no traceback, and nothing on disk changes: no deployment root, no
destination file, no file outside. The extraction-level refusals are in
tests/revision/test_archive_refusals.py; these go through the command line end to end."""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import subprocess
import tarfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.command_line import DEPLOYDECK, REPO
from tests.revision.factory import (
    CHARDEV,
    FIFO,
    Entry,
    build_bundle,
    d,
    f,
    hardlink,
    link,
    snapshot,
    write_tar,
    write_zip,
)


@dataclass
class Scene:
    """A scratch machine for `deploydeck local`: HOME, XDG data, an agent configuration whose
    root_dir does not exist yet, a destination folder holding a file the operator cares about,
    and a folder outside everything that an escape would write to."""

    base: Path

    @property
    def root(self) -> Path:
        return self.base / "machine" / "root"

    @property
    def dest(self) -> Path:
        return self.base / "machine" / "dest"

    @property
    def outside(self) -> Path:
        return self.base / "machine" / "outside"

    @property
    def config(self) -> Path:
        return self.base / "machine" / "agent.yml"

    @property
    def appspec(self) -> bytes:
        """Installs the whole revision into the destination."""
        return (
            f"version: 0.0\nos: linux\nfiles:\n  - source: /\n    destination: {self.dest}\n"
        ).encode()

    def bundle(self, fmt: str, entries: Sequence[Entry], stem: str = "bundle") -> Path:
        return build_bundle(self.base / "bundles", fmt, list(entries), stem)

    def local_with_timeout(
        self, bundle: Path, bundle_type: str, seconds: float
    ) -> subprocess.CompletedProcess | None:
        """`local`, or None when it has not returned after `seconds` (it is killed)."""
        try:
            return self.local(bundle, bundle_type, timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def local(
        self, bundle: Path, bundle_type: str, *extra: str, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        env = dict(
            os.environ,
            HOME=str(self.base / "home"),
            XDG_DATA_HOME=str(self.base / "xdg"),
            PYTHONPATH=str(REPO),
        )
        return subprocess.run(
            [
                *DEPLOYDECK,
                "local",
                "-l",
                str(bundle),
                "-t",
                bundle_type,
                "-c",
                str(self.config),
                *extra,
            ],
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    made = Scene(tmp_path)
    made.dest.mkdir(parents=True)
    (made.dest / "keep.txt").write_text("the operator's file\n")
    made.outside.mkdir()
    made.config.write_text(f":root_dir: {made.root}\n:max_revisions: 2\n")
    return made


def machine(scene: Scene) -> dict:
    """Everything on the scratch machine, bundles excluded."""
    return {
        "machine": snapshot(scene.base / "machine"),
        "home": (scene.base / "home").exists(),
        "xdg": (scene.base / "xdg").exists(),
    }


def refused(scene: Scene, bundle: Path, bundle_type: str, *extra: str) -> str:
    """Run `deploydeck local` on the bundle; assert it is refused and nothing changed.
    Returns the command's output."""
    before = machine(scene)
    done = scene.local(bundle, bundle_type, *extra)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out, out
    assert "ERROR:" in done.stdout, out
    assert str(bundle) in done.stdout, out  # the message names the bundle
    assert machine(scene) == before  # no root, no destination change, nothing outside
    assert not scene.root.exists()
    return done.stdout


# ---- escapes ---------------------------------------------------------------------------------


def test_zip_member_climbing_out_with_dotdot(scene: Scene) -> None:
    """A zip member named ../../outside/evil -> refused naming the member; nothing written anywhere."""
    bundle = scene.bundle(
        "zip", [f("appspec.yml", scene.appspec), f("../../machine/outside/evil", b"pwned")]
    )
    out = refused(scene, bundle, "zip")
    assert "../../machine/outside/evil" in out and ".." in out


def test_tar_member_with_an_absolute_path(scene: Scene) -> None:
    """A tar member with an absolute path into another folder -> refused naming it; the folder stays empty."""
    target = scene.outside / "evil"
    bundle = scene.bundle("tar", [f("appspec.yml", scene.appspec), f(str(target), b"pwned")])
    out = refused(scene, bundle, "tar")
    assert str(target).lstrip("/") in out and "absolute" in out


def test_tgz_symlink_to_etc(scene: Scene) -> None:
    """A tgz holding a symlink to /etc -> refused as a link leading outside the bundle."""
    bundle = scene.bundle("tgz", [f("appspec.yml", scene.appspec), link("etc", "/etc")])
    out = refused(scene, bundle, "tgz")
    assert "'etc'" in out and "outside" in out


def test_zip_symlink_climbing_out_of_the_bundle(scene: Scene) -> None:
    """A zip symlink ../../outside -> refused; Install never gets a link out of the revision."""
    bundle = scene.bundle(
        "zip", [f("appspec.yml", scene.appspec), link("up", "../../machine/outside")]
    )
    out = refused(scene, bundle, "zip")
    assert "'up'" in out and "outside" in out


def test_tgz_hardlink_to_etc_passwd(scene: Scene) -> None:
    """A tgz hard link to /etc/passwd -> refused; the system file gets no second name in the revision."""
    bundle = scene.bundle("tgz", [f("appspec.yml", scene.appspec), hardlink("pw", "/etc/passwd")])
    out = refused(scene, bundle, "tgz")
    assert "'pw'" in out and "/etc/passwd" in out


def test_tgz_symlink_then_a_file_written_through_it(scene: Scene) -> None:
    """A tgz symlink to a folder outside, then a member under that link -> refused before any byte lands there."""
    bundle = scene.bundle(
        "tgz",
        [
            f("appspec.yml", scene.appspec),
            link("door", str(scene.outside)),
            f("door/evil", b"pwned"),
        ],
    )
    out = refused(scene, bundle, "tgz")
    assert "'door'" in out


def test_tar_symlink_inside_then_a_file_through_it(scene: Scene) -> None:
    """A tar symlink that stays inside (sub/up -> ..), then sub/up/x -> refused as a write through a link."""
    bundle = scene.bundle(
        "tar",
        [f("appspec.yml", scene.appspec), d("sub"), link("sub/up", ".."), f("sub/up/x", b"x")],
    )
    out = refused(scene, bundle, "tar")
    assert "sub/up/x" in out and "symlink" in out


def test_tar_character_device(scene: Scene) -> None:
    """A tar holding a character device (1,3: /dev/null) -> refused; no device node is ever made."""
    bundle = scene.bundle("tar", [f("appspec.yml", scene.appspec), Entry(CHARDEV, "null")])
    out = refused(scene, bundle, "tar")
    assert "'null'" in out and "device" in out


def test_tgz_fifo(scene: Scene) -> None:
    """A tgz holding a FIFO -> refused with the advice to create it in a hook instead."""
    bundle = scene.bundle("tgz", [f("appspec.yml", scene.appspec), Entry(FIFO, "pipe")])
    out = refused(scene, bundle, "tgz")
    assert "'pipe'" in out and "FIFO" in out


def test_setuid_member_is_installed_without_setuid(scene: Scene) -> None:
    """A tgz member with setuid and setgid bits -> installed, but without either bit."""
    bundle = scene.bundle(
        "tgz",
        [f("appspec.yml", scene.appspec), f("tool", b"#!/bin/sh\nid\n", 0o6755)],
    )
    done = scene.local(bundle, "tgz")
    assert done.returncode == 0, done.stdout + done.stderr
    mode = (scene.dest / "tool").stat().st_mode
    assert stat.S_IMODE(mode) == 0o755, oct(mode)


# ---- bombs -----------------------------------------------------------------------------------


def test_gzip_bomb_stops_at_the_size_limit(scene: Scene) -> None:
    """A 64 MiB member of zeros gzipped to ~64 KiB, limit 1M -> refused as too large, naming both sizes."""
    path = scene.base / "bundles" / "bomb.tgz"
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 64 * 1024 * 1024
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("appspec.yml")
        info.size = len(scene.appspec)
        archive.addfile(info, io.BytesIO(scene.appspec))
        info = tarfile.TarInfo("zeros.bin")
        info.size = size
        archive.addfile(info, _Zeros(size))
    assert path.stat().st_size < 1024 * 1024
    out = refused(scene, path, "tgz", "--max-bundle-size", "1M")
    assert "'zeros.bin'" in out and "more than 1048576 bytes" in out


class _Zeros(io.RawIOBase):
    """`size` zero bytes, streamed (never held in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_tar_header_declaring_a_terabyte(scene: Scene) -> None:
    """A tgz whose member header declares 1 TiB (the data is not there) -> refused by the declared size at once."""
    raw = bytearray(
        write_tar(scene.base / "liar.tar", [f("appspec.yml", scene.appspec)]).read_bytes()
    )
    header = tarfile.TarInfo("huge.bin")
    header.size = 1024**4
    end = 512 + (len(scene.appspec) + 511) // 512 * 512  # after the appspec member
    raw[end:end] = header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 4096
    path = scene.base / "bundles" / "liar.tgz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(bytes(raw)))
    (scene.base / "liar.tar").unlink()
    started = time.monotonic()
    out = refused(scene, path, "tgz")
    assert time.monotonic() - started < 60  # not a terabyte read
    assert "'huge.bin'" in out and "more than 4294967296 bytes" in out


def test_zip_declaring_more_than_the_limit(scene: Scene) -> None:
    """A zip whose members declare 8 MiB in a 10 KiB file, limit 1M -> refused before inflating anything."""
    bundle = write_zip(
        scene.base / "bundles.zip",
        [f("appspec.yml", scene.appspec), f("bomb.bin", b"\0" * (8 * 1024 * 1024))],
    )
    assert bundle.stat().st_size < 64 * 1024
    out = refused(scene, bundle, "zip", "--max-bundle-size", "1M")
    assert "more than 1048576 bytes" in out


def test_many_empty_members_count_against_the_limit(scene: Scene) -> None:
    """5,000 empty members in a small tgz, limit 1M -> each member counts (its header at least), so refused as an inode bomb."""
    entries = [f("appspec.yml", scene.appspec), d("m")]
    entries += [f(f"m/{n}", b"") for n in range(5_000)]
    bundle = scene.bundle("tgz", entries)
    assert bundle.stat().st_size < 1024 * 1024
    out = refused(scene, bundle, "tgz", "--max-bundle-size", "1M")
    assert "more than 1048576 bytes" in out and "512 bytes for each" in out


def test_deeply_nested_directories(scene: Scene) -> None:
    """A tgz 1,200 directories deep -> refused by the scan, naming the 256-level limit; nothing written, no traceback."""
    deep = "/".join(["d"] * 1200)
    bundle = scene.bundle("tgz", [f("appspec.yml", scene.appspec), f(f"{deep}/leaf", b"x")])
    try:
        out = refused(scene, bundle, "tgz")
        assert "1200 directories deep" in out and "more than the 256" in out
    finally:
        # shutil.rmtree (and pytest's cleanup) recurse per level too; rm does not
        for folder in (scene.root, scene.dest / "d"):
            subprocess.run(["rm", "-rf", str(folder)], check=False)


# ---- duplicates ------------------------------------------------------------------------------


def test_duplicate_appspec_members_last_one_counts_everywhere(scene: Scene) -> None:
    """Two appspec.yml members in a tgz -> the last is the one validated, run and installed, as tar extracts it."""
    hook = scene.appspec + b"hooks:\n  AfterInstall:\n    - location: hook.sh\n"
    bundle = scene.bundle(
        "tgz",
        [
            f("appspec.yml", scene.appspec),
            f("hook.sh", b"#!/bin/sh\necho the-hook-ran\n", 0o755),
            f("appspec.yml", hook),
        ],
    )
    done = scene.local(bundle, "tgz")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the-hook-ran" in done.stdout
    assert (scene.dest / "appspec.yml").read_bytes() == hook


def test_duplicate_file_members_in_a_zip(scene: Scene) -> None:
    """A zip naming one file twice -> one file installed, the last copy, as unzip -o leaves it."""
    bundle = scene.bundle(
        "zip", [f("appspec.yml", scene.appspec), f("a.txt", b"first"), f("a.txt", b"second")]
    )
    done = scene.local(bundle, "zip")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (scene.dest / "a.txt").read_bytes() == b"second"


# ---- broken archives -------------------------------------------------------------------------


def test_zip_with_a_bad_crc(scene: Scene) -> None:
    """A zip whose second member's CRC is wrong -> refused as corrupt before anything is installed."""
    bundle = write_zip(
        scene.base / "crc.zip", [f("appspec.yml", scene.appspec), f("b.txt", b"second")]
    )
    data = bytearray(bundle.read_bytes())
    header = data.rindex(b"PK\x01\x02")
    data[header + 16 : header + 20] = struct.pack("<I", zlib.crc32(b"other"))
    bundle.write_bytes(bytes(data))
    out = refused(scene, bundle, "zip")
    assert "'b.txt'" in out and "CRC" in out


def test_truncated_tgz(scene: Scene) -> None:
    """A tgz cut in half (an interrupted download) -> refused as truncated; nothing half-installed."""
    bundle = scene.bundle(
        "tgz", [f("appspec.yml", scene.appspec), f("data.bin", os.urandom(200_000))]
    )
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) // 2])
    out = refused(scene, bundle, "tgz")
    assert "'data.bin'" in out and "complete" in out


def test_tgz_given_as_zip(scene: Scene) -> None:
    """-t zip for a tgz -> refused, saying the content is not a zip."""
    bundle = scene.bundle("tgz", [f("appspec.yml", scene.appspec)])
    out = refused(scene, bundle, "zip")
    assert "its content is a tgz archive" in out


def test_zip_given_as_tar(scene: Scene) -> None:
    """-t tar for a zip -> refused, saying the content is not a tar."""
    bundle = scene.bundle("zip", [f("appspec.yml", scene.appspec)])
    out = refused(scene, bundle, "tar")
    assert "its content is a zip archive" in out


def test_random_bytes_given_as_tgz(scene: Scene) -> None:
    """A file of random bytes given as -t tgz -> refused as not a gzip-compressed tar."""
    bundle = scene.base / "noise.tgz"
    bundle.write_bytes(os.urandom(10_000))
    out = refused(scene, bundle, "tgz")
    assert "not a tar, gzip-compressed tar or zip" in out


def test_empty_archive(scene: Scene) -> None:
    """A tgz with no members at all -> refused: no appspec.yml at the root of the archive."""
    bundle = scene.bundle("tgz", [])
    out = refused(scene, bundle, "tgz")
    assert "No appspec" in out


def test_archive_without_an_appspec(scene: Scene) -> None:
    """A zip with files but no appspec.yml -> refused, saying where it was looked for."""
    bundle = scene.bundle("zip", [d("site"), f("site/index.html", b"<h1>hi</h1>")])
    out = refused(scene, bundle, "zip")
    assert "appspec.yml" in out and "root" in out


def test_refused_bundle_leaves_the_previous_install_running(scene: Scene) -> None:
    """A good deployment, then a hostile bundle -> the first install and its last-successful record are untouched."""
    good = scene.bundle(
        "tgz", [f("appspec.yml", scene.appspec), f("version.txt", b"v1\n")], stem="good"
    )
    first = scene.local(good, "tgz")
    assert first.returncode == 0, first.stdout + first.stderr
    before = machine(scene)
    evil = scene.bundle(
        "tgz",
        [f("appspec.yml", scene.appspec), f("version.txt", b"v2\n"), link("x", "/etc")],
        stem="evil",
    )
    done = scene.local(evil, "tgz")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert machine(scene) == before
    assert (scene.dest / "version.txt").read_text() == "v1\n"


def test_bundle_given_by_process_substitution(scene: Scene) -> None:
    """`-l <(cat bundle.tgz)`, a pipe that cannot be read twice -> refused as not seekable; nothing written."""
    good = scene.bundle("tgz", [f("appspec.yml", scene.appspec), f("a.txt", b"x")])
    command = " ".join(
        [*DEPLOYDECK, "local", "-l", f"<(cat {good})", "-t", "tgz", "-c", str(scene.config)]
    )
    before = machine(scene)
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=scene.base,
        env=dict(os.environ, HOME=str(scene.base / "home"), PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out, out
    assert "Refusing bundle '/dev/fd/" in done.stdout and "not seekable" in done.stdout, out
    assert machine(scene) == before


def test_bundle_that_is_a_named_pipe(scene: Scene, tmp_path: Path) -> None:
    """A bundle path that is a FIFO fed once -> refused as not a regular file, not a hang."""
    good = scene.bundle("tgz", [f("appspec.yml", scene.appspec), f("a.txt", b"x")])
    pipe = tmp_path / "bundle-pipe"
    os.mkfifo(pipe)
    writer = subprocess.Popen(["sh", "-c", f"cat {good} > {pipe}"])
    try:
        done = scene.local_with_timeout(pipe, "tgz", 10)
    finally:
        writer.kill()
        writer.wait()
    assert done is not None, "deploydeck local was still waiting on the pipe after 10 s"
    assert done.returncode == 1 and str(pipe) in done.stdout, done.stdout


def test_bundle_that_is_a_device(scene: Scene) -> None:
    """`-l /dev/zero -t tgz` -> refused at once as not a regular file, not read forever."""
    done = scene.local_with_timeout(Path("/dev/zero"), "tgz", 10)
    assert done is not None, "deploydeck local was still reading /dev/zero after 10 s"
    assert done.returncode == 1 and "/dev/zero" in done.stdout, done.stdout
    assert not scene.root.exists()

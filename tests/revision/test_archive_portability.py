"""engine/host/archive.py ships to hosts as is: standard library only, Python 3.8 syntax."""

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import engine.host.archive

SOURCE = Path(engine.host.archive.__file__)

# Standard-library APIs newer than 3.8 that a 3.8 host would not have.
NEWER_THAN_38 = ("removeprefix", "removesuffix", "functools.cache", "strict=", "zoneinfo")


def test_it_parses_as_python_3_8() -> None:
    ast.parse(SOURCE.read_text(), filename=str(SOURCE), feature_version=(3, 8))
    text = SOURCE.read_text()
    assert not [api for api in NEWER_THAN_38 if api in text]


def test_it_imports_only_the_standard_library() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(SOURCE.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == set()


SMOKE = textwrap.dedent(
    """
    import io, os, sys, tarfile, zipfile
    import archive

    root = sys.argv[1]
    bundle = os.path.join(root, "web.tgz")
    with tarfile.open(bundle, "w:gz") as tar:
        for name, data, mode in (("web/appspec.yml", b"version: 0.0\\n", 0o644),
                                 ("web/start.sh", b"#!/bin/sh\\n", 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("web/current")
        link.type, link.linkname = tarfile.SYMTYPE, "start.sh"
        tar.addfile(link)
    assert archive.detect_bundle_type(bundle) == "tgz"
    dest = os.path.join(root, "d-1", "deployment-archive")
    archive.extract_bundle(bundle, "tgz", dest)
    assert archive.strip_leading_directory(dest)
    assert os.access(os.path.join(dest, "start.sh"), os.X_OK)
    assert os.readlink(os.path.join(dest, "current")) == "start.sh"
    copy = os.path.join(root, "copy")
    archive.copy_directory_bundle(dest, copy)
    assert archive.sha256_directory(copy) == archive.sha256_directory(dest)

    evil = os.path.join(root, "evil.zip")
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escape", b"x")
    try:
        archive.extract_bundle(evil, "zip", os.path.join(root, "never"))
    except archive.UnsafeBundle as refused:
        assert refused.reason == "parent_escape"
    else:
        raise AssertionError("not refused")
    assert not os.path.exists(os.path.join(root, "never"))
    print("ok")
    """
)


def test_it_runs_standalone_outside_the_package(tmp_path: Path) -> None:
    """The file alone, with only the standard library, as it runs on a host. Debian ships one
    Python (3.11), so this runs on the test interpreter; 3.8 compatibility is checked from the
    source by tests/architecture (syntax for 3.8, no standard-library API newer than 3.8)."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(SOURCE, shipped / "archive.py")  # alone, outside the package, as on a host
    (shipped / "smoke.py").write_text(SMOKE)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-E", "-s", "-W", "error", str(shipped / "smoke.py"), str(work)],
        capture_output=True,
        text=True,
        cwd=shipped,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

"""The bundle modules of engine/host ship to hosts as is: standard library only, Python 3.8
syntax, needing nothing but each other."""

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import engine.host

HOST = Path(engine.host.__file__).parent
SOURCES = [
    HOST / f"{name}.py"
    for name in ("bundle_model", "bundle_read", "bundle_scan", "extract", "hashing")
]

# Standard-library APIs newer than 3.8 that a 3.8 host would not have.
NEWER_THAN_38 = ("removeprefix", "removesuffix", "functools.cache", "strict=", "zoneinfo")


def test_they_parse_as_python_3_8() -> None:
    for source in SOURCES:
        ast.parse(source.read_text(), filename=str(source), feature_version=(3, 8))
        text = source.read_text()
        assert not [api for api in NEWER_THAN_38 if api in text], source


def test_they_import_only_the_standard_library_and_each_other() -> None:
    imported: set[str] = set()
    siblings: set[str] = set()
    for source in SOURCES:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                siblings.add(node.module)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == set()
    assert siblings <= {source.stem for source in SOURCES}


SMOKE = textwrap.dedent(
    """
    import io, os, sys, tarfile, zipfile
    from bundles import bundle_model, bundle_scan, extract, hashing

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
    assert bundle_scan.detect_bundle_type(bundle) == "tgz"
    dest = os.path.join(root, "d-1", "deployment-archive")
    extract.extract_bundle(bundle, "tgz", dest)
    assert extract.strip_leading_directory(dest)
    assert os.access(os.path.join(dest, "start.sh"), os.X_OK)
    assert os.readlink(os.path.join(dest, "current")) == "start.sh"
    copy = os.path.join(root, "copy")
    extract.copy_directory_bundle(dest, copy)
    assert hashing.sha256_directory(copy) == hashing.sha256_directory(dest)

    evil = os.path.join(root, "evil.zip")
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escape", b"x")
    try:
        extract.extract_bundle(evil, "zip", os.path.join(root, "never"))
    except bundle_model.UnsafeBundle as refused:
        assert refused.reason == "parent_escape"
    else:
        raise AssertionError("not refused")
    assert not os.path.exists(os.path.join(root, "never"))
    print("ok")
    """
)


def test_they_run_standalone_outside_the_package(tmp_path: Path) -> None:
    """The files alone, with only the standard library, as they run on a host. Debian ships one
    Python (3.11), so this runs on the test interpreter; 3.8 compatibility is checked from the
    source by tests/architecture (syntax for 3.8, no standard-library API newer than 3.8)."""
    shipped = tmp_path / "shipped"
    package = shipped / "bundles"  # alone, outside engine/host, as on a host
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for source in SOURCES:
        shutil.copy(source, package / source.name)
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

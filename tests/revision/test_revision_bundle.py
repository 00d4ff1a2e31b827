"""engine.revision: opening a bundle (type checks, scan, hash) and reading its appspec."""

import os
import re
from pathlib import Path

import pytest

from engine.host.bundle_model import UnsafeBundle
from engine.host.hashing import sha256_directory, sha256_file
from engine.revision import (
    AppSpecSource,
    Bundle,
    BundleError,
    open_bundle,
    read_appspec,
)

from .factory import (
    ALL_FORMATS,
    APPSPEC,
    ARCHIVE_FORMATS,
    SAMPLE_REVISION,
    build_bundle,
    d,
    f,
    hardlink,
    link,
    snapshot,
    write_tar,
)

# ---- open_bundle -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_open_bundle_detects_scans_and_hashes(fmt: str, tmp_path: Path) -> None:
    path = build_bundle(tmp_path, fmt, SAMPLE_REVISION)
    bundle = open_bundle(path)
    assert bundle.path == path and bundle.path.is_absolute()
    assert bundle.bundle_type == fmt
    if fmt == "directory":
        assert bundle.sha256 == sha256_directory(path)
        assert bundle.size_bytes == sum(len(e.data) for e in SAMPLE_REVISION if e.kind == "file")
    else:
        assert bundle.sha256 == sha256_file(path)
        assert bundle.size_bytes == path.stat().st_size
    assert open_bundle(path, fmt) == bundle  # the same answer with the type given


def test_open_bundle_accepts_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_bundle(tmp_path, "zip", SAMPLE_REVISION)
    monkeypatch.chdir(tmp_path)
    assert open_bundle("bundle.zip").path == tmp_path / "bundle.zip"


def test_a_bundle_is_a_frozen_value(tmp_path: Path) -> None:
    bundle = open_bundle(build_bundle(tmp_path, "tgz", SAMPLE_REVISION))
    with pytest.raises(AttributeError):
        bundle.sha256 = "0" * 64  # type: ignore[misc]
    assert isinstance(bundle, Bundle)


def test_tar_and_tgz_are_read_alike_like_gnu_tar(tmp_path: Path) -> None:
    tgz = build_bundle(tmp_path, "tgz", SAMPLE_REVISION)
    assert open_bundle(tgz, "tar").bundle_type == "tgz"  # recorded as what it is
    tar = build_bundle(tmp_path, "tar", SAMPLE_REVISION)
    assert open_bundle(tar, "tgz").bundle_type == "tar"


@pytest.mark.parametrize(
    ("fmt", "given", "reason", "words"),
    [
        # docs/codedeploy-agent.md#local-validation check 6
        ("directory", "tar", "wrong_type", "is a directory"),
        # docs/codedeploy-agent.md#local-validation check 5
        ("tgz", "directory", "wrong_type", "is a file"),
        ("zip", "tgz", "wrong_type", "content is a zip archive"),
        ("tgz", "zip", "wrong_type", "content is a tgz archive"),
        # docs/codedeploy-agent.md#local-validation check 1
        ("tgz", "rar", "invalid_type", "tar, tgz, zip, directory"),
    ],
)
def test_a_type_that_does_not_fit_the_path_is_a_clear_error(
    fmt: str, given: str, reason: str, words: str, tmp_path: Path
) -> None:
    path = build_bundle(tmp_path, fmt, SAMPLE_REVISION)
    with pytest.raises(BundleError, match=words) as error:
        open_bundle(path, given)
    assert error.value.reason == reason
    assert str(path) in str(error.value)
    assert error.value.path == path


def test_a_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist") as error:
        open_bundle(tmp_path / "web-v1.tgz")
    assert error.value.reason == "not_found"
    assert "web-v1.tgz" in str(error.value)


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_an_unsafe_bundle_surfaces_as_a_bundle_error(fmt: str, tmp_path: Path) -> None:
    path = build_bundle(tmp_path / "b", fmt, [f("appspec.yml", APPSPEC), link("etc", "/etc")])
    before = snapshot(tmp_path)
    with pytest.raises(BundleError) as error:
        open_bundle(path)
    assert error.value.reason == "link_outside"
    assert error.value.member == "etc"
    assert isinstance(error.value.__cause__, UnsafeBundle)
    assert not isinstance(error.value, UnsafeBundle)  # callers catch one thing
    assert "'etc'" in str(error.value) and str(path) in str(error.value)
    assert snapshot(tmp_path) == before


def test_the_size_limit_is_a_parameter(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, "zip", SAMPLE_REVISION)
    with pytest.raises(BundleError, match="more than 1000 bytes") as error:
        open_bundle(path, max_bytes=1000)
    assert error.value.reason == "too_large"


def test_unknown_content_is_a_bundle_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.tgz"
    path.write_text("just text")
    with pytest.raises(BundleError, match="not a tar") as error:
        open_bundle(path)
    assert error.value.reason == "unknown_type"


# ---- read_appspec ----------------------------------------------------------------------------

YAML = b"version: 0.0\nos: linux\n# from appspec.yaml\n"
YML = b"version: 0.0\nos: linux\n# from appspec.yml\n"
CUSTOM = b"version: 0.0\nos: linux\n# from deploy/custom.yml\n"


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize(
    ("present", "appspec_filename", "expected"),
    [
        (["appspec.yml"], None, "appspec.yml"),
        (["appspec.yaml"], None, "appspec.yaml"),
        # docs/codedeploy-agent.md#install: .yaml before .yml
        (["appspec.yml", "appspec.yaml"], None, "appspec.yaml"),
        (["appspec.yml", "appspec.yaml", "deploy/custom.yml"], "deploy/custom.yml", None),
        (["appspec.yml"], "deploy/custom.yml", "appspec.yml"),  # given but absent: fall back
        (["appspec.yml", "appspec.yaml"], "appspec.yml", "appspec.yml"),  # given wins
        (["deploy/custom.yml"], "/deploy/custom.yml", None),  # File.join keeps "/x" inside
    ],
)
def test_read_appspec_follows_the_install_lookup_order(
    fmt: str,
    present: list[str],
    appspec_filename: str | None,
    expected: str | None,
    tmp_path: Path,
) -> None:
    contents = {"appspec.yaml": YAML, "appspec.yml": YML, "deploy/custom.yml": CUSTOM}
    entries = [f(name, contents[name]) for name in present]
    bundle = open_bundle(build_bundle(tmp_path, fmt, entries))
    source = read_appspec(bundle, appspec_filename)
    name = expected or "deploy/custom.yml"
    assert source == AppSpecSource(
        name=name,
        text=contents[name].decode(),
        display_path=(
            str(bundle.path / name) if fmt == "directory" else f"{bundle.path.name}:{name}"
        ),
    )


@pytest.mark.parametrize("fmt", ARCHIVE_FORMATS)
def test_read_appspec_strips_the_leading_directory_by_names(fmt: str, tmp_path: Path) -> None:
    entries = [d("web-v1"), f("web-v1/appspec.yml", YML), f("web-v1/scripts/start.sh", b"")]
    path = build_bundle(tmp_path / "bundles", fmt, entries, stem="web-v1")
    bundle = open_bundle(path)
    before = snapshot(tmp_path)
    source = read_appspec(bundle)
    assert source.name == "appspec.yml"
    assert source.display_path == f"web-v1.{fmt}:web-v1/appspec.yml"
    assert source.text == YML.decode()
    assert snapshot(tmp_path) == before, "read without extracting anything"


def test_directory_bundles_are_not_stripped(tmp_path: Path) -> None:
    """docs/codedeploy-agent.md#leading-directory-stripping: the rule applies to archives only."""
    path = build_bundle(tmp_path, "directory", [f("web-v1/appspec.yml", YML)])
    with pytest.raises(BundleError, match=re.escape("Found elsewhere: 'web-v1/appspec.yml'")):
        read_appspec(open_bundle(path))


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_a_missing_appspec_says_what_was_looked_for_and_where(fmt: str, tmp_path: Path) -> None:
    entries = [f("web/appspec.yml.bak", YML), f("web/config/appspec.yml", YML)]
    bundle = open_bundle(build_bundle(tmp_path, fmt, entries))
    with pytest.raises(BundleError) as error:
        read_appspec(bundle, "deploy.yml")
    message = str(error.value)
    assert error.value.reason == "appspec_missing"
    assert "'deploy.yml', 'appspec.yaml', 'appspec.yml'" in message
    assert str(bundle.path) in message
    if fmt == "directory":
        assert "at the root of the directory" in message
    else:  # web/ holds an appspec-like name, so it is the leading directory that is stripped
        assert "leading directory 'web/'" in message
    assert "'web/config/appspec.yml'" in message


@pytest.mark.parametrize("fmt", ["tar", "tgz", "zip", "directory"])
def test_a_symlinked_appspec_is_read_through_the_link(fmt: str, tmp_path: Path) -> None:
    entries = [d("deploy"), f("deploy/appspec.yml", YML), link("appspec.yml", "deploy/appspec.yml")]
    source = read_appspec(open_bundle(build_bundle(tmp_path, fmt, entries)))
    assert source.name == "appspec.yml" and source.text == YML.decode()


def test_a_hardlinked_appspec_is_read(tmp_path: Path) -> None:
    entries = [f("deploy.yml", YML), hardlink("appspec.yml", "deploy.yml")]
    source = read_appspec(open_bundle(write_tar(tmp_path / "b.tar", entries)))
    assert source.text == YML.decode()


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_an_appspec_that_is_a_directory_is_an_error(fmt: str, tmp_path: Path) -> None:
    bundle = open_bundle(build_bundle(tmp_path, fmt, [d("appspec.yml"), f("appspec.yml/x")]))
    with pytest.raises(BundleError, match="is a directory, not a file") as error:
        read_appspec(bundle)
    assert error.value.reason == "appspec_not_file"


def test_a_dangling_appspec_link_counts_as_absent(tmp_path: Path) -> None:
    entries = [link("appspec.yaml", "missing.yaml"), f("appspec.yml", YML)]
    source = read_appspec(open_bundle(build_bundle(tmp_path, "tgz", entries)))
    assert source.name == "appspec.yml"


@pytest.mark.parametrize("name", ["../appspec.yml", "deploy/../../appspec.yml", "."])
def test_an_appspec_filename_outside_the_revision_is_an_error(name: str, tmp_path: Path) -> None:
    bundle = open_bundle(build_bundle(tmp_path, "zip", [f("appspec.yml", YML)]))
    with pytest.raises(BundleError, match="inside the revision") as error:
        read_appspec(bundle, name)
    assert error.value.reason == "bad_appspec_filename"


@pytest.mark.parametrize("fmt", ["tgz", "directory"])
def test_an_appspec_that_is_not_utf8_is_an_error(fmt: str, tmp_path: Path) -> None:
    bundle = open_bundle(build_bundle(tmp_path, fmt, [f("appspec.yml", b"version: \xff\n")]))
    with pytest.raises(BundleError, match=r"not UTF-8 text.*offset 9") as error:
        read_appspec(bundle)
    assert error.value.reason == "appspec_encoding"


def test_a_utf8_bom_is_dropped(tmp_path: Path) -> None:
    bundle = open_bundle(build_bundle(tmp_path, "zip", [f("appspec.yml", b"\xef\xbb\xbf" + YML)]))
    assert read_appspec(bundle).text == YML.decode()


def test_an_oversized_appspec_is_an_error(tmp_path: Path) -> None:
    bundle = open_bundle(build_bundle(tmp_path, "tgz", [f("appspec.yml", b"#" * 2_000_000)]))
    with pytest.raises(BundleError, match="more than the 1048576") as error:
        read_appspec(bundle)
    assert error.value.reason == "appspec_too_large"


def test_a_bundle_changed_into_an_unsafe_one_after_opening_is_refused(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, "tar", [f("appspec.yml", YML)])
    bundle = open_bundle(path)
    write_tar(path, [f("appspec.yml", YML), link("x", "/etc")])
    with pytest.raises(BundleError) as error:
        read_appspec(bundle)
    assert error.value.reason == "link_outside"
    assert os.path.basename(path) in str(error.value)

"""codedeploy-local's option validation, event list and agent configuration
(docs/codedeploy-agent.md#codedeploy-local, docs/codedeploy-agent.md#agent-configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.local import (
    DEFAULT_EVENTS,
    LocalError,
    LocalOptions,
    all_possible_events,
    build_event_list,
    load_agent_config,
    validate_options,
)
from tests.host.harness import write_tree


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "rev", {"appspec.yml": "version: 0.0\nos: linux\n"})


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (None, list(DEFAULT_EVENTS)),
        ("", list(DEFAULT_EVENTS)),
        ("DownloadBundle,ApplicationStart", ["DownloadBundle", "Install", "ApplicationStart"]),
        ("Stop,Start,HealthCheck", ["DownloadBundle", "Install", "Stop", "Start", "HealthCheck"]),
        (
            "BeforeInstall,ApplicationStart",
            ["DownloadBundle", "Install", "BeforeInstall", "ApplicationStart"],
        ),
        ("ApplicationStop", ["DownloadBundle", "Install", "ApplicationStop"]),
        ("Install,DownloadBundle", ["DownloadBundle", "Install"]),
        (
            "ApplicationStop,ApplicationStop",
            ["DownloadBundle", "Install", "ApplicationStop", "ApplicationStop"],
        ),
    ],
)
def test_event_list(events: str | None, expected: list[str]) -> None:
    assert build_event_list(events) == expected


def test_all_possible_events_adds_custom_events_after_the_defaults() -> None:
    assert all_possible_events("Stop,ApplicationStart,Stop") == [*DEFAULT_EVENTS, "Stop"]


def options(location: Path | str, **kw) -> LocalOptions:
    return LocalOptions(bundle_location=str(location), **kw)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"bundle_type": "rar"}, "tgz,tar,zip,directory"),
        ({"events": "ApplicationStart,DownloadBundle"}, "must come after DownloadBundle"),
        ({"events": "ValidateService,Install"}, "must come after Install"),
        ({"events": "lowercase"}, "not a valid lifecycle event name"),
        ({"file_exists_behavior": "KEEP"}, "DISALLOW, OVERWRITE, RETAIN"),
        ({"appspec_filename": "other.yml"}, "other.yml was not found"),
        ({"group_id": ""}, "--deployment-group '' is empty"),
        ({"group_id": ".."}, "not a plain folder name"),
        ({"group_id": "/tmp/elsewhere"}, "not a plain folder name"),
        ({"group_id": "a/../../b"}, "not a plain folder name"),
        ({"group_id": "deployment-instructions"}, "keeps for itself"),
    ],
)
def test_option_errors(bundle_dir: Path, kw: dict, words: str) -> None:
    with pytest.raises(LocalError, match=words):
        validate_options(options(bundle_dir, **kw))


def test_events_allowed_before_download_and_install(bundle_dir: Path) -> None:
    validate_options(
        options(bundle_dir, events="ApplicationStop,DownloadBundle,BeforeInstall,Install")
    )
    validate_options(options(bundle_dir, events="BeforeInstall,DownloadBundle"))  # not checked


def test_location_errors(tmp_path: Path, bundle_dir: Path) -> None:
    archive = tmp_path / "b.tgz"
    archive.write_bytes(b"x")
    cases = [
        (options("http://example.com/b.tgz"), "plain http"),
        (options("s3://bucket/key.tgz", bundle_type="tgz"), "local bundles only"),
        (options(tmp_path / "missing"), "does not exist"),
        (options(archive), "is a file but --type is directory"),
        (options(bundle_dir, bundle_type="tgz"), "is a directory but --type is tgz"),
        (options(tmp_path), "No appspec.yml or appspec.yaml"),
    ]
    for opts, words in cases:
        with pytest.raises(LocalError, match=words):
            validate_options(opts)


def test_appspec_yaml_is_accepted_for_a_directory(tmp_path: Path) -> None:
    validate_options(options(write_tree(tmp_path / "r", {"appspec.yaml": ""})))


def test_agent_config_with_and_without_colons(tmp_path: Path) -> None:
    colon = tmp_path / "codedeployagent.yml"
    colon.write_text(
        ":log_aws_wire: false\n:log_dir: '/tmp/logs'\n:root_dir: '/tmp/root'\n:verbose: true\n:max_revisions: 3\n"
    )
    config = load_agent_config(str(colon))
    assert (config.root_dir, config.log_dir, config.max_revisions, config.verbose) == (
        "/tmp/root",
        "/tmp/logs",
        3,
        True,
    )
    plain = tmp_path / "plain.yml"
    plain.write_text("root_dir: /tmp/r2\nmax_revisions: '7'\n")
    assert (
        load_agent_config(str(plain)).root_dir,
        load_agent_config(str(plain)).max_revisions,
    ) == ("/tmp/r2", 7)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (":root_dir: /r\n:max_revisions: 0\n", "at least 1"),
        (":root_dir: /r\n:max_revisions: many\n", "at least 1"),
        (":log_dir: /l\n", "root_dir: is missing"),
        (":root_dir: [unclosed\n", r"conf.yml:\d+:\d+"),
        ("- a list\n", "must be a mapping"),
        (':root_dir: "\\U00110000"\n', "does not exist"),
        (":root_dir: [a, b]\n", r"conf.yml:1:1: :root_dir: must be a folder path .*\[a, b\]"),
        (":root_dir: 12\n", "conf.yml:1:1: :root_dir: must be a folder path .*integer 12"),
        (":root_dir: /r\n:log_dir: {a: 1}\n", "conf.yml:2:1: :log_dir: must be a folder path"),
        (":root_dir: /r\n:verbose: 'yes'\n", "conf.yml:2:1: :verbose: must be true or false"),
        (":root_dir: /r\n:max_revisions: [5]\n", "conf.yml:2:1: :max_revisions: .* at least 1"),
    ],
)
def test_agent_config_errors(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "conf.yml"
    path.write_text(text)
    with pytest.raises(LocalError, match=words):
        load_agent_config(str(path))


def test_agent_config_alias_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    levels = "".join(
        f"x{n}: &l{n} [{', '.join([f'*l{n - 1}' if n else 'lol'] * 9)}]\n" for n in range(9)
    )
    path = tmp_path / "conf.yml"
    path.write_text(levels + ":root_dir: *l8\n")
    with pytest.raises(LocalError, match=r"conf\.yml:10:1: :root_dir: must be a folder") as error:
        load_agent_config(str(path))
    assert len(str(error.value)) < 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.yml"]


def test_missing_agent_config(tmp_path: Path) -> None:
    with pytest.raises(LocalError, match="missing or unreadable"):
        load_agent_config(str(tmp_path / "nope.yml"))


def test_default_root_is_user_writable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert load_agent_config(None).root_dir == str(
        tmp_path / "deploydeck" / "local-deployment-root"
    )


def test_tilde_in_agent_config_folders_is_the_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    conf = tmp_path / "conf.yml"
    conf.write_text(":root_dir: ~/root\n:log_dir: ~/logs\n")
    config = load_agent_config(str(conf))
    assert config.root_dir == str(tmp_path / "home" / "root")
    assert config.log_dir == str(tmp_path / "home" / "logs")
    assert (tmp_path / "home" / "logs").is_dir() and not Path("~").exists()

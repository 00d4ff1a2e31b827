"""`deploydeck local`: codedeploy-local's options, validation and event list
(docs/codedeploy-agent.md#codedeploy-local).

The revision is checked completely (bundle safety, appspec, lifecycle event names) before any
event runs; then the events run in order through the host agent in this process. Differences
from codedeploy-local: only local bundles (no S3 or GitHub download), `--file-exists-behavior`
is validated up front, a user-writable default root replaces the mandatory config file, and the
appspec's unknown-event check happens before anything runs instead of at Install.
"""

from __future__ import annotations

import datetime
import os
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.appspec import ServerAppSpec
from engine.appspec.diagnostics import Diagnostic
from engine.appspec.document import Node, load_document
from engine.appspec.names import closest
from engine.appspec.report import Reporter
from engine.appspec.ruby import to_s, type_name
from engine.host import agent
from engine.host.bundle_model import UnsafeBundle
from engine.host.bundle_scan import check_bundle_path
from engine.host.layout import (
    DEFAULT_GROUP_ID,
    DEFAULT_GROUP_NAME,
    DeploymentRoot,
    plain_name_problem,
    scripts_log,
)
from engine.host.results import CommandResult
from engine.model_core import SERVER_IN_PLACE_WITH_LB_EVENTS, new_deployment_id
from engine.revision import (
    DEFAULT_MAX_BUNDLE_BYTES,
    Bundle,
)
from engine.revision.check import RevisionInvalid, open_revision

BUNDLE_TYPES = ("tgz", "tar", "zip", "directory")
FILE_EXISTS_BEHAVIORS = ("DISALLOW", "OVERWRITE", "RETAIN")
DEFAULT_EVENTS = SERVER_IN_PLACE_WITH_LB_EVENTS
_MUST_FOLLOW_DOWNLOAD = (
    "AfterInstall",
    "ApplicationStart",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
    "ValidateService",
    "Install",
)
_MUST_FOLLOW_INSTALL = _MUST_FOLLOW_DOWNLOAD[:-1]
_EVENT_NAME = re.compile(r"^([A-Z][a-z0-9]+)+$")


class LocalError(Exception):
    """Bad options, configuration or revision: nothing was run. The message says how to fix it."""

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.diagnostics = tuple(diagnostics)


@dataclass(frozen=True)
class LocalOptions:
    bundle_location: str
    bundle_type: str = "directory"
    file_exists_behavior: str = "DISALLOW"
    group_id: str = DEFAULT_GROUP_ID
    group_name: str = DEFAULT_GROUP_NAME
    application_name: str | None = None
    events: str | None = None
    config_file: str | None = None
    appspec_filename: str | None = None
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES


@dataclass(frozen=True)
class AgentConfig:
    """The keys of the agent's configuration file that deploydeck uses
    (docs/codedeploy-agent.md#agent-configuration)."""

    root_dir: str
    log_dir: str | None = None
    max_revisions: int = 5
    verbose: bool = False
    source: str = "default"


def default_root_dir() -> str:
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return os.path.join(data_home, "deploydeck", "local-deployment-root")


def load_agent_config(path: str | None) -> AgentConfig:
    """Read `-c FILE`: `:root_dir:` style keys (as the agent writes them) or the same without
    the colon. Without a file, a user-writable default root is used."""
    if path is None:
        return AgentConfig(root_dir=default_root_dir())
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise LocalError(
            f"The agent configuration file {path} is missing or unreadable ({error.strerror}). "
            "Pass an existing file with -c, or leave -c out to use the default root."
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise LocalError(
            f"{where}: the agent configuration file is not valid YAML: {error}"
        ) from None
    except ValueError as error:
        if "digits" in str(error):  # Python's limit on converting text to an int
            raise LocalError(
                f"{path}: a number in the agent configuration file has more than 4300 digits; "
                "write a sensible value, e.g.  :max_revisions: 5"
            ) from None
        raise LocalError(
            f"{path}: the agent configuration file is not valid YAML (an escape names a "
            "character that does not exist); fix the quoted values"
        ) from None
    except (OverflowError, RecursionError):
        raise LocalError(
            f"{path}: the agent configuration file is not valid YAML (an escape names a "
            "character that does not exist, or it is nested too deeply); fix the quoted values"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LocalError(
            f"{path}: the agent configuration must be a mapping of keys such as :root_dir:"
        )
    pairs = _config_pairs(text, path)
    nodes = {name: value for name, (_key, value) in pairs.items()}

    def at(name: str) -> str:
        """`file:line:column: :name:` at the key (an aliased value's own position is the
        anchor's, elsewhere in the file)."""
        key = pairs[name][0] if name in pairs else None
        return f"{path}:{key.line}:{key.column}: :{name}:" if key else f"{path}: :{name}:"

    def folder(name: str, example: str) -> str | None:
        """A folder path: a string, `~` meaning the home; null or empty is None."""
        node = nodes.get(name)
        if node is None or node.is_null or (node.is_str and not node.value):
            return None
        if not node.is_str:
            raise LocalError(
                f"{at(name)} must be a folder path (got {describe(node)}); write e.g.  "
                f":{name}: '{example}'"
            )
        return os.path.expanduser(str(node.value))  # `~/x` is the user's home, as in a shell

    root_dir = folder("root_dir", "/var/lib/deploydeck")
    if root_dir is None:
        raise LocalError(
            f"{path}: :root_dir: is missing; add e.g.  :root_dir: '/var/lib/deploydeck'"
        )
    max_revisions = _max_revisions(nodes.get("max_revisions"), at("max_revisions"))
    verbose = nodes.get("verbose")
    if verbose is not None and not verbose.is_null and not isinstance(verbose.value, bool):
        raise LocalError(
            f"{at('verbose')} must be true or false (got {describe(verbose)}); write e.g.  "
            ":verbose: false"
        )
    log_dir = folder("log_dir", "/var/log/deploydeck")
    if log_dir:  # created now, as the agent does: a bad one is an error before anything runs
        try:
            Path(log_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise LocalError(
                f"{at('log_dir')} {log_dir} cannot be created ({error.strerror}); give a "
                "folder you can write to, or leave :log_dir: out"
            ) from None
    return AgentConfig(
        root_dir=root_dir,
        log_dir=log_dir or None,
        max_revisions=max_revisions,
        verbose=verbose is not None and verbose.value is True,
        source=path,
    )


def _config_pairs(text: str, path: str) -> dict[str, tuple[Node, Node]]:
    """The configuration's top-level (key, value) nodes with their positions, by key without
    the colon (`:root_dir:` and `root_dir:` are the same key). The text is known to load."""
    root = load_document(text, Reporter(path)).root
    if root is None or not root.is_mapping:
        return {}
    return {to_s(k.value).lstrip(":"): (k, v) for k, v in root.pairs if k.is_scalar}


def describe(node: Node) -> str:
    """A value for a message, cut short: an alias-expanded list must not fill the screen."""
    if node.is_mapping or node.is_sequence:
        return f"{'a mapping' if node.is_mapping else 'a list'} {node.render(60)}"
    if node.is_null:
        return "nothing"
    return f"the {type_name(node.value)} {node.render(60)}"


def _max_revisions(node: Node | None, where: str) -> int:
    """A whole number of at least 1, unquoted or quoted (`'7'`); 5 when absent."""
    if node is None:
        return 5
    value = node.value if node.is_scalar and not isinstance(node.value, bool) else None
    try:
        number = int(str(value).strip()) if isinstance(value, int | str) else 0
    except ValueError:
        number = 0
    if number < 1:
        raise LocalError(
            f"{where} must be a whole number of at least 1 (got {describe(node)}); write e.g.  "
            ":max_revisions: 5"
        )
    return number


def validate_options(options: LocalOptions) -> None:
    """codedeploy-local's CLIValidator checks, in its order
    (docs/codedeploy-agent.md#local-validation)."""
    if options.bundle_type not in BUNDLE_TYPES:
        raise LocalError(
            f"--type {options.bundle_type!r} is not valid; use one of {','.join(BUNDLE_TYPES)}"
        )
    location = options.bundle_location
    try:
        uri = urllib.parse.urlparse(location)
    except ValueError:
        raise LocalError(f"--bundle-location {location!r} is not a valid path or URI") from None
    if uri.scheme == "http":
        raise LocalError(
            f"--bundle-location {location} uses plain http; only local paths are supported "
            "(https and s3 endpoints are not reachable by deploydeck local either)"
        )
    if uri.scheme in ("https", "s3"):
        raise LocalError(
            f"--bundle-location {location}: deploydeck local deploys local bundles only; "
            "download the bundle and pass its path"
        )
    path = Path(location)
    if not path.exists():
        raise LocalError(f"--bundle-location {location} does not exist")
    try:
        check_bundle_path(location)  # a device or a pipe: refused before any read
    except UnsafeBundle as error:
        raise LocalError(str(error)) from None
    if options.bundle_type == "directory" and not path.is_dir():
        raise LocalError(
            f"--bundle-location {location} is a file but --type is directory; give the "
            "archive's type with --type tgz, tar or zip"
        )
    if options.bundle_type != "directory" and path.is_dir():
        raise LocalError(
            f"--bundle-location {location} is a directory but --type is {options.bundle_type}; "
            "use --type directory"
        )
    if options.bundle_type == "directory":
        if options.appspec_filename:
            if not (path / options.appspec_filename).is_file():
                raise LocalError(
                    f"The appspec {options.appspec_filename} was not found at the bundle root: "
                    f"{path / options.appspec_filename}"
                )
        elif not (path / "appspec.yml").is_file() and not (path / "appspec.yaml").is_file():
            raise LocalError(
                f"No appspec.yml or appspec.yaml at the bundle root {path}; add one, or name "
                "yours with --appspec-filename"
            )
    if options.events:
        check_event_order(options.events.split(","))
    problem = plain_name_problem(options.group_id)
    if problem:
        raise LocalError(
            f"--deployment-group {options.group_id!r} {problem}: it names the group's folder "
            "under the deployment root; use a plain name such as my-app-group"
        )
    if options.file_exists_behavior.upper() not in FILE_EXISTS_BEHAVIORS:
        raise LocalError(
            f"--file-exists-behavior {options.file_exists_behavior!r} is not valid; use one of "
            + ", ".join(FILE_EXISTS_BEHAVIORS)
        )


def check_event_order(events: Sequence[str]) -> None:
    for anchor, must_follow in (
        ("DownloadBundle", _MUST_FOLLOW_DOWNLOAD),
        ("Install", _MUST_FOLLOW_INSTALL),
    ):
        if anchor not in events:
            continue
        before = events[: events.index(anchor)]
        wrong = [e for e in before if e in must_follow]
        if wrong:
            allowed = DEFAULT_EVENTS[: DEFAULT_EVENTS.index(anchor)]
            raise LocalError(
                f"--events {','.join(events)}: {', '.join(wrong)} must come after {anchor}; "
                f"only {','.join(allowed)} may run before it"
            )
    for event in events:
        if event not in DEFAULT_EVENTS and not _EVENT_NAME.match(event):
            raise LocalError(
                f"--events: {event!r} is not a valid lifecycle event name; custom events are "
                "PascalCase words such as SmokeTest"
            )


def build_event_list(events: str | None) -> list[str]:
    """The events to run, in order (docs/codedeploy-agent.md#local-event-list)."""
    if not events:
        return list(DEFAULT_EVENTS)
    chosen = events.split(",")
    for required in ("Install", "DownloadBundle"):
        if required not in chosen:
            chosen.insert(0, required)
    download, install = chosen.index("DownloadBundle"), chosen.index("Install")
    if install < download:
        chosen[download], chosen[install] = chosen[install], chosen[download]
    return chosen


def all_possible_events(events: str | None) -> list[str]:
    extra = [e for e in (events.split(",") if events else []) if e not in DEFAULT_EVENTS]
    return list(DEFAULT_EVENTS) + list(dict.fromkeys(extra))


def local_deployment_id() -> str:
    """A deployment id like the engine's, marked as one of `deploydeck local`."""
    return new_deployment_id("-local")


@dataclass(frozen=True)
class PreparedRevision:
    bundle: Bundle
    appspec_display: str
    appspec: dict[str, Any]
    warnings: tuple[Diagnostic, ...] = ()


def prepare_revision(options: LocalOptions) -> PreparedRevision:
    """Open the bundle and check the appspec and lifecycle events; changes nothing."""
    try:
        opened = open_revision(
            Path(options.bundle_location),
            options.bundle_type,
            options.max_bundle_bytes,
            appspec_filename=options.appspec_filename or "appspec.yml",
        )
    except RevisionInvalid as error:
        raise LocalError(str(error), error.diagnostics) from None
    source, appspec, warnings = opened.source, opened.appspec, opened.warnings
    assert isinstance(appspec, ServerAppSpec)  # open_revision parsed it as a Server appspec
    known = all_possible_events(options.events)
    hooks = list(appspec.hook_events)
    unknown = [h for h in hooks if h not in known]
    if unknown:
        raise LocalError(
            f"{source.display_path}: the appspec has hooks for lifecycle events that do not run: "
            f"{', '.join(unknown)}. Rename them to real events, or name custom events with "
            "--events.",
            warnings,
        )
    missing = [e for e in known if e not in DEFAULT_EVENTS and e not in hooks]
    if missing:
        guesses = {e: closest(e, DEFAULT_EVENTS) for e in missing}
        meant = [f"{guess} (not {e})" for e, guess in guesses.items() if guess is not None]
        raise LocalError(
            f"{source.display_path}: --events names {', '.join(missing)}, which the appspec has no "
            "hooks for; add them under hooks: or drop them from --events"
            + (f" (did you mean {', '.join(meant)}?)" if meant else ""),
            warnings,
        )
    return PreparedRevision(opened.bundle, source.display_path, appspec.to_agent_dict(), warnings)


Observer = Callable[[str, dict[str, Any]], None]


@dataclass
class LocalRun:
    """One `deploydeck local` deployment: the events run in order until the first failure."""

    options: LocalOptions
    config: AgentConfig
    revision: PreparedRevision
    deployment_id: str = field(default_factory=local_deployment_id)
    results: list[CommandResult] = field(default_factory=list)

    @property
    def deployment_dir(self) -> str:
        return DeploymentRoot(self.config.root_dir).deployment_dir(
            self.options.group_id, self.deployment_id
        )

    @property
    def scripts_log(self) -> str:
        return scripts_log(self.deployment_dir)

    def command(self, event: str) -> dict[str, Any]:
        bundle = self.revision.bundle
        return {
            "command": event,
            "deployment_id": self.deployment_id,
            "deployment_group_id": self.options.group_id,
            "deployment_group_name": self.options.group_name,
            "application_name": self.options.application_name or self.options.bundle_location,
            "deployment_creator": "user",
            "deployment_type": "IN_PLACE",
            "root_dir": self.config.root_dir,
            "max_revisions": self.config.max_revisions,
            "bundle": {
                "path": str(bundle.path),
                "type": bundle.bundle_type,
                "sha256": bundle.sha256,
            },
            "appspec": self.revision.appspec,
            "file_exists_behavior": self.options.file_exists_behavior.upper(),
            "max_bundle_bytes": self.options.max_bundle_bytes,
        }

    async def run(self, observe: Observer) -> bool:
        """Run every event; `observe(kind, message)` sees event starts/ends and agent messages.
        With a log_dir, each step is also written to <log_dir>/codedeploy-local.log."""
        log = LocalLog(self.config.log_dir)
        log.info(
            f"Deployment {self.deployment_id} of {self.revision.bundle.path} to group "
            f"{self.options.group_id} under {self.config.root_dir} starting"
        )
        ok = True
        try:
            for event in build_event_list(self.options.events):
                observe("event_started", {"event": event})
                result = await agent.execute(self.command(event), lambda m: observe("agent", m))
                self.results.append(result)
                observe("event_finished", {"event": event, "result": result})
                if result.ok:
                    log.info(f"{event} succeeded")
                    continue
                log.error(f"{event} failed: {result.error_code}: {result.message}")
                ok = False
                break
        except BaseException:
            log.error(f"Deployment {self.deployment_id} was interrupted")
            raise
        log.info(
            f"Deployment {self.deployment_id} {'succeeded' if ok else 'failed'}; scripts log: "
            f"{self.scripts_log}"
        )
        return ok


class LocalLog:
    """<log_dir>/codedeploy-local.log, in the agent's line format
    (docs/codedeploy-agent.md#hook-output-and-logs):
    `<ISO time> <LEVEL> [codedeploy-local(<pid>)]: <message>`. Nothing without a log_dir."""

    def __init__(self, log_dir: str | None) -> None:
        self.path = Path(log_dir) / "codedeploy-local.log" if log_dir else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def info(self, message: str) -> None:
        self._write("INFO", message)

    def error(self, message: str) -> None:
        self._write("ERROR", message)

    def _write(self, level: str, message: str) -> None:
        if self.path is None:
            return
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # owner-only
        with open(fd, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {level} [codedeploy-local({os.getpid()})]: {message}\n")

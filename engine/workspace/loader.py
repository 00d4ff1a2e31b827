"""Reading `deploydeck.yml`: every problem at once, with file, line, column, key and a hint.

The file is parsed with engine.appspec's positioned YAML reader, so YAML typing, duplicate-key
warnings and syntax errors read exactly as they do for appspecs. Secrets are masked in every
diagnostic before the result leaves this module (ARCHITECTURE.md invariant 9).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.appspec.diagnostics import Diagnostic
from engine.appspec.document import Node, load_document
from engine.appspec.report import Reporter
from engine.appspec.source import decode_appspec_bytes
from engine.workspace.check_configs import ConfigChecker
from engine.workspace.check_groups import GroupChecker
from engine.workspace.check_instances import InstanceChecker
from engine.workspace.model import Settings, Workspace, WorkspaceResult
from engine.workspace.reader import Reader, describe
from engine.workspace.secrets import redact_text

TOP_LEVEL_KEYS = ("version", "settings", "applications", "instances", "deployment_configs")
SETTINGS_KEYS = ("max_revisions", "kill_grace_seconds", "ssh_max_parallel", "max_bundle_mb")
WORKSPACE_VERSION = 1
# A workspace of hundreds of instances is tens of kilobytes; past this, the file is not one
# (and parsing it would take seconds and memory), so it is refused before it is parsed.
MAX_WORKSPACE_BYTES = 4 * 1024 * 1024
START_HINT = "run `deploydeck init --force` for a commented starter file, or see docs/workspace.md"


def load_workspace(path: Path, *, environ: Mapping[str, str] | None = None) -> WorkspaceResult:
    """Read and check the workspace file at `path`. Never raises on bad input: an unreadable
    file is an error diagnostic too. `environ` (default os.environ) feeds `from_env` values."""
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_WORKSPACE_BYTES + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        return WorkspaceResult(
            None,
            (
                Diagnostic(
                    "error",
                    str(path),
                    1,
                    1,
                    "",
                    None,
                    f"cannot read the workspace file: {reason}",
                    "check the path, or run `deploydeck init` to write a workspace file",
                ),
            ),
        )
    if len(data) > MAX_WORKSPACE_BYTES:
        return WorkspaceResult(None, (_too_large(str(path)),))
    text, problem = decode(data, str(path))
    if problem is not None:
        return WorkspaceResult(None, (problem,))
    return parse_workspace(text, Path(path), environ=environ)


def parse_workspace(
    text: str, path: Path, *, environ: Mapping[str, str] | None = None
) -> WorkspaceResult:
    """Check workspace text as if read from `path` (relative paths in it are relative to
    `path`'s folder; diagnostics name `path` as given)."""
    if len(text) > MAX_WORKSPACE_BYTES:  # more characters is certainly more bytes
        return WorkspaceResult(None, (_too_large(str(path)),))
    reporter = Reporter(str(path))
    absolute = Path(os.path.abspath(path))
    folder = absolute.parent
    loaded = load_document(text, reporter)
    if loaded.failed:
        return WorkspaceResult(None, reporter.diagnostics())
    root = loaded.root
    read = Reader(reporter)
    if root is None or root.is_null:
        reporter.error_at(1, 1, "", "the workspace file is empty", None, START_HINT)
        return WorkspaceResult(None, reporter.diagnostics())
    if not root.is_mapping:
        read.error(
            root,
            "",
            f"the workspace file must be a mapping of applications:, instances: ... "
            f"(got {describe(root)})",
            START_HINT,
        )
        return WorkspaceResult(None, reporter.diagnostics())
    read.unknown_keys(root, "", TOP_LEVEL_KEYS, "the workspace file")
    check_version(root, read)
    settings = check_settings(root.get("settings"), read)
    configs = ConfigChecker(read).check(root.get("deployment_configs"))
    instances = InstanceChecker(read, folder, os.environ if environ is None else environ).check(
        root.get("instances")
    )
    applications = GroupChecker(read, folder, configs, instances.tags).check(
        root.get("applications")
    )
    pair = root.get_pair("applications")
    if pair is None or (pair[1].is_null or (pair[1].is_mapping and not pair[1].pairs)):
        reporter.add_at(
            "warning",
            pair[0].line if pair else 1,
            pair[0].column if pair else 1,
            "applications",
            "the workspace defines no applications, so there is nothing to deploy",
            None,
            "add applications: with a deployment group (see docs/workspace.md)",
        )
    diagnostics = redact_diagnostics(reporter.diagnostics(), instances.secrets)
    if reporter.has_errors or settings is None:
        return WorkspaceResult(None, diagnostics)
    workspace = Workspace(
        path=absolute,
        folder=folder,
        applications=applications,
        instances=instances.instances,
        configs=configs.configs,
        settings=settings,
    )
    return WorkspaceResult(workspace, diagnostics)


def check_version(root: Node, read: Reader) -> None:
    node = root.get("version")
    if node is None or (
        node.is_scalar and node.value == WORKSPACE_VERSION and type(node.value) is int
    ):
        return
    read.error(
        node,
        "version",
        f"the only workspace version is {WORKSPACE_VERSION} (got {describe(node)})",
        f"write version: {WORKSPACE_VERSION}",
    )


def check_settings(node: Node | None, read: Reader) -> Settings | None:
    defaults = Settings()
    if node is None:
        return defaults
    body = read.mapping(node, "settings", "settings", "write settings: then max_revisions: 5 ...")
    if body is None:
        return defaults if node.is_null else None
    read.unknown_keys(body, "settings", SETTINGS_KEYS, "settings")
    values: dict[str, object] = {}
    for key, value in body.pairs:
        name = key.value if key.is_str else None
        path = f"settings.{name}"
        if value.is_null:
            continue
        if name == "max_revisions":
            values[name] = read.integer(value, path, name, defaults.max_revisions, 1)
        elif name == "ssh_max_parallel":
            values[name] = read.integer(value, path, name, defaults.ssh_max_parallel, 1)
        elif name == "max_bundle_mb":
            values[name] = read.integer(value, path, name, defaults.max_bundle_mb, 1)
        elif name == "kill_grace_seconds":
            values[name] = read.positive_number(value, path, name, "10")
    if None in values.values():
        return None
    return dataclasses.replace(defaults, **values)  # type: ignore[arg-type]


def redact_diagnostics(
    diagnostics: Iterable[Diagnostic], secrets: Iterable[str]
) -> tuple[Diagnostic, ...]:
    """Every diagnostic with each secret masked wherever it might appear."""
    hidden = tuple(secrets)
    if not hidden:
        return tuple(diagnostics)
    return tuple(
        dataclasses.replace(
            d,
            key=redact_text(d.key, hidden),
            value=None if d.value is None else redact_text(d.value, hidden),
            message=redact_text(d.message, hidden),
            hint=redact_text(d.hint, hidden),
        )
        for d in diagnostics
    )


def _too_large(filename: str) -> Diagnostic:
    return Diagnostic(
        "error",
        filename,
        1,
        1,
        "",
        None,
        f"the workspace file is larger than {MAX_WORKSPACE_BYTES // (1024 * 1024)} MiB "
        f"({MAX_WORKSPACE_BYTES} bytes), far more than any workspace needs; it was not read",
        "check that this is the right file, and move generated or pasted content out of it",
    )


def decode(data: bytes, filename: str) -> tuple[str, Diagnostic | None]:
    """UTF-8 (with or without a byte-order mark) or UTF-16 with one, as YAML allows."""
    return decode_appspec_bytes(data, filename, "save deploydeck.yml as UTF-8")

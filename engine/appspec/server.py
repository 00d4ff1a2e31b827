"""The Server (EC2/on-premises) appspec: `appspec.yml` in a revision, checked as the reference
agent checks it (docs/codedeploy-agent.md#server-appspec), with every problem reported at once.

Every accept/reject decision is the reference's. Where the reference would accept a structure
only to crash on it later (a list where a path is expected, a number as an owner), the appspec
is rejected here, before any host is touched. Where the reference accepts something surprising
(`sudo: "false"` means sudo, an unquoted `0644` is the mode 420, an unknown top-level key is
ignored), the appspec is accepted and a warning says what will really happen.
"""

from __future__ import annotations

import datetime
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.appspec.acl import AclEntry, parse_acl_entry
from engine.appspec.diagnostics import AppSpecResult
from engine.appspec.document import Node, load_document
from engine.appspec.events import SERVER_HOOK_EVENTS, SERVER_RESERVED_EVENTS
from engine.appspec.mode import describe_bits, mode_bits, normalize_mode
from engine.appspec.names import closest, did_you_mean
from engine.appspec.report import InvalidValue, Reporter, key_path, shown
from engine.appspec.ruby import (
    NumberTooLong,
    RubyConversionError,
    to_i,
    to_s,
    truthy,
    type_name,
)
from engine.appspec.selinux import SelinuxContext, SelinuxRange, parse_range
from engine.appspec.source import read_appspec_text
from engine.appspec.version import check_version

TOP_LEVEL_KEYS = ("version", "os", "files", "permissions", "hooks", "file_exists_behavior")
HOOK_SCRIPT_KEYS = ("location", "timeout", "runas", "sudo")
FILE_KEYS = ("source", "destination")
PERMISSION_KEYS = (
    "object",
    "pattern",
    "except",
    "type",
    "owner",
    "group",
    "mode",
    "acls",
    "context",
)
CONTEXT_KEYS = ("name", "type", "range")
FILE_EXISTS_BEHAVIORS = ("DISALLOW", "OVERWRITE", "RETAIN")
PERMISSION_TYPES = ("file", "directory")
SUPPORTED_OSES = ("linux", "windows")
DEFAULT_HOOK_TIMEOUT = 3600
# The service's limit for one lifecycle event (sum of its scripts); the agent enforces none.
MAX_EVENT_TIMEOUT = 3600
# A timeout this long (seconds) is no timeout: a clock's deadline arithmetic overflows on it.
_ABSURD_TIMEOUT = 10**18
# Strings Ruby treats as true although they read as "no".
_FALSE_LOOKING = frozenset({"false", "no", "off", "0", "", "n", "f"})


@dataclass(frozen=True)
class HookScript:
    """One script of a lifecycle event; `sudo` is already reduced to Ruby truthiness."""

    location: str
    timeout: int = DEFAULT_HOOK_TIMEOUT
    runas: str | None = None
    sudo: bool = False

    def to_agent_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "timeout": self.timeout,
            "runas": self.runas,
            "sudo": self.sudo,
        }


@dataclass(frozen=True)
class HookEvent:
    """A lifecycle event name and its scripts, in appspec order (possibly none)."""

    name: str
    scripts: tuple[HookScript, ...] = ()

    @property
    def total_timeout(self) -> int:
        return sum(script.timeout for script in self.scripts)


@dataclass(frozen=True)
class FileMapping:
    """What Install copies: `source` (relative to the revision root) to `destination`."""

    source: str
    destination: str


@dataclass(frozen=True)
class Permission:
    """A permissions entry. `except_` is the appspec's `except`; `mode` is the reference's mode
    string; `acls` is None when not given (an empty tuple when given empty)."""

    object: str
    pattern: str = "**"
    except_: tuple[str, ...] = ()
    type: tuple[str, ...] = PERMISSION_TYPES
    owner: str | None = None
    group: str | None = None
    mode: str | None = None
    acls: tuple[AclEntry, ...] | None = None
    context: SelinuxContext | None = None

    def to_agent_dict(self) -> dict[str, Any]:
        context = None
        if self.context is not None:
            context = {
                "user": self.context.user,
                "type": self.context.type,
                "range": self.context.range.canonical if self.context.range else None,
            }
        return {
            "object": self.object,
            "pattern": self.pattern,
            "except": list(self.except_),
            "type": list(self.type),
            "owner": self.owner,
            "group": self.group,
            "mode": self.mode,
            "acls": None if self.acls is None else [acl.canonical for acl in self.acls],
            "context": context,
        }


@dataclass(frozen=True)
class ServerAppSpec:
    """A valid Server appspec. `hooks` keeps the appspec's event order; events given as null are
    dropped, events given as `[]` are kept with no scripts."""

    version: float
    os: str
    files: tuple[FileMapping, ...] = ()
    permissions: tuple[Permission, ...] = ()
    hooks: tuple[HookEvent, ...] = ()
    file_exists_behavior: str | None = None

    @property
    def hook_events(self) -> tuple[str, ...]:
        return tuple(event.name for event in self.hooks)

    def hook_scripts(self, event: str) -> tuple[HookScript, ...]:
        """The scripts of `event`, empty when the appspec has none."""
        for hook in self.hooks:
            if hook.name == event:
                return hook.scripts
        return ()

    def hook_event_timeout(self, event: str) -> int:
        """Total timeout of an event: the sum of its scripts' timeouts (0 without scripts)."""
        return sum(script.timeout for script in self.hook_scripts(event))

    def to_agent_dict(self) -> dict[str, Any]:
        """The JSON object the host agent receives (docs/agent-appspec.md)."""
        return {
            "version": float(self.version),
            "os": self.os,
            "file_exists_behavior": self.file_exists_behavior,
            "files": [{"source": f.source, "destination": f.destination} for f in self.files],
            "permissions": [p.to_agent_dict() for p in self.permissions],
            "hooks": {
                event.name: [script.to_agent_dict() for script in event.scripts]
                for event in self.hooks
            },
        }


def parse_server_appspec(
    text: str, *, filename: str = "appspec.yml", host_os: str = "linux"
) -> AppSpecResult[ServerAppSpec]:
    """Parse and check a Server appspec for a host running `host_os` (linux or windows).

    Never raises on bad input: errors and warnings come back as diagnostics, and `appspec` is
    None when there is any error.
    """
    reporter = Reporter(filename)
    loaded = load_document(text, reporter)
    if loaded.failed:
        return AppSpecResult(None, reporter.diagnostics())
    root = loaded.root
    if root is None or (root.is_scalar and (root.value is None or root.value is False)):
        reporter.error_at(
            1,
            1,
            "",
            "the appspec is empty",
            None,
            f"start it with `version: 0.0` and `os: {host_os}`",
        )
        return AppSpecResult(None, reporter.diagnostics())
    if not root.is_mapping:
        reporter.error(
            root,
            "",
            f"the appspec must be a mapping of keys such as version, os and hooks "
            f"(got a {_kind(root)})",
            f"start it with `version: 0.0` and `os: {host_os}`",
        )
        return AppSpecResult(None, reporter.diagnostics())
    spec = _ServerChecker(reporter, host_os).check(root)
    if reporter.has_errors:
        return AppSpecResult(None, reporter.diagnostics())
    return AppSpecResult(spec, reporter.diagnostics())


def load_server_appspec(
    path: str | Path, *, host_os: str = "linux"
) -> AppSpecResult[ServerAppSpec]:
    """Read and parse the appspec at `path`; diagnostics name the path as given. OSError (such
    as a missing file) propagates; undecodable text is an error diagnostic."""
    text, problem = read_appspec_text(path)
    if problem is not None:
        return AppSpecResult(None, (problem,))
    return parse_server_appspec(text, filename=str(path), host_os=host_os)


def _kind(node: Node) -> str:
    if node.is_mapping:
        return "mapping"
    if node.is_sequence:
        return "list"
    return "null value" if node.is_null else f"{type_name(node.value)} ({shown(node)!r})"


def _is_absolute(path: str, host_os: str) -> bool:
    if host_os == "windows":
        return bool(re.match(r"[A-Za-z]:[\\/]|[\\/]", path))
    return path.startswith("/")


def _leaves_revision(path: str, host_os: str) -> bool:
    """True when `path`, joined to the revision's root as the agent joins it (a leading `/` is
    dropped, so `/scripts/x.sh` is `<revision>/scripts/x.sh`), climbs out of it with `..`."""
    if host_os == "windows":
        path = path.replace("\\", "/")
    normal = posixpath.normpath(path.lstrip("/") or ".")
    return normal == ".." or normal.startswith("../")


def _absent(node: Node | None) -> bool:
    """Ruby's `x || default`: a missing key, null and false all take the default."""
    return node is None or (node.is_scalar and (node.value is None or node.value is False))


class _ServerChecker:
    def __init__(self, reporter: Reporter, host_os: str) -> None:
        self.r = reporter
        self.host_os = host_os

    def check(self, root: Node) -> ServerAppSpec | None:
        self.unknown_keys(root, "", TOP_LEVEL_KEYS, "top-level keys", "the appspec")
        version = check_version(root, root.get_pair("version"), self.r)
        os_name = self.os(root)
        hooks = self.hooks(root)
        files = self.files(root)
        permissions = self.permissions(root)
        behavior = self.file_exists_behavior(root)
        if version is None or os_name is None:
            return None
        return ServerAppSpec(version, os_name, files, permissions, hooks, behavior)

    # --- shared helpers -----------------------------------------------------------------------

    def unknown_keys(
        self, node: Node, path: str, allowed: tuple[str, ...], what: str, where: str
    ) -> None:
        """Warn about keys the reference silently ignores, suggesting the close one."""
        for key, _value in node.pairs:
            if key.is_str and key.value in allowed:
                continue
            name = to_s(key.value) if key.is_scalar else key.render()
            self.r.warning(
                key,
                key_path(path, name),
                f"unknown key {name!r} in {where}; it is ignored",
                did_you_mean(name, allowed, what),
                value=name,
            )

    def items(self, node: Node, path: str, example: str) -> Iterator[tuple[int, Node]] | None:
        """The entries of a list. An empty mapping iterates like an empty list in Ruby, so it
        is accepted (with a warning); any other non-list is an error."""
        if node.is_sequence:
            return enumerate(node.items)
        if node.is_mapping and not node.pairs:
            self.r.warning(node, path, "an empty mapping {} is read as an empty list", "write []")
            return enumerate(())
        self.r.error(node, path, f"{path} must be a list (got a {_kind(node)})", example)
        return None

    def string(self, node: Node, path: str, what: str, example: str) -> str | None:
        """A value the agent hands to the OS as a path or name: it must be a string."""
        if node.is_str:
            return str(node.value)
        if node.is_scalar and not node.is_null:
            self.r.error(
                node,
                path,
                f"{what} must be a string (got the {type_name(node.value)} {shown(node)!r})",
                f"quote it: {example.format(value=shown(node))}",
            )
        else:
            self.r.error(
                node,
                path,
                f"{what} must be a string (got a {_kind(node)})",
                example.format(value="..."),
            )
        return None

    # --- os, file_exists_behavior -------------------------------------------------------------

    def os(self, root: Node) -> str | None:
        pair = root.get_pair("os")
        hint = f"write os: {self.host_os}"
        if pair is None:
            self.r.error(
                root, "os", "the appspec has no os", f"add `os: {self.host_os}`", value=None
            )
            return None
        node = pair[1]
        if node.is_str and node.value == self.host_os:
            return self.host_os
        if node.is_null:
            self.r.error(node if node.text else pair[0], "os", "os has no value", hint)
        elif node.is_str and node.value in SUPPORTED_OSES:
            self.r.error(
                node,
                "os",
                f"this appspec is for {node.value} but the host runs {self.host_os}; the agent "
                f"accepts only its own os",
                f"deploy it to a {node.value} host, or write os: {self.host_os}",
            )
        elif node.is_str and node.value.strip().lower() == self.host_os:
            self.r.error(
                node, "os", f"os must be exactly {self.host_os!r} (got {node.value!r})", hint
            )
        else:
            self.r.error(node, "os", f"unsupported os (got {shown(node)!r})", hint)
        return None

    def file_exists_behavior(self, root: Node) -> str | None:
        node = root.get("file_exists_behavior")
        if node is None or node.is_null:
            return None
        if node.is_str and node.value in FILE_EXISTS_BEHAVIORS:
            return str(node.value)
        guess = (
            closest(to_s(node.value), FILE_EXISTS_BEHAVIORS) if node.is_scalar else None
        ) or "OVERWRITE"
        self.r.error(
            node,
            "file_exists_behavior",
            f"file_exists_behavior must be one of DISALLOW, OVERWRITE or RETAIN, in capitals "
            f"(got {shown(node)!r})",
            f"write e.g. file_exists_behavior: {guess}",
        )
        return None

    # --- hooks --------------------------------------------------------------------------------

    def hooks(self, root: Node) -> tuple[HookEvent, ...]:
        node = root.get("hooks")
        if _absent(node):
            if node is not None and node.value is False:
                self.r.warning(node, "hooks", "hooks: false is read as no hooks", "remove it")
            return ()
        assert node is not None
        if not node.is_mapping:
            self.r.error(
                node,
                "hooks",
                f"hooks must be a mapping of event name to a list of scripts (got a {_kind(node)})",
                "write hooks: then, indented, ApplicationStart: and under it "
                "- location: scripts/start.sh",
            )
            return ()
        events: dict[str, HookEvent] = {}
        for key, value in node.pairs:
            name = to_s(key.value) if key.is_scalar else key.render()
            path = key_path("hooks", name)
            self.event_name(key, name, path)
            if value.is_null:
                continue  # the reference drops an event given as null
            entries = self.items(value, path, f"write {name}: then - location: scripts/x.sh")
            if entries is None:
                continue
            scripts = []
            for i, entry in entries:
                script = self.hook_script(entry, key_path(path, i))
                if script is not None:
                    scripts.append(script)
            event = HookEvent(name, tuple(scripts))
            events.pop(name, None)
            events[name] = event
            if event.total_timeout > MAX_EVENT_TIMEOUT:
                self.r.warning(
                    key,
                    path,
                    f"the scripts of {name} may run {event.total_timeout} s in total, more than "
                    f"the {MAX_EVENT_TIMEOUT} s CodeDeploy allows one lifecycle event "
                    f"(a script without timeout counts as {DEFAULT_HOOK_TIMEOUT} s)",
                    "give each script a timeout so that they add up to 3600 s or less",
                    value=str(event.total_timeout),
                )
        return tuple(events.values())

    def event_name(self, key: Node, name: str, path: str) -> None:
        if name in SERVER_HOOK_EVENTS:
            return
        if name in SERVER_RESERVED_EVENTS:
            self.r.warning(
                key,
                path,
                f"{name} is performed by the deployment itself and cannot run scripts; "
                "these scripts will never run",
                f"move them to {SERVER_RESERVED_EVENTS[name]}",
                value=name,
            )
            return
        guess = closest(name, SERVER_HOOK_EVENTS)
        if guess is None:
            hint = f"use one of: {', '.join(SERVER_HOOK_EVENTS)}"
        elif guess.lower() == name.lower():
            hint = f"write {guess} (event names are case-sensitive)"
        else:
            hint = f"did you mean {guess}?"
        self.r.warning(
            key,
            path,
            f"{name!r} is not a Server lifecycle event; its scripts will never run",
            hint,
            value=name,
        )

    def hook_script(self, entry: Node, path: str) -> HookScript | None:
        if not entry.is_mapping:
            example = (
                f"write - location: {entry.value}"
                if entry.is_str
                else "write - location: scripts/start.sh"
            )
            self.r.error(
                entry,
                path,
                f"a hook script must be a mapping with a location (got a {_kind(entry)})",
                example,
            )
            return None
        self.unknown_keys(entry, path, HOOK_SCRIPT_KEYS, "keys", "a hook script")
        ok = True
        location = ""
        node = entry.get("location")
        if node is None or node.is_null:
            self.r.error(
                entry if node is None or not node.text else node,
                key_path(path, "location"),
                "this hook script has no location",
                "add location: scripts/<name>.sh (a path inside the revision)",
                value=None,
            )
            ok = False
        elif not node.is_scalar:
            self.r.error(
                node,
                key_path(path, "location"),
                f"location must be a path (got a {_kind(node)})",
                "write location: scripts/start.sh",
            )
            ok = False
        else:
            location = to_s(node.value).strip()
            if not location:
                self.r.error(
                    node,
                    key_path(path, "location"),
                    "location is empty",
                    "write location: scripts/<name>.sh (a path inside the revision)",
                )
                ok = False
            elif _leaves_revision(location, self.host_os):
                self.r.error(
                    node,
                    key_path(path, "location"),
                    "location climbs out of the revision with '..'; only scripts inside the "
                    "revision are run",
                    "put the script in the revision and write its path from the revision's "
                    "root, e.g. location: scripts/start.sh",
                )
                ok = False
        timeout = self.timeout(entry.get("timeout"), key_path(path, "timeout"))
        runas = self.runas(entry.get("runas"), key_path(path, "runas"))
        sudo = self.sudo(entry.get("sudo"), key_path(path, "sudo"))
        if not ok or timeout is None:
            return None
        return HookScript(location, timeout, runas, sudo)

    def timeout(self, node: Node | None, path: str) -> int | None:
        if _absent(node):
            return DEFAULT_HOOK_TIMEOUT
        assert node is not None
        hint = "write e.g. timeout: 300"
        if not node.is_scalar or isinstance(node.value, datetime.date | bytes):
            self.r.error(
                node,
                path,
                f"timeout must be a positive number of seconds (got a {_kind(node)})",
                hint,
            )
            return None
        try:
            seconds = to_i(node.value)
            if seconds > _ABSURD_TIMEOUT:
                raise NumberTooLong(len(str(seconds)))
        except NumberTooLong as error:
            self.r.error(
                node,
                path,
                f"timeout is a number of {error.digits} digits: far more than the "
                f"{MAX_EVENT_TIMEOUT} s CodeDeploy allows a lifecycle event",
                f"write a timeout of at most {MAX_EVENT_TIMEOUT} seconds, e.g. timeout: 300",
            )
            return None
        except RubyConversionError:
            seconds = 0  # not a number at all: reported as not positive just below
        if seconds <= 0:
            self.r.error(
                node,
                path,
                f"timeout must be a positive number of seconds (got {shown(node)!r})",
                hint,
            )
            return None
        if isinstance(node.value, str) and not re.fullmatch(r"\s*\+?\d+\s*", node.value):
            self.r.warning(
                node,
                path,
                f"timeout {node.value!r} is read as {seconds} seconds (only its leading digits "
                "count)",
                f"write timeout: {seconds}",
            )
        elif isinstance(node.value, float) and node.value != seconds:
            self.r.warning(
                node,
                path,
                f"timeout {shown(node)} is cut to {seconds} whole seconds",
                f"write timeout: {seconds}",
            )
        return seconds

    def optional_scalar(self, node: Node | None, path: str, must_be: str, hint: str) -> Node | None:
        """`node` when it is a scalar; None when it is absent, or not a scalar (an error saying
        `must_be`, and what it is instead)."""
        if node is None or node.is_null:
            return None
        if not node.is_scalar:
            self.r.error(node, path, f"{must_be} (got a {_kind(node)})", hint)
            return None
        return node

    def runas(self, node: Node | None, path: str) -> str | None:
        node = self.optional_scalar(
            node, path, "runas must be a user name", "write runas: www-data"
        )
        if node is None:
            return None
        user = to_s(node.value).strip()
        if not user:
            self.r.warning(
                node,
                path,
                "runas is empty",
                "remove runas to run as the agent's user, or write runas: <user>",
            )
        return user

    def sudo(self, node: Node | None, path: str) -> bool:
        if node is None:
            return False
        value = node.value if node.is_scalar else node
        enabled = truthy(value)
        looks_false = (isinstance(value, str) and value.strip().lower() in _FALSE_LOOKING) or (
            isinstance(value, int | float) and not isinstance(value, bool) and value == 0
        )
        if enabled and looks_false:
            self.r.warning(
                node,
                path,
                f"sudo {shown(node)!r} is a {type_name(value)}, and the agent treats every "
                "value except false and null as true: this script WILL run with sudo",
                "write sudo: false (unquoted) to run without sudo",
            )
        return enabled

    # --- files --------------------------------------------------------------------------------

    def files(self, root: Node) -> tuple[FileMapping, ...]:
        node = root.get("files")
        if _absent(node):
            return ()
        assert node is not None
        entries = self.items(
            node, "files", "write files: then - source: / and destination: /srv/app"
        )
        if entries is None:
            return ()
        mappings = []
        for i, entry in entries:
            path = key_path("files", i)
            mapping = self.file_mapping(entry, path)
            if mapping is not None:
                mappings.append(mapping)
        return tuple(mappings)

    def file_mapping(self, entry: Node, path: str) -> FileMapping | None:
        example = "write - source: web and, under it, destination: /srv/web"
        if not entry.is_mapping:
            self.r.error(
                entry,
                path,
                "a files entry must be a mapping with source and destination "
                f"(got a {_kind(entry)})",
                example,
            )
            return None
        self.unknown_keys(entry, path, FILE_KEYS, "keys", "a files entry")
        source_node, dest_node = entry.get("source"), entry.get("destination")
        source = destination = None
        if source_node is None or source_node.is_null:
            self.r.error(
                entry,
                key_path(path, "source"),
                "this files entry has a destination but no source"
                if dest_node is not None and not dest_node.is_null
                else "this files entry has no source",
                "add source: <path in the revision> (source: / copies the whole revision)",
                value=None,
            )
        else:
            source = self.string(
                source_node, key_path(path, "source"), "source", "source: '{value}'"
            )
            if source is not None and _leaves_revision(source, self.host_os):
                self.r.error(
                    source_node,
                    key_path(path, "source"),
                    "source climbs out of the revision with '..'; Install copies only what "
                    "the revision holds",
                    "write a path from the revision's root, e.g. source: web (source: / is "
                    "the whole revision)",
                )
                source = None
        if dest_node is None or dest_node.is_null:
            shown_source = f" (source: {shown(source_node)})" if source_node is not None else ""
            self.r.error(
                entry,
                key_path(path, "destination"),
                f"this files entry has no destination{shown_source}",
                "add destination: /absolute/path/on/the/host",
                value=None,
            )
        else:
            destination = self.string(
                dest_node, key_path(path, "destination"), "destination", "destination: '{value}'"
            )
            if destination is not None and not _is_absolute(destination, self.host_os):
                self.r.warning(
                    dest_node,
                    key_path(path, "destination"),
                    f"destination {destination!r} is not an absolute path; it is resolved "
                    "against the agent's working directory",
                    f"write an absolute path, e.g. destination: /{destination.lstrip('./')}",
                )
        if source is None or destination is None:
            return None
        return FileMapping(source, destination)

    # --- permissions --------------------------------------------------------------------------

    def permissions(self, root: Node) -> tuple[Permission, ...]:
        node = root.get("permissions")
        if _absent(node):
            return ()
        assert node is not None
        entries = self.items(node, "permissions", "write permissions: then - object: /srv/web")
        if entries is None:
            return ()
        result = []
        for i, entry in entries:
            permission = self.permission(entry, key_path("permissions", i))
            if permission is not None:
                result.append(permission)
        return tuple(result)

    def permission(self, entry: Node, path: str) -> Permission | None:
        if not entry.is_mapping:
            self.r.error(
                entry,
                path,
                f"a permissions entry must be a mapping with an object (got a {_kind(entry)})",
                "write - object: /srv/web and, under it, owner/group/mode as needed",
            )
            return None
        errors_before = self.r.error_count()
        obj = self.permission_object(entry, path)
        if self.host_os == "windows":
            self.r.error(
                entry,
                path,
                "permissions are not supported on Windows deployments",
                "remove the permissions section, or set Windows ACLs from a hook script",
                value=None,
            )
            return None
        self.unknown_keys(entry, path, PERMISSION_KEYS, "keys", "a permissions entry")
        pattern = self.pattern(entry.get("pattern"), key_path(path, "pattern"))
        excepts = self.except_list(entry.get("except"), key_path(path, "except"))
        types = self.type_list(entry.get("type"), key_path(path, "type"))
        owner = self.optional_name(entry.get("owner"), key_path(path, "owner"), "owner")
        group = self.optional_name(entry.get("group"), key_path(path, "group"), "group")
        mode = self.mode(entry.get("mode"), key_path(path, "mode"))
        acls = self.acls(entry.get("acls"), key_path(path, "acls"))
        context = self.context(entry.get("context"), key_path(path, "context"))
        if self.r.error_count() != errors_before or obj is None:
            return None
        return Permission(obj, pattern, excepts, types, owner, group, mode, acls, context)

    def permission_object(self, entry: Node, path: str) -> str | None:
        node = entry.get("object")
        hint = "add object: /path/on/the/host (a file or directory the files section installs)"
        if node is None or node.is_null:
            self.r.error(
                entry if node is None or not node.text else node,
                key_path(path, "object"),
                "this permissions entry has no object",
                hint,
                value=None,
            )
            return None
        if not node.is_scalar:
            self.r.error(
                node, key_path(path, "object"), f"object must be a path (got a {_kind(node)})", hint
            )
            return None
        obj = to_s(node.value).strip()
        if not obj:
            self.r.error(node, key_path(path, "object"), "object is empty", hint)
            return None
        return obj

    def pattern(self, node: Node | None, path: str) -> str:
        if _absent(node):
            return "**"
        assert node is not None
        return self.string(node, path, "pattern", "pattern: '{value}'") or "**"

    def except_list(self, node: Node | None, path: str) -> tuple[str, ...]:
        if _absent(node):
            return ()
        assert node is not None
        entries = self.items(node, path, 'write except: ["*.log"]')
        if entries is None:
            return ()
        globs = []
        for i, item in entries:
            glob = self.string(item, key_path(path, i), "an except entry", "- '{value}'")
            if glob is not None:
                globs.append(glob)
        return tuple(globs)

    def type_list(self, node: Node | None, path: str) -> tuple[str, ...]:
        if _absent(node):
            return PERMISSION_TYPES
        assert node is not None
        if node.is_str and node.value in PERMISSION_TYPES:
            self.r.error(
                node,
                path,
                f"type must be a list (got the string {node.value!r})",
                f"write type: [{node.value}]",
            )
            return PERMISSION_TYPES
        entries = self.items(node, path, "write type: [file] or type: [file, directory]")
        if entries is None:
            return PERMISSION_TYPES
        types = []
        for i, item in entries:
            if item.is_str and item.value in PERMISSION_TYPES:
                types.append(str(item.value))
                continue
            guess = closest(to_s(item.value), PERMISSION_TYPES) if item.is_scalar else None
            self.r.error(
                item,
                key_path(path, i),
                f"unsupported permission object type {shown(item)!r}; only file and directory "
                "are allowed",
                f"write {guess}" if guess else "write file or directory",
            )
        if not types and not node.items:
            self.r.warning(
                node,
                path,
                "type is empty, so this permissions entry applies to nothing",
                "remove type to apply to files and directories",
            )
        return tuple(types)

    def optional_name(self, node: Node | None, path: str, what: str) -> str | None:
        if node is None or node.is_null:
            return None
        return self.string(node, path, what, what + ": '{value}'")

    def mode(self, node: Node | None, path: str) -> str | None:
        node = self.optional_scalar(
            node, path, "mode must be 1 to 4 octal digits", 'write e.g. mode: "0644"'
        )
        if node is None:
            return None
        yaml_int = isinstance(node.value, int) and not isinstance(node.value, bool)
        leading_zero = yaml_int and not node.quoted and bool(re.fullmatch(r"0[0-7_]+", node.text))
        reread = yaml_int and not node.quoted and node.text != str(node.value)
        try:
            mode = normalize_mode(node.value)
        except InvalidValue as exc:
            if leading_zero:
                self.r.error(
                    node,
                    path,
                    f"unquoted mode {node.text} starts with 0, so YAML reads it as the octal "
                    f"number {node.text} = {node.value}; the mode then becomes "
                    f"{to_s(node.value)!r}, which is invalid: {exc.message}",
                    f'quote it: mode: "{node.text}" (in YAML 1.1 an unquoted number with a '
                    "leading zero is octal)",
                )
            elif reread:
                self.r.error(
                    node,
                    path,
                    f"YAML reads the unquoted mode {node.text} as the number {node.value}, "
                    f"which is invalid: {exc.message}",
                    f'quote it: mode: "{node.text}"',
                )
            else:
                self.r.error(node, path, exc.message, exc.hint)
            return None
        if reread:
            intended = node.text.replace("_", "")
            applied = mode_bits(mode)
            meant = (
                int(intended, 8)
                if leading_zero and intended.isdigit() and set(intended) <= set("01234567")
                else None
            )
            if meant is None or meant != applied:
                meant_text = (
                    f", not {intended.lstrip('0').rjust(3, '0')} ({describe_bits(meant)})"
                    if meant is not None
                    else ""
                )
                reason = (
                    f"starts with 0, so YAML reads it as the octal number {node.text} = "
                    f"decimal {node.value}"
                    if leading_zero
                    else f"is read by YAML as the integer {node.value}"
                )
                self.r.warning(
                    node,
                    path,
                    f"unquoted mode {node.text} {reason}; the agent then applies mode {mode} "
                    f"({describe_bits(applied)}){meant_text}",
                    f'quote it: mode: "{node.text}"',
                )
        return mode

    def acls(self, node: Node | None, path: str) -> tuple[AclEntry, ...] | None:
        if node is None or node.is_null:
            return None
        entries = self.items(node, path, 'write acls: ["user:bob:rw-", "group:ops:r-x"]')
        if entries is None:
            return None
        result = []
        for i, item in entries:
            item_path = key_path(path, i)
            if not item.is_str:
                self.r.error(
                    item,
                    item_path,
                    f"an ACL entry must be a string (got a {_kind(item)})",
                    "write e.g. - user:bob:rw-",
                )
                continue
            try:
                result.append(parse_acl_entry(str(item.value)))
            except InvalidValue as exc:
                self.r.error(item, item_path, exc.message, exc.hint)
        return tuple(result)

    def context(self, node: Node | None, path: str) -> SelinuxContext | None:
        if node is None or node.is_null:
            return None
        example = "write context: then, indented, type: httpd_sys_content_t and range: s0"
        if not node.is_mapping:
            self.r.error(node, path, f"context must be a mapping (got a {_kind(node)})", example)
            return None
        for key, _value in node.pairs:
            if key.is_str and key.value == "role":
                self.r.warning(
                    key,
                    key_path(path, "role"),
                    "role is never taken from the appspec; it is ignored",
                    "remove role",
                    value="role",
                )
            elif key.is_str and key.value == "user":
                self.r.warning(
                    key,
                    key_path(path, "user"),
                    "unknown key 'user' in a context; it is ignored",
                    "the SELinux user is given as name: (e.g. name: system_u)",
                    value="user",
                )
            elif not (key.is_str and key.value in CONTEXT_KEYS):
                name = to_s(key.value) if key.is_scalar else key.render()
                self.r.warning(
                    key,
                    key_path(path, name),
                    f"unknown key {name!r} in a context; it is ignored",
                    did_you_mean(name, CONTEXT_KEYS),
                    value=name,
                )
        type_node = node.get("type")
        selinux_type = None
        if type_node is None or type_node.is_null:
            self.r.error(
                node,
                key_path(path, "type"),
                f"context has no type (got {node.render()})",
                "add type: <selinux type>, e.g. type: httpd_sys_content_t",
                value=node.render(),
            )
        else:
            selinux_type = self.string(type_node, key_path(path, "type"), "type", "type: '{value}'")
        user_node = node.get("name")
        user = None
        if user_node is not None and not user_node.is_null:
            user = self.string(user_node, key_path(path, "name"), "name", "name: '{value}'")
        selinux_range = self.selinux_range(node.get("range"), key_path(path, "range"))
        if selinux_type is None:
            return None
        return SelinuxContext(selinux_type, user, selinux_range)

    def selinux_range(self, node: Node | None, path: str) -> SelinuxRange | None:
        if node is None or node.is_null:
            return None
        if not node.is_str:
            self.r.error(
                node,
                path,
                f"range must be a string such as s0 or s0:c0.c5 (got {shown(node)!r})",
                "write e.g. range: s0",
            )
            return None
        try:
            return parse_range(str(node.value))
        except InvalidValue as exc:
            self.r.error(node, path, exc.message, exc.hint)
            return None

"""The `instances:` section: local folders and SSH hosts, their tags and their hooks' variables."""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.appspec.document import Node
from engine.appspec.report import key_path
from engine.host.variables import AGENT_VARIABLES
from engine.workspace.model import Instance, SshSettings
from engine.workspace.paths import default_root, workspace_path
from engine.workspace.reader import Reader, is_number
from engine.workspace.secrets import EnvValue
from engine.workspace.tags import TAG_KEY_MAX, TAG_VALUE_MAX

INSTANCE_KEYS = (
    "tags",
    "transport",
    "root",
    "environment",
    "host",
    "port",
    "user",
    "key_file",
    "proxy_jump",
    "known_hosts",
    "agent_root",
    "python",
    "fs_root",
)
SSH_ONLY_KEYS = INSTANCE_KEYS[4:]
TRANSPORTS = ("local", "ssh")
ENV_ENTRY_KEYS = ("value", "from_env", "secret")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One jump host as ssh -J takes it: [user@]host[:port], host possibly a bracketed IPv6 address.
_HOP = re.compile(r"(?:[^@\s:\[\]]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^@\s:\[\]]+)(?::(?P<port>\d+))?")
_SPACE = re.compile(r"\s")


@dataclass
class InstancesSection:
    """What the section yields: the valid instances, the tags of every instance whose tags are
    valid (so group checks do not cascade), and every secret seen, for redaction."""

    instances: dict[str, Instance] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return str(os.getuid())


class InstanceChecker:
    def __init__(self, reader: Reader, folder: Path, environ: Mapping[str, str]) -> None:
        self.read = reader
        self.folder = folder
        self.environ = environ
        self.out = InstancesSection()
        self.roots: dict[Path, str] = {}

    def check(self, section: Node | None) -> InstancesSection:
        if section is None:
            return self.out
        mapping = self.read.mapping(
            section, "instances", "instances", "write instances: then one indented entry per name"
        )
        if mapping is None:
            return self.out
        for name, key, node in self.read.named(mapping, "instances", "instance"):
            instance = self.instance(name, key, node)
            if instance is not None:
                self.out.instances[name] = instance
        return self.out

    def instance(self, name: str, key: Node, node: Node) -> Instance | None:
        """The instance, or None when any of its fields had an error (all are reported)."""
        errors_before = self.read.r.error_count()
        path = key_path("instances", name)
        body = self.read.mapping(node, path, f"instance {name}", "write tags:, transport: ...")
        if body is None and not node.is_null:
            return None
        pairs: dict[str, Node] = {}
        if body is not None:
            self.read.unknown_keys(body, path, INSTANCE_KEYS, f"instance {name}")
            # A key written with no value is the same as a key left out.
            pairs = {k.value: v for k, v in body.pairs if k.is_str and not v.is_null}
        tags: dict[str, str] | None = {}
        if "tags" in pairs:
            tags = self.tags(pairs["tags"], key_path(path, "tags"))
        if tags is not None:
            self.out.tags[name] = tags  # for the groups' checks, even if another field is bad
        environment = self.environment(pairs.get("environment"), key_path(path, "environment"))
        transport: str | None = "local"
        if "transport" in pairs:
            transport = self.read.choice(
                pairs["transport"], key_path(path, "transport"), "transport", TRANSPORTS
            )
        root: Path | None = None
        ssh: SshSettings | None = None
        if transport == "local":
            root = self.local(name, key, pairs, path)
        elif transport == "ssh":
            ssh = self.ssh(name, key, pairs, path)
        if self.read.r.error_count() != errors_before:
            return None
        assert tags is not None and environment is not None and transport in TRANSPORTS
        return Instance(name, tags, transport, root, environment, ssh)  # type: ignore[arg-type]

    # --- tags and environment -------------------------------------------------------------

    def tags(self, node: Node, path: str) -> dict[str, str] | None:
        mapping = self.read.mapping(node, path, "tags", "write tags: {role: web, env: prod}")
        if mapping is None:
            return None if not node.is_null else {}
        tags: dict[str, str] = {}
        ok = True
        for key_node, value_node in mapping.pairs:
            label = key_node.text if key_node.is_scalar else key_node.render()
            at = key_path(path, label)
            key = self.read.string(key_node, at, label, "role", what="a tag key")
            value = self.read.string(
                value_node, at, label, '""', what=f"the value of tag {label!r}", empty_ok=True
            )
            if key is not None and len(key) > TAG_KEY_MAX:
                self.read.error(
                    key_node,
                    at,
                    f"tag key {key[:20]!r}... is {len(key)} characters; the limit is {TAG_KEY_MAX}",
                    "use a shorter key",
                )
                key = None
            if value is not None and len(value) > TAG_VALUE_MAX:
                self.read.error(
                    value_node,
                    at,
                    f"the value of tag {label!r} is {len(value)} characters; the limit is "
                    f"{TAG_VALUE_MAX}",
                    "use a shorter value",
                )
                value = None
            if key is None or value is None:
                ok = False
            else:
                tags[key] = value
        return tags if ok else None

    def environment(self, node: Node | None, path: str) -> dict[str, EnvValue] | None:
        if node is None or node.is_null:
            return {}
        mapping = self.read.mapping(node, path, "environment", "write environment: {PORT: 8081}")
        if mapping is None:
            return None
        env: dict[str, EnvValue] = {}
        ok = True
        for key_node, value_node in mapping.pairs:
            label = key_node.text if key_node.is_scalar else key_node.render()
            at = key_path(path, label)
            value = self.env_value(label, value_node, at)
            if not key_node.is_str or not ENV_NAME.fullmatch(str(key_node.value)):
                self.read.error(
                    key_node,
                    at,
                    f"{label!r} is not a valid environment variable name",
                    "use letters, digits and _, not starting with a digit, e.g. WEB_PORT",
                )
                ok = False
                continue
            if label in AGENT_VARIABLES:
                self.read.warning(
                    key_node,
                    at,
                    f"{label} is set by the agent for every hook; this value is replaced",
                    "choose another name",
                )
            if value is None:
                ok = False
            else:
                env[label] = value
        return env if ok else None

    def env_value(self, name: str, node: Node, path: str) -> EnvValue | None:
        """`NAME: text`, `NAME: 8081` (kept as written), or `{value | from_env, secret}`."""
        if node.is_mapping:
            return self.env_entry(name, node, path)
        if node.is_str:
            return EnvValue(str(node.value))
        if is_number(node):
            return EnvValue(node.text)  # as written: 0644 stays "0644", not "420"
        self.read.string(node, path, name, '"..."', what=f"the value of {name}")
        return None

    def env_entry(self, name: str, node: Node, path: str) -> EnvValue | None:
        self.read.unknown_keys(node, path, ENV_ENTRY_KEYS, f"variable {name}")
        secret_node = node.get("secret")
        # Anything but a plain `false` hides the value, even when `secret` itself is invalid.
        hidden = secret_node is not None and secret_node.value is not False
        if hidden:
            self.collect_hidden(node)
        secret: bool | None = False
        if secret_node is not None:
            secret = self.read.boolean(secret_node, key_path(path, "secret"), "secret")
        given = [k for k in ("value", "from_env") if node.get(k) is not None]
        if len(given) != 1:
            self.read.missing(
                node,
                path,
                f"{name} has both value and from_env"
                if given
                else f"{name} has neither value nor from_env",
                f'write {name}: {{value: "...", secret: true}} or {name}: {{from_env: VARIABLE}}',
            )
            return None
        if given == ["value"]:
            text = self.entry_value(name, node.get("value"), key_path(path, "value"), hidden)
        else:
            text = self.entry_from_env(name, node.get("from_env"), key_path(path, "from_env"))
        if text is None or secret is None:
            return None
        source = None if given == ["value"] else str(node.get("from_env").value)  # type: ignore[union-attr]
        return EnvValue(text, secret, from_env=source)

    def entry_value(self, name: str, node: Node | None, path: str, hidden: bool) -> str | None:
        assert node is not None
        if is_number(node):
            return node.text
        return self.read.string(
            node, path, "value", '"..."', what=f"the value of {name}", secret=hidden
        )

    def entry_from_env(self, name: str, node: Node | None, path: str) -> str | None:
        """The variable's value now, at load time; a missing variable is an error."""
        assert node is not None
        source = self.read.string(node, path, "from_env", "WEB1_DB_PASSWORD")
        if source is None:
            return None
        if not ENV_NAME.fullmatch(source):
            self.read.error(
                node,
                path,
                f"from_env must name an environment variable (got {source!r})",
                "use letters, digits and _, e.g. from_env: WEB1_DB_PASSWORD",
            )
            return None
        if source not in self.environ:
            self.read.error(
                node,
                path,
                f"the environment variable {source} is not set (read for {name})",
                f"export {source}=... before running deploydeck, or write value: instead",
            )
            return None
        return self.environ[source]

    def collect_hidden(self, node: Node) -> None:
        """Record the text a secret entry holds, valid or not, so no diagnostic shows it."""
        value_node = node.get("value")
        if value_node is not None and value_node.is_scalar and not value_node.is_null:
            self.out.secrets.add(value_node.text)
            if isinstance(value_node.value, str):
                self.out.secrets.add(value_node.value)
        source_node = node.get("from_env")
        if source_node is not None and source_node.is_str:
            found = self.environ.get(str(source_node.value))
            if found:
                self.out.secrets.add(found)

    # --- transports -----------------------------------------------------------------------

    def local(self, name: str, key: Node, pairs: dict[str, Node], path: str) -> Path | None:
        for ssh_key in SSH_ONLY_KEYS:
            if ssh_key in pairs:
                self.read.error(
                    pairs[ssh_key],
                    key_path(path, ssh_key),
                    f"{ssh_key} applies to ssh instances only, and {name} is a local instance",
                    f"add transport: ssh to {name}, or remove {ssh_key}",
                )
        root_node = pairs.get("root")
        if root_node is None or root_node.is_null:
            root = default_root(self.folder, name)
            anchor = key
        else:
            text = self.read.string(
                root_node, key_path(path, "root"), "root", f".deploydeck/instances/{name}"
            )
            if text is None:
                return None
            root = workspace_path(self.folder, text)
            anchor = root_node
        other = self.roots.get(root)
        if other is not None:
            self.read.error(
                anchor,
                key_path(path, "root"),
                f"{name} and {other} share the folder {root}; their deployments would overwrite "
                "each other",
                f"give {name} its own root, e.g. root: .deploydeck/instances/{name}",
            )
            return None
        self.roots[root] = name
        return root

    def ssh(self, name: str, key: Node, pairs: dict[str, Node], path: str) -> SshSettings:
        """The SSH settings; a field with an error keeps its default (the caller sees the
        error count and drops the instance)."""
        if "root" in pairs:
            self.read.error(
                pairs["root"],
                key_path(path, "root"),
                f"root applies to local instances only, and {name} is an ssh instance",
                "write agent_root: /var/lib/deploydeck for the deployment root on the host",
            )
        settings = SshSettings(
            host=self.host(name, key, pairs.get("host"), key_path(path, "host")) or "",
            user=current_user(),
        )
        changes: dict[str, object] = {}
        if "port" in pairs:
            changes["port"] = self.read.integer(
                pairs["port"], key_path(path, "port"), "port", 22, 1, 65535
            )
        if "user" in pairs:
            changes["user"] = self.word(pairs["user"], key_path(path, "user"), "user", "deploy")
        if "key_file" in pairs:
            changes["key_file"] = self.path(pairs["key_file"], key_path(path, "key_file"))
        if "proxy_jump" in pairs:
            changes["proxy_jump"] = self.proxy_jump(
                pairs["proxy_jump"], key_path(path, "proxy_jump")
            )
        if "known_hosts" in pairs:
            changes["known_hosts"] = self.path(pairs["known_hosts"], key_path(path, "known_hosts"))
        if "agent_root" in pairs:
            changes["agent_root"] = self.host_folder(
                pairs["agent_root"], key_path(path, "agent_root"), "agent_root"
            )
        if "fs_root" in pairs:
            changes["fs_root"] = self.host_folder(
                pairs["fs_root"], key_path(path, "fs_root"), "fs_root"
            )
        if "python" in pairs:
            changes["python"] = self.read.string(
                pairs["python"], key_path(path, "python"), "python", "python3"
            )
        valid = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(settings, **valid)  # type: ignore[arg-type]

    def host(self, name: str, key: Node, node: Node | None, path: str) -> str | None:
        if node is None or node.is_null:
            self.read.missing(
                key if node is None else node,
                path,
                f"the ssh instance {name} has no host",
                "add host: 192.0.2.10 (an address or a name ssh can resolve)",
            )
            return None
        host = self.word(node, path, "host", "192.0.2.10")
        if host is not None and "@" in host:
            user, _, rest = host.rpartition("@")
            self.read.error(
                node,
                path,
                "host must be the host alone; the user goes in user:",
                f"write host: {rest} and user: {user}",
            )
            return None
        return host

    def word(self, node: Node, path: str, field_name: str, example: str) -> str | None:
        """A string passed to ssh as an argument: no spaces, and no leading '-' (it would be
        read as an option)."""
        text = self.read.string(node, path, field_name, example)
        if text is None:
            return None
        if _SPACE.search(text) or text.startswith("-"):
            self.read.error(
                node,
                path,
                f"{field_name} {text!r} cannot contain spaces or start with '-'",
                f"write {field_name}: {example}",
            )
            return None
        return text

    def path(self, node: Node, path: str) -> Path | None:
        """A local file; relative paths are the workspace folder's."""
        field_name = path.rsplit(".", 1)[-1]
        text = self.read.string(node, path, field_name, f"~/.ssh/{field_name}")
        return None if text is None else workspace_path(self.folder, text)

    def proxy_jump(self, node: Node, path: str) -> str | None:
        text = self.word(node, path, "proxy_jump", "bastion.example.com")
        if text is None:
            return None
        match = _HOP.fullmatch(text)
        port = match.group("port") if match else None
        if match is None or (port is not None and (len(port) > 5 or not 1 <= int(port) <= 65535)):
            self.read.error(
                node,
                path,
                f"proxy_jump must be one jump host as [user@]host[:port] (got {text!r})",
                "write proxy_jump: deploy@bastion.example.com:22",
            )
            return None
        return text

    def host_folder(self, node: Node, path: str, field_name: str) -> str | None:
        """A folder on the host: absolute, or under the user's home (~)."""
        text = self.read.string(node, path, field_name, "/var/lib/deploydeck")
        if text is None:
            return None
        if not text.startswith(("/", "~")):
            self.read.error(
                node,
                path,
                f"{field_name} is a folder on the host and must be absolute (got {text!r})",
                f"write {field_name}: /{text.lstrip('./')}, or ~/{text.lstrip('./')} for one in "
                "the user's home",
            )
            return None
        return text

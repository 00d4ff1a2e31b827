"""The loaded workspace: applications, deployment groups, instances, custom configs, settings.

Everything is a frozen dataclass built by the loader from a valid `deploydeck.yml`; nothing here
reads files. Lookups that fail raise `WorkspaceError` naming the valid choices, never KeyError.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from engine.alarms import AlarmConfiguration
from engine.appspec.diagnostics import Diagnostic, Findings
from engine.appspec.names import closest
from engine.configs import PREDEFINED_CONFIGS, DeploymentConfig
from engine.model import (
    AutoRollback,
    BlueInstanceAction,
    ComputePlatform,
    DeploymentKind,
    DeploymentStyle,
    GreenFleetAction,
    ReadyAction,
)
from engine.workspace.errors import WorkspaceError
from engine.workspace.paths import STATE_DIR_NAME
from engine.workspace.secrets import EnvValue, redact_text
from engine.workspace.tags import TagFilter, matches_any, matches_tag_set

V = TypeVar("V")

Transport = Literal["local", "ssh"]

# Used when neither the deployment nor its group names a config
# (docs/codedeploy-service.md#deployment-groups). The reference names OneAtATime, a Server config;
# Lambda and ECS groups get their platform's all-at-once config, as CodeDeploy gives them.
DEFAULT_CONFIGS: dict[str, str] = {
    "Server": "CodeDeployDefault.OneAtATime",
    "Lambda": "CodeDeployDefault.LambdaAllAtOnce",
    "ECS": "CodeDeployDefault.ECSAllAtOnce",
}


@dataclass(frozen=True)
class Settings:
    """Workspace-wide tuning. The defaults are the host agent's."""

    max_revisions: int = 5
    kill_grace_seconds: float = 10.0
    ssh_max_parallel: int = 20
    max_bundle_mb: int = 4096  # bundles larger than this (unpacked) are refused

    @property
    def max_bundle_bytes(self) -> int:
        return self.max_bundle_mb * 1024 * 1024


@dataclass(frozen=True)
class Trigger:
    """A notification (docs/codedeploy-service.md#triggers). Exactly one target is set: `webhook` (a
    URL that gets the message POSTed), `command` (argv, or a string for `sh -c`; the message on
    stdin) or
    `file` (an absolute path the message is appended to, as one JSON line)."""

    name: str
    events: tuple[str, ...]
    webhook: str | None = None
    command: tuple[str, ...] | str | None = None
    file: Path | None = None

    @property
    def kind(self) -> Literal["webhook", "command", "file"]:
        if self.webhook is not None:
            return "webhook"
        return "command" if self.command is not None else "file"


@dataclass(frozen=True)
class HealthCheckConfig:
    """How the balancer judges an instance healthy; defaults are an AWS target group's."""

    path: str = "/"
    interval_seconds: float = 30.0
    timeout_seconds: float = 5.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2


@dataclass(frozen=True)
class LoadBalancerConfig:
    """A group's `load_balancer:` as written: the kind (builtin, haproxy, command) and its
    fields, the health check and the drain and allow timings. Each instance's address is
    127.0.0.1 (its SSH host for SSH instances) and the port in its `port_env` variable. The
    running balancer is built from this by the run (engine/traffic is loaded only then)."""

    kind: Literal["builtin", "haproxy", "command"]
    host: str = "127.0.0.1"
    port: int | None = None  # None: builtin any free port, owned HAProxy 8080
    socket: Path | None = None  # HAProxy: attach to the one running behind this socket
    backend: str = ""
    servers: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)  # block, allow, health, drained
    command_timeout_seconds: float = 60.0
    port_env: str = "PORT"
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    deregistration_delay_seconds: float = 300.0
    allow_timeout_seconds: float = 3600.0


@dataclass(frozen=True)
class BlueGreenConfig:
    """A Server group's `blue_green:` (CodeDeploy's blueGreenDeploymentConfiguration): when
    traffic moves to the green fleet once it is installed, where green comes from, and what
    becomes of blue. Waits are in minutes, as CodeDeploy writes them (fractions allowed)."""

    ready_action: ReadyAction = ReadyAction.CONTINUE_DEPLOYMENT
    ready_wait_minutes: float = 0.0  # 0 with CONTINUE_DEPLOYMENT: reroute at once
    green_fleet: GreenFleetAction = GreenFleetAction.COPY_AUTO_SCALING_GROUP
    green_tag_filters: tuple[TagFilter, ...] = ()  # DISCOVER_EXISTING: green's tags
    copy_first_port: int | None = None  # COPY: copies' ports from here (None: free ones)
    blue_action: BlueInstanceAction = BlueInstanceAction.TERMINATE
    termination_wait_minutes: float = 0.0

    @property
    def waits_ready(self) -> bool:
        return self.ready_action == ReadyAction.STOP_DEPLOYMENT or self.ready_wait_minutes > 0


@dataclass(frozen=True)
class DeploymentGroup:
    """Where and how an application deploys. Server groups select instances by tags; Lambda and
    ECS groups keep their `target` mapping as written (its schema comes later)."""

    application: str
    name: str
    compute_platform: ComputePlatform = ComputePlatform.SERVER
    deployment_config: str | None = None
    deployment_style: DeploymentStyle = field(default_factory=DeploymentStyle)
    tag_filters: tuple[TagFilter, ...] = ()
    tag_set: tuple[tuple[TagFilter, ...], ...] = ()
    auto_rollback: AutoRollback = field(default_factory=AutoRollback)
    ignore_application_stop_failures: bool = False
    file_exists_behavior: str = "DISALLOW"
    triggers: tuple[Trigger, ...] = ()
    alarm_configuration: AlarmConfiguration | None = None
    target: dict[str, Any] | None = None
    load_balancer: LoadBalancerConfig | None = None
    blue_green: BlueGreenConfig | None = None

    @property
    def kind(self) -> DeploymentKind:
        """What picks the run strategy of the group's deployments."""
        return DeploymentKind(self.compute_platform, self.deployment_style)

    def matches(self, tags: dict[str, str]) -> bool:
        """Whether an instance with these tags belongs to the group."""
        if self.compute_platform != "Server":
            return False
        if self.tag_filters:
            return matches_any(self.tag_filters, tags)
        return matches_tag_set(self.tag_set, tags)


@dataclass(frozen=True)
class Application:
    name: str
    compute_platform: ComputePlatform = ComputePlatform.SERVER
    deployment_groups: dict[str, DeploymentGroup] = field(default_factory=dict)


@dataclass(frozen=True)
class SshSettings:
    """How to reach an SSH instance. Paths are absolute; `user` is resolved at load time."""

    host: str
    port: int = 22
    user: str = ""
    key_file: Path | None = None
    proxy_jump: str | None = None
    known_hosts: Path | None = None
    agent_root: str | None = None
    python: str = "python3"
    fs_root: str | None = None  # destinations placed under this folder (hosts shared by instances)

    def known_hosts_files(self, workspace_state: Path) -> tuple[Path, ...]:
        """The files host keys are checked against: the instance's own, else the workspace's
        and the user's (those that exist)."""
        if self.known_hosts is not None:
            return (self.known_hosts,)
        candidates = (workspace_state / "known_hosts", Path("~/.ssh/known_hosts").expanduser())
        return tuple(p for p in candidates if p.exists())


@dataclass(frozen=True)
class Instance:
    """A machine deployments run on: a folder here (`local`, `root` set) or a host over SSH
    (`ssh` set). Its repr shows secrets as ***."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    transport: Transport = "local"
    root: Path | None = None
    environment: dict[str, EnvValue] = field(default_factory=dict)
    ssh: SshSettings | None = None

    def hook_environment(self) -> dict[str, str]:
        """The variables this instance's hooks get, secrets included (for the hook only)."""
        return {name: env.value for name, env in self.environment.items()}


@dataclass(frozen=True)
class Workspace:
    """A valid `deploydeck.yml`. `configs` holds the custom configs only; the predefined ones
    come from engine.configs."""

    path: Path
    folder: Path
    applications: dict[str, Application] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    configs: dict[str, DeploymentConfig] = field(default_factory=dict)
    settings: Settings = Settings()

    @property
    def state_dir(self) -> Path:
        return self.folder / STATE_DIR_NAME

    def application(self, name: str) -> Application:
        return _named(
            self.applications, name, f"{self.path}: no application {name!r}", "applications"
        )

    def group(self, app: str, group: str) -> DeploymentGroup:
        return _named(
            self.application(app).deployment_groups,
            group,
            f"{self.path}: application {app!r} has no deployment group {group!r}",
            "deployment groups",
        )

    def group_instances(self, app: str, group: str) -> tuple[Instance, ...]:
        """The group's instances in workspace order (none for Lambda and ECS groups)."""
        selected = self.group(app, group)
        return tuple(i for i in self.instances.values() if selected.matches(i.tags))

    def config_names(self, platform: str | None = None) -> tuple[str, ...]:
        """Predefined then custom config names, optionally only those of one platform."""
        every = [*PREDEFINED_CONFIGS.values(), *self.configs.values()]
        return tuple(c.name for c in every if platform in (None, c.compute_platform))

    def resolve_config(self, name: str | None, group: DeploymentGroup) -> DeploymentConfig:
        """The config a deployment uses: its own, else the group's, else the platform default
        (CodeDeployDefault.OneAtATime for Server). It must exist and suit the group's platform."""
        chosen = name or group.deployment_config or DEFAULT_CONFIGS[group.compute_platform]
        config = PREDEFINED_CONFIGS.get(chosen) or self.configs.get(chosen)
        where = f"deployment group {group.application}/{group.name}"
        suitable = self.config_names(group.compute_platform)
        if config is None:
            guess = closest(chosen, self.config_names())
            hint = f"did you mean {guess}? " if guess else ""
            raise WorkspaceError(
                f"no deployment config named {chosen!r} (for {where}); {hint}"
                f"{group.compute_platform} configs: {', '.join(suitable)}"
            )
        if config.compute_platform != group.compute_platform:
            raise WorkspaceError(
                f"{chosen} is a {config.compute_platform} deployment config, but {where} "
                f"deploys to {group.compute_platform}; use one of: {', '.join(suitable)}"
            )
        return config

    @functools.cached_property
    def _secrets(self) -> frozenset[str]:
        # computed once: the workspace never changes, and redaction runs for every event
        return frozenset(
            env.value
            for instance in self.instances.values()
            for env in instance.environment.values()
            if env.secret and env.value
        )

    def secret_values(self) -> frozenset[str]:
        """Every secret environment value, for redacting logs, the journal and the screen."""
        return self._secrets

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by ***."""
        return redact_text(text, self._secrets) if self._secrets else text


def _named(options: Mapping[str, V], name: str, missing: str, what: str) -> V:
    """The entry `name` of `options`, or WorkspaceError: `missing` and the names there are."""
    found = options.get(name)
    if found is None:
        raise WorkspaceError(missing + _choices(name, options, what))
    return found


def _choices(wanted: str, options: Mapping[str, Any], what: str) -> str:
    if not options:
        return f"; the workspace defines no {what}"
    guess = closest(wanted, options)
    lead = f"; did you mean {guess!r}?" if guess else ";"
    return f"{lead} {what}: {', '.join(options)}"


@dataclass(frozen=True)
class WorkspaceResult(Findings):
    """The outcome of loading: the workspace (None when there is any error) and every
    diagnostic, errors and warnings alike, with secrets already masked."""

    workspace: Workspace | None
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def ok(self) -> bool:
        return self.workspace is not None and not self.errors

    def unwrap(self) -> Workspace:
        """The workspace, or WorkspaceError listing every error."""
        if self.workspace is None or self.errors:
            count = len(self.errors)
            file = self.diagnostics[0].file if self.diagnostics else "the workspace file"
            raise WorkspaceError(
                f"invalid workspace {file} ({count} error{'s' if count != 1 else ''}):",
                self.diagnostics,
            )
        return self.workspace

"""Every validation error names the file, the line (marked `#<` below), the key, and says what to
write; the file is rejected (ARCHITECTURE.md invariant 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workspace.support import load, marked_line, only_error

APP = """
applications:
  web:
    deployment_groups:
      fleet:
        tag_filters: [{key: role, value: web}]
"""
INSTANCE = """
instances:
  web-1: {tags: {role: web}}
"""
G = "applications.web.deployment_groups.fleet"

CASES: list[tuple[str, str, str, str]] = [
    # (id, document, key, a piece of the message)
    ("version", "version: 2  #<\n" + APP + INSTANCE, "version", "only workspace version is 1"),
    ("version-string", 'version: "1"  #<\n' + APP + INSTANCE, "version", "version is 1"),
    ("root-list", "- applications  #<\n", "", "must be a mapping"),
    ("empty-file", "#<\n", "", "empty"),
    ("yaml-syntax", APP + "  bad: a: b  #<\n", "", "YAML syntax error"),
    (
        "max-revisions",
        "settings:\n  max_revisions: 0  #<\n" + APP + INSTANCE,
        "settings.max_revisions",
        "at least 1",
    ),
    (
        "kill-grace",
        "settings:\n  kill_grace_seconds: -1  #<\n" + APP + INSTANCE,
        "settings.kill_grace_seconds",
        "greater than 0",
    ),
    (
        "ssh-max-parallel",
        'settings:\n  ssh_max_parallel: "20"  #<\n' + APP + INSTANCE,
        "settings.ssh_max_parallel",
        "whole number",
    ),
    ("settings-list", "settings: [1]  #<\n" + APP + INSTANCE, "settings", "must be a mapping"),
    (
        "compute-platform",
        "applications:\n  web:\n    compute_platform: server  #<\n" + INSTANCE,
        "applications.web.compute_platform",
        "one of Server, Lambda, ECS",
    ),
    (
        "application-name",
        "applications:\n  we b: {}  #<\n" + INSTANCE,
        "applications.we b",
        "contains ' '",
    ),
    (
        "application-name-not-string",
        "applications:\n  1: {}  #<\n" + INSTANCE,
        "applications.1",
        "must be a string",
    ),
    (
        "group-name-too-long",
        "applications:\n  web:\n    deployment_groups:\n      " + "g" * 101 + ": {}  #<\n",
        "applications.web.deployment_groups." + "g" * 101,
        "too long",
    ),
    (
        "unknown-config",
        APP + "        deployment_config: CodeDeployDefault.HalfAtATme  #<\n" + INSTANCE,
        f"{G}.deployment_config",
        "no deployment config named 'CodeDeployDefault.HalfAtATme'",
    ),
    (
        "config-platform",
        APP + "        deployment_config: CodeDeployDefault.LambdaAllAtOnce  #<\n" + INSTANCE,
        f"{G}.deployment_config",
        "is a Lambda deployment config, but application web deploys to Server",
    ),
    (
        "custom-config-platform",
        APP
        + "        deployment_config: Canary  #<\n"
        + INSTANCE
        + "deployment_configs:\n  Canary:\n    compute_platform: ECS\n"
        + "    traffic_routing: {type: AllAtOnce}\n",
        f"{G}.deployment_config",
        "Canary is a ECS deployment config",
    ),
    (
        "filter-value-number",
        APP.replace("value: web}]", "value: 8080}]  #<") + INSTANCE,
        f"{G}.tag_filters[0].value",
        "must be a string (got the integer 8080)",
    ),
    (
        "filter-empty",
        APP.replace("[{key: role, value: web}]", "[{}]  #<") + INSTANCE,
        f"{G}.tag_filters[0]",
        "needs a key, a value or both",
    ),
    (
        "filter-type",
        APP.replace("value: web}]", "value: web, type: EXACT}]  #<") + INSTANCE,
        f"{G}.tag_filters[0].type",
        "one of KEY_AND_VALUE, KEY_ONLY, VALUE_ONLY",
    ),
    (
        "filter-missing-value",
        APP.replace("[{key: role, value: web}]", "[{key: role, type: KEY_AND_VALUE}]  #<")
        + INSTANCE,
        f"{G}.tag_filters[0].value",
        "a KEY_AND_VALUE tag filter needs a value",
    ),
    (
        "filter-missing-key",
        APP.replace("[{key: role, value: web}]", "[{value: web, type: KEY_ONLY}]  #<") + INSTANCE,
        f"{G}.tag_filters[0].key",
        "a KEY_ONLY tag filter needs a key",
    ),
    (
        "filter-key-too-long",
        APP.replace("key: role", "key: " + "k" * 129).replace("web}]", "web}]  #<") + INSTANCE,
        f"{G}.tag_filters[0].key",
        "at most 128 characters",
    ),
    (
        "filter-value-too-long",
        APP.replace("value: web", "value: " + "v" * 257).replace("}]", "}]  #<") + INSTANCE,
        f"{G}.tag_filters[0].value",
        "at most 256 characters",
    ),
    (
        "filters-not-a-list",
        APP.replace("[{key: role, value: web}]", "role=web  #<") + INSTANCE,
        f"{G}.tag_filters",
        "must be a list",
    ),
    (
        "tag-set-flat",
        APP.replace("tag_filters: [{key: role, value: web}]", "tag_set:\n          - {key: a}  #<")
        + INSTANCE,
        f"{G}.tag_set[0]",
        "a list of filters",
    ),
    (
        "tag-set-empty-group",
        APP.replace("tag_filters: [{key: role, value: web}]", "tag_set: [[]]  #<") + INSTANCE,
        f"{G}.tag_set[0]",
        "empty tag group",
    ),
    (
        "rollback-no-events",
        APP + "        auto_rollback: {enabled: true}  #<\n" + INSTANCE,
        f"{G}.auto_rollback.events",
        "InvalidAutoRollbackConfig",
    ),
    (
        "rollback-empty-events",
        APP + "        auto_rollback:\n          events: []  #<\n" + INSTANCE,
        f"{G}.auto_rollback.events",
        "enabled with no events",
    ),
    (
        "rollback-event",
        APP + "        auto_rollback: {events: [DEPLOYMENT_FAILED]}  #<\n" + INSTANCE,
        f"{G}.auto_rollback.events[0]",
        "must be one of DEPLOYMENT_FAILURE",
    ),
    (
        "rollback-enabled-string",
        APP
        + '        auto_rollback: {enabled: "yes", events: [DEPLOYMENT_FAILURE]}  #<\n'
        + INSTANCE,
        f"{G}.auto_rollback.enabled",
        "true or false",
    ),
    (
        "file-exists-behavior",
        APP + "        file_exists_behavior: overwrite  #<\n" + INSTANCE,
        f"{G}.file_exists_behavior",
        "DISALLOW, OVERWRITE, RETAIN",
    ),
    (
        "ignore-stop-failures",
        APP + '        ignore_application_stop_failures: "no"  #<\n' + INSTANCE,
        f"{G}.ignore_application_stop_failures",
        "true or false",
    ),
    (
        "eleven-triggers",
        APP
        + "        triggers:\n"
        + "".join(
            f"          - {{name: t{i}, events: [DeploymentStart], file: t.log}}"
            + ("  #<\n" if i == 10 else "\n")
            for i in range(11)
        )
        + INSTANCE,
        f"{G}.triggers[10]",
        "at most 10 triggers",
    ),
    (
        "trigger-name-twice",
        APP
        + "        triggers:\n"
        + "          - {name: ops, events: [DeploymentStart], file: a.log}\n"
        + "          - {name: ops, events: [DeploymentFailure], file: b.log}  #<\n"
        + INSTANCE,
        f"{G}.triggers[1].name",
        "already used in this group",
    ),
    (
        "trigger-no-name",
        APP
        + "        triggers:\n          - {events: [DeploymentStart], file: a.log}  #<\n"
        + INSTANCE,
        f"{G}.triggers[0].name",
        "no name",
    ),
    (
        "trigger-no-target",
        APP
        + "        triggers:\n          - {name: ops, events: [DeploymentStart]}  #<\n"
        + INSTANCE,
        f"{G}.triggers[0]",
        "no target",
    ),
    (
        "trigger-two-targets",
        APP
        + "        triggers:\n"
        + "          - name: ops\n"
        + "            events: [DeploymentStart]\n"
        + "            file: a.log\n"
        + "            command: ./notify.sh  #<\n"
        + INSTANCE,
        f"{G}.triggers[0].command",
        "exactly one target",
    ),
    (
        "trigger-webhook",
        APP
        + "        triggers:\n"
        + "          - {name: ops, events: [DeploymentStart], webhook: ftp://x/y}  #<\n"
        + INSTANCE,
        f"{G}.triggers[0].webhook",
        "http:// or https:// URL",
    ),
    (
        "trigger-command-number",
        APP
        + "        triggers:\n"
        + "          - name: ops\n"
        + "            events: [DeploymentStart]\n"
        + "            command: [./notify.sh, 3]  #<\n"
        + INSTANCE,
        f"{G}.triggers[0].command[1]",
        "must be a string",
    ),
    (
        "trigger-no-events",
        APP
        + "        triggers:\n          - {name: ops, events: [], file: a.log}  #<\n"
        + INSTANCE,
        f"{G}.triggers[0].events",
        "never fire",
    ),
    (
        "trigger-event",
        APP
        + "        triggers:\n          - {name: ops, events: [DeploymentSucceeded], file: a}  #<\n"
        + INSTANCE,
        f"{G}.triggers[0].events[0]",
        "must be one of DeploymentStart",
    ),
    (
        "lambda-target-not-mapping",
        "applications:\n  fn:\n    compute_platform: Lambda\n    deployment_groups:\n"
        + "      live:\n        target: [hello]  #<\n",
        "applications.fn.deployment_groups.live.target",
        "must be a mapping",
    ),
    (
        "instance-name-dotdot",
        APP + "instances:\n  web-1: {tags: {role: web}}\n  ..: {}  #<\n",
        "instances...",
        "not allowed",
    ),
    (
        "tag-value-number",
        APP + "instances:\n  web-1:\n    tags: {role: web, port: 8080}  #<\n",
        "instances.web-1.tags.port",
        "got the integer 8080",
    ),
    (
        "tag-value-bool",
        APP + "instances:\n  web-1:\n    tags: {role: web, canary: yes}  #<\n",
        "instances.web-1.tags.canary",
        "got the boolean",
    ),
    (
        "tag-key-too-long",
        APP + "instances:\n  web-1:\n    tags: {role: web, " + "k" * 129 + ": x}  #<\n",
        "instances.web-1.tags." + "k" * 129,
        "the limit is 128",
    ),
    (
        "tag-value-too-long",
        APP + "instances:\n  web-1:\n    tags: {role: web, note: " + "v" * 257 + "}  #<\n",
        "instances.web-1.tags.note",
        "the limit is 256",
    ),
    (
        "transport",
        APP + INSTANCE + "  web-2:\n    transport: sssh  #<\n",
        "instances.web-2.transport",
        "one of local, ssh",
    ),
    (
        "ssh-no-host",
        APP + INSTANCE + "  db-1:  #<\n    transport: ssh\n",
        "instances.db-1.host",
        "has no host",
    ),
    (
        "ssh-host-with-user",
        APP + INSTANCE + "  db-1:\n    transport: ssh\n    host: deploy@db  #<\n",
        "instances.db-1.host",
        "the user goes in user:",
    ),
    (
        "ssh-port",
        APP + INSTANCE + "  db-1:\n    transport: ssh\n    host: db\n    port: 0  #<\n",
        "instances.db-1.port",
        "from 1 to 65535",
    ),
    (
        "ssh-user-option",
        APP + INSTANCE + "  db-1:\n    transport: ssh\n    host: db\n    user: -oX=y  #<\n",
        "instances.db-1.user",
        "start with '-'",
    ),
    (
        "ssh-proxy-jump",
        APP + INSTANCE + "  db-1:\n    transport: ssh\n    host: db\n    proxy_jump: a@b:0  #<\n",
        "instances.db-1.proxy_jump",
        "[user@]host[:port]",
    ),
    (
        "ssh-agent-root",
        APP + INSTANCE + "  db-1:\n    transport: ssh\n    host: db\n    agent_root: srv  #<\n",
        "instances.db-1.agent_root",
        "must be absolute",
    ),
    (
        "ssh-root",
        APP + INSTANCE + "  db-1:\n    transport: ssh\n    host: db\n    root: /srv  #<\n",
        "instances.db-1.root",
        "local instances only",
    ),
    (
        "local-with-host",
        APP + INSTANCE + "  web-2:\n    host: 192.0.2.1  #<\n",
        "instances.web-2.host",
        "ssh instances only",
    ),
    (
        "shared-root",
        APP + INSTANCE + "  web-2:\n    root: .deploydeck/instances/web-1  #<\n",
        "instances.web-2.root",
        "share the folder",
    ),
    (
        "env-name",
        APP + INSTANCE + "  web-2:\n    environment:\n      WEB-PORT: 1  #<\n",
        "instances.web-2.environment.WEB-PORT",
        "not a valid environment variable name",
    ),
    (
        "env-bool",
        APP + INSTANCE + "  web-2:\n    environment:\n      DEBUG: true  #<\n",
        "instances.web-2.environment.DEBUG",
        "must be a string",
    ),
    (
        "env-both",
        APP + INSTANCE + "  web-2:\n    environment:\n      A: {value: x, from_env: HOME}  #<\n",
        "instances.web-2.environment.A",
        "both value and from_env",
    ),
    (
        "env-neither",
        APP + INSTANCE + "  web-2:\n    environment:\n      A: {secret: true}  #<\n",
        "instances.web-2.environment.A",
        "neither value nor from_env",
    ),
    (
        "env-secret-flag",
        APP + INSTANCE + "  web-2:\n    environment:\n      A: {value: x, secret: 1}  #<\n",
        "instances.web-2.environment.A.secret",
        "true or false",
    ),
    (
        "env-from-env-name",
        APP + INSTANCE + "  web-2:\n    environment:\n      A: {from_env: $HOME}  #<\n",
        "instances.web-2.environment.A.from_env",
        "must name an environment variable",
    ),
    (
        "config-reserved-name",
        APP
        + INSTANCE
        + "deployment_configs:\n  CodeDeployDefault.Mine:  #<\n"
        + "    minimum_healthy_hosts: {type: HOST_COUNT, value: 1}\n",
        "deployment_configs.CodeDeployDefault.Mine",
        "reserved for the predefined configurations",
    ),
    (
        "config-fleet-percent-100",
        APP
        + INSTANCE
        + "deployment_configs:\n  All:\n"
        + "    minimum_healthy_hosts: {type: FLEET_PERCENT, value: 100}  #<\n",
        "deployment_configs.All.minimum_healthy_hosts.value",
        "FLEET_PERCENT 100 is not allowed",
    ),
    (
        "config-minimum-not-mapping",
        APP + INSTANCE + "deployment_configs:\n  All:\n    minimum_healthy_hosts: 50  #<\n",
        "deployment_configs.All.minimum_healthy_hosts",
        "must be a mapping",
    ),
    (
        "config-minimum-no-type",
        APP
        + INSTANCE
        + "deployment_configs:\n  All:\n    minimum_healthy_hosts:  #<\n      value: 1\n",
        "deployment_configs.All.minimum_healthy_hosts.type",
        "has no type",
    ),
    (
        "config-server-routing",
        APP
        + INSTANCE
        + "deployment_configs:\n  All:\n    minimum_healthy_hosts: {type: HOST_COUNT, value: 0}\n"
        + "    traffic_routing: {type: AllAtOnce}  #<\n",
        "deployment_configs.All.traffic_routing",
        "a Server config cannot have traffic routing",
    ),
    (
        "config-server-no-minimum",
        APP + INSTANCE + "deployment_configs:\n  All:  #<\n    compute_platform: Server\n",
        "deployment_configs.All.minimum_healthy_hosts",
        "needs minimum_healthy_hosts",
    ),
    (
        "config-lambda-percentage",
        APP
        + INSTANCE
        + "deployment_configs:\n  Slow:\n    compute_platform: Lambda\n"
        + "    traffic_routing: {type: TimeBasedLinear, percentage: 0, interval_minutes: 1}  #<\n",
        "deployment_configs.Slow.traffic_routing.percentage",
        "from 1 to 99",
    ),
    (
        "config-platform",
        APP + INSTANCE + "deployment_configs:\n  X:\n    compute_platform: EC2  #<\n",
        "deployment_configs.X.compute_platform",
        "one of Server, Lambda, ECS",
    ),
    (
        "alarm-threshold",
        APP
        + "        alarm_configuration:\n          alarms:\n"
        + "            - name: errors\n              type: prometheus\n"
        + "              url: http://127.0.0.1:9090\n              query: up\n"
        + "              threshold: high  #<\n"
        + INSTANCE,
        f"{G}.alarm_configuration.alarms[0].threshold",
        "must be a number, not 'high'",
    ),
    (
        "alarm-missing-key",
        APP
        + "        alarm_configuration:\n          alarms:\n"
        + "            - {name: errors, type: prometheus, url: 'http://127.0.0.1:9090', threshold: 1}  #<\n"
        + INSTANCE,
        f"{G}.alarm_configuration.alarms[0].query",
        "missing",
    ),
    (
        "alarm-type",
        APP
        + "        alarm_configuration:\n          alarms:\n"
        + "            - name: errors\n              type: cloudwatch  #<\n"
        + INSTANCE,
        f"{G}.alarm_configuration.alarms[0].type",
        "must be one of http, command, prometheus",
    ),
    (
        "alarm-duplicate-name",
        APP
        + "        alarm_configuration:\n          alarms:\n"
        + "            - {name: smoke, type: command, command: 'true'}\n"
        + "            - name: smoke  #<\n              type: command\n"
        + "              command: 'true'\n"
        + INSTANCE,
        f"{G}.alarm_configuration.alarms[1].name",
        "used twice",
    ),
    (
        "alarm-configuration-key",
        APP + "        alarm_configuration:\n          intervall_seconds: 5  #<\n" + INSTANCE,
        f"{G}.alarm_configuration.intervall_seconds",
        "unknown key",
    ),
    (
        "alarm-enabled-empty",
        APP
        + "        alarm_configuration:\n          enabled: true\n          alarms: []  #<\n"
        + INSTANCE,
        f"{G}.alarm_configuration.alarms",
        "is empty while enabled is true",
    ),
]


@pytest.mark.parametrize(
    ("document", "key", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_error_names_its_line_and_key(
    tmp_path: Path, document: str, key: str, message: str
) -> None:
    error = only_error(load(tmp_path, document))
    assert (error.line, error.key) == (marked_line(document), key), str(error)
    assert message in error.message, str(error)
    assert error.file == str(tmp_path / "deploydeck.yml")
    assert error.column >= 1
    assert error.hint, f"no hint: {error}"


def test_every_error_is_reported_at_once_and_unwrap_lists_them(tmp_path: Path) -> None:
    from engine.workspace import WorkspaceError

    text = (
        APP
        + "        file_exists_behavior: overwrite\n"
        + "instances:\n  web-1:\n    tags: {role: web, port: 8080}\n    transport: sssh\n"
    )
    result = load(tmp_path, text)
    assert len(result.errors) == 3 and result.workspace is None
    with pytest.raises(WorkspaceError) as raised:
        result.unwrap()
    message = str(raised.value)
    assert message.startswith(f"invalid workspace {tmp_path / 'deploydeck.yml'} (3 errors):")
    for diagnostic in result.errors:
        assert str(diagnostic) in message
    assert raised.value.errors == result.errors


def test_an_unreadable_file_is_a_diagnostic_not_an_exception(tmp_path: Path) -> None:
    from engine.workspace import load_workspace

    result = load_workspace(tmp_path / "missing.yml")
    (error,) = result.errors
    assert "cannot read the workspace file" in error.message and "deploydeck init" in error.hint
    bad = tmp_path / "deploydeck.yml"
    bad.write_bytes(b"applications:\n  web: \xff\n")
    (error,) = load_workspace(bad).errors
    assert (error.line, error.column) == (2, 8) and "UTF-8" in error.hint


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    from engine.workspace import load_workspace, parse_workspace
    from engine.workspace.loader import MAX_WORKSPACE_BYTES

    big = tmp_path / "deploydeck.yml"
    # one byte over, and not YAML at all: a parse would report a syntax error instead
    big.write_bytes(b"version: 1\n" + b"[" * (MAX_WORKSPACE_BYTES - 10))
    (error,) = load_workspace(big).errors
    assert (error.line, error.column) == (1, 1) and "larger than 4 MiB" in error.message
    (error,) = parse_workspace("[" * (MAX_WORKSPACE_BYTES + 1), big).errors
    assert "larger than 4 MiB" in error.message

"""Reading a group's alarm configuration (and a deployment's override) from the workspace's
mapping: every spec field, and errors that name the key and say what to write."""

from __future__ import annotations

import pytest
import yaml

from engine.alarms import (
    AlarmConfigError,
    AlarmConfiguration,
    AlarmOverride,
    AlarmState,
    CommandAlarmSpec,
    Comparison,
    HttpAlarmSpec,
    PrometheusAlarmSpec,
    parse_alarm_configuration,
    parse_alarm_override,
)
from engine.alarms.parse import __doc__ as PARSE_DOC

WHERE = "groups.web.alarm_configuration"


def problems(raw: object) -> tuple[str, ...]:
    with pytest.raises(AlarmConfigError) as caught:
        parse_alarm_configuration(raw, WHERE)
    return caught.value.problems


def test_every_kind_with_its_settings() -> None:
    raw = yaml.safe_load(
        """
        enabled: true
        ignore_poll_alarm_failure: true
        interval_seconds: 5
        alarms:
          - name: errors
            type: http
            url: http://127.0.0.1:8080/health
            metric: latency
            percentile: 99
            operator: ">="
            threshold: 0.25
            window_seconds: 30
            probes: 2
            min_probes: 4
            error_status: 400
            timeout_seconds: 1.5
          - name: smoke
            type: command
            command: [./check.sh, --quick]
            cwd: /srv/app
            timeout_seconds: 20
            observe_only: true
          - name: five-hundreds
            type: prometheus
            url: https://prometheus.example:9090
            query: sum(rate(app_requests_total{code="500"}[1m]))
            operator: "<"
            threshold: 1
            no_data: ALARM
            timeout_seconds: 3
        """
    )
    config = parse_alarm_configuration(raw, WHERE)
    assert config == AlarmConfiguration(
        alarms=(
            HttpAlarmSpec(
                name="errors",
                url="http://127.0.0.1:8080/health",
                threshold=0.25,
                metric="latency",
                operator=Comparison.GE,
                window_seconds=30,
                probes=2,
                min_probes=4,
                percentile=99,
                error_status=400,
                timeout_seconds=1.5,
            ),
            CommandAlarmSpec(
                name="smoke",
                command=("./check.sh", "--quick"),
                timeout_seconds=20,
                cwd="/srv/app",
                observe_only=True,
            ),
            PrometheusAlarmSpec(
                name="five-hundreds",
                url="https://prometheus.example:9090",
                query='sum(rate(app_requests_total{code="500"}[1m]))',
                threshold=1,
                operator=Comparison.LT,
                timeout_seconds=3,
                no_data=AlarmState.ALARM,
            ),
        ),
        enabled=True,
        ignore_poll_alarm_failure=True,
        interval_seconds=5,
    )


def test_defaults_and_the_documented_example_parses() -> None:
    example = PARSE_DOC.split("\n\n", 1)[1]
    config = parse_alarm_configuration(yaml.safe_load(example)["alarm_configuration"], WHERE)
    assert config.names == ("errors", "smoke", "five-hundreds")
    assert (config.enabled, config.ignore_poll_alarm_failure, config.interval_seconds) == (
        True,
        False,
        10,
    )
    http, command, prometheus = config.alarms
    assert isinstance(http, HttpAlarmSpec) and http.operator is Comparison.GT
    assert isinstance(command, CommandAlarmSpec) and command.command == "./check.sh"
    assert isinstance(prometheus, PrometheusAlarmSpec) and prometheus.observe_only


def test_disabled_with_no_alarms_is_fine_and_enabled_with_none_is_an_error() -> None:
    assert parse_alarm_configuration({"enabled": False}, WHERE) == AlarmConfiguration(enabled=False)
    assert problems({"enabled": True, "alarms": []}) == (
        f"{WHERE}.alarms: is empty while enabled is true; add alarms or write enabled: false",
    )


def test_each_bad_key_is_named_with_what_to_write() -> None:
    found = problems(
        {
            "enabled": "yes",
            "interval": 5,
            "alarms": [
                {"name": "a", "type": "http", "url": "ftp://x/", "threshold": "high"},
                {"name": "b", "type": "command", "command": 3, "timeout_seconds": -1},
                {
                    "name": "c",
                    "type": "prometheus",
                    "url": "http://u:p@prom:9090",
                    "operator": "=>",
                },
                {"name": "d", "type": "cloudwatch"},
                "e",
                {"type": "command", "command": "true", "colour": "red"},
            ],
        }
    )
    assert found == (
        f"{WHERE}.interval: unknown key for alarm_configuration; the keys are enabled, "
        "ignore_poll_alarm_failure, interval_seconds, alarms",
        f"{WHERE}.enabled: must be true or false, not 'yes'",
        f"{WHERE}.alarms[0].url: must be an http:// or https:// URL, not 'ftp://x/'",
        f"{WHERE}.alarms[0].threshold: must be a number, not 'high'",
        f"{WHERE}.alarms[1].command: must be a string (run with sh -c) or a list of strings, not 3",
        f"{WHERE}.alarms[1].timeout_seconds: must be a number greater than 0, not -1",
        f"{WHERE}.alarms[2].url: must not carry credentials (user:password@); they would reach logs",
        f"{WHERE}.alarms[2].query: is missing; write query: and a value",
        f"{WHERE}.alarms[2].threshold: is missing; write threshold: and a number",
        f"{WHERE}.alarms[2].operator: must be one of >, >=, <, <=, ==, !=, not '=>'",
        f"{WHERE}.alarms[3].type: must be one of http, command, prometheus, not 'cloudwatch'",
        f"{WHERE}.alarms[4]: must be a mapping with name, type and the type's keys",
        f"{WHERE}.alarms[5].name: is missing; write name: and a value",
        f"{WHERE}.alarms[5].colour: unknown key for a command alarm; the keys are name, type, "
        "observe_only, timeout_seconds, command, cwd",
    )


def test_names_are_unique_and_at_most_ten_alarms() -> None:
    twice = [{"name": "a", "type": "command", "command": "true"}] * 2
    assert problems({"alarms": twice}) == (
        f"{WHERE}.alarms[1].name: 'a' is used twice; alarm names are unique in a group",
    )
    eleven = [{"name": f"a{i}", "type": "command", "command": "true"} for i in range(11)]
    assert problems({"alarms": eleven}) == (
        f"{WHERE}.alarms: has 11 alarms; at most 10 are allowed",
    )
    long_name = [{"name": "x" * 256, "type": "command", "command": "true"}]
    assert problems({"alarms": long_name}) == (
        f"{WHERE}.alarms[0].name: is 256 characters; at most 255",
    )


def test_not_a_mapping_and_empty_values() -> None:
    assert problems(["alarms"]) == (
        f"{WHERE}: must be a mapping with enabled, ignore_poll_alarm_failure and alarms",
    )
    assert problems({"interval_seconds": None, "alarms": "errors"}) == (
        f"{WHERE}.interval_seconds: is empty; write a number",
        f"{WHERE}.alarms: must be a list of alarms (- name: ..., type: ...)",
    )


def test_override_parses_and_applies_to_the_group() -> None:
    assert parse_alarm_override({"enabled": False}, "deployment") == AlarmOverride(enabled=False)
    override = parse_alarm_override(
        {"alarms": ["b"], "ignore_poll_alarm_failure": True}, "deployment"
    )
    group = parse_alarm_configuration(
        {
            "alarms": [
                {"name": "a", "type": "command", "command": "true"},
                {"name": "b", "type": "command", "command": "false"},
            ]
        },
        WHERE,
    )
    applied = override.apply(group)
    assert applied.names == ("b",)
    assert applied.enabled and applied.ignore_poll_alarm_failure
    with pytest.raises(AlarmConfigError) as caught:
        parse_alarm_override({"enabled": "no", "alarms": "a", "extra": 1}, "deployment")
    assert caught.value.problems == (
        "deployment.extra: unknown key for an alarm override; the keys are enabled, "
        "ignore_poll_alarm_failure, alarms",
        "deployment.enabled: must be true or false, not 'no'",
        "deployment.alarms: must be a list of the group's alarm names",
    )

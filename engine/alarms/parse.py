"""From a group's `alarm_configuration` mapping, as read from the workspace file, to an
`AlarmConfiguration`; and a deployment's override. Pure functions: `where` names the section
in messages (e.g. `groups.web.alarm_configuration`), and every problem found is reported at
once, each naming its key and what to write.

    alarm_configuration:
      enabled: true                     # false keeps the list but ignores it
      ignore_poll_alarm_failure: false  # true: an alarm that cannot be evaluated is ignored
      interval_seconds: 10              # evaluation cadence while a deployment runs
      alarms:                           # at most 10, names unique
        - {name: errors, type: http, url: "http://127.0.0.1:8080/", metric: error_ratio,
           threshold: 0.05, window_seconds: 60, probes: 3, min_probes: 5}
        - {name: smoke, type: command, command: ./check.sh, timeout_seconds: 30}
        - {name: five-hundreds, type: prometheus, url: "http://127.0.0.1:9090",
           query: 'sum(rate(app_requests_total{code="500"}[1m]))', operator: ">",
           threshold: 0.5, no_data: INSUFFICIENT_DATA, observe_only: true}
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping
from typing import Any

from engine.alarms.model import (
    MAX_ALARMS,
    MAX_NAME_LENGTH,
    AlarmConfiguration,
    AlarmOverride,
    AlarmSpec,
    AlarmState,
    CommandAlarmSpec,
    Comparison,
    HttpAlarmSpec,
    PrometheusAlarmSpec,
)

CONFIGURATION_KEYS = ("enabled", "ignore_poll_alarm_failure", "interval_seconds", "alarms")
OVERRIDE_KEYS = ("enabled", "ignore_poll_alarm_failure", "alarms")
COMMON_KEYS = ("name", "type", "observe_only", "timeout_seconds")
KIND_KEYS = {
    "http": (
        "url",
        "threshold",
        "metric",
        "operator",
        "window_seconds",
        "probes",
        "min_probes",
        "percentile",
        "error_status",
    ),
    "command": ("command", "cwd"),
    "prometheus": ("url", "query", "threshold", "operator", "no_data"),
}
METRICS = ("error_ratio", "latency")
OPERATORS = tuple(c.value for c in Comparison)
NO_DATA_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


class AlarmConfigError(ValueError):
    """The alarm configuration cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class _Fields:
    """Reads typed values out of one mapping, noting a problem per bad key."""

    def __init__(self, raw: Mapping[str, Any], where: str, problems: list[str]) -> None:
        self.raw = raw
        self.where = where
        self.problems = problems

    def problem(self, key: str, message: str) -> None:
        self.problems.append(
            f"{self.where}.{key}: {message}" if key else f"{self.where}: {message}"
        )

    def unknown(self, allowed: tuple[str, ...], what: str) -> None:
        for key in self.raw:
            if key not in allowed:
                self.problem(str(key), f"unknown key for {what}; the keys are {', '.join(allowed)}")

    def boolean(self, key: str, default: bool | None) -> bool | None:
        value = self.raw.get(key, default)
        if value is None or isinstance(value, bool):
            return value
        self.problem(key, f"must be true or false, not {value!r}")
        return default

    def number(
        self, key: str, default: float | None, *, minimum: float = 0.0, above: bool = True
    ) -> float | None:
        if key in self.raw and self.raw[key] is None:
            self.problem(key, "is empty; write a number")
            return default
        value = self.raw.get(key, default)
        if value is None:
            return value
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and (value > minimum if above else value >= minimum):
            return float(value)
        bound = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
        kind = "a number" if not ok else "a number " + bound
        self.problem(key, f"must be {kind}, not {value!r}")
        return default

    def any_number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
            return float(value)
        if value is None:
            self.problem(key, f"is missing; write {key}: and a number")
        else:
            self.problem(key, f"must be a number, not {value!r}")
        return None

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        self.problem(key, f"must be a whole number of at least {minimum}, not {value!r}")
        return default

    def text(self, key: str, *, required: bool = True) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                self.problem(key, f"is missing; write {key}: and a value")
            return None
        if isinstance(value, str) and value.strip():
            return value
        self.problem(key, f"must be a non-empty string, not {value!r}")
        return None

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.raw.get(key, default)
        if value in choices:
            return value
        self.problem(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return default

    def url(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(key, f"must be an http:// or https:// URL, not {value!r}")
            return None
        if parts.username or parts.password:
            self.problem(key, "must not carry credentials (user:password@); they would reach logs")
            return None
        return value


def parse_alarm_configuration(raw: Any, where: str) -> AlarmConfiguration:
    """The configuration `raw` describes; AlarmConfigError naming every bad key otherwise."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise AlarmConfigError(
            [f"{where}: must be a mapping with enabled, ignore_poll_alarm_failure and alarms"]
        )
    fields = _Fields(raw, where, problems)
    fields.unknown(CONFIGURATION_KEYS, "alarm_configuration")
    enabled = fields.boolean("enabled", True)
    ignore = fields.boolean("ignore_poll_alarm_failure", False)
    interval = fields.number("interval_seconds", 10.0)
    items = raw.get("alarms", [])
    specs: list[AlarmSpec] = []
    if not isinstance(items, list):
        fields.problem("alarms", "must be a list of alarms (- name: ..., type: ...)")
        items = []
    if len(items) > MAX_ALARMS:
        fields.problem("alarms", f"has {len(items)} alarms; at most {MAX_ALARMS} are allowed")
    seen: set[str] = set()
    for index, item in enumerate(items):
        spec = _alarm(item, f"{where}.alarms[{index}]", problems)
        if spec is None:
            continue
        if spec.name in seen:
            problems.append(
                f"{where}.alarms[{index}].name: {spec.name!r} is used twice; alarm names are "
                "unique in a group"
            )
        seen.add(spec.name)
        specs.append(spec)
    if enabled and not items and "enabled" in raw:
        fields.problem(
            "alarms", "is empty while enabled is true; add alarms or write enabled: false"
        )
    if problems:
        raise AlarmConfigError(problems)
    return AlarmConfiguration(
        alarms=tuple(specs),
        enabled=bool(enabled),
        ignore_poll_alarm_failure=bool(ignore),
        interval_seconds=interval or 10.0,
    )


def parse_alarm_override(raw: Any, where: str) -> AlarmOverride:
    """A deployment's override: `{enabled, ignore_poll_alarm_failure, alarms: [names]}`, each
    optional. Which names exist is checked when it is applied to the group's configuration."""
    if not isinstance(raw, Mapping):
        raise AlarmConfigError(
            [f"{where}: must be a mapping such as {{enabled: false}} to ignore the alarms"]
        )
    problems: list[str] = []
    fields = _Fields(raw, where, problems)
    fields.unknown(OVERRIDE_KEYS, "an alarm override")
    enabled = fields.boolean("enabled", None)
    ignore = fields.boolean("ignore_poll_alarm_failure", None)
    names = raw.get("alarms")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
    ):
        fields.problem("alarms", "must be a list of the group's alarm names")
        names = None
    if problems:
        raise AlarmConfigError(problems)
    return AlarmOverride(
        enabled=enabled,
        ignore_poll_alarm_failure=ignore,
        alarms=tuple(names) if names is not None else None,
    )


def _alarm(item: Any, where: str, problems: list[str]) -> AlarmSpec | None:
    if not isinstance(item, Mapping):
        problems.append(f"{where}: must be a mapping with name, type and the type's keys")
        return None
    before = len(problems)
    fields = _Fields(item, where, problems)
    name = fields.text("name")
    if name is not None and len(name) > MAX_NAME_LENGTH:
        fields.problem("name", f"is {len(name)} characters; at most {MAX_NAME_LENGTH}")
    kind = item.get("type")
    if kind not in KIND_KEYS:
        fields.problem("type", f"must be one of {', '.join(KIND_KEYS)}, not {kind!r}")
        return None
    fields.unknown(COMMON_KEYS + KIND_KEYS[kind], f"a {kind} alarm")
    observe_only = fields.boolean("observe_only", False)
    spec: AlarmSpec | None = None
    if kind == "http":
        spec = _http(fields, name, bool(observe_only))
    elif kind == "command":
        spec = _command(fields, name, bool(observe_only))
    else:
        spec = _prometheus(fields, name, bool(observe_only))
    return spec if len(problems) == before else None


def _http(fields: _Fields, name: Any, observe_only: bool) -> HttpAlarmSpec | None:
    url = fields.url("url")
    threshold = fields.any_number("threshold")
    metric = fields.choice("metric", METRICS, "error_ratio")
    operator = Comparison(fields.choice("operator", OPERATORS, ">"))
    window = fields.number("window_seconds", 60.0)
    probes = fields.integer("probes", 1, 1)
    min_probes = fields.integer("min_probes", 3, 1)
    percentile = fields.number("percentile", 95.0)
    if percentile is not None and percentile > 100:
        fields.problem("percentile", f"must be at most 100, not {percentile:g}")
    error_status = fields.integer("error_status", 500, 100)
    timeout = fields.number("timeout_seconds", 5.0)
    if url is None or threshold is None or name is None:
        return None
    return HttpAlarmSpec(
        name=name,
        url=url,
        threshold=threshold,
        metric=metric,
        operator=operator,
        window_seconds=window or 60.0,
        probes=probes,
        min_probes=min_probes,
        percentile=percentile or 95.0,
        error_status=error_status,
        timeout_seconds=timeout or 5.0,
        observe_only=observe_only,
    )


def _command(fields: _Fields, name: Any, observe_only: bool) -> CommandAlarmSpec | None:
    raw = fields.raw.get("command")
    command: str | tuple[str, ...] | None = None
    if isinstance(raw, str) and raw.strip():
        command = raw
    elif isinstance(raw, list) and raw and all(isinstance(a, str) and a for a in raw):
        command = tuple(raw)
    elif raw is None:
        fields.problem("command", "is missing; write command: ./check.sh (or a list: [prog, arg])")
    else:
        fields.problem(
            "command", f"must be a string (run with sh -c) or a list of strings, not {raw!r}"
        )
    cwd = fields.text("cwd", required=False)
    timeout = fields.number("timeout_seconds", 30.0)
    if command is None or name is None:
        return None
    return CommandAlarmSpec(
        name=name,
        command=command,
        timeout_seconds=timeout or 30.0,
        cwd=cwd,
        observe_only=observe_only,
    )


def _prometheus(fields: _Fields, name: Any, observe_only: bool) -> PrometheusAlarmSpec | None:
    url = fields.url("url")
    query = fields.text("query")
    threshold = fields.any_number("threshold")
    operator = Comparison(fields.choice("operator", OPERATORS, ">"))
    no_data = AlarmState(fields.choice("no_data", NO_DATA_STATES, "INSUFFICIENT_DATA"))
    timeout = fields.number("timeout_seconds", 10.0)
    if url is None or query is None or threshold is None or name is None:
        return None
    return PrometheusAlarmSpec(
        name=name,
        url=url,
        query=query,
        threshold=threshold,
        operator=operator,
        timeout_seconds=timeout or 10.0,
        no_data=no_data,
        observe_only=observe_only,
    )

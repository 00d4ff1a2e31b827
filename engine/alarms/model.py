"""What an alarm is (its spec), what evaluating one gives (an `AlarmReading`), and the
`Alarm` interface every kind implements.

States follow CloudWatch's words: OK, ALARM and INSUFFICIENT_DATA, plus ERROR for a reading
that could not be taken at all (Prometheus unreachable, a command that timed out). Whether an
ERROR stops a deployment is the configuration's `ignore_poll_alarm_failure`, as in CodeDeploy.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from engine.model import ROLLBACK_ON_ALARM as DEPLOYMENT_STOP_ON_ALARM
from engine.model import AutoRollback

# CodeDeploy's error code for a deployment stopped by an alarm.
ALARM_ACTIVE = "ALARM_ACTIVE"

# CodeDeploy's limits on a group's alarm list.
MAX_ALARMS = 10
MAX_NAME_LENGTH = 255


class AlarmState(enum.Enum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    ERROR = "ERROR"


class Comparison(enum.Enum):
    """How a measured value is compared with the threshold: the alarm fires when
    `value <op> threshold` holds."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="

    def breaches(self, value: float, threshold: float) -> bool:
        if math.isnan(value):
            return False
        return _OPERATORS[self](value, threshold)


_OPERATORS: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}


@dataclass(frozen=True)
class HttpAlarmSpec:
    """Probe `url` (typically through the balancer) `probes` times per evaluation and keep
    every probe of the last `window_seconds`. `metric` is `error_ratio` (probes with no answer,
    a timeout or a status >= `error_status`, over all probes) or `latency` (the `percentile`
    of answer times in seconds; a timed-out probe counts as `timeout_seconds`). Fewer than
    `min_probes` in the window gives INSUFFICIENT_DATA."""

    kind: ClassVar[str] = "http"
    name: str
    url: str
    threshold: float
    metric: str = "error_ratio"
    operator: Comparison = Comparison.GT
    window_seconds: float = 60.0
    probes: int = 1
    min_probes: int = 3
    percentile: float = 95.0
    error_status: int = 500
    timeout_seconds: float = 5.0
    observe_only: bool = False


@dataclass(frozen=True)
class CommandAlarmSpec:
    """Run `command` (a string runs with /bin/sh -c, a tuple as is) in its own process group:
    exit 0 is OK, any other exit is ALARM; not finishing within `timeout_seconds` ends the
    group and is ERROR, like a command that cannot start."""

    kind: ClassVar[str] = "command"
    name: str
    command: str | tuple[str, ...]
    timeout_seconds: float = 30.0
    cwd: str | None = None
    observe_only: bool = False


@dataclass(frozen=True)
class PrometheusAlarmSpec:
    """A PromQL instant query against the Prometheus at `url`, compared with `threshold`.
    See engine/alarms/prometheus.py for what no data and several series mean."""

    kind: ClassVar[str] = "prometheus"
    name: str
    url: str
    query: str
    threshold: float
    operator: Comparison = Comparison.GT
    timeout_seconds: float = 10.0
    no_data: AlarmState = AlarmState.INSUFFICIENT_DATA
    observe_only: bool = False


AlarmSpec = HttpAlarmSpec | CommandAlarmSpec | PrometheusAlarmSpec


@dataclass(frozen=True)
class AlarmConfiguration:
    """A deployment group's alarms, with CodeDeploy's two switches: `enabled: false` keeps the
    list but ignores it; `ignore_poll_alarm_failure` lets a deployment go on when an alarm
    cannot be evaluated (ERROR) instead of stopping it. `interval_seconds` is how often the
    alarms are evaluated while a deployment runs (besides before each batch or traffic step)."""

    alarms: tuple[AlarmSpec, ...] = ()
    enabled: bool = True
    ignore_poll_alarm_failure: bool = False
    interval_seconds: float = 10.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.alarms)


@dataclass(frozen=True)
class AlarmOverride:
    """One deployment's override of its group's alarm configuration (CodeDeploy's
    overrideAlarmConfiguration). Each field left None keeps the group's value; `alarms` names a
    subset of the group's alarms. The usual use is `AlarmOverride(enabled=False)`: redeploy a
    known-good revision while an alarm from the failed deployment still fires."""

    enabled: bool | None = None
    ignore_poll_alarm_failure: bool | None = None
    alarms: tuple[str, ...] | None = None

    def apply(self, group: AlarmConfiguration) -> AlarmConfiguration:
        """The configuration this deployment uses. ValueError if `alarms` names an alarm the
        group does not have."""
        alarms = group.alarms
        if self.alarms is not None:
            by_name = {a.name: a for a in group.alarms}
            unknown = [n for n in self.alarms if n not in by_name]
            if unknown:
                known = ", ".join(by_name) or "none"
                raise ValueError(
                    f"the alarm override names {', '.join(unknown)}, which the group does not "
                    f"have (its alarms: {known})"
                )
            alarms = tuple(by_name[n] for n in dict.fromkeys(self.alarms))
        return AlarmConfiguration(
            alarms=alarms,
            enabled=group.enabled if self.enabled is None else self.enabled,
            ignore_poll_alarm_failure=(
                group.ignore_poll_alarm_failure
                if self.ignore_poll_alarm_failure is None
                else self.ignore_poll_alarm_failure
            ),
            interval_seconds=group.interval_seconds,
        )


@dataclass(frozen=True)
class AlarmReading:
    """One evaluation of one alarm. `value` is what was measured (an error ratio, a latency in
    seconds, a query's value, a command's exit code), `threshold` what it was compared with
    (None for a command); `message` says in a line what was seen."""

    name: str
    kind: str
    state: AlarmState
    value: float | None
    threshold: float | None
    message: str
    observed_at: float
    observe_only: bool = False

    @classmethod
    def of(
        cls, spec: AlarmSpec, state: AlarmState, value: float | None, message: str, at: float
    ) -> AlarmReading:
        """A reading of `spec` taken at `at` (its threshold; None for a command alarm)."""
        return cls(
            name=spec.name,
            kind=spec.kind,
            state=state,
            value=value,
            threshold=None if isinstance(spec, CommandAlarmSpec) else spec.threshold,
            message=message,
            observed_at=at,
            observe_only=spec.observe_only,
        )

    def describe(self) -> str:
        """One line for a stop message, the journal or the console."""
        mode = " (observe-only)" if self.observe_only else ""
        return f"alarm {self.name}{mode} is {self.state.value}: {self.message}"


@dataclass(frozen=True)
class AlarmStop:
    """How a tripped alarm ends a deployment: status Stopped with ALARM_ACTIVE, and a rollback
    when the deployment's auto rollback includes DEPLOYMENT_STOP_ON_ALARM."""

    reading: AlarmReading
    roll_back: bool
    error_code: str = ALARM_ACTIVE

    @property
    def message(self) -> str:
        reading = self.reading
        if reading.state is AlarmState.ERROR:
            return (
                f"alarm {reading.name} could not be evaluated: {reading.message} (set "
                "ignore_poll_alarm_failure: true to go on when an alarm cannot be read)"
            )
        return f"alarm {reading.name} is in ALARM: {reading.message}"


def alarm_stop(reading: AlarmReading, auto_rollback: AutoRollback | None) -> AlarmStop:
    """The stop `reading` (from `AlarmMonitor.tripped()`) calls for."""
    roll_back = auto_rollback is not None and auto_rollback.on(DEPLOYMENT_STOP_ON_ALARM)
    return AlarmStop(reading, roll_back)


class Alarm(Protocol):
    """One alarm kind, ready to evaluate. `evaluate` never raises for a failure to measure: it
    returns an ERROR reading saying why."""

    @property
    def spec(self) -> AlarmSpec: ...

    async def evaluate(self) -> AlarmReading: ...

"""Deployment alarms: `http` probes, `command` exit statuses and `prometheus` queries
(http.py, command.py, prometheus.py), all behind the `Alarm` interface (model.py); the
`AlarmMonitor` evaluates a group's alarms during a deployment and says when they stop it
(monitor.py); parse.py reads a group's alarm configuration from the workspace's mapping."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports

if TYPE_CHECKING:
    from engine.alarms.model import (
        ALARM_ACTIVE,
        DEPLOYMENT_STOP_ON_ALARM,
        Alarm,
        AlarmConfiguration,
        AlarmOverride,
        AlarmReading,
        AlarmSpec,
        AlarmState,
        AlarmStop,
        CommandAlarmSpec,
        Comparison,
        HttpAlarmSpec,
        PrometheusAlarmSpec,
        alarm_stop,
    )
    from engine.alarms.monitor import AlarmMonitor, make_alarm
    from engine.alarms.parse import (
        AlarmConfigError,
        parse_alarm_configuration,
        parse_alarm_override,
    )

__all__ = [
    "ALARM_ACTIVE",
    "DEPLOYMENT_STOP_ON_ALARM",
    "Alarm",
    "AlarmConfigError",
    "AlarmConfiguration",
    "AlarmMonitor",
    "AlarmOverride",
    "AlarmReading",
    "AlarmSpec",
    "AlarmState",
    "AlarmStop",
    "CommandAlarmSpec",
    "Comparison",
    "HttpAlarmSpec",
    "PrometheusAlarmSpec",
    "alarm_stop",
    "make_alarm",
    "parse_alarm_configuration",
    "parse_alarm_override",
]

# each name's module, imported when the name is first used
__getattr__ = lazy_exports(
    __name__,
    {
        "engine.alarms.model": (
            "ALARM_ACTIVE DEPLOYMENT_STOP_ON_ALARM Alarm AlarmConfiguration AlarmOverride "
            "AlarmReading AlarmSpec AlarmState AlarmStop CommandAlarmSpec Comparison "
            "HttpAlarmSpec PrometheusAlarmSpec alarm_stop"
        ),
        "engine.alarms.monitor": "AlarmMonitor make_alarm",
        "engine.alarms.parse": "AlarmConfigError parse_alarm_configuration parse_alarm_override",
    },
)

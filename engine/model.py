"""Domain values of deployments: statuses with CodeDeploy's names, and what a deployment is."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# the lightest of the domain values live apart, for commands that need only them (local);
# they are this module's too
from engine.model_core import SERVER_IN_PLACE_EVENTS as SERVER_IN_PLACE_EVENTS
from engine.model_core import SERVER_IN_PLACE_TRAFFIC_EVENTS as SERVER_IN_PLACE_TRAFFIC_EVENTS
from engine.model_core import SERVER_IN_PLACE_WITH_LB_EVENTS as SERVER_IN_PLACE_WITH_LB_EVENTS
from engine.model_core import STOP_EVENTS as STOP_EVENTS
from engine.model_core import ComputePlatform as ComputePlatform
from engine.model_core import new_deployment_id as new_deployment_id

# DeploymentStatus (docs/codedeploy-service.md#statuses-and-error-codes).
CREATED = "Created"
QUEUED = "Queued"
IN_PROGRESS = "InProgress"
BAKING = "Baking"
READY = "Ready"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
STOPPED = "Stopped"
TERMINAL_STATUSES = frozenset({SUCCEEDED, FAILED, STOPPED})

# InstanceStatus and LifecycleEventStatus.
PENDING = "Pending"
SKIPPED = "Skipped"
UNKNOWN = "Unknown"


class Status(StrEnum):
    """Every status word in one place: deployments', instances' and lifecycle events' (the
    strings above, CodeDeploy's names), and an instance's health as a console shows it."""

    CREATED = CREATED
    QUEUED = QUEUED
    IN_PROGRESS = IN_PROGRESS
    BAKING = BAKING
    READY = READY
    SUCCEEDED = SUCCEEDED
    FAILED = FAILED
    STOPPED = STOPPED
    PENDING = PENDING
    SKIPPED = SKIPPED
    UNKNOWN = UNKNOWN
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"


# DeploymentCreator.
CREATOR_USER = "user"
CREATOR_ROLLBACK = "codeDeployRollback"

# autoRollbackConfiguration events.
ROLLBACK_ON_FAILURE = "DEPLOYMENT_FAILURE"
ROLLBACK_ON_STOP = "DEPLOYMENT_STOP_ON_REQUEST"
ROLLBACK_ON_ALARM = "DEPLOYMENT_STOP_ON_ALARM"


class ConnectionState(StrEnum):
    """How the engine reaches an SSH instance (InstanceConnection events)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"
    LOST = "lost"


class DeploymentType(StrEnum):
    """In place (each instance stops, installs, starts) or blue/green (a new fleet, then traffic
    moves to it)."""

    IN_PLACE = "IN_PLACE"
    BLUE_GREEN = "BLUE_GREEN"


class DeploymentOption(StrEnum):
    """Whether a load balancer's traffic is blocked and allowed around each instance."""

    WITH_TRAFFIC_CONTROL = "WITH_TRAFFIC_CONTROL"
    WITHOUT_TRAFFIC_CONTROL = "WITHOUT_TRAFFIC_CONTROL"


@dataclass(frozen=True)
class DeploymentStyle:
    """A deployment group's deploymentStyle, with CodeDeploy's field names and defaults."""

    deployment_type: DeploymentType = DeploymentType.IN_PLACE
    deployment_option: DeploymentOption = DeploymentOption.WITHOUT_TRAFFIC_CONTROL

    def to_api(self) -> dict[str, str]:
        return {
            "deploymentType": str(self.deployment_type),
            "deploymentOption": str(self.deployment_option),
        }

    def __str__(self) -> str:
        return f"{self.deployment_type} {self.deployment_option}"


class WaitType(StrEnum):
    """The two waits of a Server blue/green deployment that continue-deployment can end."""

    READY_WAIT = "READY_WAIT"
    TERMINATION_WAIT = "TERMINATION_WAIT"


class ReadyAction(StrEnum):
    """What a blue/green deployment does when its ready wait runs out."""

    CONTINUE_DEPLOYMENT = "CONTINUE_DEPLOYMENT"
    STOP_DEPLOYMENT = "STOP_DEPLOYMENT"


class GreenFleetAction(StrEnum):
    """Where a blue/green deployment's replacement (green) instances come from."""

    DISCOVER_EXISTING = "DISCOVER_EXISTING"
    COPY_AUTO_SCALING_GROUP = "COPY_AUTO_SCALING_GROUP"


class BlueInstanceAction(StrEnum):
    """What happens to the original (blue) instances once traffic moved."""

    TERMINATE = "TERMINATE"
    KEEP_ALIVE = "KEEP_ALIVE"


@dataclass(frozen=True)
class BlueGreenInfo:
    """A Server blue/green deployment's fleets and waits, as its journal tells them."""

    blue: tuple[str, ...] = ()
    green: tuple[str, ...] = ()
    copied: tuple[str, ...] = ()  # green instances made for this deployment
    wait_type: str | None = None  # the wait under way (READY_WAIT, TERMINATION_WAIT)
    wait_deadline: float | None = None
    wait_action: str = ""  # what happens when it runs out
    termination_wait_started: bool = False
    traffic_on: str = "Blue"  # the fleet serving: Blue, Green

    def to_api(self) -> dict[str, Any]:
        return {
            "blueInstances": list(self.blue),
            "greenInstances": list(self.green),
            "copiedInstances": list(self.copied),
            "trafficOn": self.traffic_on,
            "instanceTerminationWaitTimeStarted": self.termination_wait_started,
            "waitType": self.wait_type,
            "waitDeadline": self.wait_deadline,
            "actionOnWaitEnd": self.wait_action or None,
        }


@dataclass(frozen=True)
class DeploymentKind:
    """What picks a deployment's run strategy: the platform and the group's style."""

    compute_platform: ComputePlatform = ComputePlatform.SERVER
    style: DeploymentStyle = field(default_factory=DeploymentStyle)

    def __str__(self) -> str:
        return f"{self.compute_platform} {self.style}"


@dataclass(frozen=True)
class RevisionRef:
    """A revision by content: its sha256, where it was found and its bundle type."""

    sha256: str
    location: str
    bundle_type: str

    def short(self) -> str:
        return self.sha256[:12]


@dataclass(frozen=True)
class AutoRollback:
    enabled: bool = False
    events: tuple[str, ...] = ()

    def on(self, event: str) -> bool:
        return self.enabled and event in self.events


@dataclass(frozen=True)
class DeploymentOptions:
    ignore_application_stop_failures: bool = False
    file_exists_behavior: str = "DISALLOW"
    update_outdated_instances_only: bool = False
    auto_rollback: AutoRollback = field(default_factory=AutoRollback)
    # This deployment's override of its group's alarm configuration (CodeDeploy's
    # overrideAlarmConfiguration); None keeps the group's setting.
    alarms_enabled: bool | None = None
    ignore_poll_alarm_failure: bool | None = None

    @property
    def overrides_alarms(self) -> bool:
        return self.alarms_enabled is not None or self.ignore_poll_alarm_failure is not None

    # Waits and intervals run this many times faster (create-deployment --time-scale).
    time_scale: float = 1.0


@dataclass(frozen=True)
class Diagnostics:
    """Why a lifecycle event failed, as CodeDeploy reports it, plus the exit code."""

    error_code: str
    script_name: str | None
    message: str
    log_tail: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class LifecycleEventInfo:
    name: str
    status: str = PENDING
    start_time: float | None = None
    end_time: float | None = None
    diagnostics: Diagnostics | None = None


@dataclass(frozen=True)
class InstanceInfo:
    name: str
    batch: int | None = None
    status: str = PENDING
    start_time: float | None = None
    end_time: float | None = None
    host: str = ""
    events: tuple[LifecycleEventInfo, ...] = ()

    def failed_event(self) -> LifecycleEventInfo | None:
        return next((e for e in self.events if e.status == FAILED and e.diagnostics), None)


@dataclass(frozen=True)
class RollbackInfo:
    rollback_deployment_id: str | None = None
    rollback_triggering_deployment_id: str | None = None
    rollback_message: str | None = None


@dataclass(frozen=True)
class AlarmStatus:
    """The last reading of one of a deployment's alarms (its state: OK, ALARM,
    INSUFFICIENT_DATA or ERROR)."""

    name: str
    state: str
    value: float | None
    threshold: float | None
    message: str
    observed_at: float
    observe_only: bool = False

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
            "observedTime": self.observed_at,
            "observeOnly": self.observe_only,
        }


class TrafficState(StrEnum):
    """Whether a deployment's load balancer sends an instance traffic."""

    IN_SERVICE = "in_service"
    DRAINING = "draining"  # no new connections; open ones may finish
    OUT_OF_SERVICE = "out_of_service"


class TrafficHealth(StrEnum):
    """An instance's health checks as its balancer last saw them."""

    OK = "ok"
    FAILING = "failing"
    UNKNOWN = "unknown"  # not checked (out of service) or not enough checks yet


@dataclass(frozen=True)
class InstanceTraffic:
    """An instance as the deployment's load balancer last reported it. Counts are None where
    the balancer cannot tell (a command balancer does not see connections)."""

    instance: str
    state: TrafficState
    health: TrafficHealth
    open_connections: int | None = None
    requests_served: int | None = None
    detail: str = ""  # the last health check's outcome
    observed_at: float = 0.0

    @property
    def serving(self) -> bool:
        return self.state is TrafficState.IN_SERVICE and self.health is TrafficHealth.OK

    def to_api(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "state": str(self.state),
            "health": str(self.health),
            "openConnections": self.open_connections,
            "requestsServed": self.requests_served,
            "detail": self.detail,
            "observedTime": self.observed_at,
        }


@dataclass(frozen=True)
class DeploymentInfo:
    id: str
    application: str
    deployment_group: str
    config_name: str
    status: str
    revision: RevisionRef
    creator: str = CREATOR_USER
    description: str = ""
    previous_revision: RevisionRef | None = None
    error_code: str | None = None
    error_message: str | None = None
    create_time: float = 0.0
    start_time: float | None = None
    complete_time: float | None = None
    options: DeploymentOptions = field(default_factory=DeploymentOptions)
    rollback: RollbackInfo = field(default_factory=RollbackInfo)
    instances: tuple[InstanceInfo, ...] = ()
    # Unfinished, but the engine process running it is gone: when it was last heard from.
    interrupted_at: float | None = None
    compute_platform: ComputePlatform = ComputePlatform.SERVER
    deployment_style: DeploymentStyle = field(default_factory=DeploymentStyle)
    alarms: tuple[AlarmStatus, ...] = ()  # the last reading of each alarm, in first-seen order
    # Each instance's last state in the load balancer (traffic control only), in target order.
    traffic: tuple[InstanceTraffic, ...] = ()
    blue_green: BlueGreenInfo | None = None  # Server blue/green: its fleets and waits

    @property
    def kind(self) -> DeploymentKind:
        return DeploymentKind(self.compute_platform, self.deployment_style)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def interrupted(self) -> bool:
        return self.interrupted_at is not None

    @property
    def shown_status(self) -> str:
        """The status for people: `InProgress (interrupted)` once its engine is gone."""
        return f"{self.status} (interrupted)" if self.interrupted else self.status

    def overview(self) -> dict[str, int]:
        counts = {PENDING: 0, IN_PROGRESS: 0, SUCCEEDED: 0, FAILED: 0, SKIPPED: 0, READY: 0}
        for instance in self.instances:
            counts[instance.status] = counts.get(instance.status, 0) + 1
        return counts

    def instance(self, name: str) -> InstanceInfo | None:
        return next((i for i in self.instances if i.name == name), None)

    def to_api(self) -> dict[str, Any]:
        """The shape of GetDeployment's deploymentInfo (camelCase, CodeDeploy's names)."""
        info: dict[str, Any] = {
            "deploymentId": self.id,
            "applicationName": self.application,
            "deploymentGroupName": self.deployment_group,
            "deploymentConfigName": self.config_name,
            "status": self.status,
            "creator": self.creator,
            "description": self.description,
            "revision": _revision_api(self.revision),
            "previousRevision": _revision_api(self.previous_revision),
            "createTime": self.create_time,
            "startTime": self.start_time,
            "completeTime": self.complete_time,
            "deploymentOverview": self.overview(),
            "ignoreApplicationStopFailures": self.options.ignore_application_stop_failures,
            "updateOutdatedInstancesOnly": self.options.update_outdated_instances_only,
            "fileExistsBehavior": self.options.file_exists_behavior,
            "autoRollbackConfiguration": {
                "enabled": self.options.auto_rollback.enabled,
                "events": list(self.options.auto_rollback.events),
            },
            "computePlatform": str(self.compute_platform),
            "deploymentStyle": self.deployment_style.to_api(),
        }
        if self.options.overrides_alarms:
            override: dict[str, Any] = {}
            if self.options.alarms_enabled is not None:
                override["enabled"] = self.options.alarms_enabled
            if self.options.ignore_poll_alarm_failure is not None:
                override["ignorePollAlarmFailure"] = self.options.ignore_poll_alarm_failure
            info["overrideAlarmConfiguration"] = override
        if self.alarms:
            info["alarms"] = [alarm.to_api() for alarm in self.alarms]
        if self.traffic:
            info["loadBalancerTargets"] = [target.to_api() for target in self.traffic]
        if self.blue_green is not None:
            info["blueGreenDeploymentInfo"] = self.blue_green.to_api()
            info["instanceTerminationWaitTimeStarted"] = self.blue_green.termination_wait_started
        if self.options.time_scale != 1.0:
            info["timeScale"] = self.options.time_scale
        if self.error_code:
            info["errorInformation"] = {"code": self.error_code, "message": self.error_message}
        rollback = {
            key: value
            for key, value in (
                ("rollbackDeploymentId", self.rollback.rollback_deployment_id),
                ("rollbackTriggeringDeploymentId", self.rollback.rollback_triggering_deployment_id),
                ("rollbackMessage", self.rollback.rollback_message),
            )
            if value is not None
        }
        if rollback:
            info["rollbackInfo"] = rollback
        if self.interrupted:
            info["interrupted"] = True
            info["interruptedTime"] = self.interrupted_at
        return info


def _revision_api(revision: RevisionRef | None) -> dict[str, Any] | None:
    if revision is None:
        return None
    return {
        "revisionType": "Local",
        "localLocation": {
            "location": revision.location,
            "bundleType": revision.bundle_type,
            "sha256": revision.sha256,
        },
    }


def instance_to_api(deployment_id: str, instance: InstanceInfo) -> dict[str, Any]:
    """The shape of GetDeploymentTarget's instanceTarget."""
    return {
        "deploymentId": deployment_id,
        "targetId": instance.name,
        "host": instance.host,
        "status": instance.status,
        "batch": instance.batch,
        "lifecycleEvents": [
            {
                "lifecycleEventName": event.name,
                "status": event.status,
                "startTime": event.start_time,
                "endTime": event.end_time,
                "diagnostics": None
                if event.diagnostics is None
                else {
                    "errorCode": event.diagnostics.error_code,
                    "scriptName": event.diagnostics.script_name,
                    "message": event.diagnostics.message,
                    "logTail": event.diagnostics.log_tail,
                    "exitCode": event.diagnostics.exit_code,
                },
            }
            for event in instance.events
        ],
    }

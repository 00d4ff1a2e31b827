"""The platform seam: what every run strategy is given and what the runner asks of it.

A deployment's kind (its application's compute platform and its group's deployment style)
picks one run strategy (engine/deployments/platforms.py). The strategy turns a `RunContext`
into a `DeploymentRun`; the runner then only starts it, passes stop requests on and closes
it. Everything a run does reaches the store and the consoles as events it publishes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from engine.clock import Clock
from engine.configs import DeploymentConfig
from engine.deployments.fleet import build_targets
from engine.deployments.triggers import TriggerDispatcher
from engine.model import DeploymentInfo
from engine.store import Store
from engine.targets.base import Target
from engine.targets.local import ProcessWatch
from engine.workspace import Workspace

if TYPE_CHECKING:
    from engine.deployments.alarms import DeploymentAlarms

MANUAL_STOP = "MANUAL_STOP"


@dataclass(frozen=True)
class StopRequest:
    """Stop the run: with a rollback after it (True), without (False), or as the group's
    DEPLOYMENT_STOP_ON_REQUEST says (None). `reason` is the error code the deployment ends
    with; `message`, when given, its error message (a tripped alarm's)."""

    auto_rollback: bool | None
    reason: str = MANUAL_STOP
    message: str | None = None


@dataclass(frozen=True)
class RevisionPayload:
    """The revision as a run installs it: the snapshot's location and its parsed appspec
    (the agent's JSON form for Server)."""

    bundle_path: str
    bundle_type: str
    sha256: str
    appspec: dict[str, Any]


TargetFactory = Callable[[Workspace, Sequence[str], ProcessWatch | None], dict[str, Target]]


@dataclass(frozen=True)
class RunContext:
    """What the runner prepares for any strategy: the recorded deployment, its config and
    revision, the store events go to, triggers, and the workspace for targets."""

    store: Store
    clock: Clock
    workspace: Workspace
    deployment: DeploymentInfo
    config: DeploymentConfig
    revision: RevisionPayload
    triggers: TriggerDispatcher
    resume: bool = False
    watch: ProcessWatch | None = None  # told of the process groups local hooks start
    # How instance names become Targets: local folders and SSH hosts (tests give fakes).
    targets_for: TargetFactory = build_targets
    # The deployment's alarms, evaluated before each batch (None: the group has none).
    alarms: DeploymentAlarms | None = None

    @property
    def redact(self) -> Callable[[str], str]:
        return self.workspace.redact


class DeploymentRun(Protocol):
    """One deployment being run to its end by one strategy.

    `run` publishes every state change as an event (journaled before anyone sees it) and
    returns the deployment as it ended. `request_stop` may come at any time, from a signal
    or a journaled StopRequested: the run ends what is running (each strategy knows how:
    hooks' process groups, a traffic shift rolled back) and ends Stopped. `close` lets go of
    whatever the run holds (connections), once `run` returned."""

    @property
    def id(self) -> str: ...

    @property
    def stop_request(self) -> StopRequest | None: ...

    def request_stop(self, request: StopRequest) -> None: ...

    async def run(self, *, resume: bool = False) -> DeploymentInfo: ...

    async def close(self) -> None: ...


RunStrategy = Callable[[RunContext], DeploymentRun]

"""Lifecycle steps: what one lifecycle event does on one instance.

Most events are agent commands (hooks, DownloadBundle, Install) run through the instance's
Target. BlockTraffic and AllowTraffic are the engine's own: they tell the group's load
balancer (engine/traffic) to take the instance out of service and put it back. An in-place run
calls one step per event and records its result; a new kind of step (a traffic shift) only
has to implement `LifecycleStep`.

Stop and rollback: a stop cancels the running step. An agent command ends its hooks' process
groups; a traffic step's wait ends and the instance stays as the balancer has it (a blocked
instance stays out of service, as CodeDeploy leaves a deregistered instance), so the rollback
deployment's AllowTraffic is what puts it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from engine.host import results as agent_results
from engine.model import FAILED, SKIPPED, SUCCEEDED, Diagnostics
from engine.targets.base import Emit, Target

if TYPE_CHECKING:  # engine.traffic loads every balancer: only runs with one need it
    from engine.traffic.model import LoadBalancer

BLOCK_TRAFFIC = "BlockTraffic"
ALLOW_TRAFFIC = "AllowTraffic"
# The events the engine runs itself rather than the agent.
ENGINE_EVENTS = frozenset({BLOCK_TRAFFIC, ALLOW_TRAFFIC})


@dataclass(frozen=True)
class StepResult:
    """How a step ended: Succeeded, Failed (with diagnostics) or Skipped (with a note)."""

    status: str
    diagnostics: Diagnostics | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAILED


class LifecycleStep(Protocol):
    """One lifecycle event on one instance. Cancellation must end whatever it started."""

    name: str

    async def run(self, target: Target, emit: Emit) -> StepResult: ...


class AgentStep:
    """An event the host agent runs: the command `command_for` builds, sent to the Target;
    `emit` gets the agent's messages (hook output, spawned scripts, connection states)."""

    def __init__(self, name: str, command_for: Callable[[str], dict[str, Any]]) -> None:
        self.name = name
        self.command_for = command_for

    async def run(self, target: Target, emit: Emit) -> StepResult:
        try:
            result = await target.run(self.command_for(self.name), emit)
        except Exception as error:  # a target that breaks (connection lost...) fails the event
            return StepResult(
                FAILED,
                Diagnostics(agent_results.UNKNOWN_ERROR, None, f"{type(error).__name__}: {error}"),
            )
        if result.ok:
            return StepResult(SUCCEEDED, note="; ".join(result.notes))
        return StepResult(
            FAILED,
            Diagnostics(
                result.error_code,
                result.script_name,
                result.message,
                result.log_tail,
                result.exit_code,
            ),
        )


class TrafficStep:
    """BlockTraffic or AllowTraffic, done by the group's load balancer; Skipped when the
    group has none (as CodeDeploy skips them for an in-place group without one)."""

    def __init__(self, name: str, balancer: LoadBalancer | None) -> None:
        if name not in ENGINE_EVENTS:
            raise ValueError(f"{name} is not a traffic event ({', '.join(sorted(ENGINE_EVENTS))})")
        self.name = name
        self.balancer = balancer

    async def run(self, target: Target, emit: Emit) -> StepResult:
        if self.balancer is None:
            return StepResult(SKIPPED, note="no load balancer: the group has none")
        from engine.traffic.model import TrafficError

        try:
            if self.name == BLOCK_TRAFFIC:
                blocked = await self.balancer.block(target.name)
                how = (
                    "its connections ended"
                    if blocked.drained
                    else f"{blocked.connections_closed} connection(s) closed at the delay"
                )
                return StepResult(
                    SUCCEEDED, note=f"out of service after {blocked.seconds:.1f} s: {how}"
                )
            allowed = await self.balancer.allow(target.name)
            return StepResult(SUCCEEDED, note=f"healthy after {allowed.seconds:.1f} s")
        except TrafficError as error:
            return StepResult(
                FAILED, Diagnostics(agent_results.UNKNOWN_ERROR, None, f"{self.name}: {error}")
            )


def lifecycle_steps(
    events: tuple[str, ...],
    command_for: Callable[[str], dict[str, Any]],
    balancer: LoadBalancer | None = None,
) -> dict[str, LifecycleStep]:
    """The step of every event: the engine's traffic events, else an agent command."""
    return {
        event: TrafficStep(event, balancer)
        if event in ENGINE_EVENTS
        else AgentStep(event, command_for)
        for event in events
    }

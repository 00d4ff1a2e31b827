"""Batch arithmetic of Server in-place deployments: the scheduling order, the minimum
healthy count, the batch scheduler and the plan shown before a deployment starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from engine.configs.model import DeploymentConfig, MinimumHealthyHosts

HEALTH_CONSTRAINTS = "HEALTH_CONSTRAINTS"
HEALTH_CONSTRAINTS_INVALID = "HEALTH_CONSTRAINTS_INVALID"
NO_INSTANCES = "NO_INSTANCES"
MANUAL_STOP = "MANUAL_STOP"

# Scheduling order of docs/codedeploy-service.md#minimum-healthy-hosts rule 8: instances most in
# need of the revision go first.
INSTANCE_ORDER: tuple[str, ...] = ("Unhealthy", "Unknown", "Old", "Current")

T = TypeVar("T")


def order_instances(instances: Sequence[T], health: Callable[[T], str]) -> list[T]:
    """Instances in scheduling order: Unhealthy, Unknown revision, Old, Current; stable within
    each class. An unknown health label is a ValueError."""
    rank = {label: i for i, label in enumerate(INSTANCE_ORDER)}

    def key(instance: T) -> int:
        label = health(instance)
        if label not in rank:
            raise ValueError(f"instance health {label!r} is not one of {', '.join(INSTANCE_ORDER)}")
        return rank[label]

    return sorted(instances, key=key)


@dataclass(frozen=True)
class Problem:
    """Why a deployment cannot start (NO_INSTANCES, HEALTH_CONSTRAINTS_INVALID)."""

    error_code: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """How a finished deployment ended; `message` is a sentence for the user."""

    succeeded: bool
    error_code: str | None
    message: str


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ordinal(n: int) -> str:
    words = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}
    if n in words:
        return words[n]
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _server_minimum(config: DeploymentConfig) -> MinimumHealthyHosts:
    if config.compute_platform != "Server" or config.minimum_healthy_hosts is None:
        raise ValueError(
            f"{config.name} is a {config.compute_platform} config without minimum healthy "
            "hosts; only Server configs are deployed in batches"
        )
    return config.minimum_healthy_hosts


def minimum_healthy(config: DeploymentConfig, instance_count: int) -> int:
    """The minimum number of healthy instances for a deployment to `instance_count` instances,
    fixed at the start: FLEET_PERCENT rounds up in integer arithmetic; OneAtATime is N-1."""
    mhh = _server_minimum(config)
    if mhh.type == "MOST_CONCURRENCY":
        return max(instance_count - 1, 0)
    if mhh.type == "FLEET_PERCENT":
        return -(-instance_count * mhh.value // 100)  # ceil without floats
    return mhh.value


def _describe_minimum(config: DeploymentConfig) -> str:
    mhh = _server_minimum(config)
    if mhh.type == "MOST_CONCURRENCY":
        return "OneAtATime"
    return f"{mhh.type} {mhh.value}"


def _start_problem(config: DeploymentConfig, count: int, minimum: int) -> Problem | None:
    if count == 0:
        return Problem(
            NO_INSTANCES,
            "The deployment has no target instances, so nothing was deployed; check the "
            "deployment group's instances or tags.",
        )
    if minimum >= count and not config.one_at_a_time:
        mhh = _server_minimum(config)
        why = (
            f"FLEET_PERCENT {mhh.value} of {_plural(count, 'instance')} rounds up to a "
            f"minimum of {minimum} healthy"
            if mhh.type == "FLEET_PERCENT"
            else f"HOST_COUNT {mhh.value} asks for a minimum of {minimum} healthy"
        )
        return Problem(
            HEALTH_CONSTRAINTS_INVALID,
            f"The minimum cannot be met at the start: {why}, but "
            f"the deployment targets only {count}, so no instance could be taken offline "
            "without going below it. Nothing was deployed; lower the minimum or add instances.",
        )
    return None


def _tolerated_failures(count: int, minimum: int) -> int:
    # Success needs max(minimum, 1) successes, so everything beyond that may fail.
    return max(count - max(minimum, 1), 0)


class BatchScheduler:
    """Hands out strict batches for an in-place Server deployment
    (docs/codedeploy-service.md#minimum-healthy-hosts): a batch is handed out only after every
    instance of the previous one was recorded, and is as large as it can be without the healthy
    count (N - failures - in flight) dropping below the minimum.

    Each instance ends in exactly one of `succeeded`, `failed` or `skipped` (not started because
    the deployment failed or was stopped); `pending` are those still waiting to be started."""

    def __init__(self, config: DeploymentConfig, instances: Sequence[str]) -> None:
        _server_minimum(config)
        names = tuple(instances)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"instances listed more than once: {', '.join(duplicates)}")
        self.config = config
        self.instances = names
        self.minimum: int = minimum_healthy(config, len(names))
        self._start_problem = _start_problem(config, len(names), self.minimum)
        self._pending: list[str] = list(names)
        self._in_flight: list[str] = []
        self._succeeded: list[str] = []
        self._failed: list[str] = []
        self._skipped: list[str] = []
        self._batches: list[tuple[str, ...]] = []
        # no batch fitted while instances remained (docs/codedeploy-service.md#minimum-healthy-hosts
        # rule 5)
        self._health_failed = False
        self._stopped: Problem | None = None  # set by skip_all()
        if self._start_problem is not None:
            self._skip_pending()

    # -- state ---------------------------------------------------------------------------

    def start_problem(self) -> Problem | None:
        """NO_INSTANCES or HEALTH_CONSTRAINTS_INVALID when the deployment cannot start."""
        return self._start_problem

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    @property
    def in_progress(self) -> tuple[str, ...]:
        return tuple(self._in_flight)

    @property
    def succeeded(self) -> tuple[str, ...]:
        return tuple(self._succeeded)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(self._failed)

    @property
    def skipped(self) -> tuple[str, ...]:
        return tuple(self._skipped)

    @property
    def batches(self) -> tuple[tuple[str, ...], ...]:
        """The batches handed out so far, in order."""
        return tuple(self._batches)

    @property
    def finished(self) -> bool:
        return not self._in_flight and not self._pending

    @property
    def _halted(self) -> bool:
        return self._start_problem is not None or self._health_failed or self._stopped is not None

    @property
    def batch_size(self) -> int:
        """How many instances the next batch may hold right now (before capping at pending)."""
        if self.config.one_at_a_time:
            return 1 if not self._failed else 0
        return len(self.instances) - self.minimum - len(self._failed)

    def status_of(self, instance: str) -> str:
        """The CodeDeploy instance status: Pending, InProgress, Succeeded, Failed or Skipped."""
        for status, group in (
            ("Succeeded", self._succeeded),
            ("Failed", self._failed),
            ("Skipped", self._skipped),
            ("InProgress", self._in_flight),
            ("Pending", self._pending),
        ):
            if instance in group:
                return status
        raise KeyError(instance)

    # -- commands ------------------------------------------------------------------------

    def next_batch(self) -> tuple[str, ...]:
        """The next batch to deploy, or () when the deployment is finished or must stop."""
        if self._in_flight:
            raise RuntimeError(
                "next_batch() called while the previous batch is still running; record() "
                f"every instance first (waiting for: {', '.join(self._in_flight)})"
            )
        if self._halted or not self._pending:
            return ()
        size = min(self.batch_size, len(self._pending))
        batch = tuple(self._pending[:size])
        del self._pending[:size]
        self._in_flight.extend(batch)
        self._batches.append(batch)
        return batch

    def record(self, instance: str, succeeded: bool) -> None:
        """Record the result of an instance of the running batch."""
        if instance not in self._in_flight:
            state = self.status_of(instance) if instance in self.instances else "unknown"
            raise ValueError(f"cannot record {instance!r}: it is not running (status: {state})")
        self._in_flight.remove(instance)
        (self._succeeded if succeeded else self._failed).append(instance)
        if not self._in_flight:
            self._after_batch()

    def skip_all(
        self,
        error_code: str = MANUAL_STOP,
        reason: str = "The deployment was stopped.",
    ) -> tuple[str, ...]:
        """Stop: instances not yet started become Skipped (and are returned); no more batches
        come. Instances already running must still be recorded. A no-op once finished."""
        if self.finished or self._halted:
            return ()
        self._stopped = Problem(error_code, reason)
        return self._skip_pending()

    def outcome(self) -> Outcome:
        """How the deployment ended; only once `finished`."""
        if not self.finished:
            raise RuntimeError("outcome() is known only once the deployment is finished")
        if self._start_problem is not None:
            return Outcome(False, self._start_problem.error_code, self._start_problem.message)
        if self._stopped is not None:
            return Outcome(False, self._stopped.error_code, self._stopped_message(self._stopped))
        wins = len(self._succeeded)
        # docs/codedeploy-service.md#minimum-healthy-hosts rule 4: enough successes for the minimum,
        # and at least one even for minimum 0.
        if not self._health_failed and wins >= self.minimum and wins >= 1:
            return Outcome(True, None, self._success_message())
        return Outcome(False, HEALTH_CONSTRAINTS, self._failure_message())

    # -- internals -----------------------------------------------------------------------

    def _skip_pending(self) -> tuple[str, ...]:
        skipped = tuple(self._pending)
        self._skipped.extend(skipped)
        self._pending.clear()
        return skipped

    def _after_batch(self) -> None:
        # docs/codedeploy-service.md#minimum-healthy-hosts rule 5: instances remain but no batch
        # fits -> HEALTH_CONSTRAINTS, skip the rest.
        if not self._halted and self._pending and self.batch_size <= 0:
            self._health_failed = True
            self._skip_pending()

    def _success_message(self) -> str:
        count, wins, losses = len(self.instances), len(self._succeeded), len(self._failed)
        need = (
            f"at least {self.minimum} healthy ({_describe_minimum(self.config)})"
            if self.minimum >= 1
            else f"at least one successful instance ({_describe_minimum(self.config)})"
        )
        if losses == 0:
            every = "The instance" if count == 1 else f"All {count} instances"
            return f"{every} succeeded; the deployment needed {need}."
        return (
            f"{wins} of {count} instances succeeded and {losses} failed, which meets the "
            f"minimum: the deployment needed {need}."
        )

    def _failure_message(self) -> str:
        # The error code is shown beside every message, so messages never repeat it.
        count, wins, losses = len(self.instances), len(self._succeeded), len(self._failed)
        describe = _describe_minimum(self.config)
        if wins == 0 and self.minimum == 0:
            return (
                f"Too many instance failures: all {count} instances failed, and a deployment "
                f"needs at least one successful instance even when its minimum is 0 ({describe})."
            )
        tolerated = _tolerated_failures(count, self.minimum)
        parts = [f"{wins} succeeded"]
        if self._skipped:
            parts.append(f"{len(self._skipped)} skipped")
        failed = f"{losses} of {count} instances failed ({', '.join(parts)})"
        need = f"the deployment needs at least {self.minimum} healthy ({describe})"
        if tolerated == 0:
            return (
                f"Too many instance failures: {failed}; {need}, so the only instance must succeed."
            )
        if self._health_failed:
            # Failures before the final batch left no room for another batch above the minimum.
            absorbed = (
                "only the last instance may fail"
                if tolerated == 1
                else f"before the final batch at most {_plural(tolerated - 1, 'failure')} can "
                f"be absorbed ({tolerated} only when the last is in the final batch)"
            )
            return f"Too many instance failures: {failed}; {need}, so {absorbed}."
        return (
            f"Too many instance failures: {failed}; {need}, so at most "
            f"{_plural(tolerated, 'instance')} may fail."
        )

    def _stopped_message(self, stop: Problem) -> str:
        return (
            f"{stop.message.rstrip('.')}: "
            f"{_plural(len(self._skipped), 'instance')} not yet started "
            f"{'was' if len(self._skipped) == 1 else 'were'} skipped; "
            f"{len(self._succeeded)} succeeded and {len(self._failed)} failed before the stop."
        )


# --- the plan shown before a deployment starts ----------------------------------------------


@dataclass(frozen=True)
class DeploymentPlan:
    """A preview of a Server deployment: batches if every instance succeeds, and what failures
    it can absorb."""

    config: DeploymentConfig
    instances: tuple[str, ...]
    minimum: int
    batches: tuple[tuple[str, ...], ...]
    max_concurrent: int  # instances taken down at once (the first batch)
    tolerated_failures: int  # how many may fail overall and the deployment still succeed
    last_instance_rule: bool  # the last tolerated failure must come in the final batch
    start_problem: Problem | None

    def failures_allowed(self) -> str:
        """How many may fail, in a few words: `4 may fail (the 4th only in the final batch)`."""
        tolerated = self.tolerated_failures
        if self.last_instance_rule and tolerated >= 1:
            return f"{tolerated} may fail (the {_ordinal(tolerated)} only in the final batch)"
        return f"{tolerated} may fail"

    def failure_rules(self) -> list[str]:
        """Plain sentences saying what happens when instances fail."""
        if self.start_problem is not None:
            return [self.start_problem.message]
        count, minimum, tolerated = len(self.instances), self.minimum, self.tolerated_failures
        describe = _describe_minimum(self.config)
        skipped = "Instances not yet started when the deployment fails or is stopped are Skipped."
        if self.config.one_at_a_time:
            if count == 1:
                return ["The only instance is deployed and must succeed.", skipped]
            return [
                "Instances are deployed one at a time.",
                "The first failure stops the deployment unless it is on the last instance.",
                f"The deployment succeeds if at least {minimum} of {count} instances succeed.",
                skipped,
            ]
        if minimum == 0 and count == 1:
            return [f"The only instance is deployed and must succeed ({describe}).", skipped]
        if minimum == 0:
            return [
                f"All {_plural(count, 'instance')} are deployed at once ({describe}).",
                "The deployment succeeds if at least one instance succeeds; it fails only if "
                f"all {count} fail.",
                skipped,
            ]
        size = self.max_concurrent
        rules = [
            f"Up to {size} at a time, keeping at least {minimum} of {count} instances healthy "
            f"({describe}).",
        ]
        if tolerated >= 2:
            shrink = f"after 1 failure, {size - 1} at a time"
            if tolerated >= 3:
                shrink += f"; after {tolerated - 1} failures, 1 at a time"
            rules.append(f"Batches shrink by one for each failure: {shrink}.")
        if tolerated >= 1:
            rules.append(
                f"A {_ordinal(tolerated)} failure stops the deployment unless it is on the "
                "last instance (or in the final batch): before the end, at most "
                f"{_plural(tolerated - 1, 'failure')} can be absorbed."
            )
        rules.append(
            f"The deployment succeeds if at least {minimum} instances succeed: "
            f"{tolerated} may fail in all."
        )
        rules.append(skipped)
        return rules


def plan_deployment(config: DeploymentConfig, instances: Sequence[str]) -> DeploymentPlan:
    """The plan of a Server deployment before anything runs, computed by the scheduler itself
    so the preview and the run cannot disagree."""
    scheduler = BatchScheduler(config, instances)
    problem = scheduler.start_problem()
    while batch := scheduler.next_batch():
        for name in batch:
            scheduler.record(name, True)
    batches = scheduler.batches
    count = len(scheduler.instances)
    tolerated = 0 if problem else _tolerated_failures(count, scheduler.minimum)
    return DeploymentPlan(
        config=config,
        instances=scheduler.instances,
        minimum=scheduler.minimum,
        batches=batches,
        max_concurrent=max((len(b) for b in batches), default=0),
        tolerated_failures=tolerated,
        last_instance_rule=problem is None and scheduler.minimum >= 1 and tolerated >= 1,
        start_problem=problem,
    )

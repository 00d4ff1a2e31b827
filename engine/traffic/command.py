"""A load balancer driven by the user's own commands (for nginx, Caddy, a cloud LB's CLI).

Each command runs in its own process group with the instance in its environment
(DEPLOYDECK_INSTANCE, DEPLOYDECK_INSTANCE_HOST, DEPLOYDECK_INSTANCE_PORT, DEPLOYDECK_LB_ACTION)
and ends within `timeout_seconds`, or its whole group is ended and the action fails. A string
runs with /bin/sh -c; a list runs as is.

- block: take the instance out of rotation. If a `drained` command is given, it is run every
  health check interval until it exits 0 (the instance's connections ended) or the
  deregistration delay passes; without one, the block command itself is trusted to drain.
- allow: put it back; then `health` runs every interval until it passes `healthy_threshold`
  times in a row, or the allow timeout passes.
- health: exit 0 = healthy. `states()` runs it once per instance in service.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.clock import Clock, RealClock
from engine.host.processes import end_process_group
from engine.traffic.model import (
    AllowResult,
    BalancerLifetime,
    BlockResult,
    Health,
    InstanceState,
    Service,
    Target,
    TrafficError,
    TrafficSettings,
)
from engine.traffic.waits import uninterrupted, within

Command = str | tuple[str, ...]
STOP_GRACE_SECONDS = 2.0
OUTPUT_TAIL_CHARS = 400


@dataclass(frozen=True)
class BalancerCommands:
    block: Command
    allow: Command
    health: Command
    drained: Command | None = None
    timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("block", "allow", "health", "drained"):
            value = getattr(self, name)
            if value is None and name == "drained":
                continue
            if not value or (isinstance(value, tuple) and not all(value)):
                raise ValueError(f"the {name} command is empty")
        if not self.timeout_seconds > 0:
            raise ValueError("timeout_seconds must be above 0")


class CommandBalancer(BalancerLifetime):
    kind = "command"

    def __init__(
        self,
        targets: Sequence[Target],
        commands: BalancerCommands,
        settings: TrafficSettings | None = None,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.targets = {t.name: t for t in targets}
        self.commands = commands
        self.settings = settings or TrafficSettings()
        self.clock = clock or RealClock()
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self._service = {t.name: Service.IN_SERVICE for t in targets}
        self._detail = {t.name: "" for t in targets}

    async def start(self) -> None:
        pass  # nothing to start: the balancer is the user's

    async def close(self) -> None:
        pass

    def _target(self, instance: str) -> Target:
        try:
            return self.targets[instance]
        except KeyError:
            raise TrafficError(
                f"no instance {instance!r} behind the command balancer; it has: "
                + ", ".join(self.targets)
            ) from None

    async def block(self, instance: str) -> BlockResult:
        target = self._target(instance)
        started = self.clock.now()
        self._service[instance] = Service.DRAINING
        await self._must("block", target)
        drained = True
        if self.commands.drained is not None:

            async def until_drained() -> None:
                while (await self._run("drained", target))[0] != 0:
                    await self.clock.sleep(self.settings.health_check.interval_seconds)

            try:
                await within(
                    self.clock, self.settings.deregistration_delay_seconds, until_drained()
                )
            except TimeoutError:
                drained = False
        self._service[instance] = Service.OUT_OF_SERVICE
        return BlockResult(instance, self.clock.now() - started, drained)

    async def allow(self, instance: str) -> AllowResult:
        target = self._target(instance)
        started = self.clock.now()
        await uninterrupted(self._register(target))  # a stop leaves it registered
        check = self.settings.health_check

        async def healthy() -> None:
            passes = 0
            while True:
                code, output = await self._run("health", target)
                self._detail[instance] = _describe(code, output)
                passes = passes + 1 if code == 0 else 0
                if passes >= check.healthy_threshold:
                    return
                await self.clock.sleep(check.interval_seconds)

        timeout = self.settings.allow_timeout_seconds
        try:
            await within(self.clock, timeout, healthy())
        except TimeoutError:
            raise TrafficError(
                f"instance {instance} did not become healthy within {timeout:g} s: the health "
                f"command needs {check.healthy_threshold} passes in a row (every "
                f"{check.interval_seconds:g} s); last: {self._detail[instance] or 'none finished'}"
            ) from None
        return AllowResult(instance, self.clock.now() - started)

    async def states(self) -> dict[str, InstanceState]:
        async def one(target: Target) -> InstanceState:
            service = self._service[target.name]
            if service is Service.OUT_OF_SERVICE:
                return InstanceState(target.name, service, Health.UNCHECKED)
            try:
                code, output = await self._run("health", target)
            except TrafficError as error:
                code, output = -1, str(error)
            self._detail[target.name] = _describe(code, output)
            health = Health.HEALTHY if code == 0 else Health.UNHEALTHY
            return InstanceState(target.name, service, health, detail=self._detail[target.name])

        found = await asyncio.gather(*(one(t) for t in self.targets.values()))
        return {s.name: s for s in found}

    async def _register(self, target: Target) -> None:
        await self._must("allow", target)
        self._service[target.name] = Service.IN_SERVICE

    async def _must(self, action: str, target: Target) -> None:
        code, output = await self._run(action, target)
        if code != 0:
            raise TrafficError(
                f"the {action} command for instance {target.name} failed: {_describe(code, output)}"
            )

    async def _run(self, action: str, target: Target) -> tuple[int, str]:
        """Run one command for `target`: (exit code, its output, stdout and stderr merged)."""
        command = getattr(self.commands, action)
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        env = dict(self.env)
        env.update(
            DEPLOYDECK_INSTANCE=target.name,
            DEPLOYDECK_INSTANCE_HOST=target.host,
            DEPLOYDECK_INSTANCE_PORT=str(target.port),
            DEPLOYDECK_LB_ACTION=action,
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as error:
            raise TrafficError(
                f"the {action} command for instance {target.name} cannot start: {error}"
            ) from None
        timeout = self.commands.timeout_seconds
        try:
            out, _ = await within(self.clock, timeout, proc.communicate())
        except TimeoutError:
            await end_process_group(proc.pid, STOP_GRACE_SECONDS)
            await proc.wait()
            raise TrafficError(
                f"the {action} command for instance {target.name} did not finish within "
                f"{timeout:g} s; it was stopped with its process group"
            ) from None
        except asyncio.CancelledError:
            await asyncio.shield(end_process_group(proc.pid, STOP_GRACE_SECONDS))
            raise
        return proc.returncode or 0, out.decode(errors="replace")


def _describe(code: int, output: str) -> str:
    tail = output.strip()[-OUTPUT_TAIL_CHARS:].strip()
    status = "exit 0" if code == 0 else f"exit code {code}"
    return f"{status}: {tail}" if tail else status

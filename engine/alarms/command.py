"""The `command` alarm: a user command's exit status (0 is OK, anything else is ALARM).

The command runs in its own process group with stdin closed and its output captured (the last
few hundred characters go into the reading's message). When it does not finish within its
timeout, on the injected clock, or the evaluation is cancelled, the whole group is ended:
SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import os

from engine.alarms.model import AlarmReading, AlarmState, CommandAlarmSpec
from engine.clock import Clock
from engine.host.processes import end_process_group
from engine.traffic.waits import within

STOP_GRACE_SECONDS = 2.0
OUTPUT_TAIL_CHARS = 300


class CommandAlarm:
    def __init__(self, spec: CommandAlarmSpec, clock: Clock) -> None:
        self._spec = spec
        self.clock = clock

    @property
    def spec(self) -> CommandAlarmSpec:
        return self._spec

    async def evaluate(self) -> AlarmReading:
        spec = self._spec
        argv = ["/bin/sh", "-c", spec.command] if isinstance(spec.command, str) else spec.command
        env = dict(os.environ, DEPLOYDECK_ALARM=spec.name)
        starting = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
            )
        )
        try:
            proc = await asyncio.shield(starting)
        except OSError as error:
            return self._reading(AlarmState.ERROR, None, f"the command cannot start: {error}")
        except asyncio.CancelledError:
            # Cancelled while the process was being set up (it may already run, with
            # children): let the start finish, then end its whole group.
            await asyncio.wait({starting})
            if not starting.cancelled() and starting.exception() is None:
                await asyncio.shield(end_process_group(starting.result().pid, STOP_GRACE_SECONDS))
            raise
        try:
            out, _ = await within(self.clock, spec.timeout_seconds, proc.communicate())
        except TimeoutError:
            how = await end_process_group(proc.pid, STOP_GRACE_SECONDS)
            await proc.wait()
            return self._reading(
                AlarmState.ERROR,
                None,
                f"the command did not finish within {spec.timeout_seconds:g} s; its process "
                f"group was {how}",
            )
        except asyncio.CancelledError:
            await asyncio.shield(end_process_group(proc.pid, STOP_GRACE_SECONDS))
            raise
        code = proc.returncode if proc.returncode is not None else -1
        tail = out.decode(errors="replace").strip()[-OUTPUT_TAIL_CHARS:].strip()
        status = (
            "exit 0"
            if code == 0
            else (f"exit code {code}" if code > 0 else f"ended by signal {-code}")
        )
        state = AlarmState.OK if code == 0 else AlarmState.ALARM
        return self._reading(state, float(code), f"{status}: {tail}" if tail else status)

    def _reading(self, state: AlarmState, value: float | None, message: str) -> AlarmReading:
        return AlarmReading.of(self._spec, state, value, message, self.clock.now())

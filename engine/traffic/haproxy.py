"""HAProxy as the load balancer, driven through its runtime API (a Unix socket, level admin).

Either deploydeck owns the HAProxy (it writes the config, starts it in its own process group and
stops it with the group: `HAProxyBalancer.owned`) or it attaches to one already running by its
socket, backend and server names (`HAProxyBalancer.attach`), leaving it running on close.

Block sets the server to `drain` (no new connections; checks go on), waits until its current
sessions end or the deregistration delay passes (then `shutdown sessions`), and leaves it in
`maint`. Allow leaves `maint` with the health forced down, so the server takes traffic only
after `rise` passing checks, as a target newly registered with a cloud load balancer."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import re
import shutil
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

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

POLL_SECONDS = 0.05  # how often session counts and health are read back while waiting
ANSWER_SECONDS = 5.0  # a runtime API command's answer
CLOSE_SECONDS = 2.0  # sessions shut down leave HAProxy's counts this soon
START_SECONDS = 10.0  # an owned HAProxy's socket answering after start
STOP_GRACE_SECONDS = 2.0
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL
# Admin-state bits in `show servers state`: maintenance (forced, inherited, config, DNS), drain.
MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20
DRAIN_BITS = 0x08 | 0x10
_ERRORS = ("No such", "Permission denied", "Unknown command", "expects", "Require", "not found")


class HAProxyRuntime:
    """One runtime API command per connection: send a line, read the answer to EOF."""

    def __init__(self, socket_path: Path, owner: _OwnedProcess | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.owner = owner

    async def command(self, line: str) -> str:
        path = self.socket_path
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the answer does, and a cancelled wait for health would poll forever
            async with asyncio.timeout(ANSWER_SECONDS):
                reader, writer = await asyncio.open_unix_connection(str(path))
        except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as error:
            raise await self._unreachable(error) from None
        except PermissionError:
            raise TrafficError(
                f"no permission to open HAProxy's runtime socket {path}: run deploydeck as the "
                "user HAProxy gives the socket to (`stats socket ... user/mode`)"
            ) from None
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            async with asyncio.timeout(ANSWER_SECONDS):
                answer = (await reader.read()).decode(errors="replace")
        except (ConnectionError, TimeoutError) as error:
            raise await self._unreachable(error) from None
        finally:
            writer.close()
        stripped = answer.strip()
        if stripped.startswith(_ERRORS) or "Permission denied" in stripped:
            hint = (
                "; the socket needs `level admin` in HAProxy's `stats socket` line"
                if "Permission denied" in stripped
                else ""
            )
            raise TrafficError(f"HAProxy refused `{line}`: {stripped.splitlines()[0]}{hint}")
        return answer

    async def _unreachable(self, error: BaseException) -> TrafficError:
        reasons: dict[type[BaseException], str] = {
            FileNotFoundError: "the socket does not exist",
            ConnectionRefusedError: "connection refused",
            TimeoutError: f"no answer within {ANSWER_SECONDS:g} s",
        }
        why = reasons.get(type(error), error.__class__.__name__)
        if self.owner is not None:
            await self.owner.settle()
        if self.owner is not None and (gone := self.owner.exit_report()):
            return TrafficError(
                f"the HAProxy deploydeck started for this group {gone}; traffic through it "
                f"has stopped. Its log: {self.owner.log_path}"
            )
        return TrafficError(
            f"HAProxy is not answering on its runtime socket {self.socket_path} ({why}): is it "
            "running, with this socket in its `stats socket` line? Start it (or fix the path) "
            "and retry"
        )

    async def servers(self, backend: str) -> dict[str, dict[str, str]]:
        """Per server of `backend`: the fields of `show stat` and of `show servers state`."""
        stat = await self.command("show stat -1 4 -1")
        rows = csv.DictReader(io.StringIO(stat.lstrip("# ")))
        found = {r["svname"]: dict(r) for r in rows if r.get("pxname") == backend}
        state = await self.command(f"show servers state {backend}")
        lines = [ln for ln in state.splitlines() if ln.strip()]
        header = lines[1].lstrip("# ").split() if len(lines) > 1 else []
        for line in lines[2:]:
            row = dict(zip(header, line.split(), strict=False))
            if row.get("srv_name") in found:
                found[row["srv_name"]].update(row)
        return found


class _OwnedProcess:
    """An HAProxy deploydeck started, in its own process group."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def exit_report(self) -> str:
        """'' while running, else how it ended and its last log line."""
        code = self.proc.returncode
        if code is None:
            return ""
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        log = _log_summary(self.log_path)
        return f"(pid {self.proc.pid}) {how}" + (f"; its log says: {log}" if log else "")

    async def settle(self) -> None:
        """Give a process that just died a moment to be reaped, so its exit can be reported."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), 0.2)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            await end_process_group(self.proc.pid, STOP_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            await self.proc.wait()


async def end_leftover(directory: Path) -> bool:
    """End an HAProxy an earlier owner of `directory` started and could not stop (it was
    killed): it would hold the port and serve with stale server states. True when one ran."""
    try:
        pid = int((directory / "haproxy.pid").read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    if str(directory / "haproxy.cfg").encode() not in command:
        return False
    await end_process_group(pid, STOP_GRACE_SECONDS)
    return True


def _log_summary(path: Path) -> str:
    """HAProxy's alerts from its log (the last three), else its last line."""
    try:
        lines = [" ".join(ln.split()) for ln in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    alerts = [ln for ln in lines if ln.startswith("[ALERT]")]
    return " / ".join(alerts[-3:]) or next((ln for ln in reversed(lines) if ln), "")


def server_name(instance: str) -> str:
    """An HAProxy server name for an instance name (letters, digits and `_.:-` only)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", instance)


def owned_config(
    socket_path: Path,
    listen: tuple[str, int],
    targets: Sequence[Target],
    settings: TrafficSettings,
    backend: str = "deploydeck",
) -> str:
    """The config deploydeck writes for an HAProxy it owns."""
    check = settings.health_check
    lines = [
        "# Written by deploydeck for an HAProxy it starts and stops; edits here are overwritten.",
        "global",
        f'    stats socket "{socket_path}" mode 600 level admin',
        "    stats timeout 30s",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 60s",
        "    timeout http-keep-alive 30s",
        f"    timeout check {_ms(check.timeout_seconds)}",
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        "frontend web",
        f"    bind {listen[0]}:{listen[1]}",
        f"    default_backend {backend}",
        f"backend {backend}",
        "    balance roundrobin",
        f"    option httpchk GET {check.path}",
        f"    default-server {_check_args(settings)}",
    ]
    lines += [f"    server {server_name(t.name)} {t.host}:{t.port}" for t in targets]
    return "\n".join(lines) + "\n"


def _check_args(settings: TrafficSettings) -> str:
    check = settings.health_check
    return (
        f"check inter {_ms(check.interval_seconds)}"
        f" rise {check.healthy_threshold} fall {check.unhealthy_threshold}"
    )


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


class HAProxyBalancer(BalancerLifetime):
    kind = "haproxy"

    def __init__(
        self,
        runtime: HAProxyRuntime,
        backend: str,
        servers: Mapping[str, str],
        settings: TrafficSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.runtime = runtime
        self.backend = backend
        self.servers = dict(servers)  # instance name -> HAProxy server name
        self.settings = settings or TrafficSettings()
        self.clock = clock or RealClock()
        self.owned_process: _OwnedProcess | None = runtime.owner
        self._start_args: tuple | None = None
        # Held while a server passes through drain on its way back in, so that `states` never
        # reports that passing drain as a block.
        self._registering = asyncio.Lock()

    @classmethod
    def attach(
        cls,
        socket_path: Path,
        backend: str,
        servers: Mapping[str, str],
        settings: TrafficSettings | None = None,
        clock: Clock | None = None,
    ) -> HAProxyBalancer:
        """An HAProxy already running: `servers` maps instance names to its server names."""
        return cls(HAProxyRuntime(socket_path), backend, servers, settings, clock)

    @classmethod
    def owned(
        cls,
        directory: Path,
        targets: Sequence[Target],
        listen: tuple[str, int],
        settings: TrafficSettings | None = None,
        clock: Clock | None = None,
        binary: str = "haproxy",
        out_of_service: Collection[str] = (),
        socket_path: Path | None = None,
    ) -> HAProxyBalancer:
        """An HAProxy deploydeck starts (in `start`) from a config it writes in `directory`,
        listening on `listen`, and stops on `close`. Instances named in `out_of_service` start
        in maintenance (added after the start, so they never take a request before `allow`).
        Its runtime socket is `socket_path`, else admin.sock in `directory`."""
        settings = settings or TrafficSettings()
        names = {t.name: server_name(t.name) for t in targets}
        if len(set(names.values())) != len(names):
            raise TrafficError(
                f"instance names {sorted(names)} give repeated HAProxy server names; rename them"
            )
        runtime = HAProxyRuntime(socket_path or Path(directory) / "admin.sock")
        balancer = cls(runtime, "deploydeck", names, settings, clock)
        out = frozenset(out_of_service)
        balancer._start_args = (Path(directory), tuple(targets), listen, binary, out)
        return balancer

    async def start(self) -> None:
        if self._start_args is not None and self.owned_process is None:
            await self._start_owned(*self._start_args)
        found = await self.runtime.servers(self.backend)
        if not found:
            raise TrafficError(
                f"HAProxy at {self.runtime.socket_path} has no backend {self.backend!r} with "
                "servers; name a backend from its config"
            )
        missing = [f"{i} (server {s})" for i, s in self.servers.items() if s not in found]
        if missing:
            raise TrafficError(
                f"HAProxy backend {self.backend!r} has no server for instance "
                + ", ".join(missing)
                + "; it has: "
                + ", ".join(found)
            )

    async def _start_owned(
        self,
        directory: Path,
        targets: Sequence[Target],
        listen: tuple[str, int],
        binary: str,
        out_of_service: frozenset[str],
    ) -> None:
        executable = shutil.which(binary)
        if executable is None:
            raise TrafficError(
                f"HAProxy ({binary}) is not installed: install it (Debian: apt install haproxy) "
                "or use the built-in balancer"
            )
        directory.mkdir(parents=True, exist_ok=True)
        socket_path = self.runtime.socket_path
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise TrafficError(
                f"HAProxy's socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes, "
                "which a Unix socket cannot be; use a shorter state folder"
            )
        config = directory / "haproxy.cfg"
        serving = [t for t in targets if t.name not in out_of_service]
        config.write_text(owned_config(socket_path, listen, serving, self.settings))
        check = await asyncio.create_subprocess_exec(
            executable,
            "-c",
            "-q",
            "-f",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        output = (await check.communicate())[0].decode(errors="replace").strip()
        if check.returncode != 0:
            raise TrafficError(f"HAProxy rejects the config deploydeck wrote ({config}): {output}")
        await end_leftover(directory)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()  # a socket left by an earlier run
        log_path = directory / "haproxy.log"
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                executable,
                "-db",
                "-f",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.owned_process = self.runtime.owner = _OwnedProcess(proc, log_path)
        (directory / "haproxy.pid").write_text(f"{proc.pid}\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while True:
            if gone := self.owned_process.exit_report():
                raise TrafficError(f"HAProxy did not start: it {gone.split(') ', 1)[-1]}")
            try:
                await self.runtime.command("show info")
            except TrafficError:
                if loop.time() > deadline:
                    await self.close()
                    raise TrafficError(
                        f"HAProxy started but its socket {socket_path} did not answer within "
                        f"{START_SECONDS:g} s; see {log_path}"
                    ) from None
                await asyncio.sleep(POLL_SECONDS)
                continue
            for target in targets:
                if target.name in out_of_service:
                    await self._add_server(target)
            return

    async def close(self) -> None:
        if self.owned_process is not None:
            await self.owned_process.stop()

    # --- an owned HAProxy's servers, while it runs ---------------------------------------------

    def update_settings(self, settings: TrafficSettings) -> None:
        """New wait settings (deregistration delay, allow timeout). The health check is in
        HAProxy's config: a new one needs a restart."""
        self.settings = settings

    async def register(self, target: Target) -> None:
        """Add an instance to a running owned HAProxy. It is in service but gets traffic only
        once its health checks pass (`allow` waits for that)."""
        if target.name in self.servers:
            raise TrafficError(f"instance {target.name!r} is already behind HAProxy")
        await self._add_server(target)
        await uninterrupted(self._register(self._server(target.name)))

    async def _add_server(self, target: Target) -> None:
        """A new server for `target`, in maintenance (HAProxy adds it so) with checks on."""
        if self.owned_process is None:
            raise TrafficError(
                "deploydeck adds and removes servers only on an HAProxy it owns; add "
                f"{target.name} to your HAProxy's backend {self.backend!r} yourself"
            )
        name = server_name(target.name)
        if name in self.servers.values():
            raise TrafficError(f"instance {target.name!r} gives a server name already in use")
        answer = await self.runtime.command(
            f"add server {self.backend}/{name} {target.host}:{target.port} "
            + _check_args(self.settings)
        )
        if "registered" not in answer:
            raise TrafficError(f"HAProxy did not add server {name}: {answer.strip()}")
        self.servers[target.name] = name
        await self.runtime.command(f"enable health {self.backend}/{name}")

    async def deregister(self, instance: str) -> BlockResult:
        """Drain `instance` as `block` does, then remove its server from the owned HAProxy."""
        result = await self.block(instance)
        server = self._server(instance)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANSWER_SECONDS
        # HAProxy refuses while closed connections are still being released: asked again
        while "deleted" not in (answer := await self.runtime.command(f"del server {server}")):
            if loop.time() > deadline:
                raise TrafficError(f"HAProxy did not remove server {server}: {answer.strip()}")
            await asyncio.sleep(POLL_SECONDS)
        del self.servers[instance]
        return result

    # --- commands ---------------------------------------------------------------------------

    def _server(self, instance: str) -> str:
        try:
            return f"{self.backend}/{self.servers[instance]}"
        except KeyError:
            raise TrafficError(
                f"no instance {instance!r} behind HAProxy backend {self.backend!r}; it has: "
                + ", ".join(self.servers)
            ) from None

    async def _row(self, instance: str) -> dict[str, str]:
        rows = await self.runtime.servers(self.backend)
        name = self.servers[instance]
        if name not in rows:
            raise TrafficError(f"HAProxy backend {self.backend!r} no longer has server {name}")
        return rows[name]

    async def block(self, instance: str) -> BlockResult:
        server = self._server(instance)
        started = self.clock.now()
        if _service(await self._row(instance)) is Service.OUT_OF_SERVICE:
            return BlockResult(instance, 0.0, True)
        await self.runtime.command(f"set server {server} state drain")

        async def drained() -> None:
            while int((await self._row(instance)).get("scur") or 0) > 0:
                await asyncio.sleep(POLL_SECONDS)

        closed = 0
        try:
            await within(self.clock, self.settings.deregistration_delay_seconds, drained())
        except TimeoutError:
            closed = int((await self._row(instance)).get("scur") or 0)
        await self.runtime.command(f"set server {server} state maint")
        if closed:
            await self.runtime.command(f"shutdown sessions server {server}")
            with contextlib.suppress(TimeoutError):  # HAProxy ends them at its next pass
                await within(self.clock, CLOSE_SECONDS, drained())
        return BlockResult(instance, self.clock.now() - started, closed == 0, closed)

    async def allow(self, instance: str) -> AllowResult:
        server = self._server(instance)
        started = self.clock.now()
        if _service(await self._row(instance)) is not Service.IN_SERVICE:
            await uninterrupted(self._register(server))  # a stop leaves it registered
        last: dict[str, str] = {}
        detail = ""

        async def healthy() -> None:
            nonlocal last, detail
            while True:
                last = await self._row(instance)
                detail = _check_detail(last) or detail
                if _health(last) is Health.HEALTHY:
                    return
                await asyncio.sleep(POLL_SECONDS)

        timeout = self.settings.allow_timeout_seconds
        try:
            await within(self.clock, timeout, healthy())
        except TimeoutError:
            raise TrafficError(
                f"instance {instance} (HAProxy server {server}) did not become healthy within "
                f"{timeout:g} s: status {last.get('status', '?')}, last check "
                f"{detail or 'none finished'}. It stays in service but gets no "
                "traffic until its checks pass; check that the application started and answers "
                "HAProxy's health check."
            ) from None
        return AllowResult(instance, self.clock.now() - started)

    async def _register(self, server: str) -> None:
        """Back in the backend through drain (checks run again) with the health forced down:
        `rise` passes needed before it gets traffic."""
        async with self._registering:
            await self.runtime.command(
                f"set server {server} state drain; set server {server} health down; "
                f"set server {server} state ready"
            )

    async def states(self) -> dict[str, InstanceState]:
        async with self._registering:
            rows = await self.runtime.servers(self.backend)
        result = {}
        for instance, name in self.servers.items():
            row = rows.get(name, {})
            service = _service(row)
            result[instance] = InstanceState(
                instance,
                service,
                Health.UNCHECKED if service is Service.OUT_OF_SERVICE else _health(row),
                int(row.get("scur") or 0),
                int(row.get("stot") or 0),
                _check_detail(row, running_too=True),
            )
        return result


def _service(row: Mapping[str, str]) -> Service:
    admin = int(row.get("srv_admin_state") or 0)
    status = row.get("status", "")
    if admin & MAINT_BITS or status.startswith("MAINT"):
        return Service.OUT_OF_SERVICE
    if admin & DRAIN_BITS or status in ("DRAIN", "NOLB"):
        return Service.DRAINING
    return Service.IN_SERVICE


def _health(row: Mapping[str, str]) -> Health:
    status = row.get("status", "")
    if status.startswith("UP") or status == "no check":
        return Health.HEALTHY
    if status.startswith("DOWN"):
        # "DOWN 1/2": passing again, not yet `rise` times
        return Health.INITIAL if "/" in status else Health.UNHEALTHY
    op_state = row.get("srv_op_state", "")  # DRAIN, NOLB: the operational state tells
    return {"0": Health.UNHEALTHY, "1": Health.INITIAL}.get(op_state, Health.HEALTHY)


def _check_detail(row: Mapping[str, str], running_too: bool = False) -> str:
    """The last finished check, e.g. "L7OK 200", "L4CON"; '' while one is under way (HAProxy
    shows "* " and no code then) unless `running_too`: then what the last one found."""
    status = row.get("check_status", "")
    if status.startswith("*") and not running_too:
        return ""
    status = status.lstrip("* ")
    code = row.get("check_code", "")
    return " ".join(p for p in (status, code if code != "0" else "") if p)

"""A deployment group's balancer host: a long-lived process that owns the group's balancer (the
built-in proxy, or an HAProxy it runs as its child) so the group is served between deployments
too; deployments drive it through `HostedBalancer` (hosted.py).

    python -m engine.traffic.host --folder <state>/lb/<app>.<group>/balancer

It starts with no balancer; `configure` (at each deployment's start) gives it the kind, listen
address, settings and instances: it builds the balancer on the first call, adds and drops
instances on later ones, and restarts the listener only when the kind or listen address (or an
HAProxy's health check) changed, keeping each instance's service state. Which instances are out
of service is also kept in `out-of-service.json`, so a host started again after a reboot does
not send traffic to an instance a deployment left out. It ends, closing the balancer (and its
HAProxy), on `shutdown`, SIGTERM, or when its folder is removed (engine/hosting)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.hosting.daemon import HostPlace, serve_host, short_socket_folder, stop_host
from engine.hosting.rpc import Handler
from engine.private_files import private_file
from engine.traffic.builtin import BuiltinBalancer
from engine.traffic.haproxy import MAX_SOCKET_PATH, HAProxyBalancer, end_leftover
from engine.traffic.model import (
    HealthCheck,
    Service,
    Target,
    TrafficError,
    TrafficSettings,
)

MODULE = "engine.traffic.host"
OUT_FILE = "out-of-service.json"
KINDS = ("builtin", "haproxy")

Balancer = BuiltinBalancer | HAProxyBalancer


@dataclass(frozen=True)
class Setup:
    """What decides the listener: a change to any of it restarts the balancer."""

    kind: str
    host: str
    port: int  # 0: any free port (the one chosen is kept while the host runs)
    binary: str
    health_check: HealthCheck | None  # an HAProxy's (in its config); None for the builtin


def settings_plain(settings: TrafficSettings) -> dict[str, Any]:
    return asdict(settings)


def settings_from(plain: Mapping[str, Any]) -> TrafficSettings:
    return TrafficSettings(
        HealthCheck(**plain["health_check"]),
        plain["deregistration_delay_seconds"],
        plain["allow_timeout_seconds"],
    )


def haproxy_socket(place: HostPlace) -> Path:
    """The owned HAProxy's runtime socket: beside the host's own socket (a short path under
    the temporary folder when the host folder's path is too long for one)."""
    inside = place.folder / "haproxy.sock"
    if len(os.fsencode(inside)) <= MAX_SOCKET_PATH:
        return inside
    digest = hashlib.sha256(os.fsencode(place.folder)).hexdigest()[:24]
    return short_socket_folder() / f"{digest}-haproxy.sock"


class BalancerHost:
    """The balancer this host owns, and the calls deployments make on it."""

    def __init__(self, place: HostPlace) -> None:
        self.place = place
        self.balancer: Balancer | None = None
        self.setup: Setup | None = None
        self.settings = TrafficSettings()
        self.targets: dict[str, Target] = {}
        self._lock = asyncio.Lock()
        self._leaving: dict[str, asyncio.Task[None]] = {}  # instances draining out of the group

    def handlers(self) -> dict[str, Handler]:
        return {
            "configure": self.configure,
            "status": self.status,
            "states": self.states,
            "block": self.block,
            "allow": self.allow,
            "register": self.register,
            "deregister": self.deregister,
            "set_weights": self.set_weights,
        }

    # --- configure ----------------------------------------------------------------------------

    async def configure(
        self,
        kind: str,
        host: str,
        port: int,
        settings: Mapping[str, Any],
        targets: Sequence[Mapping[str, Any]],
        binary: str = "haproxy",
    ) -> dict[str, Any]:
        """Serve `targets` with these settings: new instances join (in service once their
        checks pass), instances no longer given drain and leave; the listener restarts only
        when the kind, listen address or an HAProxy's health check changed."""
        if kind not in KINDS:
            raise TrafficError(f"a balancer host runs kind builtin or haproxy, not {kind!r}")
        wanted = [Target(str(t["name"]), str(t["host"]), int(t["port"])) for t in targets]
        names = [t.name for t in wanted]
        if len(set(names)) != len(names):
            raise TrafficError(f"instance names repeat: {names}")
        new_settings = settings_from(settings)
        check = new_settings.health_check if kind == "haproxy" else None
        setup = Setup(kind, host, int(port), binary, check)
        async with self._lock:
            if self.balancer is None or not self._same_listener(setup):
                await self._restart(setup, new_settings, wanted)
            else:
                await self._update(new_settings, wanted)
        return await self.status()

    def _same_listener(self, setup: Setup) -> bool:
        current = self.setup
        assert current is not None and self.balancer is not None
        if setup.port == 0 and isinstance(self.balancer, BuiltinBalancer):
            setup = Setup(setup.kind, setup.host, current.port, setup.binary, setup.health_check)
        return setup == current

    async def _restart(
        self, setup: Setup, settings: TrafficSettings, targets: Sequence[Target]
    ) -> None:
        """A new balancer for `setup`, the old one closed first (it may hold the port); who was
        out of service stays out."""
        out = await self._out_of_service()
        for task in self._leaving.values():
            task.cancel()
        self._leaving.clear()
        if self.balancer is not None:
            await self.balancer.close()
            self.balancer = None
        names = {t.name for t in targets}
        out &= names
        balancer: Balancer
        if setup.kind == "builtin":
            balancer = BuiltinBalancer(targets, settings, host=setup.host, port=setup.port)
            for name in out:
                await balancer.block(name)  # nothing open yet: out at once
        else:
            balancer = HAProxyBalancer.owned(
                self.place.folder,
                targets,
                (setup.host, setup.port),
                settings,
                binary=setup.binary,
                out_of_service=out,
                socket_path=haproxy_socket(self.place),
            )
        try:
            await balancer.start()
        except BaseException:
            await balancer.close()
            raise
        if isinstance(balancer, BuiltinBalancer) and setup.port == 0:
            setup = Setup(setup.kind, setup.host, balancer.address[1], setup.binary, None)
        self.balancer, self.setup, self.settings = balancer, setup, settings
        self.targets = {t.name: t for t in targets}
        await self._save()

    async def _update(self, settings: TrafficSettings, targets: Sequence[Target]) -> None:
        """The same listener: new settings, instances joined and left."""
        balancer = self.balancer
        assert balancer is not None
        balancer.update_settings(settings)
        self.settings = settings
        wanted = {t.name: t for t in targets}
        for name, target in self.targets.items():
            if wanted.get(name) != target and name not in self._leaving:
                self._leaving[name] = asyncio.ensure_future(self._leave(balancer, name))
        for target in targets:
            if self.targets.get(target.name) == target:
                continue
            leaving = self._leaving.get(target.name)
            if leaving is not None:  # the same name at a new address: the old one goes first
                await asyncio.wait({leaving})
            await balancer.register(target)
        self.targets = dict(wanted)
        await self._save()

    async def _leave(self, balancer: Balancer, name: str) -> None:
        """Drain an instance that left the group, then drop it."""
        try:
            with contextlib.suppress(TrafficError):
                await balancer.deregister(name)
        finally:
            self._leaving.pop(name, None)
        await self._save()

    # --- the balancer's commands ------------------------------------------------------------

    def _running(self) -> Balancer:
        if self.balancer is None:
            raise TrafficError("the balancer host has no balancer yet: a deployment configures it")
        return self.balancer

    async def block(self, instance: str) -> dict[str, Any]:
        try:
            return asdict(await self._running().block(instance))
        finally:
            await self._save()

    async def allow(self, instance: str) -> dict[str, Any]:
        try:
            return asdict(await self._running().allow(instance))
        finally:
            await self._save()

    async def states(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in (await self._running().states()).values()]

    async def register(self, target: Mapping[str, Any], group: str = "") -> None:
        balancer = self._running()
        made = Target(str(target["name"]), str(target["host"]), int(target["port"]))
        if isinstance(balancer, BuiltinBalancer):
            await balancer.register(made, group)
        elif group:
            raise TrafficError("target groups (weights) are the built-in balancer's only")
        else:
            await balancer.register(made)
        self.targets[made.name] = made

    async def deregister(self, instance: str) -> dict[str, Any]:
        try:
            result = asdict(await self._running().deregister(instance))
        finally:
            await self._save()
        self.targets.pop(instance, None)
        return result

    async def set_weights(self, weights: Mapping[str, int]) -> None:
        balancer = self._running()
        if not isinstance(balancer, BuiltinBalancer):
            raise TrafficError("weights between target groups are the built-in balancer's only")
        balancer.set_weights(dict(weights))

    async def status(self) -> dict[str, Any]:
        """The host's pid, the balancer's kind and listen address, and each instance's state
        (empty before the first `configure`)."""
        found: dict[str, Any] = {"pid": os.getpid(), "kind": None, "address": None}
        balancer = self.balancer
        if balancer is None or self.setup is None:
            return {**found, "instances": []}
        process = balancer.owned_process if isinstance(balancer, HAProxyBalancer) else None
        return {
            **found,
            "kind": self.setup.kind,
            "address": [self.setup.host, self.setup.port],
            "haproxy_pid": process.proc.pid if process is not None else None,
            "instances": await self.states(),
        }

    # --- out of service, kept on disk ---------------------------------------------------------

    async def _out_of_service(self) -> set[str]:
        """Instances out of service now (or draining), else as last saved."""
        if self.balancer is not None:
            with contextlib.suppress(TrafficError, OSError):
                states = await self.balancer.states()
                return {n for n, s in states.items() if s.service is not Service.IN_SERVICE}
        try:
            saved = json.loads((self.place.folder / OUT_FILE).read_text())
            return {str(name) for name in saved["out_of_service"]}
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    async def _save(self) -> None:
        if self.balancer is None:
            return
        with contextlib.suppress(TrafficError, OSError):
            out = sorted(await self._out_of_service())
            path = private_file(self.place.folder / OUT_FILE)
            path.write_text(json.dumps({"out_of_service": out}) + "\n")


async def stop_balancer_host(place: HostPlace) -> bool:
    """End the balancer host at `place` (it closes its HAProxy), and an HAProxy a killed host
    left running; True when either ran."""
    stopped = await stop_host(place)
    return await end_leftover(place.folder) or stopped


@contextlib.asynccontextmanager
async def _hosted(place: HostPlace) -> AsyncIterator[Mapping[str, Handler]]:
    host = BalancerHost(place)
    try:
        yield host.handlers()
    finally:
        for task in host._leaving.values():
            task.cancel()
        if host.balancer is not None:
            await host.balancer.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Host a deployment group's load balancer (started by deploydeck).",
    )
    parser.add_argument("--folder", type=Path, required=True, help="the host's state folder")
    args = parser.parse_args(argv)
    place = HostPlace(args.folder)
    return serve_host(place, lambda: _hosted(place))


if __name__ == "__main__":
    sys.exit(main())

"""The built-in load balancer: an asyncio HTTP/1.1 reverse proxy with round robin over the
instances in service and healthy, HTTP health checks, and draining that lets open requests
finish. Nothing to install; HAProxy is the choice for heavy traffic.

Routing is per connection: a client connection stays on its instance while that instance is in
service. Once the instance drains, the request under way finishes there and the connection's
next request goes to another instance, so keep-alive clients never see an error. With weights
between target groups (`set_weights`: an ECS service's blue and green groups) each request
picks a group by smooth weighted round robin, so the split follows the weights exactly, and a
connection moves at a request that picks another group. Sockets time out in real time (like
HAProxy's `timeout client`); the waits a deployment sees (health check interval and timeout,
deregistration delay, allow timeout) use the injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.clock import Clock, RealClock
from engine.traffic import http1
from engine.traffic.health import HealthCounter, probe
from engine.traffic.model import (
    AllowResult,
    BalancerLifetime,
    BlockResult,
    Health,
    HealthCheck,
    InstanceState,
    Service,
    Target,
    TrafficError,
    TrafficSettings,
)
from engine.traffic.waits import within

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(eq=False)
class _Upstream:
    """One open connection from the proxy to an instance."""

    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    busy: bool = True  # a request is under way on it
    closed: bool = False
    reused: bool = False

    def close(self) -> None:
        self.closed = True
        if self.writer is not None:
            self.writer.transport.abort()


@dataclass(eq=False)
class _Member:
    """An instance's live state in the proxy."""

    target: Target
    counter: HealthCounter
    group: str = ""  # the target group it is registered in ("" when weights are not used)
    service: Service = Service.IN_SERVICE
    upstreams: set[_Upstream] = field(default_factory=set)
    requests: int = 0
    epoch: int = 0  # moves on each block and allow: a probe begun before one is not counted
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None  # its health checks

    @property
    def serving(self) -> bool:
        return self.service is Service.IN_SERVICE and self.counter.health is Health.HEALTHY


class _WeightedRoundRobin:
    """Smooth weighted round robin (nginx's): each pick adds every group's weight to its
    credit, takes the group with the most credit and takes the total off it. Over any run of
    picks the counts follow the weights as closely as whole requests can, spread out."""

    def __init__(self, weights: dict[str, int]) -> None:
        self.given = dict(weights)  # as set, zeros included
        self.weights = {g: w for g, w in weights.items() if w > 0}
        self._total = sum(self.weights.values())
        self._credit = dict.fromkeys(self.weights, 0)

    def pick(self) -> list[str]:
        """The picked group first, then the other weighted groups by weight (the fallbacks)."""
        for group, weight in self.weights.items():
            self._credit[group] += weight
        chosen = max(self._credit, key=lambda g: self._credit[g])
        self._credit[chosen] -= self._total
        rest = sorted((g for g in self.weights if g != chosen), key=lambda g: -self.weights[g])
        return [chosen, *rest]


class _IdleWatch:
    """A client connection's idle timeout: closed once it has waited `seconds` for a request.
    One timer per connection, moved only when it fires, rather than a timeout scope per
    request (which costs a timer and its cancellation on every request)."""

    def __init__(self, transport: asyncio.BaseTransport, seconds: float) -> None:
        self.transport = transport
        self.seconds = seconds
        self.loop = asyncio.get_running_loop()
        self.since: float | None = None  # waiting for a request since; None while serving one
        self.fired = False
        self.timer = self.loop.call_later(seconds, self._check)

    def waiting(self) -> None:
        self.since = self.loop.time()

    def serving(self) -> None:
        self.since = None

    def _check(self) -> None:
        since = self.since
        if since is not None and self.loop.time() - since >= self.seconds:
            self.fired = True
            self.transport.close()  # the reader then sees the end: the handler returns
            return
        start = self.loop.time() if since is None else since
        self.timer = self.loop.call_at(start + self.seconds, self._check)

    def cancel(self) -> None:
        self.timer.cancel()


class _Failed(Exception):
    """The exchange with an instance failed before the client got any of the response."""

    def __init__(self, reason: str, retry: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry


class BuiltinBalancer(BalancerLifetime):
    kind = "builtin"

    def __init__(
        self,
        targets: Sequence[Target],
        settings: TrafficSettings | None = None,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 2.0,
        idle_timeout: float = 30.0,
        response_timeout: float = 60.0,
    ) -> None:
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names repeat: {names}")
        self.settings = settings or TrafficSettings()
        self.clock = clock or RealClock()
        self._listen = (host, port)
        self._timeouts = (connect_timeout, idle_timeout, response_timeout)
        self._members = {
            t.name: _Member(t, HealthCounter(self.settings.health_check)) for t in targets
        }
        self._order = list(self._members.values())
        self._next = 0
        self._next_in: dict[str, int] = {}  # round robin position within each target group
        self._weights: _WeightedRoundRobin | None = None
        self._checks: dict[str, HealthCheck] = {}  # target groups with their own health check
        self._changed = asyncio.Event()
        self._waiting = 0  # `_until` waits under way
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()  # health checks
        self._clients: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._closing = False
        self._served: dict[str, int] = {}  # requests answered per target group, ever

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect (the port is known once started)."""
        if self._server is None:
            raise TrafficError("the built-in balancer is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        host, port = self._listen
        try:
            self._server = await asyncio.start_server(
                self._serve, host, port, limit=http1.MAX_HEAD_BYTES, reuse_address=True
            )
        except OSError as error:
            raise TrafficError(
                f"the built-in balancer cannot listen on {host}:{port}: {error.strerror}; "
                "choose another listen port"
            ) from None
        for member in self._order:
            member.task = self._spawn(self._check_loop(member))

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for member in self._order:
            for up in list(member.upstreams):
                up.close()
        # Client handlers end by their connections closing, never by cancellation: asyncio's
        # server logs a cancelled handler as an error (Python 3.11).
        for client in list(self._clients.values()):
            client.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- commands ---------------------------------------------------------------------------

    async def block(self, instance: str) -> BlockResult:
        member = self._member(instance)
        started = self.clock.now()
        if member.service is Service.OUT_OF_SERVICE:
            return BlockResult(instance, 0.0, True)
        member.service = Service.DRAINING
        member.epoch += 1
        for up in [u for u in member.upstreams if not u.busy]:
            self._drop(member, up)  # idle keep-alive connections move at their next request
        self._notify()
        drained = True
        if member.upstreams:
            try:
                await self._until(
                    lambda: not member.upstreams, self.settings.deregistration_delay_seconds
                )
            except TimeoutError:
                drained = False
        closed = len(member.upstreams)
        for up in list(member.upstreams):
            self._drop(member, up)
        member.service = Service.OUT_OF_SERVICE
        member.counter.health = Health.UNCHECKED
        self._notify()
        return BlockResult(instance, self.clock.now() - started, drained, closed)

    async def allow(self, instance: str) -> AllowResult:
        member = self._member(instance)
        started = self.clock.now()
        if member.service is not Service.IN_SERVICE:
            member.service = Service.IN_SERVICE
            member.counter.restart()
            member.epoch += 1
            member.wake.set()
            self._notify()
        check = self._check_of(member.group)
        timeout = self.settings.allow_timeout_seconds
        try:
            await self._until(lambda: member.counter.health is Health.HEALTHY, timeout)
        except TimeoutError:
            target = member.target
            raise TrafficError(
                f"instance {instance} did not become healthy within {timeout:g} s: it needs "
                f"{check.healthy_threshold} passing checks in a row of GET {check.path} on "
                f"{target.host}:{target.port} (every {check.interval_seconds:g} s); last check: "
                f"{member.counter.detail or 'none finished'}. It stays in service but gets no "
                "traffic until it passes; check that the application started and answers there."
            ) from None
        return AllowResult(instance, self.clock.now() - started)

    async def register(self, target: Target, group: str = "") -> None:
        """Add an instance (in target group `group`) while running. It is in service but gets
        traffic only once its health checks pass (`allow` waits for that)."""
        if target.name in self._members:
            raise TrafficError(f"instance {target.name!r} is already behind the balancer")
        member = _Member(target, HealthCounter(self._check_of(group)), group=group)
        member.counter.restart()
        self._members[target.name] = member
        self._order.append(member)
        if self._server is not None:
            member.task = self._spawn(self._check_loop(member))
        self._notify()

    async def deregister(self, instance: str) -> BlockResult:
        """Drain `instance` as `block` does, then remove it from the balancer."""
        result = await self.block(instance)
        member = self._members.pop(instance, None)
        if member is not None:  # not removed by another deregister meanwhile
            self._order.remove(member)
            if member.task is not None:
                member.task.cancel()
            self._notify()
        return result

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Split requests between target groups by these whole-number weights (a group left
        out or at 0 gets none); a request goes to another weighted group only when its own
        has no instance serving. Takes effect from the next request."""
        for group, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise TrafficError(
                    f"weight of target group {group!r} must be a whole number of 0 or more, "
                    f"not {weight!r}"
                )
        if not any(weights.values()):
            raise TrafficError("at least one target group needs a weight above 0")
        self._weights = _WeightedRoundRobin(dict(weights))
        self._notify()

    def update_settings(self, settings: TrafficSettings) -> None:
        """New health-check and wait settings, from the next check and wait on; each
        instance's health so far is kept."""
        self.settings = settings
        for member in self._order:
            member.counter.check = self._check_of(member.group)

    def set_health_check(self, group: str, check: HealthCheck) -> None:
        """Target group `group` gets its own health check (as each AWS target group has), from
        its members' next check on; the other groups keep theirs, or the settings' one."""
        self._checks[group] = check
        for member in self._order:
            if member.group == group:
                member.counter.check = check

    @property
    def weights(self) -> dict[str, int]:
        """The weights set by `set_weights` (empty: plain round robin over all instances)."""
        return dict(self._weights.given) if self._weights is not None else {}

    def served(self) -> dict[str, int]:
        """Requests answered per target group since the balancer started (kept when an
        instance leaves), to measure how the weights were honoured."""
        return dict(self._served)

    def groups(self) -> dict[str, str]:
        """Each instance's target group, by name."""
        return {m.target.name: m.group for m in self._order}

    async def states(self) -> dict[str, InstanceState]:
        return {
            m.target.name: InstanceState(
                m.target.name,
                m.service,
                Health.UNCHECKED if m.service is Service.OUT_OF_SERVICE else m.counter.health,
                len(m.upstreams),
                m.requests,
                m.counter.detail,
            )
            for m in self._order
        }

    # --- internals --------------------------------------------------------------------------

    def _member(self, name: str) -> _Member:
        try:
            return self._members[name]
        except KeyError:
            raise TrafficError(
                f"no instance {name!r} behind the built-in balancer; it has: "
                + ", ".join(self._members)
            ) from None

    def _check_of(self, group: str) -> HealthCheck:
        """The health check of target group `group`: its own, else the settings' one."""
        return self._checks.get(group, self.settings.health_check)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _notify(self) -> None:
        if self._waiting:  # nothing to wake (the usual case, per request): no new Event
            self._changed.set()
            self._changed = asyncio.Event()

    async def _until(self, predicate: Callable[[], bool], seconds: float) -> None:
        async def wait() -> None:
            self._waiting += 1
            try:
                while not predicate():
                    await self._changed.wait()
            finally:
                self._waiting -= 1

        if not predicate():
            await within(self.clock, seconds, wait())

    def _drop(self, member: _Member, up: _Upstream) -> None:
        up.close()
        member.upstreams.discard(up)
        self._notify()

    async def _check_loop(self, member: _Member) -> None:
        target = member.target
        while True:
            check = self._check_of(member.group)  # read afresh: settings may change
            if member.service is not Service.OUT_OF_SERVICE:
                epoch = member.epoch
                passed, detail = await probe(self.clock, target.host, target.port, check)
                if epoch == member.epoch and member.service is not Service.OUT_OF_SERVICE:
                    member.counter.record(passed, detail)
                    self._notify()
            member.wake.clear()
            sleep = asyncio.ensure_future(self.clock.sleep(check.interval_seconds))
            woken = asyncio.ensure_future(member.wake.wait())
            try:
                await asyncio.wait({sleep, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                woken.cancel()

    def _pick(self, avoid: set[_Member], groups: list[str] | None = None) -> _Member | None:
        """The next instance in service and healthy, round robin; with `groups`, from the
        first of them that has one (round robin within each group)."""
        if groups is None:
            count = len(self._order)
            for i in range(count):
                member = self._order[(self._next + i) % count]
                if member.serving and member not in avoid:
                    self._next = (self._next + i + 1) % count
                    return member
            return None
        for group in groups:
            members = [m for m in self._order if m.group == group]
            start = self._next_in.get(group, 0)
            for i in range(len(members)):
                member = members[(start + i) % len(members)]
                if member.serving and member not in avoid:
                    self._next_in[group] = (start + i + 1) % len(members)
                    return member
        return None

    async def _connect(
        self, avoid: set[_Member], groups: list[str] | None = None
    ) -> tuple[_Member, _Upstream] | None:
        """A new connection to the next healthy instance in service (in `groups`, in order,
        when given); instances refusing it are skipped (and left for health checks to judge).
        None when none is left."""
        connect_timeout = self._timeouts[0]
        while (member := self._pick(avoid, groups)) is not None:
            up = _Upstream()
            member.upstreams.add(up)  # counted from now: a drain waits for this request
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancellation
                # that arrives as the connection opens (a stop would then go unnoticed)
                async with asyncio.timeout(connect_timeout):
                    up.reader, up.writer = await asyncio.open_connection(
                        member.target.host, member.target.port, limit=http1.MAX_HEAD_BYTES
                    )
            except (OSError, TimeoutError):
                self._drop(member, up)
                avoid.add(member)
                continue
            if up.closed:  # cut by a block while connecting
                if up.writer is None:  # pragma: no cover - just set by open_connection above
                    raise RuntimeError("the upstream connection has no writer")
                up.writer.transport.abort()
                avoid.add(member)
                continue
            return member, up
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closing or task is None:
            writer.transport.abort()
            return
        self._clients[task] = writer
        task.add_done_callback(self._clients.pop)
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if isinstance(peer, tuple) else "unknown"
        member: _Member | None = None
        up: _Upstream | None = None
        parked: dict[str, tuple[_Member, _Upstream]] = {}  # idle upstreams in other groups
        idle = _IdleWatch(writer.transport, self._timeouts[1])
        try:
            while not self._closing:
                idle.waiting()
                try:
                    head = await http1.read_head(reader)
                except (http1.BadMessage, asyncio.IncompleteReadError):
                    if not idle.fired:  # else a request head begun, then left idle: just close
                        writer.write(_error(400, "Bad request"))
                    break
                if head is None:
                    break
                idle.serving()
                try:
                    if not head.first[2].startswith("HTTP/1."):
                        raise http1.BadMessage("not HTTP/1.x")
                    framing = http1.request_framing(head)
                except http1.BadMessage:
                    writer.write(_error(400, "Bad request"))
                    break
                groups = self._weights.pick() if self._weights is not None else None
                if groups and (member is None or member.group != groups[0]):
                    # This request goes to another target group: keep the upstream connection
                    # for this client's next request to its group, use one kept for this one.
                    if member is not None and up is not None:
                        if member.group in parked:
                            self._drop(*parked.pop(member.group))
                        parked[member.group] = (member, up)
                    member, up = parked.pop(groups[0], (None, None))
                if up is not None and (up.closed or member is None or not member.serving):
                    if member is not None:
                        self._drop(member, up)
                    up = None
                keep, member, up = await self._forward(
                    head, framing, reader, writer, client_ip, member, up, groups
                )
                if not keep:
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError, http1.BadMessage):
            pass  # the client or the instance went away mid-message: nothing to answer
        finally:
            idle.cancel()
            if member is not None and up is not None:
                self._drop(member, up)
            for kept in parked.values():
                self._drop(*kept)
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()

    async def _forward(
        self,
        head: http1.Head,
        framing: http1.Framing,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_ip: str,
        member: _Member | None,
        up: _Upstream | None,
        groups: list[str] | None = None,
    ) -> tuple[bool, _Member | None, _Upstream | None]:
        """Send one request to an instance (of the first of `groups` with one serving, when
        weighted) and its response back. Returns whether the client connection stays open, and
        the upstream connection kept for its next request."""
        avoid: set[_Member] = set()
        while True:
            if up is None:
                chosen = await self._connect(avoid, groups)
                if chosen is None:
                    if avoid:
                        writer.write(_error(502, "Bad gateway: no instance answered"))
                    else:
                        writer.write(_error(503, "Service unavailable: no instance in service"))
                    return False, None, None
                member, up = chosen
            assert member is not None
            up.busy = True
            try:
                keep, up_keep = await self._exchange(head, framing, reader, writer, client_ip, up)
            except _Failed as failure:
                self._drop(member, up)
                if failure.retry:  # a reused connection the instance had closed: try afresh
                    up = None
                    continue
                writer.write(_error(502, f"Bad gateway: {failure}"))
                return False, None, None
            member.requests += 1
            self._served[member.group] = self._served.get(member.group, 0) + 1
            up.busy = False
            up.reused = True
            if not up_keep or not member.serving:
                self._drop(member, up)
                up = None
            else:
                self._notify()
            return keep and not self._closing, member, up

    async def _exchange(
        self,
        head: http1.Head,
        framing: http1.Framing,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_ip: str,
        up: _Upstream,
    ) -> tuple[bool, bool]:
        assert up.reader is not None and up.writer is not None
        method, _, version = head.first
        upgrade = "upgrade" in head.tokens("connection") and head.get("upgrade") is not None
        headers = [
            (k, v) for k, v in http1.forwarded_headers(head) if k.lower() != "x-forwarded-for"
        ]
        prior = head.get("x-forwarded-for")
        headers.append(("X-Forwarded-For", f"{prior}, {client_ip}" if prior else client_ip))
        if framing[0] == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        if upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", head.get("upgrade") or "")]
        sent_response = False
        body: asyncio.Task | None = None
        try:
            up.writer.write(http1.encode_head(head.first, headers))
            if framing[0] != "none":
                body = asyncio.ensure_future(http1.copy_body(reader, up.writer, framing))
            else:
                await up.writer.drain()
            while True:
                try:
                    async with asyncio.timeout(self._timeouts[2]):
                        answer = await http1.read_head(up.reader)
                except TimeoutError:
                    raise _Failed(f"no answer within {self._timeouts[2]:g} s") from None
                if answer is None:
                    retry = up.reused and framing[0] == "none" and method in IDEMPOTENT
                    raise _Failed("the instance closed the connection", retry=retry)
                status_text = answer.first[1]
                if not status_text.isdigit():
                    raise _Failed(f"bad status line {' '.join(answer.first)[:60]!r}")
                status = int(status_text)
                if 100 <= status < 200 and status != 101:
                    writer.write(http1.encode_head(answer.first, list(answer.headers)))
                    continue
                break
            reply_framing = http1.response_framing(method, status, answer)
            up_keep = (
                http1.keeps_alive(answer, answer.first[0])
                and reply_framing[0] != "close"
                and status != 101
            )
            keep = http1.keeps_alive(head, version) and reply_framing[0] != "close"
            out = http1.forwarded_headers(answer)
            if reply_framing[0] == "chunked":
                out.append(("Transfer-Encoding", "chunked"))
            if status == 101:
                out += [("Connection", "Upgrade"), ("Upgrade", answer.get("upgrade") or "")]
            elif not keep:
                out.append(("Connection", "close"))
            elif version == "HTTP/1.0":
                out.append(("Connection", "keep-alive"))
            response_head = http1.encode_head(answer.first, out)
            if reply_framing[0] == "length" and reply_framing[1] <= http1.COPY_CHUNK:
                # A small body goes out with its head in one write (one packet, one wake-up).
                small_body = await up.reader.readexactly(reply_framing[1])
                sent_response = True
                writer.write(response_head + small_body)
            else:
                sent_response = True
                writer.write(response_head)
                if status == 101:
                    await self._tunnel(reader, writer, up)
                    return False, False
                await http1.copy_body(up.reader, writer, reply_framing)
            await writer.drain()
            if body is not None and not body.done():
                body.cancel()  # answered before the request body ended: neither side can go on
                keep = up_keep = False
            elif body is not None:
                body.result()
            return keep, up_keep
        except (ConnectionError, OSError, asyncio.IncompleteReadError, http1.BadMessage) as error:
            if sent_response:
                raise
            raise _Failed(f"the instance connection failed: {error.__class__.__name__}") from None
        finally:
            if body is not None and not body.done():
                body.cancel()

    async def _tunnel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: _Upstream
    ) -> None:
        """After 101 Switching Protocols: bytes both ways until either side closes."""
        assert up.reader is not None and up.writer is not None

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(http1.COPY_CHUNK):
                dst.write(data)
                await dst.drain()

        tasks = [
            asyncio.ensure_future(pump(reader, up.writer)),
            asyncio.ensure_future(pump(up.reader, writer)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _error(status: int, text: str) -> bytes:
    reason = {400: "Bad Request", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    body = (text + "\n").encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body

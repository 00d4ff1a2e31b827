"""The built-in demo workspace `deploydeck` opens when there is no deploydeck.yml here.

Local instances in deployment groups of application `web` (`fleet`: 8 instances, HalfAtATime
with automatic rollback; `canary`: 4 instances, OneAtATime; `shop`: 4 behind the built-in load
balancer, with a trickle of requests while the console is open; `shop-bg`: 2, blue/green), the
sample web app's revisions registered, and one custom config. On first run every group
gets web-v1 (shop-bg's first deployment makes its green fleet and is continued past its
waits), so the demo starts from a running fleet with something to roll back to. Each instance
serves the sample app on its own port; hooks then pause a moment (DEMO_HOOK_DELAY) so a
deployment can be watched and stopped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import os
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import yaml

from engine.api import GROUP_TIME_SCALE, CreateDeploymentRequest, Engine, EngineError, StoreError
from engine.functions import FunctionGateway, FunctionRegistry
from engine.model import Status
from engine.services import ServiceError, TaskDefinitions, stop_services
from engine.workspace import Workspace, WorkspaceError, load_workspace

SAMPLES = Path(__file__).resolve().parent.parent / "sample_revisions"
DEMO_REVISIONS = (
    ("web-v1", "the sample web app, version 1"),
    ("web-v2", "version 2: adds a changelog page"),
    ("web-broken", "installs, then fails ValidateService"),
)
FLEET_SIZE = 8
CANARY_SIZE = 4
HOOK_DELAY_SECONDS = "3"


def demo_home() -> Path:
    explicit = os.environ.get("DEPLOYDECK_DEMO_HOME")
    if explicit:
        return Path(explicit)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "deploydeck" / "demo"


def _ports_free(start: int, count: int) -> bool:
    for port in range(start, start + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _first_port() -> int:
    """Where the demo's search for free ports starts: DEPLOYDECK_DEMO_FIRST_PORT, else 8101
    (two demos set up at once, as parallel tests do, need ranges of their own)."""
    given = os.environ.get("DEPLOYDECK_DEMO_FIRST_PORT", "8101")
    if not given.isdigit() or not 1024 <= int(given) <= 60000:
        raise DemoSetupError(
            f"DEPLOYDECK_DEMO_FIRST_PORT={given!r} is not a port from 1024 to 60000: "
            "unset it or give one such as 8101"
        )
    return int(given)


def _free_port_range(count: int) -> int:
    first = _first_port()
    for start in range(first, 65536 - count, count):
        if _ports_free(start, count):
            return start
    raise DemoSetupError(f"no {count} free local ports in a row from port {first} on")


def demo_document(base_port: int, hook_delay: str = HOOK_DELAY_SECONDS) -> dict:
    instances = {}
    names = [f"web-{i}" for i in range(1, FLEET_SIZE + 1)] + [
        f"canary-{i}" for i in range(1, CANARY_SIZE + 1)
    ]
    for offset, name in enumerate(names):
        instances[name] = {
            "tags": {"role": "canary" if name.startswith("canary") else "web"},
            "environment": {
                "WEB_PORT": str(base_port + offset),
                "DEMO_HOOK_DELAY": hook_delay,
            },
        }
    rollback = {"enabled": True, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"]}
    document = {
        "settings": {"kill_grace_seconds": 3},
        "applications": {
            "web": {
                "deployment_groups": {
                    "fleet": {
                        "deployment_config": "CodeDeployDefault.HalfAtATime",
                        "tag_filters": [{"key": "role", "value": "web"}],
                        "auto_rollback": rollback,
                    },
                    "canary": {
                        "deployment_config": "CodeDeployDefault.OneAtATime",
                        "tag_filters": [{"key": "role", "value": "canary"}],
                        "auto_rollback": rollback,
                    },
                }
            },
            **function_applications(
                base_port + FLEET_SIZE + CANARY_SIZE + TRAFFIC_PORTS + SERVICE_PORTS
            ),  # its gateway, after the service's listeners
            **service_applications(base_port + FLEET_SIZE + CANARY_SIZE + TRAFFIC_PORTS),
        },
        "instances": instances,
        "deployment_configs": {
            "QuarterAtATime": {
                "compute_platform": "Server",
                "minimum_healthy_hosts": {"type": "FLEET_PERCENT", "value": 75},
            }
        },
    }
    add_traffic_groups(document, base_port + FLEET_SIZE + CANARY_SIZE, hook_delay, rollback)
    return document


HEADER = """\
# deploydeck's built-in demo workspace, written on first run.
# Application `web` has deployment groups of local instances (folders under
# .deploydeck/instances): `fleet` (8, HalfAtATime) and `canary` (4, OneAtATime); `shop` (4,
# HalfAtATime) behind deploydeck's built-in load balancer, which the console sends a steady
# trickle of requests while it is open; `shop-bg` (2), the same behind a balancer, blue/green.
# Each instance serves the sample web app (sample_revisions/web-*) on its own WEB_PORT. Edit freely;
# `deploydeck reset-demo` ends its web servers and removes this folder, to start over.
"""


class DemoSetupError(Exception):
    """The demo workspace could not be made; the message says why and what to do."""


def ensure_demo_workspace(home: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """The demo's deploydeck.yml; on first use it is created, the sample revisions registered
    and web-v1 deployed to both groups (hooks without pauses, so it takes a few seconds).

    A setup that did not finish (it failed, or was interrupted) is removed and started over,
    with whatever its deployments left running; a folder that is not a demo is never touched.
    """
    home = home or demo_home()
    path = home / "deploydeck.yml"
    if path.exists():
        return path
    setup = path.with_suffix(".setup.yml")
    if setup.exists():
        say(f"The demo setup in {home} did not finish last time; starting it over")
        end_demo_processes(home)
        shutil.rmtree(home)
    elif home.exists() and any(home.iterdir()):
        raise DemoSetupError(
            f"{home} is not empty and holds no demo workspace; set DEPLOYDECK_DEMO_HOME to an "
            "empty or new folder, or open a workspace with --workspace"
        )
    home.mkdir(parents=True, exist_ok=True)
    count = FLEET_SIZE + CANARY_SIZE + TRAFFIC_SIZE + BLUE_GREEN_SIZE
    say(f"Setting up the demo workspace in {home} (first run): {count} local instances, web-v1")
    base = _free_port_range(FLEET_SIZE + CANARY_SIZE + TRAFFIC_PORTS + SERVICE_PORTS + 1)
    setup.write_text(HEADER + yaml.safe_dump(demo_document(base, "0"), sort_keys=False))
    asyncio.run(_first_deployments(setup))
    ensure_demo_functions(load_workspace(setup).unwrap().state_dir)
    partial = path.with_suffix(".partial")
    partial.write_text(HEADER + yaml.safe_dump(demo_document(base), sort_keys=False))
    load_workspace(partial).unwrap()
    partial.rename(path)
    setup.unlink()
    return path


def _is_demo(home: Path) -> bool:
    """`home` holds a demo (or its unfinished setup), or nothing at all."""
    workspace = home / "deploydeck.yml"
    if (home / "deploydeck.setup.yml").exists() or not any(home.iterdir()):
        return True
    try:
        with workspace.open(encoding="utf-8") as f:
            return f.readline() == HEADER.splitlines(keepends=True)[0]
    except OSError:
        return False


def reset_demo(home: Path | None = None, say: Callable[[str], None] = print) -> bool:
    """End every process running from the demo's folder (its web servers, a deployment's
    runner and hooks) and remove the folder, so the next start sets the demo up anew.

    Returns False when there was no demo. A folder that is not a demo is never touched.
    """
    home = home or demo_home()
    if not home.exists():
        say(f"There is no demo workspace at {home}: nothing to reset")
        return False
    if not home.is_dir() or not _is_demo(home):
        raise DemoSetupError(
            f"{home} holds no demo workspace (its deploydeck.yml was not written by the demo); "
            "nothing was removed. Set DEPLOYDECK_DEMO_HOME if your demo lives elsewhere"
        )
    holding = _consoles_on(home)
    if holding:
        raise DemoSetupError(
            f"deploydeck (pid {', '.join(map(str, holding))}) has the demo open; quit it, then "
            "run reset-demo again. Nothing was removed"
        )
    end_demo_processes(home)
    try:
        shutil.rmtree(home)
    except OSError as error:
        raise DemoSetupError(
            f"the demo's processes were ended, but {home} could not be removed: {error}"
        ) from error
    say(f"Ended the demo's processes and removed {home}; the next `deploydeck` sets it up again")
    return True


def _consoles_on(home: Path) -> list[int]:
    """Processes with the demo's state open that are not its runners: consoles to quit first."""
    state = str((home / ".deploydeck" / "state.db").resolve())
    skip = set(_demo_processes(home)) | {os.getpid()}
    found = []
    for process in psutil.process_iter():
        if process.pid in skip:
            continue
        try:
            files = process.open_files()
        except (psutil.Error, OSError):
            continue  # gone, or not ours to look at
        if any(f.path.startswith(state) for f in files):  # state.db and its -wal, -shm
            found.append(process.pid)
    return found


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _demo_processes(home: Path) -> list[int]:
    """The demo's own live processes: deployment runners on its workspace, and hooks with
    what they started (the web servers), whose DEPLOYDECK_FS_ROOT lies in its folder."""
    folder = str(home.resolve())
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DISK_SLEEP):
                continue  # gone, or blocked (reading its environment could block too)
            argv = process.cmdline()
            fs_root = process.environ().get("DEPLOYDECK_FS_ROOT", "")
            cwd = process.cwd()
        except (psutil.Error, OSError):
            continue
        workspace = ""
        if "engine.deployments.runner" in argv and "--workspace" in argv[:-1]:
            workspace = argv[argv.index("--workspace") + 1]
        elif "engine.traffic.host" in argv and "--folder" in argv[:-1]:  # a balancer's host
            workspace = argv[argv.index("--folder") + 1]
        if any(
            path and _within(os.path.realpath(os.path.join(cwd, path)), folder)
            for path in (workspace, fs_root)
        ):
            found.append(process.pid)
    return found


def end_demo_processes(home: Path, grace_seconds: float = 3.0) -> None:
    """End the demo's own processes (see _demo_processes): its services' hosts (with their
    tasks), then the rest: SIGTERM, then SIGKILL for any still there after the grace."""
    asyncio.run(stop_services(home / ".deploydeck" / "services"))

    def send(pids: list[int], sig: int) -> None:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    send(_demo_processes(home), signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while (left := _demo_processes(home)) and time.monotonic() < deadline:
        time.sleep(0.05)
    send(left, signal.SIGKILL)


async def _first_deployments(setup: Path) -> None:
    engine = Engine(load_workspace(setup).unwrap(), run_mode="inline")
    try:
        for name, description in DEMO_REVISIONS:
            engine.register_revision("web", SAMPLES / name, "directory", description)
        register_function_revisions(engine)
        await first_service_deployment(engine, setup)
        for group in ("fleet", "canary", *TRAFFIC_SETUP_GROUPS):
            created = await engine.create_deployment(
                CreateDeploymentRequest(
                    "web", group, revision_path=SAMPLES / "web-v1", description="demo setup"
                )
            )
            if group == BLUE_GREEN_GROUP:
                await continue_every_wait(engine, created.id)
            final = await engine.wait(created.id, timeout=300)
            if final.status != Status.SUCCEEDED:
                raise DemoSetupError(
                    f"the demo's first deployment {final.id} to {group} ended {final.status}: "
                    f"{final.error_message} (see `deploydeck get-deployment --workspace "
                    f"{setup} --deployment-id {final.id}`); the next start tries again"
                )
    finally:
        await engine.aclose()


# ---- the function: `hello` (versions 1 and 2, alias `live`) and the traffic it gets ----------

FUNCTION_APP = "hello"
FUNCTION_GROUP = "live"
FUNCTION, ALIAS = "hello", "live"
LAMBDA_SAMPLE = SAMPLES / "lambda-hello"
HOOK_FUNCTIONS = ("CodeDeployHook_hello_pre", "CodeDeployHook_hello_post")
LAMBDA_TIME_SCALE = 20  # a 5-minute canary takes 15 s, a 10-minute linear shift 30 s
TRICKLE_PER_SECOND = 10.0
# Application `faulty`: its canary moves alias `beta` to version 3, which fails every call,
# and its `errors` alarm, probing hello:beta through the console's gateway, stops it.
FAULTY_APP, FAULTY_GROUP, FAULTY_ALIAS = "faulty", "beta", "beta"
LAMBDA_FAULTY = SAMPLES / "lambda-hello-faulty"


def function_applications(gateway_port: int) -> dict:
    """Application `hello` (Lambda): group `live` shifts the function's alias, its waits run
    LAMBDA_TIME_SCALE times faster so every predefined Lambda config ends within a minute.
    Application `faulty` the same for alias `beta`, with an alarm on its error ratio
    through the console's gateway on `gateway_port` (evaluated every second of real time)."""
    errors = {
        "name": "errors",
        "type": "http",
        "url": f"http://127.0.0.1:{gateway_port}/urls/{FUNCTION}:{FAULTY_ALIAS}",
        "metric": "error_ratio",
        "threshold": 0.05,
        "window_seconds": LAMBDA_TIME_SCALE / 2,  # the last evaluation's probes only
        "probes": 10,
        "min_probes": 5,
    }
    group = {
        "deployment_config": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "target": {GROUP_TIME_SCALE: LAMBDA_TIME_SCALE, "hook_timeout_seconds": 600},
    }
    alarms = {"interval_seconds": LAMBDA_TIME_SCALE, "alarms": [errors]}
    return {
        FUNCTION_APP: {"compute_platform": "Lambda", "deployment_groups": {FUNCTION_GROUP: group}},
        FAULTY_APP: {
            "compute_platform": "Lambda",
            "deployment_groups": {FAULTY_GROUP: {**group, "alarm_configuration": alarms}},
        },
    }


def register_function_revisions(engine: Engine) -> None:
    engine.register_revision(
        FUNCTION_APP, LAMBDA_SAMPLE, "directory", "alias live of hello: version 1 -> 2"
    )
    engine.register_revision(
        FAULTY_APP, LAMBDA_FAULTY, "directory", "alias beta of hello: 2 -> 3, which fails"
    )


def ensure_demo_functions(state: Path) -> FunctionRegistry:
    """Function `hello` with versions 1, 2 and 3 (it fails every call) published, alias `live`
    on version 1 and `beta` on 2, and the hook functions its revision names; made once, kept
    as they are after (a deployment may have moved the aliases)."""
    registry = FunctionRegistry(state)
    made = set(registry.names())
    python = [sys.executable, "handler.py"]
    for hook in HOOK_FUNCTIONS:
        if hook not in made:
            registry.create(hook, LAMBDA_SAMPLE / "functions" / "hook", python)
    if FUNCTION not in made:
        for version in ("1", "2", "3"):
            registry.create(FUNCTION, LAMBDA_SAMPLE / "functions" / f"hello-v{version}", python)
            registry.publish_version(FUNCTION, f"the demo's version {version}")
        registry.set_alias(FUNCTION, ALIAS, "1")
        registry.set_alias(FUNCTION, FAULTY_ALIAS, "2")
    return registry


class DemoTraffic:
    """The demo's function traffic, owned by the console process: a gateway on the demo's
    state and a steady trickle of HTTP invokes of hello:live, on an event loop in a thread of
    their own. Leaving the `with` ends the trickle and the gateway with its workers."""

    def __init__(
        self,
        state: Path,
        service_port: int | None = None,
        per_second: float = TRICKLE_PER_SECOND,
        gateway_port: int = 0,
    ) -> None:
        self.registry = ensure_demo_functions(state)
        self.gateway_port = gateway_port  # where the alarm probes; 0 (or taken): any free port
        self.pause = 1.0 / per_second
        self.served: dict[str, int] = {}  # calls answered, per version
        # requests the service's production listener answered, per task definition revision
        # (its host serves it from the demo's setup on, between deployments too)
        self.service_served: dict[str, int] = {}
        self.service_url = f"http://127.0.0.1:{service_port}/" if service_port else None
        self.url = ""
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="demo-traffic", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> DemoTraffic:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise DemoSetupError(f"the demo's function gateway did not start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # said by __enter__, or lost with the console
            self._error = error
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        gateway = FunctionGateway(self.registry, port=self.gateway_port)
        try:
            await gateway.start()
        except OSError:  # another console on the demo serves that port (its alarm probes it)
            gateway = FunctionGateway(self.registry)
            await gateway.start()
        try:
            self.url = gateway.url
            self._started.set()
            target = f"{self.url}/2015-03-31/functions/{FUNCTION}/invocations?Qualifier={ALIAS}"
            while not self._stop.is_set():
                version = await asyncio.to_thread(_invoke, target)
                if version:
                    self.served[version] = self.served.get(version, 0) + 1
                if self.service_url is not None:
                    revision = await asyncio.to_thread(_get, self.service_url)
                    if revision:
                        self.service_served[revision] = self.service_served.get(revision, 0) + 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.pause)
        finally:
            await gateway.close()


def traffic_for(path: Path, workspace: Workspace) -> contextlib.AbstractContextManager[object]:
    """The demo's traffic when `path` is a demo workspace with its function; else nothing."""
    if FUNCTION_APP not in workspace.applications or not _is_demo(path.parent):
        return contextlib.nullcontext()
    port = None
    if SERVICE_APP in workspace.applications:
        port = (workspace.group(SERVICE_APP, SERVICE_GROUP).target or {}).get("production_port")
    gateway = 0  # the port the alarm of faulty/beta probes, when the demo has it
    if FAULTY_APP in workspace.applications:
        alarms = workspace.group(FAULTY_APP, FAULTY_GROUP).alarm_configuration
        urls = [getattr(a, "url", "") for a in (alarms.alarms if alarms else ())]
        gateway = next((urlsplit(u).port or 0 for u in urls if "/urls/" in u), 0)
    return DemoTraffic(
        workspace.state_dir, port if isinstance(port, int) else None, gateway_port=gateway
    )


def _get(url: str) -> str:
    """One GET of the service; the revision that answered ("" when nothing listens)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return str(response.headers.get("X-Revision", ""))
    except OSError:
        return ""


def _invoke(url: str) -> str:
    """One call; the version that ran ("" when refused: the trickle goes on)."""
    request = urllib.request.Request(url, data=b'{"name": "demo"}')
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return str(response.headers.get("X-Amz-Executed-Version", ""))
    except OSError:
        return ""


# ---- the service: `web` (task definitions web:1 and web:2, three tasks each) --------------

SERVICE_APP = "svc"
SERVICE_GROUP = "live"
SERVICE = "web"
SERVICE_PORTS = 2  # production and test listeners, after the instances' ports
ECS_SAMPLE = SAMPLES / "ecs-web"
SERVICE_HOOKS = (
    "CodeDeployHook_web_before_install",
    "CodeDeployHook_web_smoke_test",
    "CodeDeployHook_web_after_traffic",
)
TASKS = 3


def service_applications(port: int) -> dict:
    """Application `svc` (ECS): group `live` deploys service `web` behind a production listener
    on `port` and a test listener on the next, at LAMBDA_TIME_SCALE like the function."""
    return {
        SERVICE_APP: {
            "compute_platform": "ECS",
            "deployment_groups": {
                SERVICE_GROUP: {
                    "deployment_config": "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
                    "target": {
                        "service": SERVICE,
                        "production_port": port,
                        "test_port": port + 1,
                        "health_check": {"interval_seconds": 0.5, "healthy_threshold": 2},
                        "deregistration_delay_seconds": 2,
                        GROUP_TIME_SCALE: LAMBDA_TIME_SCALE,
                        "hook_timeout_seconds": 600,
                    },
                }
            },
        }
    }


def ensure_demo_services(state: Path) -> None:
    """Task definitions web:1 and web:2 (the sample task, three each) and the hook functions
    the ecs-web revision names; made once."""
    definitions = TaskDefinitions(state / "services")
    with contextlib.suppress(ServiceError):
        if definitions.get(SERVICE).revision >= 2:
            return
    for _ in range(2):
        definitions.register(
            SERVICE,
            [sys.executable, str(ECS_SAMPLE / "task" / "server.py")],
            container_port=8080,
            desired_count=TASKS,
            health_check_path="/healthz",
        )


def _service_hooks(state: Path) -> None:
    registry = FunctionRegistry(state)
    made = set(registry.names())
    for hook in SERVICE_HOOKS:
        if hook not in made:
            registry.create(
                hook, LAMBDA_SAMPLE / "functions" / "hook", [sys.executable, "handler.py"]
            )


async def first_service_deployment(engine: Engine, setup: Path) -> None:
    """Service `web` starts on web:1 (its first deployment: all traffic at once), and the
    sample revision moving it to web:2 is registered."""
    state = engine.workspace.state_dir
    ensure_demo_services(state)
    _service_hooks(state)
    engine.register_revision(SERVICE_APP, ECS_SAMPLE, "directory", "service web: web:1 -> web:2")
    first = state / "demo" / "ecs-web-v1"  # the appspec of web:1, made for this setup
    first.mkdir(parents=True, exist_ok=True)
    appspec = (ECS_SAMPLE / "appspec.yaml").read_text().replace("web:2", "web:1")
    (first / "appspec.yaml").write_text(appspec.split("Hooks:")[0])
    created = await engine.create_deployment(
        CreateDeploymentRequest(
            SERVICE_APP,
            SERVICE_GROUP,
            revision_path=first,
            config_name="CodeDeployDefault.ECSAllAtOnce",
            description="demo setup",
        )
    )
    final = await engine.wait(created.id, timeout=300)
    if final.status != Status.SUCCEEDED:
        raise DemoSetupError(
            f"the demo's first deployment {final.id} of service {SERVICE} ended {final.status}: "
            f"{final.error_message}; the next start tries again"
        )


# ---- traffic control: a group behind the built-in balancer, a blue/green group -------------

TRAFFIC_GROUP = "shop"
TRAFFIC_SIZE = 4
BLUE_GREEN_GROUP = "shop-bg"
BLUE_GREEN_SIZE = 2
# shop's instances and balancer, shop-bg's instances and balancer
TRAFFIC_PORTS = TRAFFIC_SIZE + 1 + BLUE_GREEN_SIZE + 1
# Groups the first run deploys web-v1 to: shop-bg too, so its blue fleet serves v1 and a
# deployment of it has a revision to roll back to.
TRAFFIC_SETUP_GROUPS = (TRAFFIC_GROUP, BLUE_GREEN_GROUP)
# Small health-check timings, so BlockTraffic and AllowTraffic take seconds, not minutes.
DEMO_BALANCER = {
    "kind": "builtin",
    "port_env": "WEB_PORT",
    "health_check": {
        "path": "/version.txt",
        "interval_seconds": 0.5,
        "timeout_seconds": 2,
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
    },
    "deregistration_delay_seconds": 5,
    "allow_timeout_seconds": 60,
}
# Green waits in Ready until continued (the console's key or continue-deployment), and blue
# stays out of service a while after traffic moved, so the demo can be rolled back from there.
DEMO_BLUE_GREEN = {
    "deployment_ready_option": {"action_on_timeout": "STOP_DEPLOYMENT", "wait_time_in_minutes": 60},
    "green_fleet_provisioning_option": {"action": "COPY_AUTO_SCALING_GROUP"},
    "terminate_blue_instances_on_deployment_success": {
        "action": "TERMINATE",
        "termination_wait_time_in_minutes": 30,
    },
}
TRICKLE_EVERY_SECONDS = 0.25  # one request at a time, four a second: small and cheap
TRICKLE_KEPT = 20_000  # answers kept for the console's counts: over an hour's


def add_traffic_groups(
    document: dict, first_port: int, hook_delay: str, rollback: dict[str, object]
) -> None:
    """`shop` behind the built-in balancer (in-place with traffic control) and `shop-bg`
    (blue/green), each with its own instances and balancer port, added to the demo."""
    port = first_port
    groups = document["applications"]["web"]["deployment_groups"]
    for group, size, style in (
        (TRAFFIC_GROUP, TRAFFIC_SIZE, "IN_PLACE"),
        (BLUE_GREEN_GROUP, BLUE_GREEN_SIZE, "BLUE_GREEN"),
    ):
        for n in range(1, size + 1):
            document["instances"][f"{group}-{n}"] = {
                "tags": {"role": group},
                "environment": {"WEB_PORT": str(port), "DEMO_HOOK_DELAY": hook_delay},
            }
            port += 1
        groups[group] = {
            "deployment_config": "CodeDeployDefault.HalfAtATime",
            "tag_filters": [{"key": "role", "value": group}],
            "auto_rollback": rollback,
            "deployment_style": {
                "deployment_type": style,
                "deployment_option": "WITH_TRAFFIC_CONTROL",
            },
            "load_balancer": {**DEMO_BALANCER, "port": port},
        }
        if style == "BLUE_GREEN":
            groups[group]["blue_green"] = DEMO_BLUE_GREEN
        port += 1


async def continue_every_wait(engine: Engine, deployment_id: str) -> None:
    """Continue a blue/green deployment's ready and termination waits as each begins, until
    it ends (the demo's setup: nobody is there to press C)."""
    while not (deployment := engine.get_deployment(deployment_id)).terminal:
        info = deployment.blue_green
        if info is not None and info.wait_type:
            with contextlib.suppress(EngineError):  # the wait ended as we asked
                await engine.continue_deployment(deployment_id, info.wait_type)
        await asyncio.sleep(0.1)


def trickle_port(workspace: Workspace) -> int | None:
    """The port of the demo's `shop` balancer; None for a workspace that is not the demo."""
    if not _is_demo(workspace.path.parent):
        return None
    try:
        balancer = workspace.group("web", TRAFFIC_GROUP).load_balancer
    except WorkspaceError:  # a demo made before it had the group
        return None
    return balancer.port if balancer is not None else None


REFUSED = "refused"  # nothing listened on the balancer's port
FAILED = "failed: "  # + why: the balancer answered an error, dropped or timed out the request
TRICKLE_TIMEOUT_SECONDS = 10  # generous: a loaded machine is slow, not failing


@dataclass(frozen=True)
class TrickleCounts:
    """The trickle's answers over a span of time: by version served, failed, refused."""

    served: dict[str, int]
    failed: int
    refused: int
    last_failure: str = ""  # why the last failed request failed


@dataclass
class Trickle:
    """A steady trickle of requests through the demo's balancer, from a thread of the console
    process: one GET /version.txt every TRICKLE_EVERY_SECONDS, each answer kept with its time
    (the version served, FAILED or REFUSED). The balancer runs in its own host from the demo's
    setup on, between deployments too: a request is refused only when no instance is in
    service. `stop` ends it."""

    port: int
    group: tuple[str, str] = ("web", TRAFFIC_GROUP)
    answers: collections.deque[tuple[float, str]] = field(
        default_factory=lambda: collections.deque(maxlen=TRICKLE_KEPT)
    )
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Trickle:
        self._thread = threading.Thread(target=self._run, name="demo-trickle", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def served(self) -> dict[str, int]:
        return self.counts().served

    @property
    def refused(self) -> int:
        return self.counts().refused

    def counts(self, since: float = 0.0, until: float | None = None) -> TrickleCounts:
        """The answers from `since` to `until` (epoch seconds; None: until now)."""
        served: dict[str, int] = {}
        failed = refused = 0
        last_failure = ""
        for when, outcome in list(self.answers):
            if when < since or (until is not None and when > until):
                continue
            if outcome.startswith(FAILED):
                failed += 1
                last_failure = outcome.removeprefix(FAILED)
            elif outcome == REFUSED:
                refused += 1
            else:
                served[outcome] = served.get(outcome, 0) + 1
        return TrickleCounts(served, failed, refused, last_failure)

    def _run(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY_SECONDS):
            self.answers.append((time.time(), self._one()))

    def _one(self) -> str:
        try:
            connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=TRICKLE_TIMEOUT_SECONDS
            )
            try:
                connection.request("GET", "/version.txt")
                answer = connection.getresponse()
                body = answer.read().decode(errors="replace").strip()
            finally:
                connection.close()
        except ConnectionRefusedError:
            return REFUSED
        except TimeoutError:
            return f"{FAILED}no answer in {TRICKLE_TIMEOUT_SECONDS} s"
        except (OSError, http.client.HTTPException) as error:
            return f"{FAILED}{type(error).__name__}"
        if answer.status != 200 or not body:
            return f"{FAILED}HTTP {answer.status}"
        return body


@contextlib.contextmanager
def demo_trickle(workspace: Workspace) -> Iterator[Trickle | None]:
    """While the console runs on the demo: the trickle through its `shop` balancer, ended on
    exit (None for any other workspace)."""
    port = trickle_port(workspace)
    if port is not None:
        _start_balancer(workspace)
    trickle = Trickle(port).start() if port is not None else None
    try:
        yield trickle
    finally:
        if trickle is not None:
            trickle.stop()


def _start_balancer(workspace: Workspace) -> None:
    """The `shop` balancer's host, started unless it runs (after a reboot, a `balancer stop`);
    when it cannot start, the trickle counts refusals and the next deployment says why."""
    with contextlib.suppress(EngineError, StoreError):
        engine = Engine(workspace)
        try:
            asyncio.run(engine.start_balancer("web", TRAFFIC_GROUP))
        finally:
            engine.close()

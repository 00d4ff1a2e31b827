"""Fleet benchmark: one revision deployed to N local instances by deploydeck and by a shell script.

    .venv/bin/python -m bench.fleet [--sizes 20,200] [--configs all] [--repeat 3] [--json out.json]
    .venv/bin/python -m bench.fleet --quick                  # smoke run: --sizes 4 --repeat 1
    .venv/bin/python -m bench.fleet --sizes 200 --configs AllAtOnce --repeat 0 --profile p.prof

For each size and predefined Server config, both sides deploy the same bench revision (20 small
files, one short `#!/bin/sh` script per hook event) to their own fresh fleet: a warm-up
deployment of v1, then the measured deployment of v2, so ApplicationStop runs v1's script and
Install removes v1's files. deploydeck runs in a child process (`--child`: load the workspace,
`Engine(run_mode="inline")`, create the deployment, wait); the shell side is
bench/shell_baseline.sh with the config's batches. Each measured child gives wall time
(perf_counter), CPU time (user + sys of it and of everything it waited for, from os.wait4) and
peak memory (the largest resident set of any one process of the run, reported by GNU time, see
`measure`). Each measured run waits for a quiet machine first, and a repeat during which other
processes were busy is measured again. Sides alternate within the repeats; the table shows
medians, and deploydeck/shell ratios as the median of each repeat's ratio. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import json
import os
import platform
import pstats
import random
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
SHELL_BASELINE = Path(__file__).with_name("shell_baseline.sh")
# GNU time reports the peak RSS of the command it starts; see `measure` for why we need it.
GNU_TIME = "/usr/bin/time"

APPLICATION = "bench"
GROUP = "fleet"
GROUP_ID = f"{APPLICATION}.{GROUP}"  # what engine.deployments.fleet.group_id gives
CONFIGS = {
    "AllAtOnce": "CodeDeployDefault.AllAtOnce",
    "HalfAtATime": "CodeDeployDefault.HalfAtATime",
    "OneAtATime": "CodeDeployDefault.OneAtATime",
}
EVENTS = ("ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")
SIDES = ("deploydeck", "shell")
# The target: deploydeck within 2x of the shell at N=200 AllAtOnce.
TARGET_SIZE, TARGET_CONFIG, TARGET_RATIO = 200, "AllAtOnce", 2.0
QUIET_BUSY = 0.15  # a measured run starts once the CPUs are at most 15% busy...
QUIET_WAIT_SECONDS = 30.0  # ...or after this long
NOISE_LIMIT = 0.25  # a run during which other processes used > 1/4 CPU on average is redone

# ---- the bench revision ------------------------------------------------------------------------

# 20 static files in three folders, 0.1 to 6 KB each: {path under site/: size in KB}.
SITE_FILES = {
    "index.html": 4,
    "about.html": 3,
    "contact.html": 2,
    "version.txt": 0,
    **{f"css/{name}.css": 3 + i for i, name in enumerate(("site", "print", "theme", "grid"))},
    "css/forms.css": 2,
    **{f"js/{name}.js": 2 + i for i, name in enumerate(("app", "menu", "forms", "charts"))},
    "js/vendor.js": 6,
    **{f"img/icon-{n}.svg": 1 + n % 3 for n in range(1, 6)},
    "img/logo.svg": 4,
}

# Each hook prints a line and checks something real, with shell builtins only.
HOOK_CHECKS = {
    # cwd is the root of the revision the script belongs to (for ApplicationStop, v1's)
    "ApplicationStop": '[ -f appspec.yml ] && [ -f "hooks/$LIFECYCLE_EVENT.sh" ]',
    "BeforeInstall": "[ -f appspec.yml ] && [ -d site/css ]",
    "AfterInstall": '[ -f "$DEPLOYDECK_FS_ROOT/srv/app/index.html" ]',
    "ApplicationStart": 'echo "$DEPLOYMENT_ID {version}" > "$DEPLOYDECK_FS_ROOT/app.started"',
    "ValidateService": (
        'read -r found < "$DEPLOYDECK_FS_ROOT/srv/app/version.txt" && [ "$found" = "{version}" ]'
    ),
}
HOOK_SCRIPT = """\
#!/bin/sh
# {event} of the bench revision {version}: one line of output and one real check.
echo "$LIFECYCLE_EVENT {version} on $INSTANCE_NAME ($DEPLOYMENT_ID, $APPLICATION_NAME)"
{check}
"""


def file_content(path: str, size_kb: int, version: str) -> bytes:
    """Deterministic text of about `size_kb` KB that differs between versions."""
    if path == "version.txt":
        return f"{version}\n".encode()
    line = f"/* {path} of revision {version}: static content for the fleet benchmark */\n"
    return (line * (size_kb * 1024 // len(line) + 1)).encode()


def write_revision(folder: Path, version: str) -> Path:
    """The bench revision `version` in folder/version: files under /srv/app and five hooks."""
    root = folder / version
    appspec = {
        "version": 0.0,
        "os": "linux",
        "files": [{"source": "site", "destination": "/srv/app"}],
        "hooks": {e: [{"location": f"hooks/{e}.sh", "timeout": 60}] for e in EVENTS},
    }
    tree: dict[str, bytes] = {"appspec.yml": yaml.safe_dump(appspec, sort_keys=False).encode()}
    for path, size_kb in SITE_FILES.items():
        tree[f"site/{path}"] = file_content(path, size_kb, version)
    for event in EVENTS:
        check = HOOK_CHECKS[event].format(version=version)
        script = HOOK_SCRIPT.format(event=event, version=version, check=check)
        tree[f"hooks/{event}.sh"] = script.encode()
    for relative, content in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if relative.startswith("hooks/"):
            path.chmod(0o755)
    return root


# ---- the two sides -----------------------------------------------------------------------------


def instance_names(size: int) -> list[str]:
    return [f"i{n:03d}" for n in range(1, size + 1)]


def new_deployment_id() -> str:
    """An id shaped like deploydeck's (`d-` and nine capitals or digits), for the shell side."""
    return "d-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=9))


def batches(config: str, names: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """The batches deploydeck's scheduler runs for `config` when nothing fails."""
    from engine.configs import get_config, plan_deployment

    found = get_config(CONFIGS[config])
    assert found is not None
    plan = plan_deployment(found, names)
    if plan.start_problem is not None:
        raise SystemExit(f"{config} cannot deploy to {len(names)} instances: {plan.start_problem}")
    return plan.batches


@dataclass(frozen=True)
class Sample:
    """One measured deployment."""

    wall: float  # seconds from spawning the child to reaping it
    user: float  # CPU seconds of the child and of every process it waited for
    sys: float
    max_rss_kb: int  # largest resident set of any one process of the run
    deploy_seconds: float | None = None  # deploydeck only: create_deployment to wait, in-child
    busy_before: float | None = None  # how busy the CPUs were just before (0 to 1)
    other_cpu: float | None = None  # CPU seconds the rest of the machine used during the run
    context_switches: int = 0  # voluntary + involuntary, of the child and what it waited for

    @property
    def noisy(self) -> bool:
        """Other processes used more than NOISE_LIMIT of a CPU on average during the run."""
        return self.other_cpu is not None and self.other_cpu > NOISE_LIMIT * self.wall

    @property
    def cpu(self) -> float:
        return self.user + self.sys


class DeploydeckSide:
    """A workspace of `size` local instances; each deployment is a `--child` process."""

    name = "deploydeck"

    def __init__(self, folder: Path, size: int, config: str) -> None:
        self.folder = folder
        self.names = instance_names(size)
        folder.mkdir(parents=True)
        document = {
            "applications": {
                APPLICATION: {
                    "deployment_groups": {
                        GROUP: {
                            "deployment_config": CONFIGS[config],
                            "tag_filters": [{"key": "role", "value": "bench"}],
                        }
                    }
                }
            },
            "instances": {
                name: {"tags": {"role": "bench"}, "environment": {"INSTANCE_NAME": name}}
                for name in self.names
            },
        }
        self.workspace = folder / "deploydeck.yml"
        self.workspace.write_text(yaml.safe_dump(document, sort_keys=False))

    def site(self, name: str) -> Path:
        return self.folder / ".deploydeck" / "instances" / name / "fs" / "srv" / "app"

    def argv(self, revision: Path, profile: tuple[Path, str] | None = None) -> list[str]:
        argv = [sys.executable, "-m", "bench.fleet", "--child"]
        argv += ["--workspace", str(self.workspace), "--revision", str(revision)]
        if profile is not None:
            argv += ["--child-profile", str(profile[0]), "--profile-clock", profile[1]]
        return argv

    def deploy(
        self,
        revision: Path,
        log: Path,
        settle: bool = True,
        profile: tuple[Path, str] | None = None,
    ) -> Sample:
        sample, code = measure(self.argv(revision, profile), os.environ.copy(), log, settle)
        outcome = last_json_line(log)
        if code != 0 or outcome.get("status") != "Succeeded":
            raise RuntimeError(f"deploydeck deployment failed (exit {code}); see {log}")
        return replace(sample, deploy_seconds=outcome["seconds"])


class ShellSide:
    """A fleet folder of `size` instances for bench/shell_baseline.sh, with the config's batches."""

    name = "shell"

    def __init__(self, folder: Path, size: int, config: str) -> None:
        self.folder = folder
        self.names = instance_names(size)
        (folder / "instances").mkdir(parents=True)
        self.plan = folder / "plan.txt"
        self.plan.write_text("".join(" ".join(b) + "\n" for b in batches(config, self.names)))

    def site(self, name: str) -> Path:
        return self.folder / "instances" / name / "fs" / "srv" / "app"

    def deploy(self, revision: Path, log: Path, settle: bool = True) -> Sample:
        env = os.environ.copy()
        env.update(
            DEPLOYMENT_ID=new_deployment_id(),
            APPLICATION_NAME=APPLICATION,
            DEPLOYMENT_GROUP_NAME=GROUP,
            DEPLOYMENT_GROUP_ID=GROUP_ID,
        )
        argv = ["/bin/sh", str(SHELL_BASELINE), str(self.folder / "instances"), str(revision)]
        sample, code = measure([*argv, str(self.plan)], env, log, settle)
        if code != 0:
            raise RuntimeError(f"shell baseline failed (exit {code}); see {log}")
        return sample


Side = DeploydeckSide | ShellSide


def check_installed(side: Side, version: str) -> None:
    """Every instance has the revision's files, so both sides really did the work."""
    for name in side.names:
        site = side.site(name)
        installed = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
        if installed != sorted(SITE_FILES) or (site / "version.txt").read_text() != f"{version}\n":
            raise RuntimeError(f"{side.name}: {site} does not hold revision {version}")


# ---- measuring ---------------------------------------------------------------------------------


def measure(
    argv: list[str], env: dict[str, str], log: Path, settle: bool = True
) -> tuple[Sample, int]:
    """Run `argv` as a child of this process; its wall time, CPU time and peak RSS, exit code.

    CPU comes from os.wait4, which counts the child and every descendant it reaped. Peak RSS
    cannot: on Linux a child's ru_maxrss starts at the RSS of the process that spawned it (exec
    keeps the pre-exec high-water mark), so every child of this Python process would show at
    least its ~40 MB. GNU time, a ~1 MB C program, spawns the command instead and reports the
    command's own ru_maxrss. Without /usr/bin/time, wait4's figure is used (an upper bound).
    With `settle`, the run first waits for a quiet machine (wait_for_quiet); the CPU time the
    rest of the machine used meanwhile is recorded as `other_cpu`.
    """
    rss_file = log.with_suffix(".rss")
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), "--", *argv] if has_gnu_time() else argv
    os.sync()  # write back earlier runs' files now, not during this run
    busy = wait_for_quiet() if settle else None
    machine_before = busy_cpu_seconds()
    with log.open("wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(
            wrapped,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group, so an interrupt can end it all
        )
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:  # Ctrl-C: end the run too, or it writes on into removed folders
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            os.wait4(child.pid, 0)
            raise
        wall = time.perf_counter() - start
    machine_after = busy_cpu_seconds()
    child.returncode = code = os.waitstatus_to_exitcode(status)  # reaped: tell Popen
    max_rss = usage.ru_maxrss
    if has_gnu_time():
        # GNU time writes "Command exited with non-zero status N" first when the command fails.
        max_rss = int(rss_file.read_text().split()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    other = None
    if machine_before is not None and machine_after is not None:
        other = max(0.0, machine_after - machine_before - cpu)
    switches = usage.ru_nvcsw + usage.ru_nivcsw
    sample = Sample(wall, usage.ru_utime, usage.ru_stime, max_rss, context_switches=switches)
    return replace(sample, busy_before=busy, other_cpu=other), code


def busy_cpu_seconds() -> float | None:
    """CPU seconds all CPUs have been busy since boot (/proc/stat); None where unknown."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system ... steal
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet() -> float | None:
    """Wait until the CPUs are nearly idle (the machine may be shared), at most a while.
    Returns the busy fraction seen last, kept in the sample so noisy runs show in the JSON."""
    deadline = time.monotonic() + QUIET_WAIT_SECONDS
    cpus = os.cpu_count() or 1
    while True:
        before = busy_cpu_seconds()
        time.sleep(0.5)
        after = busy_cpu_seconds()
        if before is None or after is None:
            return None
        busy = (after - before) / 0.5 / cpus
        if busy <= QUIET_BUSY or time.monotonic() >= deadline:
            return busy


def has_gnu_time() -> bool:
    return os.access(GNU_TIME, os.X_OK)


def last_json_line(log: Path) -> dict[str, Any]:
    """The child's result: the last line of its output that is a JSON object."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


# ---- cases -------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    """All samples of one size and config, for both sides."""

    size: int
    config: str
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {s: [] for s in SIDES})

    def median(self, side: str, metric: str) -> float:
        return statistics.median(getattr(s, metric) for s in self.samples[side])

    def ratio(self, metric: str) -> float:
        """deploydeck/shell: the median of each repeat's ratio. The two sides of a repeat run
        back to back, so drift in the machine's speed between repeats cancels out."""
        return statistics.median(self.ratios(metric))

    def ratios(self, metric: str) -> list[float]:
        """Each repeat's deploydeck/shell ratio, in the order they ran."""
        pairs = zip(self.samples["deploydeck"], self.samples["shell"], strict=True)
        return [getattr(d, metric) / getattr(s, metric) for d, s in pairs]

    def ratio_of_medians(self, metric: str) -> float:
        return self.median("deploydeck", metric) / self.median("shell", metric)

    def to_json(self) -> dict[str, Any]:
        sides = {
            side: {
                "median": {
                    m: self.median(side, m) for m in ("wall", "cpu", "user", "sys", "max_rss_kb")
                },
                "samples": [
                    {**asdict(s), "cpu": s.cpu, "noisy": s.noisy} for s in self.samples[side]
                ],
            }
            for side in SIDES
        }
        deploy_seconds = [s.deploy_seconds for s in self.samples["deploydeck"]]
        sides["deploydeck"]["median"]["deploy_seconds"] = statistics.median(deploy_seconds)
        ratio = {m: self.ratio(m) for m in ("wall", "cpu")}
        of_medians = {m: self.ratio_of_medians(m) for m in ("wall", "cpu")}
        return {
            "size": self.size,
            "config": CONFIGS[self.config],
            **sides,
            "ratio": ratio,  # median of the per-repeat ratios (the table's)
            "ratios": {m: self.ratios(m) for m in ("wall", "cpu")},
            "ratio_of_medians": of_medians,
        }


@dataclass(frozen=True)
class RunOptions:
    """How to run each case: measured repeats, retries of a noisy one, keep the folders."""

    repeat: int
    retries: int
    keep: bool


def prepare(folder: Path, size: int, config: str, v1: Path) -> tuple[DeploydeckSide, ShellSide]:
    """Both fleets, each after its warm-up deployment of v1."""
    deploydeck = DeploydeckSide(folder / "deploydeck", size, config)
    shell = ShellSide(folder / "shell", size, config)
    for side in (deploydeck, shell):
        side.deploy(v1, folder / f"{side.name}-warmup.log", settle=False)
        check_installed(side, "v1")
    return deploydeck, shell


def run_case(
    work: Path,
    size: int,
    config: str,
    options: RunOptions,
    revisions: tuple[Path, Path],
    say: Callable[[str], None],
) -> CaseResult:
    """`repeat` measured second deployments per side, alternating which side goes first."""
    result = CaseResult(size, config)
    for index in range(options.repeat):
        first = "deploydeck" if index % 2 == 0 else "shell"
        for attempt in range(1, options.retries + 2):
            folder = work / f"{size}-{config}-{index + 1}-{attempt}"
            pair = measure_pair(folder, size, config, revisions, first)
            for side, sample in pair.items():  # in the order they ran
                say(
                    f"  N={size} {config} #{index + 1} {side:10} wall {sample.wall:7.2f} s  "
                    f"cpu {sample.cpu:7.2f} s  rss {sample.max_rss_kb / 1024:6.1f} MB  "
                    f"others {sample.other_cpu or 0:5.2f} cpu-s{'  NOISY' if sample.noisy else ''}"
                )
            if not options.keep:
                shutil.rmtree(folder)  # 200 instances x 2 deployments: do not pile them up
            noisy = any(s.noisy for s in pair.values())
            if not noisy or attempt > options.retries:
                break
            say("  other processes were busy during that run: measuring it again")
        for side, sample in pair.items():
            result.samples[side].append(sample)
    return result


def measure_pair(
    folder: Path, size: int, config: str, revisions: tuple[Path, Path], first: str
) -> dict[str, Sample]:
    """Fresh fleets, warm-ups, then each side's measured deployment of v2, `first` first."""
    deploydeck, shell = prepare(folder, size, config, revisions[0])
    sides: list[Side] = [deploydeck, shell] if first == "deploydeck" else [shell, deploydeck]
    samples = {}
    for side in sides:
        samples[side.name] = side.deploy(revisions[1], folder / f"{side.name}.log")
        check_installed(side, "v2")
    return samples


# ---- profiling ---------------------------------------------------------------------------------

# cProfile's clock: "wall" shows where the deployment waits (syscalls, fsync, the GIL), "cpu"
# (time.thread_time, per thread) where it computes.
PROFILE_CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def threads_path(out: Path) -> Path:
    """Where the executor threads' profile goes, next to the main thread's."""
    return out.with_name(out.stem + ".threads" + out.suffix)


def profile_case(
    work: Path, size: int, config: str, revisions: tuple[Path, Path], out: Path, clock: str
) -> None:
    """The measured deployment of one case again, its deploydeck child under cProfile."""
    folder = work / f"profile-{size}-{config}"
    deploydeck, _ = prepare(folder, size, config, revisions[0])
    log = folder / "deploydeck-profiled.log"
    deploydeck.deploy(revisions[1], log, profile=(out.resolve(), clock))
    shutil.rmtree(folder)


class ThreadProfiles:
    """A cProfile profiler in each worker thread of the event loop's default executor, where
    the agent's DownloadBundle and Install run (a profiler sees only the thread it runs in)."""

    def __init__(self, clock: str) -> None:
        self.clock = PROFILE_CLOCKS[clock]
        self.profiles: list[cProfile.Profile] = []

    def start(self) -> None:  # the executor's thread initializer
        profile = cProfile.Profile(self.clock)
        self.profiles.append(profile)
        profile.enable()

    def dump(self, out: Path) -> None:
        """Call once the threads have ended (asyncio.run shuts the default executor down)."""
        if self.profiles:
            pstats.Stats(*self.profiles).dump_stats(str(out))


# ---- the child: one deploydeck deployment ------------------------------------------------------


async def child_deploy(
    workspace_path: Path, revision: Path, executor: ThreadPoolExecutor | None
) -> dict[str, Any]:
    """What `deploydeck` does for one deployment: load, create, wait; inline, in this process."""
    from engine.api import CreateDeploymentRequest, Engine
    from engine.deployments.runner import use_pidfd_child_watcher
    from engine.workspace import load_workspace

    use_pidfd_child_watcher()  # as the runner process does
    if executor is not None:
        asyncio.get_running_loop().set_default_executor(executor)
    engine = Engine(load_workspace(workspace_path).unwrap(), run_mode="inline")
    try:
        started = time.perf_counter()
        request = CreateDeploymentRequest(APPLICATION, GROUP, revision_path=revision)
        created = await engine.create_deployment(request)
        final = await engine.wait(created.id)
        seconds = time.perf_counter() - started
    finally:
        await engine.aclose()
    return {
        "id": final.id,
        "status": final.status,
        "error": final.error_message,
        "seconds": seconds,
    }


def child_main(workspace: Path, revision: Path, profile: tuple[Path, str] | None) -> int:
    """One deployment; with `profile`, cProfile of the main thread to profile's path and of
    the executor threads to threads_path() of it."""
    if profile is None:
        outcome = asyncio.run(child_deploy(workspace, revision, None))
    else:
        out, clock = profile
        threads = ThreadProfiles(clock)
        executor = ThreadPoolExecutor(initializer=threads.start)
        main = cProfile.Profile(PROFILE_CLOCKS[clock])
        main.enable()
        outcome = asyncio.run(child_deploy(workspace, revision, executor))
        main.disable()
        main.dump_stats(str(out))
        threads.dump(threads_path(out))
    print(json.dumps(outcome), flush=True)
    return 0 if outcome["status"] == "Succeeded" else 1


# ---- reporting ---------------------------------------------------------------------------------


def results_table(results: Sequence[CaseResult], repeat: int) -> Table:
    """One row per size and config: medians of both sides and deploydeck/shell ratios."""
    runs = f"{repeat} runs" if repeat > 1 else "1 run"
    title = f"deploydeck (dd) vs shell baseline (sh): medians of {runs}, seconds and MB"
    caption = "x: deploydeck/shell, median (lowest-highest) of the ratios of the run pairs"
    table = Table(title=title, caption=caption)
    columns = ("N", "config", "dd wall", "in engine", "sh wall", "wall x")
    columns += ("dd CPU", "sh CPU", "CPU x", "dd RSS", "sh RSS")
    for column in columns:
        table.add_column(column, justify="left" if column == "config" else "right")
    for r in results:
        engine = statistics.median(s.deploy_seconds or 0.0 for s in r.samples["deploydeck"])
        table.add_row(
            str(r.size),
            r.config,
            f"{r.median('deploydeck', 'wall'):.2f}",
            f"{engine:.2f}",
            f"{r.median('shell', 'wall'):.2f}",
            ratio_cell(r, "wall"),
            f"{r.median('deploydeck', 'cpu'):.2f}",
            f"{r.median('shell', 'cpu'):.2f}",
            ratio_cell(r, "cpu"),
            f"{r.median('deploydeck', 'max_rss_kb') / 1024:.1f}",
            f"{r.median('shell', 'max_rss_kb') / 1024:.1f}",
        )
    return table


def ratio_cell(result: CaseResult, metric: str) -> str:
    """The median ratio, with the range when there are several runs: the machine's noise."""
    ratios = result.ratios(metric)
    cell = f"{statistics.median(ratios):.1f}"
    return cell + (f" ({min(ratios):.1f}-{max(ratios):.1f})" if len(ratios) > 1 else "")


def target_verdict(results: Sequence[CaseResult]) -> dict[str, Any] | None:
    """Whether deploydeck is within 2x of the shell at N=200 AllAtOnce, for wall and CPU."""
    for r in results:
        if r.size == TARGET_SIZE and r.config == TARGET_CONFIG:
            wall, cpu = r.ratio("wall"), r.ratio("cpu")
            return {
                "case": f"N={TARGET_SIZE} {CONFIGS[TARGET_CONFIG]}",
                "limit": TARGET_RATIO,
                "wall_ratio": wall,
                "cpu_ratio": cpu,
                "wall_met": wall <= TARGET_RATIO,
                "cpu_met": cpu <= TARGET_RATIO,
            }
    return None


def print_profile(out: Path, clock: str, top: int) -> None:
    """The top functions of both profiles, by cumulative and by own time."""
    for path, what in ((out, "main thread"), (threads_path(out), "executor threads")):
        if not path.exists():
            continue
        print(f"\n==== deploydeck child, {what}, {clock} clock: {path}")
        stats = pstats.Stats(str(path))
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description="deploydeck against a shell script doing the same deployment work.",
    )
    parser.add_argument("--sizes", default="20,200", help="fleet sizes, comma-separated")
    parser.add_argument(
        "--configs", default="all", help="all, or some of AllAtOnce,HalfAtATime,OneAtATime"
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per side and case")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="times a repeat is measured again when other processes were busy during it",
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: --sizes 4 --repeat 1")
    parser.add_argument(
        "--profile",
        type=Path,
        help="also profile deploydeck at the largest size and first config; pstats file here",
    )
    parser.add_argument(
        "--profile-clock",
        choices=sorted(PROFILE_CLOCKS),
        default="wall",
        help="cProfile clock: wall (where it waits) or cpu (where it computes)",
    )
    parser.add_argument("--top", type=int, default=20, help="functions shown by --profile")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", action="store_true", help=hidden)
    parser.add_argument("--workspace", type=Path, help=hidden)
    parser.add_argument("--revision", type=Path, help=hidden)
    parser.add_argument("--child-profile", type=Path, help=hidden)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = "4", 1
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    args.configs = [n.removeprefix("CodeDeployDefault.") for n in names]
    unknown = [n for n in args.configs if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {', '.join(unknown)}; use {', '.join(CONFIGS)} or all")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        profile = (args.child_profile, args.profile_clock) if args.child_profile else None
        return child_main(args.workspace, args.revision, profile)
    if not has_gnu_time():
        print(f"warning: no {GNU_TIME}; peak RSS includes this process's", file=sys.stderr)
    args.load_before = os.getloadavg()
    # SIGTERM (and SIGINT, also when started in the background) unwind like Ctrl-C: the running
    # child's process group is ended and the temporary folder removed.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, interrupted)
    work = Path(tempfile.mkdtemp(prefix="deploydeck-bench-", dir="/tmp"))
    try:
        run(work, args)
    except KeyboardInterrupt as stop:
        print(f"interrupted ({stop}); nothing was reported", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run(work: Path, args: argparse.Namespace) -> None:
    """Every case, the report, then the profile if asked for."""
    say = lambda line: print(line, flush=True)  # noqa: E731
    revisions = (write_revision(work / "rev", "v1"), write_revision(work / "rev", "v2"))
    options = RunOptions(args.repeat, args.retries, args.keep)
    results = []
    for size in args.sizes:
        for config in args.configs:
            if args.repeat > 0:
                say(f"N={size} {CONFIGS[config]}")
                results.append(run_case(work, size, config, options, revisions, say))
    report(results, args)
    if args.profile:
        size, config = max(args.sizes), args.configs[0]
        say(f"profiling deploydeck at N={size} {CONFIGS[config]}")
        profile_case(work, size, config, revisions, args.profile, args.profile_clock)
        print_profile(args.profile, args.profile_clock, args.top)


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def report(results: Sequence[CaseResult], args: argparse.Namespace) -> None:
    """The table, the verdict on the target, and the JSON file when asked for."""
    if not results:
        return
    console = Console(width=None if sys.stdout.isatty() else 130)
    console.print(results_table(results, args.repeat))
    verdict = target_verdict(results)
    if verdict is not None:
        console.print(
            f"target (deploydeck within {verdict['limit']:g}x of the shell at {verdict['case']}): "
            f"wall {verdict['wall_ratio']:.2f}x {'met' if verdict['wall_met'] else 'NOT met'}, "
            f"CPU {verdict['cpu_ratio']:.2f}x {'met' if verdict['cpu_met'] else 'NOT met'}"
        )
    if args.json:
        document = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "repeat": args.repeat,
            "load_average": {"before": args.load_before, "after": os.getloadavg()},
            "peak_rss_by": "GNU time" if has_gnu_time() else "os.wait4 (upper bound)",
            "results": [r.to_json() for r in results],
            "target": verdict,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())

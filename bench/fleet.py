"""Fleet benchmark: one revision deployed to N local instances by deploydeck and by a shell script.

    .venv/bin/python -m bench.fleet                     # N = 20, 200, 1000, 3 runs each
    .venv/bin/python -m bench.fleet --quick             # N = 4, 20, 1 run each (a minute)
    .venv/bin/python -m bench.fleet --sizes 200 --repeat 5 --json out.json
    .venv/bin/python -m bench.fleet --sizes 200 --repeat 0 --py-spy /tmp/fleet.raw

For each size, both sides deploy the same bench revision (50 files of about 4 KB, five one-line
`#!/bin/sh` hooks) with CodeDeployDefault.AllAtOnce to their own fresh fleet of local instances:
a warm-up deployment of v1, then the measured deployment of v2, so ApplicationStop runs v1's
script and Install removes v1's files. deploydeck's side is the program a user runs,
`deploydeck create-deployment --wait`, measured with the runner it starts (see bench/measure.py);
the shell side is bench/shell_baseline.sh, which also prunes old revisions to the same
max_revisions. Sides alternate which goes first; the table shows, per size, medians and the
deploydeck/shell ratios (median, lowest-highest) with the machine's load average during the
runs, so growth with N shows at a glance. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from bench.measure import (
    Sample,
    catch_signals,
    compile_checkout,
    deploydeck_command,
    has_gnu_time,
    measure,
)

SHELL_BASELINE = Path(__file__).with_name("shell_baseline.sh")

APPLICATION = "bench"
GROUP = "fleet"
GROUP_ID = f"{APPLICATION}.{GROUP}"  # what engine.deployments.fleet.group_id gives
CONFIGS = {
    "AllAtOnce": "CodeDeployDefault.AllAtOnce",
    "HalfAtATime": "CodeDeployDefault.HalfAtATime",
    "OneAtATime": "CodeDeployDefault.OneAtATime",
}
EVENTS = ("ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")
SIDES = ("deploydeck", "shell", "base")  # base: another checkout's deploydeck (--compare)
MAX_REVISIONS = 5  # both sides keep this many deployment folders per instance
OLD_REVISIONS = MAX_REVISIONS - 1  # older folders each instance starts with (add_old_revisions)
NOISE_LIMIT = 0.25  # a run during which other processes used > 1/4 CPU on average is redone

# ---- the bench revision ------------------------------------------------------------------------

# 50 static files of about 4 KB in site/ and four folders under it.
SITE_FILES = ["version.txt"] + [
    f"{folder}{name}-{n}.{ext}"
    for folder, name, ext, count in (
        ("", "page", "html", 13),
        ("css/", "style", "css", 9),
        ("js/", "module", "js", 9),
        ("img/", "icon", "svg", 9),
        ("data/", "table", "json", 9),
    )
    for n in range(1, count + 1)
]
assert len(SITE_FILES) == 50

# One line per hook: it prints a line and checks something real, with shell builtins only.
HOOK_LINES = {
    # cwd is the root of the revision the script belongs to (for ApplicationStop, v1's)
    "ApplicationStop": 'echo "$LIFECYCLE_EVENT {version} $INSTANCE_NAME" && [ -f appspec.yml ]',
    "BeforeInstall": 'echo "$LIFECYCLE_EVENT {version} $INSTANCE_NAME" && [ -d site/css ]',
    "AfterInstall": 'echo "$LIFECYCLE_EVENT {version}" && [ -d "$DEPLOYDECK_FS_ROOT/srv/app/js" ]',
    "ApplicationStart": 'echo "$DEPLOYMENT_ID {version}" > "$DEPLOYDECK_FS_ROOT/app.started"',
    "ValidateService": 'read -r v <"$DEPLOYDECK_FS_ROOT/srv/app/version.txt"; [ "$v" = {version} ]',
}


def file_content(path: str, version: str) -> bytes:
    """Deterministic text of about 4 KB that differs between versions."""
    if path == "version.txt":
        return f"{version}\n".encode()
    line = f"/* {path} of revision {version}: static content for the fleet benchmark */\n"
    return (line * (4096 // len(line) + 1)).encode()


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
    for path in SITE_FILES:
        tree[f"site/{path}"] = file_content(path, version)
    for event in EVENTS:
        line = HOOK_LINES[event].format(version=version)
        tree[f"hooks/{event}.sh"] = f"#!/bin/sh\n{line}\n".encode()
    for relative, content in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if relative.startswith("hooks/"):
            path.chmod(0o755)
    return root


# ---- the two sides -----------------------------------------------------------------------------


def instance_names(size: int) -> list[str]:
    return [f"i{n:04d}" for n in range(1, size + 1)]


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


def write_workspace(folder: Path, names: Sequence[str], config: str) -> Path:
    """A workspace (deploydeck.yml) of local instances, group `bench/fleet` with `config`."""
    folder.mkdir(parents=True)
    document = {
        "settings": {"max_revisions": MAX_REVISIONS},
        "applications": {
            APPLICATION: {
                "deployment_groups": {
                    GROUP: {
                        "deployment_config": config,
                        "tag_filters": [{"key": "role", "value": "bench"}],
                    }
                }
            }
        },
        "instances": {
            name: {"tags": {"role": "bench"}, "environment": {"INSTANCE_NAME": name}}
            for name in names
        },
    }
    workspace = folder / "deploydeck.yml"
    workspace.write_text(yaml.safe_dump(document, sort_keys=False))
    return workspace


def create_deployment_argv(workspace: Path, revision: Path) -> list[str]:
    """`deploydeck create-deployment --wait` of `revision` to bench/fleet, as a user types it."""
    return [
        *deploydeck_command(),
        "--workspace",
        str(workspace),
        "create-deployment",
        "--application-name",
        APPLICATION,
        "--deployment-group-name",
        GROUP,
        "--revision",
        str(revision),
        "--wait",
    ]


class DeploydeckSide:
    """A workspace of `size` local instances; each deployment is `deploydeck create-deployment
    --wait`, a whole process and the runner it starts."""

    def __init__(self, folder: Path, size: int, config: str, code: Path | None = None) -> None:
        self.name = "deploydeck" if code is None else "base"
        self.code = code  # another checkout whose engine and CLI run instead of this one's
        self.folder = folder
        self.names = instance_names(size)
        self.workspace = write_workspace(folder, self.names, CONFIGS[config])

    def site(self, name: str) -> Path:
        return self.folder / ".deploydeck" / "instances" / name / "fs" / "srv" / "app"

    def group_dir(self, name: str) -> Path:
        return self.folder / ".deploydeck" / "instances" / name / "agent" / GROUP_ID

    def argv(self, revision: Path) -> list[str]:
        return create_deployment_argv(self.workspace, revision)

    def deploy(self, revision: Path, log: Path, settle: float = 0.0) -> Sample:
        env = None if self.code is None else {**os.environ, "PYTHONPATH": str(self.code)}
        sample, code = measure(self.argv(revision), env, log, settle, cwd=self.folder)
        if code != 0:
            raise RuntimeError(f"deploydeck deployment failed (exit {code}); see {log}")
        return sample


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

    def group_dir(self, name: str) -> Path:
        return self.folder / "instances" / name / "agent" / GROUP_ID

    def deploy(self, revision: Path, log: Path, settle: float = 0.0) -> Sample:
        env = os.environ.copy()
        env.update(
            DEPLOYMENT_ID=new_deployment_id(),
            APPLICATION_NAME=APPLICATION,
            DEPLOYMENT_GROUP_NAME=GROUP,
            DEPLOYMENT_GROUP_ID=GROUP_ID,
            MAX_REVISIONS=str(MAX_REVISIONS),
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


def last_json_line(log: Path) -> dict[str, Any]:
    """A child's result (bench.ssh): the last line of its output that is a JSON object."""
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

    def ratios(self, metric: str) -> list[float]:
        """Each repeat's deploydeck/shell ratio, in the order they ran. The two sides of a
        repeat run back to back, so drift in the machine's speed between repeats cancels out."""
        pairs = zip(self.samples["deploydeck"], self.samples["shell"], strict=True)
        return [getattr(d, metric) / getattr(s, metric) for d, s in pairs]

    def base_ratios(self, metric: str) -> list[float]:
        """Each repeat's deploydeck/base ratio (--compare): this checkout against the other."""
        pairs = zip(self.samples["deploydeck"], self.samples["base"], strict=True)
        return [getattr(d, metric) / getattr(b, metric) for d, b in pairs]

    def loads(self) -> list[float]:
        """The 1-minute load averages seen at the start and end of every measured run."""
        every = [s for side in SIDES for s in self.samples[side]]
        return [x for s in every for x in (s.load_before, s.load_after)]

    def to_json(self) -> dict[str, Any]:
        metrics = ("wall", "cpu", "user", "sys", "max_rss_kb", "command_wall", "command_cpu")
        sides = {
            side: {
                "median": {m: self.median(side, m) for m in metrics},
                "samples": [
                    {**asdict(s), "cpu": s.cpu, "noisy": s.noisy(NOISE_LIMIT)}
                    for s in self.samples[side]
                ],
            }
            for side in SIDES
            if self.samples[side]
        }
        return {
            "size": self.size,
            "config": CONFIGS[self.config],
            **sides,
            "ratio": {m: statistics.median(self.ratios(m)) for m in ("wall", "cpu")},
            "ratios": {m: self.ratios(m) for m in ("wall", "cpu")},
            "load_average": {"min": min(self.loads()), "max": max(self.loads())},
        }


@dataclass(frozen=True)
class RunOptions:
    """How to run each case: measured repeats, retries of a noisy one, the wait for a quiet
    machine before each run, keep the folders."""

    repeat: int
    retries: int
    settle: float
    keep: bool
    compare: Path | None = None


def prepare(
    folder: Path, size: int, config: str, v1: Path, compare: Path | None = None
) -> list[Side]:
    """The fleets (deploydeck, shell, and base with `compare`), each after its warm-up
    deployment of v1 and with older deployment folders."""
    sides: list[Side] = [
        DeploydeckSide(folder / "deploydeck", size, config),
        ShellSide(folder / "shell", size, config),
    ]
    if compare is not None:
        sides.append(DeploydeckSide(folder / "base", size, config, compare))
    for side in sides:
        side.deploy(v1, folder / f"{side.name}-warmup.log")
        check_installed(side, "v1")
        add_old_revisions(side, v1)
    return sides


def add_old_revisions(side: Side, revision: Path) -> None:
    """OLD_REVISIONS older deployment folders per instance (a copy of the revision and a log,
    older than the warm-up's), as on a fleet deployed to for a while: with the warm-up's folder
    (the last successful install, always kept) the group then holds MAX_REVISIONS folders, so
    the measured deployment's retention removes the oldest one on each instance, on both sides."""
    for name in side.names:
        group = side.group_dir(name)
        for age in range(OLD_REVISIONS, 0, -1):
            old = group / f"d-OLD{age:06d}"
            shutil.copytree(revision, old / "deployment-archive", symlinks=True)
            (old / "logs").mkdir()
            (old / "logs" / "scripts.log").write_text("an older deployment\n")
            stamp = time.time() - 3600 * (age + 1)
            os.utime(old, (stamp, stamp))


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
        for attempt in range(1, options.retries + 2):
            folder = work / f"{size}-{config}-{index + 1}-{attempt}"
            pair = measure_pair(folder, size, config, revisions, index, options)
            for side, sample in pair.items():  # in the order they ran
                noisy = "  NOISY" if sample.noisy(NOISE_LIMIT) else ""
                say(
                    f"  N={size} #{index + 1} {side:10} wall {sample.wall:7.2f} s  "
                    f"cpu {sample.cpu:7.2f} s  rss {sample.max_rss_kb / 1024:6.1f} MB  "
                    f"load {sample.load_before:4.1f}-{sample.load_after:4.1f}  "
                    f"others {sample.other_cpu or 0:5.2f} cpu-s{noisy}"
                )
            if not options.keep:
                shutil.rmtree(folder)  # N instances x 2 deployments: do not pile them up
            noisy = any(s.noisy(NOISE_LIMIT) for s in pair.values())
            if not noisy or attempt > options.retries:
                break
            say("  other processes were busy during that run: measuring it again")
        for side, sample in pair.items():
            result.samples[side].append(sample)
    return result


def measure_pair(
    folder: Path,
    size: int,
    config: str,
    revisions: tuple[Path, Path],
    index: int,
    options: RunOptions,
) -> dict[str, Sample]:
    """Fresh fleets, warm-ups, then each side's measured deployment of v2, the side going
    first turning with the repeat's `index`."""
    sides = prepare(folder, size, config, revisions[0], options.compare)
    turn = index % len(sides)
    samples = {}
    for side in sides[turn:] + sides[:turn]:
        samples[side.name] = side.deploy(revisions[1], folder / f"{side.name}.log", options.settle)
        check_installed(side, "v2")
    return samples


# ---- profiling ---------------------------------------------------------------------------------


def profile_case(
    work: Path, size: int, config: str, revisions: tuple[Path, Path], out: Path, top: int
) -> None:
    """The measured deploydeck deployment of one case again, under py-spy (with the runner it
    starts), and its top functions per process and thread."""
    from bench import pyspy

    folder = work / f"profile-{size}-{config}"
    deploydeck = prepare(folder, size, config, revisions[0])[0]
    assert isinstance(deploydeck, DeploydeckSide)
    log = folder / "deploydeck-profiled.log"
    code = pyspy.record(deploydeck.argv(revisions[1]), out, log, cwd=deploydeck.folder)
    if code != 0:
        raise RuntimeError(f"the profiled deployment failed (exit {code}); see {log}")
    check_installed(deploydeck, "v2")
    shutil.rmtree(folder)
    pyspy.print_summary(out, top)


def strace_case(
    work: Path, size: int, config: str, revisions: tuple[Path, Path], out: Path
) -> None:
    """The measured deploydeck deployment of one case again, under `strace -c -f` (the command,
    its runner, the file workers and every hook): the system calls' counts and times to `out`."""
    import subprocess

    folder = work / f"strace-{size}-{config}"
    deploydeck = prepare(folder, size, config, revisions[0])[0]
    assert isinstance(deploydeck, DeploydeckSide)
    argv = ["strace", "-c", "-f", "-o", str(out), *deploydeck.argv(revisions[1])]
    with (folder / "deploydeck-straced.log").open("wb") as log:
        code = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT, cwd=deploydeck.folder)
    if code != 0:
        raise RuntimeError(f"the traced deployment failed (exit {code}); see {folder}")
    check_installed(deploydeck, "v2")
    shutil.rmtree(folder)
    print(out.read_text(), flush=True)


# ---- reporting ---------------------------------------------------------------------------------


def results_table(results: Sequence[CaseResult], repeat: int) -> Table:
    """One row per size (and config): medians of both sides, ratios, load average."""
    runs = f"{repeat} runs" if repeat > 1 else "1 run"
    title = f"deploydeck (dd) vs shell baseline (sh): medians of {runs}, seconds and MB"
    caption = (
        "x: deploydeck/shell, median (lowest-highest) of the ratios of the run pairs; "
        "load: 1-minute load average during the runs (lowest-highest)"
    )
    table = Table(title=title, caption=caption)
    columns: tuple[str, ...] = (
        "N",
        "config",
        "dd wall",
        "sh wall",
        "wall x",
        "dd CPU",
        "sh CPU",
        "CPU x",
    )
    columns += ("dd RSS", "sh RSS", "load")
    compared = any(r.samples["base"] for r in results)
    if compared:
        columns += ("base wall", "base CPU", "dd/base wall", "dd/base CPU")
    for column in columns:
        table.add_column(column, justify="left" if column == "config" else "right")
    for r in results:
        extra = []
        if compared:
            extra = [
                f"{r.median('base', 'wall'):.2f}",
                f"{r.median('base', 'cpu'):.2f}",
                ratio_text(r.base_ratios("wall")),
                ratio_text(r.base_ratios("cpu")),
            ]
        table.add_row(
            str(r.size),
            r.config,
            f"{r.median('deploydeck', 'wall'):.2f}",
            f"{r.median('shell', 'wall'):.2f}",
            ratio_cell(r, "wall"),
            f"{r.median('deploydeck', 'cpu'):.2f}",
            f"{r.median('shell', 'cpu'):.2f}",
            ratio_cell(r, "cpu"),
            f"{r.median('deploydeck', 'max_rss_kb') / 1024:.1f}",
            f"{r.median('shell', 'max_rss_kb') / 1024:.1f}",
            f"{min(r.loads()):.1f}-{max(r.loads()):.1f}",
            *extra,
        )
    return table


def ratio_cell(result: CaseResult, metric: str) -> str:
    """The median ratio, with the range when there are several runs: the machine's noise."""
    return ratio_text(result.ratios(metric))


def ratio_text(ratios: Sequence[float]) -> str:
    cell = f"{statistics.median(ratios):.2f}"
    return cell + (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else "")


def growth_line(results: Sequence[CaseResult]) -> str | None:
    """How the wall ratio moves from the smallest size to the largest, per config."""
    lines = []
    for config in dict.fromkeys(r.config for r in results):
        rows = sorted((r for r in results if r.config == config), key=lambda r: r.size)
        if len(rows) > 1:
            steps = " -> ".join(
                f"{statistics.median(r.ratios('wall')):.2f}x at {r.size}" for r in rows
            )
            lines.append(f"{config} wall ratio: {steps}")
    return "\n".join(lines) or None


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description="deploydeck against a shell script doing the same deployment work.",
    )
    parser.add_argument("--sizes", default="20,200,1000", help="fleet sizes, comma-separated")
    parser.add_argument(
        "--configs", default="AllAtOnce", help="all, or some of AllAtOnce,HalfAtATime,OneAtATime"
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per side and size")
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times a repeat is measured again when other processes were busy during it",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds each measured run waits, at most, for the CPUs to be quiet",
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: --sizes 4,20 --repeat 1, no waiting"
    )
    parser.add_argument(
        "--py-spy",
        dest="py_spy",
        type=Path,
        help="also profile deploydeck at the largest size with py-spy; raw stacks to this file",
    )
    parser.add_argument(
        "--strace",
        type=Path,
        help="also count deploydeck's system calls at the largest size (strace -c -f) to this file",
    )
    parser.add_argument("--top", type=int, default=15, help="functions shown per profile part")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--compare",
        type=Path,
        help="also run the deploydeck of this checkout (e.g. a `git archive` of main), as "
        "a third side measured in the same runs",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("/tmp"),
        help="where the temporary folder (fleets, revisions, logs) goes, e.g. /dev/shm",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat, args.retries, args.settle = "4,20", 1, 0, 0.0
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    args.configs = [n.removeprefix("CodeDeployDefault.") for n in names]
    unknown = [n for n in args.configs if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {', '.join(unknown)}; use {', '.join(CONFIGS)} or all")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not has_gnu_time():
        print("warning: no /usr/bin/time; peak RSS includes this process's", file=sys.stderr)
    args.load_before = os.getloadavg()
    compile_checkout()
    catch_signals()
    work = Path(tempfile.mkdtemp(prefix="deploydeck-bench-", dir=args.dir))
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
    options = RunOptions(args.repeat, args.retries, args.settle, args.keep, args.compare)
    results = []
    for size in args.sizes:
        for config in args.configs:
            if args.repeat > 0:
                say(f"N={size} {CONFIGS[config]}")
                results.append(run_case(work, size, config, options, revisions, say))
    report(results, args)
    if args.py_spy:
        size, config = max(args.sizes), args.configs[0]
        say(f"profiling deploydeck at N={size} {CONFIGS[config]} with py-spy")
        profile_case(work, size, config, revisions, args.py_spy, args.top)
    if args.strace:
        size, config = max(args.sizes), args.configs[0]
        say(f"counting deploydeck's system calls at N={size} {CONFIGS[config]} with strace")
        strace_case(work, size, config, revisions, args.strace)


def report(results: Sequence[CaseResult], args: argparse.Namespace) -> None:
    """The table, the ratio's growth with N, and the JSON file when asked for."""
    if not results:
        return
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(results_table(results, args.repeat))
    growth = growth_line(results)
    if growth:
        console.print(growth)
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
            "folder": str(args.dir),
            "peak_rss_by": "GNU time" if has_gnu_time() else "os.wait4 (upper bound)",
            "results": [r.to_json() for r in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())

"""SSH benchmark: one revision to N real sshd hosts on loopback, deploydeck against plain OpenSSH.

    .venv/bin/python -m bench.ssh                        # 20 hosts x 3 repeats, then 50 and 100
    .venv/bin/python -m bench.ssh --quick                # smoke run: 4 hosts, 1 repeat, no scaling
    .venv/bin/python -m bench.ssh --hosts 20 --repeat 5 --scale 50,100,150 --json out.json

Every host is its own sshd (tests/ssh/sshd.py: own port, host key, config, folders and HOME).
Both sides deploy bench/fleet.py's revision (50 files of about 4 KB, five one-line hooks) with
CodeDeployDefault.AllAtOnce: a warm-up deployment of v1, then the measured deployment of v2
(v1's ApplicationStop runs, v1's files are replaced). deploydeck runs in a child process
(`--child`: load the workspace, Engine(run_mode="inline"), create, wait); the baseline is
bench/ssh_baseline.sh: one ControlMaster connection per host, `tar | ssh` for the bundle and
one `ssh` per lifecycle step, all hosts in parallel. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.fleet import SITE_FILES, last_json_line, write_revision
from tests.ssh.sshd import SshFleet, SshHost, descendants, process_table

REPO = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).with_name("ssh_baseline.sh")
GNU_TIME = "/usr/bin/time"  # the peak RSS of the command it starts (see bench/README.md)
APPLICATION, GROUP = "bench", "fleet"
GROUP_ID = f"{APPLICATION}.{GROUP}"
CONFIG = "CodeDeployDefault.AllAtOnce"
SIDES = ("deploydeck", "openssh")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
QUIET_BUSY, QUIET_WAIT_SECONDS = 0.15, 30.0  # start a measured run on a quiet machine
NOISE_LIMIT = 0.25  # other processes used > 1/4 CPU on average: the run is measured again
FDS_PER_HOST = 12  # file descriptors a host costs: the controller's side of a connection...
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Sample:
    """One measured deployment to `hosts` hosts."""

    hosts: int
    wall: float  # spawning the controller (child) to reaping it
    cpu: float  # user + sys of the controller and everything it ran here (ssh, tar...)
    host_cpu: float  # user + sys of everything on the hosts: sshd, shells, agents, hooks
    max_rss_kb: int  # the largest resident set of one controller-side process (GNU time)
    host_rss_kb: int  # peak of the summed resident sets of all host-side processes (sampled)
    host_processes: int  # peak number of host-side processes (sampled)
    deploy_seconds: float | None = None  # deploydeck: create_deployment to the end of wait
    busy_before: float | None = None
    other_cpu: float | None = None  # CPU the rest of the machine used during the run

    @property
    def noisy(self) -> bool:
        return self.other_cpu is not None and self.other_cpu > NOISE_LIMIT * self.wall

    @property
    def per_host(self) -> float:
        return self.wall / self.hosts


# ---- the machine -------------------------------------------------------------------------------


def busy_cpu_seconds() -> float:
    """CPU seconds all CPUs spent in processes (user, nice, system) since boot; interrupt
    time is left out (loopback traffic is the run's own work, charged to no process)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:4]]
    return sum(ticks) / CLK_TCK


def own_cpu_seconds() -> float:
    """This process's CPU (the host sampler thread included), not the measured run's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet() -> float:
    deadline = time.monotonic() + QUIET_WAIT_SECONDS
    cpus = os.cpu_count() or 1
    while True:
        before = busy_cpu_seconds()
        time.sleep(0.5)
        busy = (busy_cpu_seconds() - before) / 0.5 / cpus
        if busy <= QUIET_BUSY or time.monotonic() >= deadline:
            return busy


def proc_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of a process: itself and every child it reaped."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def host_cpu(hosts: Sequence[SshHost]) -> float:
    """CPU used on the hosts so far: each listener's own and its reaped connections' (an sshd
    reaps its session's shell, which reaps the agent, which reaps the hooks)."""
    return sum(proc_cpu(h.listener) for h in hosts if h.listener)


def wait_sessions_closed(hosts: Sequence[SshHost], timeout: float = 30.0) -> None:
    """Until every connection's sshd has ended and been reaped (its CPU is then counted)."""
    deadline = time.monotonic() + timeout
    while any(h.connections() for h in hosts):
        if time.monotonic() > deadline:
            busy = [h.name for h in hosts if h.connections()]
            raise RuntimeError(f"connections still open on {', '.join(busy)}")
        time.sleep(0.02)


class HostSampler(threading.Thread):
    """Samples the processes below the hosts' listeners every 0.1 s: the peak of their summed
    resident sets and of their number."""

    def __init__(self, hosts: Sequence[SshHost]) -> None:
        super().__init__(daemon=True)
        self.listeners = [h.listener for h in hosts if h.listener]
        self.done = threading.Event()
        self.peak_rss_kb = 0
        self.peak_processes = 0

    def run(self) -> None:
        while not self.done.wait(0.1):
            table = process_table()
            pids = [p for listener in self.listeners for p in descendants(listener, table)]
            rss = 0
            for pid in pids:
                with (
                    contextlib.suppress(OSError, ValueError, IndexError),
                    open(f"/proc/{pid}/statm") as f,
                ):
                    rss += int(f.read().split()[1]) * PAGE_KB
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_processes = max(self.peak_processes, len(pids))

    def stop(self) -> None:
        self.done.set()
        self.join()


def become_subreaper() -> None:
    """Orphans of our children come to us: ssh's ControlPersist master forks into the
    background, and its CPU is only seen by whoever reaps it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans(spare: set[int], timeout: float = 15.0) -> float:
    """Wait for the children adopted from a run (not `spare`: the sshd listeners) and reap
    them; their CPU seconds."""
    cpu = 0.0
    deadline = time.monotonic() + timeout
    me = os.getpid()
    while True:
        adopted = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) not in spare:
                with contextlib.suppress(OSError), open(f"/proc/{entry.name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        adopted.append(int(entry.name))
        if not adopted:
            return cpu
        for pid in adopted:
            with contextlib.suppress(ChildProcessError):
                found, _, usage = os.wait4(pid, os.WNOHANG)
                if found:
                    cpu += usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {adopted} left by the run did not end")
        time.sleep(0.02)


def measure(
    argv: list[str], env: dict[str, str], log: Path, hosts: Sequence[SshHost], settle: bool
) -> tuple[Sample, int]:
    """Run `argv` as a child; wall, its CPU (and its descendants', adopted orphans included),
    the hosts' CPU, peak RSS by GNU time, the host processes' peak memory."""
    rss_file = log.with_suffix(".rss")
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), "--", *argv]
    os.sync()
    busy = wait_for_quiet() if settle else None
    spare = {h.listener for h in hosts if h.listener} | {
        int(e.name) for e in os.scandir("/proc") if e.name.isdigit()
    }
    sampler = HostSampler(hosts)
    machine_before, hosts_before, own_before = (
        busy_cpu_seconds(),
        host_cpu(hosts),
        own_cpu_seconds(),
    )
    sampler.start()
    with log.open("wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(
            wrapped, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = code = os.waitstatus_to_exitcode(status)
    orphans = reap_orphans(spare)
    wait_sessions_closed(hosts)
    sampler.stop()
    on_hosts = host_cpu(hosts) - hosts_before
    cpu = usage.ru_utime + usage.ru_stime + orphans
    own = own_cpu_seconds() - own_before
    other = max(0.0, busy_cpu_seconds() - machine_before - cpu - on_hosts - own)
    max_rss = int(rss_file.read_text().split()[-1])
    sample = Sample(
        len(hosts), wall, cpu, on_hosts, max_rss, sampler.peak_rss_kb, sampler.peak_processes
    )
    return replace(sample, busy_before=busy, other_cpu=other), code


# ---- the two sides -----------------------------------------------------------------------------


def side_folders(host: SshHost, tag: str) -> tuple[Path, Path]:
    """A side's agent_root and fs_root on a host, for one repeat."""
    base = host.folder / "runs" / tag
    return base / "agent", base / "fs"


class DeploydeckSide:
    name = "deploydeck"

    def __init__(self, fleet: SshFleet, hosts: Sequence[SshHost], folder: Path) -> None:
        self.fleet, self.hosts, self.tag = fleet, hosts, folder.name
        overrides = {}
        for host in hosts:
            agent, fs = side_folders(host, self.tag)
            overrides[host.name] = {"agent_root": str(agent), "fs_root": str(fs)}
        self.workspace = fleet.write_workspace(
            folder,
            [h.name for h in hosts],
            config=CONFIG,
            instances=overrides,
            settings={"ssh_max_parallel": max(20, len(hosts))},
            application=APPLICATION,
            group=GROUP,
        )

    def deploy(self, revision: Path, log: Path, settle: bool = True) -> Sample:
        for host in self.hosts:  # each measured run uploads its bundle, as the baseline does
            shutil.rmtree(host.home / ".deploydeck" / "bundles", ignore_errors=True)
        argv = [sys.executable, "-m", "bench.ssh", "--child"]
        argv += ["--workspace", str(self.workspace), "--revision", str(revision)]
        sample, code = measure(argv, os.environ.copy(), log, self.hosts, settle)
        outcome = last_json_line(log)
        if code != 0 or outcome.get("status") != "Succeeded":
            raise RuntimeError(f"deploydeck deployment failed (exit {code}); see {log}")
        return replace(sample, deploy_seconds=outcome["seconds"])


class OpensshSide:
    name = "openssh"

    def __init__(self, fleet: SshFleet, hosts: Sequence[SshHost], folder: Path) -> None:
        self.fleet, self.hosts, self.tag = fleet, hosts, folder.name
        folder.mkdir(parents=True, exist_ok=True)
        self.host_file = folder / "hosts.txt"
        lines = []
        for host in hosts:
            agent, fs = side_folders(host, self.tag)
            lines.append(f"{host.name} {host.port} {agent} {fs}\n")
        self.host_file.write_text("".join(lines))
        # ControlPath must fit a unix socket name (108 bytes): a short folder of its own
        self.control = Path(tempfile.mkdtemp(prefix="ddssh-", dir="/tmp"))

    def deploy(self, revision: Path, log: Path, settle: bool = True) -> Sample:
        from engine.model import new_deployment_id

        env = os.environ.copy()
        env.update(
            SSH_KEY=str(self.fleet.client_key_path),
            KNOWN_HOSTS=str(self.fleet.known_hosts),
            CONTROL_DIR=str(self.control),
            DEPLOYMENT_ID=new_deployment_id(),
            APPLICATION_NAME=APPLICATION,
            DEPLOYMENT_GROUP_NAME=GROUP,
            DEPLOYMENT_GROUP_ID=GROUP_ID,
        )
        argv = ["/bin/sh", str(BASELINE), str(self.host_file), str(revision)]
        sample, code = measure(argv, env, log, self.hosts, settle)
        if code != 0:
            raise RuntimeError(f"the OpenSSH baseline failed (exit {code}); see {log}")
        return sample

    def close(self) -> None:
        shutil.rmtree(self.control, ignore_errors=True)


Side = DeploydeckSide | OpensshSide


def check_installed(side: Side, version: str) -> None:
    """Every host has exactly the revision's files, so both sides really did the work."""
    for host in side.hosts:
        site = side_folders(host, side.tag)[1] / "srv" / "app"
        installed = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
        if installed != sorted(SITE_FILES) or (site / "version.txt").read_text() != f"{version}\n":
            raise RuntimeError(f"{side.name}: {site} does not hold revision {version}")


# ---- cases -------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    hosts: int
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {s: [] for s in SIDES})

    def median(self, side: str, metric: str) -> float:
        return statistics.median(getattr(s, metric) for s in self.samples[side])

    def ratio(self, metric: str) -> float:
        return self.median("deploydeck", metric) / self.median("openssh", metric)

    @property
    def overhead_per_host(self) -> float:
        """(deploydeck wall - baseline wall) / hosts."""
        return (self.median("deploydeck", "wall") - self.median("openssh", "wall")) / self.hosts

    def to_json(self) -> dict[str, Any]:
        metrics = ("wall", "per_host", "cpu", "host_cpu", "max_rss_kb", "host_rss_kb")
        sides = {
            side: {
                "median": {m: self.median(side, m) for m in metrics},
                "samples": [
                    {**asdict(s), "per_host": s.per_host, "noisy": s.noisy}
                    for s in self.samples[side]
                ],
            }
            for side in SIDES
        }
        return {
            "hosts": self.hosts,
            **sides,
            "ratio": {m: self.ratio(m) for m in ("wall", "cpu", "host_cpu")},
            "overhead_per_host": self.overhead_per_host,
        }


def run_case(
    fleet: SshFleet,
    work: Path,
    size: int,
    repeat: int,
    retries: int,
    revisions: tuple[Path, Path],
    say: Callable[[str], None],
) -> CaseResult:
    """`repeat` measured v2 deployments per side (after a v1 warm-up each), sides alternating."""
    hosts = list(fleet.hosts.values())[:size]
    result = CaseResult(size)
    for index in range(repeat):
        first = SIDES[index % 2]
        for attempt in range(1, retries + 2):
            tag = f"n{size}-r{index + 1}-a{attempt}"
            pair = measure_pair(fleet, hosts, work / tag, revisions, first)
            for side, s in pair.items():
                say(
                    f"  N={size} #{index + 1} {side:10} wall {s.wall:6.2f} s "
                    f"({s.per_host:.3f}/host)  cpu {s.cpu:6.2f}  host cpu {s.host_cpu:6.2f}  rss "
                    f"{s.max_rss_kb / 1024:5.1f} MB  host rss {s.host_rss_kb / 1024:6.0f} MB"
                    f"  others {s.other_cpu or 0:5.2f}{'  NOISY' if s.noisy else ''}"
                )
            if not any(s.noisy for s in pair.values()) or attempt > retries:
                break
            say("  other processes were busy during that run: measuring it again")
        for side, sample in pair.items():
            result.samples[side].append(sample)
    return result


def measure_pair(
    fleet: SshFleet,
    hosts: Sequence[SshHost],
    folder: Path,
    revisions: tuple[Path, Path],
    first: str,
) -> dict[str, Sample]:
    sides: dict[str, Side] = {
        "deploydeck": DeploydeckSide(fleet, hosts, folder / "deploydeck"),
        "openssh": OpensshSide(fleet, hosts, folder / "openssh"),
    }
    try:
        for side in sides.values():
            side.deploy(revisions[0], folder / f"{side.name}-warmup.log", settle=False)
            check_installed(side, "v1")
        samples = {}
        for name in (first, *(s for s in SIDES if s != first)):
            samples[name] = sides[name].deploy(revisions[1], folder / f"{name}.log")
            check_installed(sides[name], "v2")
        return samples
    finally:
        opens = sides["openssh"]
        assert isinstance(opens, OpensshSide)
        opens.close()


# ---- the child: one deploydeck deployment ------------------------------------------------------


async def child_deploy(workspace_path: Path, revision: Path) -> dict[str, Any]:
    from engine.api import CreateDeploymentRequest, Engine
    from engine.workspace import load_workspace

    engine = Engine(load_workspace(workspace_path).unwrap(), run_mode="inline")
    try:
        started = time.perf_counter()
        created = await engine.create_deployment(
            CreateDeploymentRequest(APPLICATION, GROUP, revision_path=revision)
        )
        final = await engine.wait(created.id)
        seconds = time.perf_counter() - started
    finally:
        await engine.aclose()
    failures = {
        i.name: str(i.failed_event().diagnostics) for i in final.instances if i.failed_event()
    }
    return {"id": final.id, "status": final.status, "seconds": seconds, "failures": failures}


# ---- reporting ---------------------------------------------------------------------------------


def results_table(results: Sequence[CaseResult]) -> Table:
    table = Table(title="deploydeck vs OpenSSH (ControlMaster, tar | ssh), AllAtOnce, medians")
    columns = ("N", "runs", "dd wall", "ssh wall", "wall x", "dd s/host", "ssh s/host")
    columns += ("overhead s/host", "dd CPU", "ssh CPU", "dd host CPU", "ssh host CPU")
    columns += ("dd RSS MB", "ssh RSS MB", "dd host RSS MB", "ssh host RSS MB")
    for column in columns:
        table.add_column(column, justify="right")
    for r in results:
        m = r.median
        table.add_row(
            str(r.hosts),
            str(len(r.samples["deploydeck"])),
            f"{m('deploydeck', 'wall'):.2f}",
            f"{m('openssh', 'wall'):.2f}",
            f"{r.ratio('wall'):.2f}",
            f"{m('deploydeck', 'per_host'):.3f}",
            f"{m('openssh', 'per_host'):.3f}",
            f"{r.overhead_per_host:+.3f}",
            f"{m('deploydeck', 'cpu'):.2f}",
            f"{m('openssh', 'cpu'):.2f}",
            f"{m('deploydeck', 'host_cpu'):.2f}",
            f"{m('openssh', 'host_cpu'):.2f}",
            f"{m('deploydeck', 'max_rss_kb') / 1024:.1f}",
            f"{m('openssh', 'max_rss_kb') / 1024:.1f}",
            f"{m('deploydeck', 'host_rss_kb') / 1024:.0f}",
            f"{m('openssh', 'host_rss_kb') / 1024:.0f}",
        )
    return table


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ssh",
        description="deploydeck against plain OpenSSH, deploying to N sshd hosts on loopback.",
    )
    parser.add_argument("--hosts", type=int, default=20, help="hosts of the comparison")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per side")
    parser.add_argument(
        "--scale", default="50,100", help="larger fleets to try afterwards ('' for none)"
    )
    parser.add_argument("--scale-repeat", type=int, default=1, help="measured runs per size")
    parser.add_argument("--retries", type=int, default=2, help="re-measure a noisy run")
    parser.add_argument("--json", type=Path, help="write every sample and the medians here")
    parser.add_argument("--quick", action="store_true", help="--hosts 4 --repeat 1 --scale ''")
    parser.add_argument("--keep", action="store_true", help="keep /tmp/deploydeck-bench-ssh-*")
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", action="store_true", help=hidden)
    parser.add_argument("--workspace", type=Path, help=hidden)
    parser.add_argument("--revision", type=Path, help=hidden)
    args = parser.parse_args(argv)
    if args.quick:
        args.hosts, args.repeat, args.scale = 4, 1, ""
    args.scale = [int(s) for s in args.scale.split(",") if s]
    return args


def usable_sizes(sizes: Sequence[int], say: Callable[[str], None]) -> list[int]:
    """Sizes the open-file limit allows (each host costs descriptors on both ends)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = [n for n in sizes if n * FDS_PER_HOST + 200 <= soft]
    for n in sorted(set(sizes) - set(allowed)):
        say(f"skipping N={n}: `ulimit -n` is {soft}, about {n * FDS_PER_HOST + 200} needed")
    return allowed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        outcome = asyncio.run(child_deploy(args.workspace, args.revision))
        print(json.dumps(outcome), flush=True)
        return 0 if outcome["status"] == "Succeeded" else 1
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} is needed (Debian package `time`)")
    say = lambda line: print(line, flush=True)  # noqa: E731
    become_subreaper()
    sizes = usable_sizes([args.hosts, *[n for n in args.scale if n != args.hosts]], say)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="deploydeck-bench-ssh-", dir="/tmp"))
    fleet = SshFleet(work / "fleet")
    try:
        revisions = (write_revision(work / "rev", "v1"), write_revision(work / "rev", "v2"))
        started = time.monotonic()
        fleet.add_hosts([f"h{n:03d}" for n in range(1, max(sizes) + 1)])
        say(f"{len(fleet.hosts)} sshd hosts up in {time.monotonic() - started:.1f} s")
        results = []
        for size in sizes:
            repeat = args.repeat if size == args.hosts else args.scale_repeat
            say(f"N={size} hosts, {CONFIG}, {repeat} measured runs per side")
            results.append(run_case(fleet, work, size, repeat, args.retries, revisions, say))
        report(results, args, load_before)
    finally:
        fleet.shutdown()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(results: Sequence[CaseResult], args: argparse.Namespace, load_before: Any) -> None:
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(results_table(results))
    for r in results:
        console.print(
            f"N={r.hosts}: deploydeck {r.ratio('wall'):.2f}x the OpenSSH wall time, "
            f"{r.overhead_per_host * 1000:+.0f} ms per host; per host deploydeck "
            f"{r.median('deploydeck', 'per_host') * 1000:.0f} ms, OpenSSH "
            f"{r.median('openssh', 'per_host') * 1000:.0f} ms"
        )
    if args.json:
        document = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "openssh": subprocess.run(
                    ["ssh", "-V"], capture_output=True, text=True
                ).stderr.strip(),
            },
            "config": CONFIG,
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "results": [r.to_json() for r in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())

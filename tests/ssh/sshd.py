"""A fleet of real OpenSSH servers on loopback, one sshd process per "host".

Every host has its own port, its own ed25519 host key, its own sshd_config and its own folder
(`<root>/hosts/<name>/`: `agent` and `fs`, passed as the instance's `agent_root` and `fs_root`,
and `home`). All hosts live on this machine's filesystem, so each sshd sets `HOME` to the host's
own `home` folder (`SetEnv`): deploydeck's per-host cache (`$HOME/.deploydeck`: the agent and
uploaded bundles) is then per host, as on separate machines, and the user's own ~/.bashrc is not
read by the session shell. Logins are as root with one generated client key.

Used by the SSH tests (tests/ssh/conftest.py) and the SSH benchmark (bench/ssh.py); no pytest
here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.targets.asyncssh_quiet import asyncssh

SSHD = "/usr/sbin/sshd"
LOOPBACK = "127.0.0.1"
READY_SECONDS = 15.0

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin yes
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
{subsystems}LogLevel ERROR
MaxStartups 200
SetEnv {set_env}
"""


class SshdError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def new_key(path: Path) -> asyncssh.SSHKey:
    """A new ed25519 key pair at `path` (0600) and `path`.pub."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    key.write_private_key(str(path))
    path.chmod(0o600)
    key.write_public_key(str(path) + ".pub")
    return key


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


# ---- processes, from /proc -----------------------------------------------------------------


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, comm) of every process, zombies left out."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            table[int(entry.name)] = (int(ppid), comm)
    return table


def descendants(pid: int, table: Mapping[int, tuple[int, str]] | None = None) -> list[int]:
    """Every live descendant of `pid` (children first)."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_gone(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of `pids` runs; those still running at the timeout."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def kill_all(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# ---- one host -------------------------------------------------------------------------------


@dataclass
class SshHost:
    """One sshd. `process` is None for an unreachable host (a port nobody listens on)."""

    name: str
    folder: Path
    port: int
    authorized_keys: Path
    set_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    key: asyncssh.SSHKey | None = None
    more_host_keys: list[Path] = field(default_factory=list)  # offered besides `key`
    sftp: bool = True  # False: no SFTP subsystem, as on hosts where it is disabled

    @property
    def agent_root(self) -> Path:
        return self.folder / "agent"

    @property
    def fs_root(self) -> Path:
        return self.folder / "fs"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def config(self) -> Path:
        return self.folder / "sshd" / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.folder / "sshd" / "host_key"

    @property
    def log(self) -> Path:
        return self.folder / "sshd" / "sshd.log"

    @property
    def known_hosts_line(self) -> str:
        assert self.key is not None
        public = self.key.export_public_key("openssh").decode().split()
        return f"[{LOOPBACK}]:{self.port} {public[0]} {public[1]}\n"

    @property
    def fingerprint(self) -> str:
        assert self.key is not None
        return fingerprint(self.key)

    @property
    def listener(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def write_config(self) -> None:
        env = {"HOME": str(self.home), **self.set_env}
        self.config.write_text(
            CONFIG.format(
                port=self.port,
                host_key=self.host_key,
                pid_file=self.folder / "sshd" / "sshd.pid",
                authorized_keys=self.authorized_keys,
                set_env=" ".join(f"{k}={v}" for k, v in env.items()),
                subsystems="Subsystem sftp internal-sftp\n" if self.sftp else "",
            )
            + "".join(f"HostKey {path}\n" for path in self.more_host_keys)
        )

    def spawn(self) -> None:
        for folder in (self.agent_root, self.fs_root, self.home, self.config.parent):
            folder.mkdir(parents=True, exist_ok=True)
        if self.key is None:
            self.key = new_key(self.host_key)
        self.write_config()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def ready(self) -> bool | None:
        """True once it answers with an SSH banner; None when the sshd has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            return None
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as s:
                return s.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def sshd_pids(self) -> list[int]:
        """The listener and every sshd below it (one per connection, and their helpers).

        A connection's sshd calls setsid() and renames itself ("sshd: root@notty"), so neither
        the listener's process group nor `pkill -f <config>` reaches it: walk /proc instead."""
        if self.listener is None or not alive(self.listener):
            return []
        table = process_table()
        below = [p for p in descendants(self.listener, table) if table[p][1] == "sshd"]
        return [self.listener, *below]

    def connections(self) -> int:
        """Established connections: the listener's sshd children."""
        if self.listener is None:
            return 0
        table = process_table()
        return sum(
            1 for pid, (parent, comm) in table.items() if parent == self.listener and comm == "sshd"
        )

    def kill(self) -> list[int]:
        """SIGKILL the listener and every connection's sshd, as if the host's sshd died: the
        sessions' commands (the agent) are left to notice their input closing. The killed pids."""
        pids = self.sshd_pids()
        kill_all(pids)
        if self.process is not None:
            self.process.wait(10)
        left = wait_gone(pids)
        if left:
            raise SshdError(f"{self.name}: sshd processes {left} survived SIGKILL")
        return pids

    def stop_listener(self) -> None:
        """Stop accepting connections (established ones carry on)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def shutdown(self) -> None:
        """The sshd and everything below it (sessions, agents, hooks) killed and reaped."""
        if self.process is None:
            return
        if self.process.poll() is None:
            pids = [self.process.pid, *descendants(self.process.pid)]
            kill_all(pids)
            self.process.wait(10)
            wait_gone(pids)


def wait_ready(hosts: Sequence[SshHost], timeout: float = READY_SECONDS) -> list[SshHost]:
    """Poll until every host accepts connections; those whose sshd exited (port taken...)."""
    deadline = time.monotonic() + timeout
    pending = [h for h in hosts if h.process is not None]
    failed = []
    while pending:
        still = []
        for host in pending:
            state = host.ready()
            if state is None:
                failed.append(host)
            elif not state:
                still.append(host)
        pending = still
        if pending and time.monotonic() > deadline:
            names = ", ".join(h.name for h in pending)
            raise SshdError(f"sshd of {names} not accepting connections after {timeout:g} s")
        if pending:
            time.sleep(0.02)
    return failed


# ---- the fleet ------------------------------------------------------------------------------


class SshFleet:
    """sshd hosts under `root`, a client key every host accepts, and a known_hosts listing the
    hosts created `trusted`."""

    def __init__(self, root: Path) -> None:
        if not os.access(SSHD, os.X_OK):
            raise SshdError(f"{SSHD} is not installed (Debian: openssh-server)")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
        self.root = root
        self.client_key_path = root / "client" / "id_ed25519"
        self.client_key = new_key(self.client_key_path)
        self.authorized_keys = Path(str(self.client_key_path) + ".pub")
        self.known_hosts = root / "client" / "known_hosts"
        self.known_hosts.write_text("")
        self.hosts: dict[str, SshHost] = {}

    # ---- hosts ------------------------------------------------------------------------------

    def add_hosts(
        self,
        names: Sequence[str],
        *,
        trusted: bool = True,
        set_env: Mapping[str, str] | None = None,
        sftp: bool = True,
    ) -> list[SshHost]:
        """Start one sshd per name (in parallel) and wait until all accept connections;
        `sftp=False` leaves the SFTP subsystem out of their configuration."""
        hosts = [
            SshHost(
                name,
                self.root / "hosts" / name,
                0,
                self.authorized_keys,
                dict(set_env or {}),
                sftp=sftp,
            )
            for name in names
        ]
        todo = hosts
        for _attempt in range(5):
            for host in todo:
                host.port = free_port()
                host.spawn()
            todo = wait_ready(todo)  # the ones that lost their port to another process
            if not todo:
                break
        else:
            logs = "; ".join(f"{h.name}: {h.log.read_text().strip()}" for h in todo)
            raise SshdError(f"sshd would not start: {logs}")
        for host in hosts:
            self.hosts[host.name] = host
            if trusted:
                self.trust(host)
        return hosts

    def add_unreachable(self, name: str) -> SshHost:
        """A host whose port has nothing listening."""
        host = SshHost(name, self.root / "hosts" / name, free_port(), self.authorized_keys)
        for folder in (host.agent_root, host.fs_root):
            folder.mkdir(parents=True, exist_ok=True)
        self.hosts[name] = host
        return host

    def trust(self, host: SshHost) -> None:
        with self.known_hosts.open("a") as f:
            f.write(host.known_hosts_line)

    def replace_key(self, name: str) -> asyncssh.SSHKey:
        """The host gets a new host key (a reinstalled host): new key file, sshd restarted on
        the same port. known_hosts keeps the old key."""
        host = self.hosts[name]
        host.stop_listener()
        host.key = new_key(host.host_key)
        for _attempt in range(50):
            host.spawn()
            if not wait_ready([host]):
                return host.key
            time.sleep(0.1)  # the port is still held by the old listener's socket
        raise SshdError(f"{name}: sshd would not restart on port {host.port}")

    def add_host_key(self, name: str, algorithm: str) -> asyncssh.SSHKey:
        """The host offers one more host key (sshd restarted on the same port)."""
        host = self.hosts[name]
        path = host.host_key.with_name(f"host_key_{len(host.more_host_keys) + 1}")
        key = asyncssh.generate_private_key(algorithm)
        key.write_private_key(str(path))
        path.chmod(0o600)
        host.more_host_keys.append(path)
        host.stop_listener()
        for _attempt in range(50):
            host.spawn()
            if not wait_ready([host]):
                return key
            time.sleep(0.1)
        raise SshdError(f"{name}: sshd would not restart on port {host.port}")

    def kill(self, name: str) -> list[int]:
        return self.hosts[name].kill()

    def shutdown(self) -> None:
        for host in self.hosts.values():
            host.shutdown()

    # ---- reaching the hosts as a test would -------------------------------------------------

    async def connect(self, name: str) -> asyncssh.SSHClientConnection:
        host = self.hosts[name]
        return await asyncssh.connect(
            LOOPBACK,
            port=host.port,
            username="root",
            client_keys=[str(self.client_key_path)],
            known_hosts=str(self.known_hosts),
        )

    async def run(self, name: str, command: str) -> asyncssh.SSHCompletedProcess:
        """`command` run on the host (its shell), like `ssh root@host command`."""
        async with await self.connect(name) as connection:
            return await connection.run(command, check=False)

    # ---- workspaces -------------------------------------------------------------------------

    def instance(self, name: str, **overrides: Any) -> dict[str, Any]:
        """An ssh instance entry for the host `name` (tag role: web)."""
        host = self.hosts[name]
        entry: dict[str, Any] = {
            "tags": {"role": "web"},
            "transport": "ssh",
            "host": LOOPBACK,
            "port": host.port,
            "user": "root",
            "key_file": str(self.client_key_path),
            "known_hosts": str(self.known_hosts),
            "agent_root": str(host.agent_root),
            "fs_root": str(host.fs_root),
        }
        entry.update(overrides)
        return {k: v for k, v in entry.items() if v is not None}  # None: leave the key out

    def write_workspace(
        self,
        folder: Path,
        names: Sequence[str] | None = None,
        *,
        config: str = "CodeDeployDefault.AllAtOnce",
        env: Mapping[str, Mapping[str, str]] | None = None,
        instances: Mapping[str, Mapping[str, Any]] | None = None,
        auto_rollback: Sequence[str] = (),
        custom_configs: Mapping[str, Mapping] | None = None,
        settings: Mapping | None = None,
        application: str = "app",
        group: str = "fleet",
    ) -> Path:
        """deploydeck.yml with application `app`, group `fleet` of these hosts as ssh instances
        (the layout of tests/engine/fleet.py write_workspace). Each instance's environment has
        INSTANCE_NAME and PID_FILE (`folder/pids.txt`) plus `env[name]`; `instances[name]`
        overrides keys of its entry (None leaves the key out)."""
        entries = {}
        for name in names if names is not None else list(self.hosts):
            environment = {"INSTANCE_NAME": name, "PID_FILE": str(folder / "pids.txt")}
            environment.update((env or {}).get(name, {}))
            overrides = {"environment": environment, **(instances or {}).get(name, {})}
            entries[name] = self.instance(name, **overrides)
        group_doc: dict[str, Any] = {
            "deployment_config": config,
            "tag_filters": [{"key": "role", "value": "web"}],
        }
        if auto_rollback:
            group_doc["auto_rollback"] = {"enabled": True, "events": list(auto_rollback)}
        document: dict[str, Any] = {
            "settings": {"kill_grace_seconds": 1, **(settings or {})},
            "applications": {application: {"deployment_groups": {group: group_doc}}},
            "instances": entries,
        }
        if custom_configs:
            document["deployment_configs"] = dict(custom_configs)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "deploydeck.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path


async def remote_alive(fleet: SshFleet, name: str, pids: Iterable[int]) -> list[int]:
    """The pids among `pids` that run on host `name`, asked over SSH (`ps -p`)."""
    pids = list(pids)
    if not pids:
        return []
    result = await fleet.run(name, f"ps -o pid=,stat= -p {','.join(map(str, pids))}")
    found = []
    for line in (result.stdout or "").splitlines():
        pid, stat = line.split()
        if not stat.startswith("Z"):
            found.append(int(pid))
    return found

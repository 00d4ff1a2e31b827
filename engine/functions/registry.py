"""The function registry: functions, their published versions and aliases, kept as JSON files
under a state folder so the gateway, a deployment run and CLI commands share one view.

Layout under `<state>/functions/`:
  <name>/function.json   the function: live code folder, command, timeout, concurrency,
                         environment, its versions and its aliases (written atomically)
  <name>/.lock           flock'd around each read-modify-write, across processes
  code/<sha256>/         a published version's frozen copy of the code, by content hash

Versions are numbered 1, 2, ... per function and never change once published; `$LATEST` is the
live folder with the function's current settings. An alias points at one version, or at two
with a weight on the additional one (Lambda's RoutingConfig.AdditionalVersionWeights).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.host.hashing import sha256_directory
from engine.json_files import write_json

LATEST = "$LATEST"
DEFAULT_TIMEOUT_SECONDS = 3.0  # Lambda's default function timeout
DEFAULT_CONCURRENCY = 10
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ALIAS = re.compile(r"^(?!\d+$)[A-Za-z0-9_-]{1,128}$")


class RegistryError(Exception):
    """A refused registry change or lookup; the message says what and what to do."""

    code = "InvalidParameterValueException"


class NotFound(RegistryError):
    code = "ResourceNotFoundException"


class Conflict(RegistryError):
    code = "ResourceConflictException"


@dataclass(frozen=True)
class VersionSpec:
    """What runs for one version: the command from a code folder with its settings."""

    function: str
    version: str  # "1", "2", ... or "$LATEST"
    code: Path
    command: tuple[str, ...]
    timeout: float
    environment: Mapping[str, str] = field(default_factory=dict)
    code_sha256: str = ""


@dataclass(frozen=True)
class Alias:
    name: str
    version: str
    additional: Mapping[str, float] = field(default_factory=dict)  # version -> weight 0..1

    def weights(self) -> dict[str, float]:
        """Each version's share of the calls; the primary gets what the additional leaves."""
        shares = dict(self.additional)
        shares[self.version] = max(0.0, 1.0 - sum(shares.values()))
        return shares


@dataclass(frozen=True)
class Function:
    name: str
    code: Path
    command: tuple[str, ...]
    timeout: float
    concurrency: int
    environment: Mapping[str, str]
    versions: Mapping[str, Mapping[str, Any]]
    aliases: Mapping[str, Alias]

    def spec(self, version: str, store: Path) -> VersionSpec:
        """The runnable spec of `version` ("$LATEST" or a published number)."""
        if version == LATEST:
            return VersionSpec(
                self.name, LATEST, self.code, self.command, self.timeout, dict(self.environment)
            )
        record = self.versions.get(version)
        if record is None:
            raise NotFound(f"function {self.name} has no version {version}")
        return VersionSpec(
            self.name,
            version,
            store / record["code_sha256"],
            tuple(record["command"]),
            float(record["timeout"]),
            dict(record.get("environment", {})),
            record["code_sha256"],
        )


def _command(command: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    argv = tuple(shlex.split(command)) if isinstance(command, str) else tuple(command)
    if not argv or not all(isinstance(a, str) and a for a in argv):
        raise RegistryError("command must be a non-empty command line or list of arguments")
    return argv


class FunctionRegistry:
    """Reads and changes the registry files; safe to use from several processes at once."""

    def __init__(self, state: Path | str) -> None:
        self.root = Path(state) / "functions"
        self.store = self.root / "code"

    # -- reading

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/function.json"))

    def get(self, name: str) -> Function:
        path = self._file(name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(
                f"function {name!r} does not exist in {self.root}: create it first"
            ) from None
        except (OSError, ValueError) as error:
            raise RegistryError(f"{path}: unreadable ({error}); fix or remove the file") from None
        return _function(data)

    def mtime(self, name: str) -> int:
        """A change stamp for the function's file (0 when absent): cheap cache validation."""
        try:
            return self._file(name).stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    # -- changing

    def create(
        self,
        name: str,
        code: Path | str,
        command: str | list[str],
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        concurrency: int = DEFAULT_CONCURRENCY,
        environment: Mapping[str, str] | None = None,
    ) -> Function:
        """Create the function, or update its `$LATEST` settings if it exists."""
        if not _NAME.match(name):
            raise RegistryError(f"function name {name!r}: use 1 to 64 letters, digits, '-' or '_'")
        folder = Path(code).resolve()
        if not folder.is_dir():
            raise RegistryError(f"code folder {folder} does not exist or is not a folder")
        if not timeout > 0:
            raise RegistryError(f"timeout {timeout!r}: must be a positive number of seconds")
        if not (isinstance(concurrency, int) and concurrency >= 1):
            raise RegistryError(f"concurrency {concurrency!r}: must be an integer of 1 or more")
        argv = _command(command)
        env = {str(k): str(v) for k, v in (environment or {}).items()}
        with self._locked(name) as data:
            data.update(
                name=name,
                code=str(folder),
                command=list(argv),
                timeout=float(timeout),
                concurrency=concurrency,
                environment=env,
            )
            data.setdefault("versions", {})
            data.setdefault("aliases", {})
        return self.get(name)

    def publish_version(self, name: str, description: str = "") -> str:
        """Freeze `$LATEST` (code and settings) as the next version; returns its number. If
        the latest version already has the same code and settings, returns it (as Lambda)."""
        function = self.get(name)
        digest = sha256_directory(function.code)
        frozen = self.store / digest
        if not frozen.is_dir():
            self.store.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.store))
            try:
                shutil.copytree(function.code, staging / "code", symlinks=True)
                if sha256_directory(staging / "code") != digest:
                    raise Conflict(f"{function.code} changed while it was being published: retry")
                try:
                    os.rename(staging / "code", frozen)
                except OSError:
                    if not frozen.is_dir():  # a concurrent publish of the same tree won
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        with self._locked(name) as data:
            record = {
                "code_sha256": digest,
                "command": data["command"],
                "timeout": data["timeout"],
                "environment": data.get("environment", {}),
            }
            versions = data.setdefault("versions", {})
            if versions:
                last = str(max(int(v) for v in versions))
                same = {k: versions[last].get(k) for k in record}
                if same == record:
                    return last
            number = str(1 + max((int(v) for v in versions), default=0))
            versions[number] = {**record, "description": description, "published": time.time()}
            return number

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        additional: Mapping[str, float] | None = None,
    ) -> Alias:
        """Create or update an alias: `version` is primary, `additional` gives at most one
        other published version its weight (0.0 to 1.0), the primary gets the rest."""
        if not _ALIAS.match(alias):
            raise RegistryError(
                f"alias name {alias!r}: use 1 to 128 letters, digits, '-' or '_', not only digits"
            )
        extra = {str(k): float(v) for k, v in (additional or {}).items()}
        if len(extra) > 1:
            raise RegistryError(f"alias {alias}: at most one additional version, got {len(extra)}")
        for other, weight in extra.items():
            if other == version:
                raise RegistryError(
                    f"alias {alias}: additional version {other} is the primary version"
                )
            if not 0.0 <= weight <= 1.0:
                raise RegistryError(
                    f"alias {alias}: weight {weight} of version {other} must be 0.0 to 1.0"
                )
        with self._locked(name) as data:
            if not data.get("name"):
                raise NotFound(f"function {name!r} does not exist: create it first")
            for wanted in (version, *extra):
                if wanted == LATEST and extra:
                    raise RegistryError(f"alias {alias}: weighted routing needs published versions")
                if wanted != LATEST and wanted not in data.get("versions", {}):
                    raise NotFound(
                        f"alias {alias}: function {name} has no version {wanted}; publish it first"
                    )
            data.setdefault("aliases", {})[alias] = {"version": version, "additional": extra}
        return self.get(name).aliases[alias]

    # -- the running gateway, for commands in other processes

    def record_gateway(self, url: str | None, *, forget: str | None = None) -> None:
        """Note the URL of a gateway serving this state, unless another one that is running is
        noted already (a long-lived gateway, such as the demo's, stays the one commands use
        while a deployment runs a gateway of its own). `forget` removes the note of the gateway
        at that URL, and only that one."""
        path = self.root / "gateway.json"
        if forget is not None:
            if self._noted_gateway() == forget:
                path.unlink(missing_ok=True)
            return
        if url is None:
            return
        noted = self.gateway_url()
        if noted is not None and noted != url:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(path, {"url": url, "pid": os.getpid()})

    def _noted_gateway(self) -> str | None:
        try:
            return str(json.loads((self.root / "gateway.json").read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def gateway_url(self) -> str | None:
        """The URL of the gateway serving this state, if one is running."""
        try:
            data = json.loads((self.root / "gateway.json").read_text())
            os.kill(int(data["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return str(data["url"])

    # -- files

    def _file(self, name: str) -> Path:
        if not _NAME.match(name):
            raise NotFound(f"function name {name!r} is not a valid function name")
        return self.root / name / "function.json"

    @contextmanager
    def _locked(self, name: str) -> Iterator[dict[str, Any]]:
        """The function's data under an exclusive lock, written back atomically on success."""
        path = self._file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(path.read_text()) if path.exists() else {}
            except ValueError as error:
                raise RegistryError(f"{path}: not valid JSON ({error}); fix or remove it") from None
            yield data
            write_json(path, data)


def _function(data: Mapping[str, Any]) -> Function:
    aliases = {
        name: Alias(name, a["version"], {str(k): float(v) for k, v in a["additional"].items()})
        for name, a in data.get("aliases", {}).items()
    }
    return Function(
        name=data["name"],
        code=Path(data["code"]),
        command=tuple(data["command"]),
        timeout=float(data["timeout"]),
        concurrency=int(data["concurrency"]),
        environment=dict(data.get("environment", {})),
        versions=dict(data.get("versions", {})),
        aliases=aliases,
    )

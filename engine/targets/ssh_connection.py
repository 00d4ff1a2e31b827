"""SSH connections (asyncssh) to an instance or its jump host: the endpoint, host-key checks
against known_hosts, and the errors a connection can end in.

An unknown or changed host key is a refusal that shows the fingerprint, never a silent accept;
keepalives notice a dead connection in seconds. Each failure carries deploydeck's own error
code, which the instance fails with.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.targets.asyncssh_quiet import asyncssh

# deploydeck's own error codes for what CodeDeploy's agent never sees.
HOST_KEY_UNKNOWN = "HostKeyUnknown"
HOST_KEY_CHANGED = "HostKeyChanged"
UNREACHABLE = "HostUnreachable"
AUTH_FAILED = "AuthenticationFailed"
CONNECTION_LOST = "ConnectionLost"
PYTHON_MISSING = "PythonMissing"
HOST_SETUP_FAILED = "HostSetupFailed"

CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 3.0
KEEPALIVE_COUNT_MAX = 3


class SshProblem(Exception):
    """A connection-level failure, with the error code the instance fails with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SshEndpoint:
    """Where and how to connect. Host keys are checked against `known_hosts` (none: every key
    is unknown)."""

    host: str
    port: int = 22
    user: str | None = None
    key_file: Path | None = None
    proxy_jump: str | None = None
    known_hosts: tuple[Path, ...] = ()
    instance: str = ""  # the workspace instance it serves, for the advice in messages
    role: str = ""  # "jump host" for the host an instance is reached through

    @property
    def described(self) -> str:
        """For messages: `root@10.0.0.5:22 (the jump host of web-3)`."""
        if self.role:
            return f"{self.label} (the {self.role} of {self.instance or 'the instance'})"
        return f"{self.label} ({self.instance})" if self.instance else self.label

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name a known_hosts line uses for this host."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def jump_endpoint(endpoint: SshEndpoint) -> SshEndpoint:
    """The jump host of `endpoint` (`[user@]host[:port]`, host possibly a bracketed IPv6
    address), with the same key and known_hosts."""
    assert endpoint.proxy_jump
    user, _, hostport = endpoint.proxy_jump.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    return SshEndpoint(
        host,
        int(port or 22),
        user or endpoint.user,
        endpoint.key_file,
        None,
        endpoint.known_hosts,
        endpoint.instance,
        "jump host",
    )


def _recorded_keys(endpoint: SshEndpoint) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey]]:
    """The keys known_hosts trusts and revokes for the host."""
    files = [str(p) for p in endpoint.known_hosts if p.exists()]
    if not files:
        return [], []
    trusted, _, revoked, _, _, _, _ = asyncssh.read_known_hosts(files).match(
        endpoint.host, "", endpoint.port
    )
    return list(trusted), list(revoked)


async def fetch_host_key(endpoint: SshEndpoint) -> asyncssh.SSHKey | None:
    """The host's public key, read without authenticating (for refusals and `trust`). Of a
    host with several keys, one of a type already recorded for it is asked for first."""
    recorded = {
        alg
        for key in _recorded_keys(endpoint)[0]
        for alg in _HOST_KEY_ALGS.get(key.get_algorithm(), (key.get_algorithm(),))
    }
    tunnel = None
    try:
        if endpoint.proxy_jump:
            tunnel = await connect_jump(endpoint)
        for algs in ([sorted(recorded)] if recorded else []) + [()]:
            with contextlib.suppress(asyncssh.KeyExchangeFailed):
                return await asyncio.wait_for(
                    asyncssh.get_server_host_key(
                        endpoint.host,
                        endpoint.port,
                        tunnel=tunnel or (),
                        server_host_key_algs=algs,
                    ),
                    CONNECT_TIMEOUT,
                )
        return None
    finally:
        if tunnel is not None:
            tunnel.close()


# RSA keys are recorded as ssh-rsa and offered under these signature algorithms.
_HOST_KEY_ALGS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def recorded_fingerprints(endpoint: SshEndpoint) -> list[str]:
    """`ssh-ed25519 SHA256:...` of each key known_hosts trusts for the host."""
    return [
        f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
        for key in _recorded_keys(endpoint)[0]
    ]


def key_status(endpoint: SshEndpoint, key: asyncssh.SSHKey) -> str:
    """ "trusted", "changed" (another key is recorded for the host) or "unknown"."""
    trusted, revoked = _recorded_keys(endpoint)
    if any(k.public_data == key.public_data for k in trusted) and not any(
        k.public_data == key.public_data for k in revoked
    ):
        return "trusted"
    return "changed" if trusted else "unknown"


async def connect_jump(endpoint: SshEndpoint) -> asyncssh.SSHClientConnection:
    """A connection to the jump host `endpoint` is reached through."""
    return await connect(jump_endpoint(endpoint))


def _trusted(endpoint: SshEndpoint) -> asyncssh.SSHKnownHosts:
    """The recorded host keys; none recorded means every key is unknown (never "no check")."""
    files = [str(p) for p in endpoint.known_hosts if p.exists()]
    return asyncssh.read_known_hosts(files) if files else asyncssh.import_known_hosts("")


async def connect(endpoint: SshEndpoint, tunnel: Any = ()) -> asyncssh.SSHClientConnection:
    """A connection to `endpoint` (through `tunnel`, a jump host's connection), host key checked;
    every failure is an SshProblem whose message says what to do."""
    options: dict[str, Any] = {
        "port": endpoint.port,
        "known_hosts": _trusted(endpoint),
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        "tunnel": tunnel,
    }
    if endpoint.user:
        options["username"] = endpoint.user
    what = endpoint.described
    trust = f"deploydeck trust {endpoint.instance or '<instance>'}"
    if endpoint.key_file:
        try:
            options["client_keys"] = [asyncssh.read_private_key(str(endpoint.key_file))]
        except OSError as error:
            raise SshProblem(
                AUTH_FAILED,
                f"The key_file {endpoint.key_file} for {what} cannot be read "
                f"({error.strerror}): fix key_file, or leave it out to use the ssh-agent.",
            ) from None
        except asyncssh.KeyImportError as error:
            raise SshProblem(
                AUTH_FAILED,
                f"The key_file {endpoint.key_file} for {what} cannot be used: {error}. "
                "deploydeck does not ask for passphrases: load the key into the ssh-agent "
                f"(ssh-add {endpoint.key_file}) and leave key_file out, or use a key without one.",
            ) from None
    try:
        return await asyncssh.connect(endpoint.host, **options)
    except asyncssh.HostKeyNotVerifiable:
        key = None
        with contextlib.suppress(Exception):
            key = await fetch_host_key(endpoint)
        if key is None:
            raise SshProblem(
                HOST_KEY_UNKNOWN, f"The host key of {what} cannot be verified"
            ) from None
        fingerprint = key.get_fingerprint("sha256")
        status = key_status(endpoint, key)
        if status == "changed":
            raise SshProblem(
                HOST_KEY_CHANGED,
                f"The host key of {what} CHANGED: it now presents {key.get_algorithm()} "
                f"{fingerprint}, which is not the key recorded in "
                f"{', '.join(map(str, endpoint.known_hosts))} "
                f"({'; '.join(recorded_fingerprints(endpoint))}). This may "
                "be an attack or a reinstalled host; check it out of band, then run "
                f"`{trust} --replace-changed`.",
            ) from None
        raise SshProblem(
            HOST_KEY_UNKNOWN,
            f"The host key of {what} is unknown: {key.get_algorithm()} {fingerprint}. "
            f"Check the fingerprint, then record it with `{trust}`.",
        ) from None
    except asyncssh.PermissionDenied as error:
        raise SshProblem(
            AUTH_FAILED,
            f"{what} refused the login{' as ' + endpoint.user if endpoint.user else ''}: "
            f"{error.reason}. Check the user and key_file (or the ssh-agent) of the instance.",
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        raise SshProblem(UNREACHABLE, f"{what} is unreachable: {reason}") from None

"""`deploydeck trust INSTANCE...`: show SSH host keys and record them after confirmation.

Keys go to the instance's own known_hosts file, else the workspace's `.deploydeck/known_hosts`.
Nothing is recorded without a yes: typed at the prompt, or `--yes` for scripts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncssh (and the rest) are imported only when `trust` runs
    from rich.console import Console

    from engine.targets.ssh_connection import SshEndpoint


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "trust",
        help="show SSH instances' host keys and record them in known_hosts",
        description="Connect to each SSH instance (without logging in), show its host key "
        "fingerprint and whether it is already trusted, and record it after you confirm. "
        "A key that CHANGED is flagged loudly: check it out of band before trusting it.",
    )
    parser.add_argument("instances", nargs="*", metavar="INSTANCE", help="instance names")
    parser.add_argument("--all", action="store_true", help="every SSH instance of the workspace")
    parser.add_argument(
        "-w", "--workspace", type=Path, default=argparse.SUPPRESS, metavar="PATH"
    )  # SUPPRESS keeps `deploydeck -w PATH trust`'s value
    parser.add_argument(
        "--yes", action="store_true", help="record unknown keys without asking (scripts)"
    )
    parser.add_argument(
        "--replace-changed",
        action="store_true",
        help="replace a recorded key the host no longer presents, without asking; check the "
        "new fingerprint on the host first (--yes alone never replaces a key)",
    )
    parser.set_defaults(run=run)


def known_hosts_line(endpoint: SshEndpoint, key: Any) -> str:
    public = key.export_public_key("openssh").decode().split()
    return f"{endpoint.known_hosts_name} {public[0]} {public[1]}\n"


def record(path: Path, endpoint: SshEndpoint, key: Any) -> None:
    """Write the key for the host, replacing any line recorded for that host name before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    name = endpoint.known_hosts_name
    kept = [line for line in lines if name not in line.split(" ", 1)[0].split(",")]
    path.write_text("".join(kept) + known_hosts_line(endpoint, key))


def trust_one(
    console: Console, args: argparse.Namespace, endpoint: SshEndpoint, file: Path
) -> bool:
    """Show the host's key and record it when confirmed; whether it is trusted now."""
    import asyncio

    from rich.markup import escape

    from engine.targets.ssh_connection import fetch_host_key, key_status, recorded_fingerprints

    shown = escape(endpoint.described)
    try:
        key = asyncio.run(fetch_host_key(endpoint))
    except Exception as error:
        reason = escape(str(error) or type(error).__name__)
        console.print(f"[red]✖ {shown}:[/] cannot read its host key: {reason}")
        return False
    if key is None:
        console.print(f"[red]✖ {shown}:[/] sent no host key")
        return False
    fingerprint = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
    status = key_status(endpoint, key)
    if status == "trusted":
        console.print(f"[green]✔ {shown}[/] {fingerprint}: already trusted")
        return True
    if status == "changed":
        recorded = "; ".join(recorded_fingerprints(endpoint))
        console.print(
            f"[bold red]⚠ {shown}: the host key CHANGED.[/] It now presents {fingerprint}; "
            f"the key recorded before is {recorded}. This may be an attack or a reinstalled "
            "host: check the fingerprint on the host itself "
            "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) before you replace it."
        )
        if args.yes and not args.replace_changed:
            console.print(
                "  not replaced: --yes records unknown keys only; to replace a changed key, "
                "pass --replace-changed after checking it"
            )
            return False
    else:
        console.print(f"[yellow]? {shown}[/] {fingerprint}: unknown")
    confirmed = args.replace_changed if status == "changed" else args.yes
    if not confirmed:
        if not sys.stdin.isatty():
            flag = "--replace-changed" if status == "changed" else "--yes"
            console.print(
                f"  not recorded: confirm at a terminal, or pass {flag} after checking it"
            )
            return False
        wanted = "replace" if status == "changed" else "y"
        prompt = f"  Trust this key for {endpoint.described}? Type {wanted} to record it [no]: "
        if input(prompt).strip().lower() != wanted:
            console.print("  not recorded")
            return False
    record(file, endpoint, key)
    console.print(f"  recorded in {escape(str(file))}")
    return True


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from engine.targets.ssh_connection import SshEndpoint, jump_endpoint
    from engine.workspace import WorkspaceError, find_workspace, load_workspace
    from tui.commands.output import print_diagnostics

    console = Console(highlight=False, soft_wrap=True)
    try:
        result = load_workspace(find_workspace(Path.cwd(), args.workspace))
    except WorkspaceError as error:
        console.print(f"[red]ERROR:[/] {escape(str(error))}")
        return 1
    if not result.ok or result.workspace is None:  # ok means a workspace and no errors
        print_diagnostics(console, result.diagnostics)
        return 1
    workspace = result.workspace
    names = [n for n, i in workspace.instances.items() if i.ssh] if args.all else args.instances
    if not names:
        console.print("[red]ERROR:[/] name the instances to trust, or pass --all")
        return 1
    problems = 0
    for name in names:
        instance = workspace.instances.get(name)
        if instance is None or instance.ssh is None:
            console.print(f"[red]✖ {escape(name)}:[/] not an SSH instance of {workspace.path}")
            problems += 1
            continue
        ssh = instance.ssh
        files = ssh.known_hosts_files(workspace.state_dir)
        endpoint = SshEndpoint(
            ssh.host, ssh.port, ssh.user or None, ssh.key_file, ssh.proxy_jump, files, name
        )
        target_file = ssh.known_hosts or workspace.state_dir / "known_hosts"
        hosts = [jump_endpoint(endpoint), endpoint] if endpoint.proxy_jump else [endpoint]
        for host in hosts:
            if not trust_one(console, args, host, target_file):
                problems += 1
                break  # the instance cannot be reached through an untrusted jump host
    return 1 if problems else 0

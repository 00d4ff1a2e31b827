"""What the CLI shows of deployments, revisions and journals: get, list, list-revisions,
the journal; as text for people or JSON."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from engine.api import Engine
from engine.model import DeploymentInfo, Status
from tui.commands.report import (
    connection_states,
    deployment_json,
    deployment_status_pieces,
    failure_lines,
    print_lines,
    rich_line,
)
from tui.render.glyphs import status as status_text
from tui.render.plain import (
    PlainRenderer,
    shift_line,
    task_set_text,
    time_scaled,
)

# ---- the rest -------------------------------------------------------------------------------


def get_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    deployment = engine.get_deployment(args.deployment_id)
    if args.output == "json":
        print(json.dumps(deployment_json(engine, deployment), indent=2))
        return 0
    d = deployment
    console.print(f"[bold]{d.id}[/] {d.application}/{d.deployment_group}  ", deployment_status(d))
    rows = [
        ("config", d.config_name),
        ("platform", f"{d.compute_platform}, {d.deployment_style}"),
        ("time scale", time_scaled(d.options.time_scale).strip(" ()")),
        ("target weight", _weight_text(engine, d.id)),
        ("traffic shift", _shift_text(engine, d.id)),
        ("task sets", _task_sets_text(engine, d.id)),
        ("revision", f"{d.revision.short()} {d.revision.location} ({d.revision.bundle_type})"),
        ("previous revision", d.previous_revision.short() if d.previous_revision else "none"),
        ("creator", d.creator),
        ("description", d.description),
        ("created", _time(d.create_time)),
        ("started", _time(d.start_time)),
        ("completed", _time(d.complete_time)),
        ("duration", _duration(d)),
        (
            "error" if d.error_code else "message",
            f"{d.error_code}: {d.error_message}" if d.error_code else (d.error_message or ""),
        ),
        ("rolled back by", d.rollback.rollback_deployment_id or ""),
        ("rolls back", d.rollback.rollback_triggering_deployment_id or ""),
        ("rollback", d.rollback.rollback_message or ""),
        ("overview", "  ".join(f"{k} {v}" for k, v in d.overview().items() if v)),
        ("interrupted", engine.interrupted_message(d) if d.interrupted else ""),
    ]
    for label, value in rows:
        if value:
            console.print(f"  {label:<18} {escape(str(value))}")
    connections = connection_states(engine, d.id)
    for instance in d.instances:
        events = " ".join(
            f"{e.name}:{e.status}" for e in instance.events if e.status != Status.PENDING
        )
        where = ""
        if instance.host.startswith("ssh:"):  # SSH instances: the host and the connection
            where = f"  {instance.host[4:]} ({connections.get(instance.name, 'not connected')})"
        console.print(
            f"  {instance.name:<16} batch {instance.batch or '-'}  ",
            status_text(instance.status),
            escape(where),
            f"  [dim]{escape(events)}[/]",
        )
    print_lines(console, failure_lines(d, tail=10))
    return 0


def list_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    deployments = engine.list_deployments(
        args.application_name, args.deployment_group_name, args.include_only_statuses, args.limit
    )
    # The listing's rows carry no instances; each deployment's own counts come with them.
    deployments = [engine.get_deployment(d.id) for d in deployments]
    if args.output == "json":
        print(json.dumps({"deployments": [d.to_api() for d in deployments]}, indent=2))
        return 0
    if not deployments:
        console.print("no deployments yet")
        return 0
    header = ("DEPLOYMENT", "STATUS", "GROUP", "REVISION", "CONFIG", "INSTANCES")
    rows = []
    for d in deployments:
        link = ""
        if d.rollback.rollback_deployment_id:
            link = f"→ rolled back by {d.rollback.rollback_deployment_id}"
        elif d.rollback.rollback_triggering_deployment_id:
            link = f"← rolls back {d.rollback.rollback_triggering_deployment_id}"
        rows.append(
            (
                d.id,
                deployment_status(d),
                f"{d.application}/{d.deployment_group}",
                f"{d.revision.short()} {_revision_name(d.revision.location)}",
                d.config_name,
                _instance_counts(d),
                f"{d.creator}",
                _time(d.create_time),
                _duration(d),
                link,
            )
        )
    print_columns(console, (*header, "CREATOR", "CREATED", "DURATION", "ROLLBACK"), rows)
    return 0


def _revision_name(location: str) -> str:
    """The revision's folder or archive name: what people call it (web-v2)."""
    return Path(location).name or location


def _instance_counts(d: DeploymentInfo) -> str:
    counts = {k: v for k, v in d.overview().items() if v}
    return " ".join(f"{n} {status}" for status, n in counts.items()) or "none"


def print_columns(console: Console, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """A header and rows in aligned columns, each as wide as its widest cell: nothing is cut,
    and a pipe gets the same lines as a terminal (lines longer than the terminal wrap)."""
    titles = [Text(h, style="bold") for h in header]
    cells = [[c if isinstance(c, Text) else Text(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i].plain) for row in [titles, *cells]) for i in range(len(header))]
    for row in [titles, *cells]:
        line = Text("  ").join(
            cell + " " * (width - len(cell.plain)) for cell, width in zip(row, widths, strict=True)
        )
        line.rstrip()
        console.print(line, overflow="ignore", crop=False)


def revisions_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    revisions = engine.list_revisions(args.application_name)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "revisions": [
                        {
                            "applicationName": r.application,
                            "sha256": r.revision.sha256,
                            "location": r.revision.location,
                            "bundleType": r.revision.bundle_type,
                            "description": r.description,
                            "registerTime": r.register_time,
                            "firstUsedTime": r.first_used_time,
                            "lastUsedTime": r.last_used_time,
                        }
                        for r in revisions
                    ]
                },
                indent=2,
            )
        )
        return 0
    for r in revisions:
        console.print(
            f"{r.revision.short()}  {r.application}  {r.revision.bundle_type:<9}  "
            f"{escape(r.revision.location)}"
            f"  registered {_time(r.register_time)}  last used {_time(r.last_used_time) or 'never'}"
            + (f"  {escape(r.description)}" if r.description else "")
        )
    if not revisions:
        console.print("no revisions yet")
    return 0


def journal_cmd(args: argparse.Namespace, engine: Engine, console: Console) -> int:
    engine.get_deployment(args.deployment_id)
    entries = engine.journal(args.deployment_id)
    if args.output == "json":
        from engine.serialize import to_data

        for entry in entries:
            print(json.dumps({"seq": entry.seq, "kind": entry.event.kind, **to_data(entry.event)}))
        return 0
    plain = PlainRenderer(lambda line: console.print(escape(line)), show_output=args.show_output)
    for entry in entries:
        plain.render(entry.event)
    return 0


def _time(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else ""


def _duration(d: DeploymentInfo) -> str:
    if d.start_time is None:
        return ""
    end = d.complete_time or d.interrupted_at or time.time()
    return f"{end - d.start_time:.1f}s"


def deployment_status(d: DeploymentInfo) -> Text:
    """The status, with `(interrupted)` once the engine process running it is gone."""
    return rich_line(deployment_status_pieces(d))


__all__ = ["print_columns"]


def _weight_text(engine: Engine, deployment_id: str) -> str:
    weight = engine.target_version_weight(deployment_id)
    return "" if weight is None else f"{weight:.0%} of calls on the target version"


def _shift_text(engine: Engine, deployment_id: str) -> str:
    shift = engine.traffic_shift(deployment_id)
    return "" if shift is None else shift_line(shift).removeprefix("traffic shift").lstrip(": ")


def _task_sets_text(engine: Engine, deployment_id: str) -> str:
    service = engine.task_sets(deployment_id)
    if service is None:
        return ""
    test = f", test {service.test}" if service.test else ""
    sets = "; ".join(task_set_text(t) for t in service.task_sets) or "none"
    return f"{service.service} (production {service.production}{test}): {sets}"

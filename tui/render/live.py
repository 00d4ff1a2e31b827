"""A live view of a running deployment on a terminal (Rich), redrawn a few times a second."""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from engine.model import ConnectionState, Status
from tui.render.glyphs import status
from tui.render.natural import natural_key
from tui.render.plain import time_scaled
from tui.render.state import DeploymentView, InstanceView
from tui.render.terminal_text import printable

ORDER: dict[str, int] = {
    Status.IN_PROGRESS: 0,
    Status.FAILED: 1,
    Status.PENDING: 2,
    Status.SUCCEEDED: 3,
    Status.SKIPPED: 4,
}


def elapsed(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    seconds = (end or time.time()) - start
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def render_deployment(view: DeploymentView, max_rows: int = 20) -> RenderableType:
    info = view.info
    header = Text.assemble(
        (f"{info.id} ", "bold"),
        f"{info.application}/{info.deployment_group} · {info.config_name} · revision "
        f"{info.revision.short()} · ",
        status(view.status),
        f" · {elapsed(view.started, view.ended)}",
    )
    counts = view.counts()
    total = len(view.instances) or 1
    done = sum(counts.get(s, 0) for s in (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED))
    summary = Text(
        "  ".join(
            f"{status} {n}"
            for status, n in sorted(counts.items(), key=lambda kv: ORDER.get(kv[0], 9))
        )
        + (f"   minimum healthy {view.minimum_healthy}" if view.minimum_healthy is not None else "")
        + (f"   target version {view.target_weight:.0%}" if view.target_weight is not None else "")
        + time_scaled(info.options.time_scale)
    )
    table = Table(box=None, pad_edge=False, expand=False)
    for column in ("instance", "batch", "status", "event", "time", "detail"):
        table.add_column(
            column, no_wrap=True, overflow="ellipsis", max_width=60 if column == "detail" else None
        )
    rows = sorted(
        view.instances.values(),
        key=lambda i: (ORDER.get(i.status, 9), i.batch or 0, natural_key(i.name)),
    )
    for instance in rows[:max_rows]:
        table.add_row(
            instance.name,
            str(instance.batch or ""),
            status(instance.status),
            instance.current_event or "",
            elapsed(instance.started, instance.ended),
            _detail(instance),
        )
    progress = Table.grid(padding=(0, 2))
    progress.add_row(ProgressBar(total=total, completed=done, width=40), summary)
    parts: list[RenderableType] = [header, progress, table]
    if len(rows) > max_rows:
        parts.append(Text(f"… and {len(rows) - max_rows} more", style="dim"))
    return Group(*parts)


def _detail(instance: InstanceView) -> str:
    return printable(_raw_detail(instance))


def _raw_detail(instance: InstanceView) -> str:
    failure = instance.failure()
    if failure is not None:
        event, diag = failure
        return f"{event}: {diag.error_code} {diag.message}"
    if instance.connection and instance.connection != ConnectionState.CONNECTED:
        return f"ssh {instance.connection}"
    return instance.output[-1] if instance.output and instance.status == Status.IN_PROGRESS else ""

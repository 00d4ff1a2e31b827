"""What an appspec names inside its revision: hook scripts and `files` sources that are not
there are warnings, because CodeDeploy accepts the appspec and fails only when the deployment
reaches them (ScriptMissing in the hook's event, or Install)."""

from __future__ import annotations

import posixpath

from engine.appspec.diagnostics import Diagnostic
from engine.appspec.document import load_document
from engine.appspec.report import Reporter
from engine.host.extract import leading_directory
from engine.revision.appspec_source import AppSpecSource
from engine.revision.bundle import Bundle


def revision_paths(bundle: Bundle) -> set[str]:
    """Every path in the revision ("scripts/start.sh", "scripts"), leading directory stripped;
    from the scan open_bundle made, so nothing is read again."""
    names = [name for name in bundle.member_names if name not in ("", ".")]
    prefix = leading_directory(names) if bundle.bundle_type != "directory" else None
    if prefix:
        names = [n[len(prefix) + 1 :] for n in names if n.startswith(prefix + "/")]
    paths = set(names)
    for name in names:  # archives need not list the folders their files are in
        parent = posixpath.dirname(name)
        while parent and parent not in paths:
            paths.add(parent)
            parent = posixpath.dirname(parent)
    return paths


def missing_references(source: AppSpecSource, paths: set[str]) -> tuple[Diagnostic, ...]:
    """Warnings for hook locations and file sources the revision does not hold."""
    reporter = Reporter(source.display_path)
    root = load_document(source.text, reporter.child()).root
    if root is None or not root.is_mapping:
        return ()
    hooks = root.get("hooks")
    for event_key, scripts in hooks.pairs if hooks is not None and hooks.is_mapping else ():
        for index, script in enumerate(scripts.items if scripts.is_sequence else ()):
            location = script.get("location") if script.is_mapping else None
            if location is None or not location.is_str or _held(location.value, paths):
                continue
            reporter.warning_at(
                location.line,
                location.column,
                f"hooks.{event_key.text}[{index}].location",
                f"{location.value} is not in the revision: {event_key.text} would fail with "
                "ScriptMissing",
                location.value,
                "add the script to the revision, or fix the path (it is relative to the "
                "revision's root, where the appspec is)",
            )
    files = root.get("files")
    for index, mapping in enumerate(files.items if files is not None and files.is_sequence else ()):
        source_node = mapping.get("source") if mapping.is_mapping else None
        if source_node is None or not source_node.is_str:
            continue
        if source_node.value.strip("/") in ("", ".") or _held(source_node.value, paths):
            continue
        reporter.warning_at(
            source_node.line,
            source_node.column,
            f"files[{index}].source",
            f"{source_node.value} is not in the revision: Install would fail",
            source_node.value,
            "add it to the revision, or fix the path (relative to the revision's root)",
        )
    return reporter.diagnostics()


def _held(location: str, paths: set[str]) -> bool:
    return posixpath.normpath(location.lstrip("/")) in paths

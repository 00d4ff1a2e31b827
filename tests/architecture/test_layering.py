"""The console and the CLI talk to the engine through its facade: `tui` imports `engine.api`,
`engine.model` and `engine.events`, nothing deeper. The command-line tools that work below the
facade by nature are listed in ALLOWED, each with why; the console itself has no exception."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TUI = REPO / "tui"
FACADE = frozenset({"engine", "engine.api", "engine.model", "engine.events"})

# (module under tui/, engine module it may import beyond the facade): why
ALLOWED: dict[tuple[str, str], str] = {
    # Commands start before any engine exists: they find and load (or write) the workspace file
    # the engine is then built from.
    ("tui/commands/console_cmd.py", "engine.workspace"): "loads the workspace to open",
    ("tui/commands/deploy_cmds.py", "engine.workspace"): "loads the workspace to open",
    ("tui/commands/deploy_cmds.py", "engine.deployments.runner_slot"): "forks the runner early",
    # The program's entry point enables the dataclass code cache before any engine module (or
    # textual's) defines a class: the facade itself is one of them.
    ("tui/cli.py", "engine.dataclass_cache"): "compiled dataclass methods, before any import",
    ("tui/cli.py", "engine.deployments.runner_slot"): "forks the runner before parsing",
    ("tui/commands/trust_cmd.py", "engine.workspace"): "loads the workspace to trust hosts of",
    ("tui/commands/init_cmd.py", "engine.workspace"): "writes a starter workspace",
    ("tui/commands/init_cmd.py", "engine.workspace.starter"): "writes a starter workspace",
    ("tui/demo.py", "engine.workspace"): "builds the demo's workspace",
    ("tui/demo.py", "engine.functions"): "makes the demo's function and serves its traffic",
    ("tui/demo.py", "engine.services"): "registers the demo service's task definitions",
    ("tui/screenshots.py", "engine.workspace"): "builds the screenshots' workspace",
    # The error code a stop leaves on unfinished instances is the host agent's vocabulary.
    ("tui/commands/report.py", "engine.host.results"): "tells a stop from a failure",
    # `list-deployment-journal --output json` prints events in their stored JSON form.
    ("tui/commands/read_cmds.py", "engine.serialize"): "the journal's JSON form",
    # `trust-hosts` records SSH host keys: it runs before any deployment, without an engine.
    ("tui/commands/trust_cmd.py", "engine.targets.ssh_connection"): "fetches host keys",
    # `validate` and `local` mirror the CodeDeploy agent's local tools: they check and run a
    # revision on this machine, with no workspace, store or engine (like codedeploy-local).
    ("tui/commands/validate_cmd.py", "engine.appspec"): "appspec checks without an engine",
    ("tui/commands/validate_cmd.py", "engine.appspec.diagnostics"): "appspec checks",
    ("tui/commands/validate_cmd.py", "engine.revision"): "reads a bundle without an engine",
    ("tui/commands/validate_cmd.py", "engine.revision.references"): "checks files it names",
    ("tui/commands/output.py", "engine.appspec.diagnostics"): "prints validate's diagnostics",
    ("tui/commands/local_cmd.py", "engine.local"): "the codedeploy-local mirror",
    ("tui/commands/local_cmd.py", "engine.host.layout"): "the default group's id and name",
    ("tui/commands/function_cmds.py", "engine.functions"): "the function registry's own verbs",
    ("tui/commands/function_cmds.py", "engine.functions.gateway"): "reads name:qualifier",
    ("tui/commands/function_cmds.py", "engine.workspace"): "loads the workspace it works in",
    ("tui/commands/local_cmd.py", "engine.host.results"): "prints the local run's results",
    ("tui/commands/local_cmd.py", "engine.revision"): "parses --max-bundle-size",
}


def engine_imports(path: Path) -> set[str]:
    """Every engine module a file imports, at any depth of the file (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "engine")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "engine":
                continue
            found.add(node.module)
            if node.module == "engine":  # `from engine import store` reaches below
                found.update(f"engine.{a.name}" for a in node.names)
    return found


def violations(root: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """Imports below the facade not in ALLOWED, and the ALLOWED entries in use."""
    bad, used = [], set()
    for path in sorted(root.rglob("*.py")):
        name = str(path.relative_to(root.parent))
        for module in sorted(engine_imports(path)):
            if module in FACADE:
                continue
            if (name, module) in ALLOWED:
                used.add((name, module))
            else:
                bad.append(f"{name} imports {module}")
    return bad, used


def test_tui_reaches_the_engine_only_through_its_facade() -> None:
    bad, used = violations(TUI)
    assert bad == [], "use engine.api (add the read the console needs to Engine) instead"
    # an exception no longer needed is removed, so the list says what is true today
    assert sorted(set(ALLOWED) - used) == []


def test_the_console_itself_has_no_exception() -> None:
    console = ("tui/app.py", "tui/screens/", "tui/widgets/", "tui/render/")
    assert [key for key in ALLOWED if key[0].startswith(console)] == []


def test_the_check_finds_a_deep_import(tmp_path: Path) -> None:
    """It can fail: screens importing the store, directly or lazily, are found."""
    tui = tmp_path / "tui"
    (tui / "screens").mkdir(parents=True)
    (tui / "screens" / "a.py").write_text("from engine.store import Store\n")
    (tui / "screens" / "b.py").write_text("def f():\n    import engine.deployments.runner\n")
    (tui / "screens" / "c.py").write_text(
        "from engine import store\nfrom engine.api import Engine\n"
    )
    bad, _ = violations(tui)
    assert bad == [
        "tui/screens/a.py imports engine.store",
        "tui/screens/b.py imports engine.deployments.runner",
        "tui/screens/c.py imports engine.store",
    ]


def test_the_engine_facade_keeps_its_store_private() -> None:
    from engine.api import Engine

    assert not hasattr(Engine, "store")
    tree = ast.parse((REPO / "engine" / "api.py").read_text())
    public = {
        t.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    assert "store" not in public and "_store" in public

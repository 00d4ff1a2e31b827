"""The fault matrix: every fault test's docstring, gathered into docs/reliability.md.

Each test in tests/faults/ has a one-line docstring "<fault> -> <what deploydeck promises>".
Cases proved by a test elsewhere in the suite are named in ELSEWHERE. Regenerate the document
with `python -m tests.faults.matrix > docs/reliability.md`; test_matrix_doc.py fails while the
document and the tests disagree.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAULTS = REPO / "tests" / "faults"

# Matrix cases whose proof lives in another suite, as "path::test_name".
ELSEWHERE: tuple[str, ...] = (
    "tests/ecs/test_ecs_deployments.py::"
    "test_a_task_that_crashes_during_install_fails_the_deployment_cleanly",
    "tests/ecs/test_ecs_deployments.py::"
    "test_stopping_mid_shift_routes_production_back_and_removes_the_replacement",
    "tests/ecs/test_ecs_deployments.py::"
    "test_an_alarm_mid_shift_puts_production_back_within_one_evaluation_interval",
    "tests/functions/test_shift_control.py::test_a_stop_while_held_puts_the_alias_back",
    "tests/host/test_stop_many.py::test_a_process_group_ignoring_sigterm_is_killed_after_the_grace",
    "tests/host/test_stop_many.py::test_a_second_stop_before_the_first_signal_kills_and_still_logs",
)

SECTIONS = {
    "test_host_faults.py": "On the host: bundles, Install, hooks",
    "test_secrets_and_ssh_faults.py": "Secrets, files on disk, SSH",
    "test_runner_faults.py": "The runner, the store, following a deployment",
    "test_input_faults.py": "Input: appspecs, workspaces, command lines",
    "test_survivors_archives.py": "Archives",
    "test_survivors_yaml.py": "YAML",
    "test_survivors_engine.py": "Deployments, processes, crashes",
    "test_survivors_ssh.py": "SSH hosts",
    "test_services.py": "Services (ECS-like tasks)",
    "test_service_host.py": "Services' hosts (ECS-like services between deployments)",
    "test_traffic_control.py": "Traffic control: load balancers",
    "test_alarm_faults.py": "Alarms",
    "test_lambda.py": "Lambda deployments",
    "test_ecs.py": "ECS deployments",
    "test_runner_slot.py": "The runner create-deployment forks before it loads the engine",
}
HEADER = """# Reliability: the fault matrix

What deploydeck promises when things go wrong, and the test that proves each promise. Every
row is a fault someone will meet (a hostile archive, a dead host, a killed process, a full
disk), what deploydeck does about it, and the test that fails if it ever stops doing it.

This file is generated from the tests' docstrings by `python -m tests.faults.matrix`;
`tests/faults/test_matrix_doc.py` fails when it is out of date. To add a case, write the test
in `tests/faults/` with a docstring `<fault> -> <promise>` (or name an existing test in
`ELSEWHERE` in `tests/faults/matrix.py`) and regenerate.
"""


@dataclass(frozen=True)
class Case:
    """One row of the matrix."""

    fault: str
    promise: str
    test: str  # path::name
    known_gap: str = ""  # an xfail's reason: the promise is not kept yet


def _cases_in(path: Path, only: set[str] | None = None) -> list[Case]:
    tree = ast.parse(path.read_text())
    relative = path.relative_to(REPO).as_posix()
    cases = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if not node.name.startswith("test_") or (only is not None and node.name not in only):
            continue
        doc = " ".join((ast.get_docstring(node) or "").split())
        fault, _, promise = doc.partition(" -> ")
        test = f"{relative}::{node.name}"
        cases.append(Case(fault.strip(), promise.strip(), test, _xfail_reason(node)))
    return cases


def _xfail_reason(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The reason of an `xfail` mark on a test: a promise the code does not keep yet."""
    for mark in node.decorator_list:
        if isinstance(mark, ast.Call) and ast.unparse(mark.func).endswith("mark.xfail"):
            for keyword in mark.keywords:
                if keyword.arg == "reason":
                    return " ".join(str(ast.literal_eval(keyword.value)).split())
            return "not kept yet"
    return ""


def fault_files() -> list[Path]:
    return sorted(p for p in FAULTS.glob("test_*.py") if p.name != "test_matrix_doc.py")


def collect() -> dict[str, list[Case]]:
    """The matrix by section, in a stable order."""
    sections: dict[str, list[Case]] = {}
    for path in fault_files():
        title = SECTIONS.get(path.name, path.stem.removeprefix("test_").replace("_", " "))
        sections.setdefault(title, []).extend(_cases_in(path))
    by_file: dict[str, set[str]] = {}
    for ref in ELSEWHERE:
        file, _, name = ref.partition("::")
        by_file.setdefault(file, set()).add(name)
    elsewhere: list[Case] = []
    for file, names in sorted(by_file.items()):
        elsewhere.extend(_cases_in(REPO / file, names))
    if elsewhere:
        sections["Proved by tests elsewhere in the suite"] = elsewhere
    return sections


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    sections = collect()
    total = sum(len(cases) for cases in sections.values())
    gaps = sum(1 for cases in sections.values() for case in cases if case.known_gap)
    lines = [HEADER, f"{total} cases, {gaps} of them a known gap (an expected failure).", ""]
    for title, cases in sections.items():
        lines += [f"## {title}", "", "| fault | promise | test |", "| --- | --- | --- |"]
        for case in cases:
            promise = case.promise
            if case.known_gap:
                promise = f"**Not kept yet:** {case.known_gap}. (Promised: {promise})"
            lines.append(f"| {_cell(case.fault)} | {_cell(promise)} | `{case.test}` |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())

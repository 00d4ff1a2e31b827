"""docs/reliability.md is the fault matrix as the tests state it, and every case is stated."""

from __future__ import annotations

from tests.faults import matrix


def test_every_fault_test_states_its_fault_and_promise() -> None:
    unstated = [
        case.test
        for cases in matrix.collect().values()
        for case in cases
        if not case.fault or not case.promise
    ]
    assert unstated == [], "each needs a docstring '<fault> -> <promise>'"


def test_the_elsewhere_cases_exist() -> None:
    found = {case.test for cases in matrix.collect().values() for case in cases}
    assert set(matrix.ELSEWHERE) <= found


def test_reliability_doc_is_generated_from_the_tests() -> None:
    doc = matrix.REPO / "docs" / "reliability.md"
    assert doc.read_text() == matrix.render(), (
        "regenerate: python -m tests.faults.matrix > docs/reliability.md"
    )

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.harness import Host


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(root=tmp_path / "root")

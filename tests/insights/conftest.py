from __future__ import annotations

from pathlib import Path

import pytest
from insights_builder import workspace

from rea_cli.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return workspace(tmp_path)

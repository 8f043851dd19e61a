from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Paths:
    """The workspace paths the insights code is given (as rea_cli.workspace.Workspace has)."""

    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "insights.duckdb"

    @property
    def analyst_db_path(self) -> Path:
        return self.root / "insights-analyst.duckdb"


@pytest.fixture
def ws(tmp_path: Path) -> Paths:
    (tmp_path / "campaigns").mkdir()
    return Paths(tmp_path)

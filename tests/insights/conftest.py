from __future__ import annotations

from pathlib import Path

import pytest
from insights_builder import Paths


@pytest.fixture
def ws(tmp_path: Path) -> Paths:
    (tmp_path / "campaigns").mkdir()
    return Paths(tmp_path)

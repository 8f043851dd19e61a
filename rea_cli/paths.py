"""Where shipped data (sbatch templates, runbooks, knowledge) lives: the wheel or the checkout."""

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """Folder of shipped data `name` ("sbatch_templates", "runbooks" or "knowledge")."""
    installed = _PKG / "_shipped" / name
    if installed.is_dir():
        return installed
    return _PKG.parent / name

"""The workspace: a shared folder with rea.toml, campaigns/ and the insights DB."""

from __future__ import annotations

import grp
import os
import shutil
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from rea_cli.config import CONFIG_NAME, Settings, default_toml, load_settings
from rea_cli.errors import UsageError
from rea_cli.fsutil import secure_umask, write_text_atomic

ENV_VAR = "REA_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        # the root reaches crontab lines, sbatch scripts and shell commands: one printable line
        if not str(self.root).isprintable():
            raise UsageError(
                f"workspace path {str(self.root)!r} contains a newline or control character; "
                "rename the folder (such a path could add lines to crontabs and job scripts)"
            )

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def campaigns_dir(self) -> Path:
        return self.root / "campaigns"

    @property
    def db_path(self) -> Path:
        return self.root / "insights.duckdb"

    @property
    def analyst_db_path(self) -> Path:
        return self.root / "insights-analyst.duckdb"

    @property
    def state_dir(self) -> Path:
        """Backend state, locks and logs (not for humans)."""
        return self.root / ".rea"

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    def campaign_dir(self, campaign_id: str) -> Path:
        return self.campaigns_dir / campaign_id


def find_workspace(explicit: Path | None = None, *, cwd: Path | None = None) -> Workspace:
    """--workspace, else $REA_WORKSPACE, else the current directory or its nearest parent."""
    if explicit is not None:
        return _checked(explicit, "--workspace")
    env = os.environ.get(ENV_VAR)
    if env:
        return _checked(Path(env), f"${ENV_VAR}")
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return Workspace(folder)
    raise UsageError(
        f"no rea workspace here (no {CONFIG_NAME} in {start} or its parents); "
        "run `rea init DIR`, or pass --workspace DIR or set REA_WORKSPACE"
    )


def _checked(path: Path, origin: str) -> Workspace:
    root = path.expanduser().resolve()
    if not (root / CONFIG_NAME).is_file():
        raise UsageError(
            f"{origin} {path}: not a rea workspace (no {CONFIG_NAME}); "
            f"create it with `rea init {path}`"
        )
    return Workspace(root)


def default_backend() -> str:
    """slurm when sbatch is on PATH, local otherwise."""
    return "slurm" if shutil.which("sbatch") else "local"


def init_workspace(
    root: Path,
    *,
    backend: str | None = None,
    shared: bool = False,
    group: str | None = None,
    slurm_defaults: dict[str, Any] | None = None,
) -> Workspace:
    """Create rea.toml (commented defaults; `slurm_defaults`: per-trial resources that fit
    the cluster), campaigns/ and .rea/. Refuses to overwrite.

    shared: a workspace for a group (docs/security.md): its folders setgid and group-writable
    (owned by `group` when given), and rea runs with umask 002 there."""
    ws, chosen, gid = check_init(root, backend=backend, shared=shared, group=group)
    config = ws.config_path
    if shared:
        secure_umask(shared=True)
    ws.root.mkdir(parents=True, exist_ok=True)
    folders = (ws.root, ws.campaigns_dir, ws.state_dir)
    for folder in folders[1:]:
        folder.mkdir(exist_ok=True)
    if shared:
        for folder in folders:
            _share(folder, gid)
    write_text_atomic(config, default_toml(chosen, shared, **(slurm_defaults or {})))
    from rea_cli.insights import init_db  # duckdb: imported only here, not by every command

    init_db(ws.db_path, storage_version=ws.settings.insights.storage_version)
    return ws


def check_init(
    root: Path, *, backend: str | None = None, shared: bool = False, group: str | None = None
) -> tuple[Workspace, str, int | None]:
    """What `init` refuses, checked before anything is asked of a cluster: (the workspace,
    the backend, the group's id)."""
    ws = Workspace(root.expanduser().resolve())
    if ws.config_path.exists():
        raise UsageError(f"{ws.config_path} already exists; this folder is already a rea workspace")
    chosen = backend or default_backend()
    if chosen not in ("local", "slurm"):
        raise UsageError(f"unknown backend {chosen!r}; use 'local' or 'slurm'")
    if group is not None and not shared:
        raise UsageError("--group is for a shared workspace; add --shared")
    return ws, chosen, _group_id(group) if group is not None else None


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise UsageError(f"unknown group {name!r}; list yours with `id -Gn`") from None


def _share(folder: Path, gid: int | None) -> None:
    """Group-owned (by gid when given), group-writable and setgid, so that what is created in
    it belongs to the group too."""
    if gid is not None:
        os.chown(folder, -1, gid)
    mode = stat.S_IMODE(folder.stat().st_mode)
    os.chmod(folder, (mode | 0o070 | stat.S_ISGID) & ~0o002)

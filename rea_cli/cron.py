"""`rea cron install/remove`: the crontab (or scrontab) entry that runs `rea tick`.

Pure text functions (the entry, merging it into a table) beside the thin I/O that reads and
writes the user's table with `crontab`/`scrontab`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rea_cli.config import SlurmSettings
from rea_cli.errors import SchedulerError, UsageError
from rea_cli.workspace import Workspace

CronTool = Literal["crontab", "scrontab"]


@dataclass(frozen=True)
class CronChange:
    tool: CronTool
    block: str  # the lines rea owns in the table ("" after a removal)
    changed: bool  # False when the table already said exactly this


def tick_command(ws_root: Path, python: str, path: str | None = None) -> str:
    """The shell command cron runs: one tick, appended to <ws>/.rea/tick.log. cron's PATH is
    minimal, so the PATH of the install (where sbatch/squeue were found) is carried along."""
    log_path = ws_root / ".rea" / "tick.log"
    argv = [python, "-m", "rea_cli", "--workspace", str(ws_root), "tick"]
    env = f"PATH={shlex.quote(path)} " if path else ""
    return f"{env}{shlex.join(argv)} >> {shlex.quote(str(log_path))} 2>&1"


def schedule(every_min: int) -> str:
    """Five cron time fields running every `every_min` minutes (1..60)."""
    if not 1 <= every_min <= 60:
        raise UsageError(f"--every {every_min}: use a number of minutes from 1 to 60")
    if every_min == 60:
        return "0 * * * *"
    return "* * * * *" if every_min == 1 else f"*/{every_min} * * * *"


def _markers(ws_root: Path) -> tuple[str, str]:
    return f"# >>> rea tick {ws_root} >>>", f"# <<< rea tick {ws_root} <<<"


def cron_block(
    ws_root: Path,
    python: str,
    every_min: int = 5,
    tool: CronTool = "crontab",
    slurm: SlurmSettings | None = None,
    path: str | None = None,
) -> str:
    """The lines `rea cron install` puts in the crontab (or scrontab), between two markers
    naming the workspace so that installing again replaces them instead of adding a copy."""
    begin, end = _markers(ws_root)
    lines = [begin, "# installed by `rea cron install`; remove with `rea cron remove --apply`"]
    if tool == "scrontab":
        # one small job per tick; its output goes to tick.log through the command itself
        lines += ["#SCRON --job-name=rea-tick", "#SCRON --time=10", "#SCRON --cpus-per-task=1"]
        lines += ["#SCRON --output=/dev/null"]
        for key in ("partition", "account", "qos"):
            value = getattr(slurm, key, None) if slurm else None
            if value:
                lines.append(f"#SCRON --{key}={value}")
    command = tick_command(ws_root, python, path).replace("%", r"\%")  # cron: % is a newline
    lines.append(f"{schedule(every_min)} {command}")
    for line in lines:
        # a crontab is line-based: quoting cannot stop a newline from starting a new entry
        if not line.isprintable():
            raise UsageError(
                f"refusing to write a crontab line with a newline or control character "
                f"({line[:60]!r}...); rename the workspace folder, or fix PATH / the settings"
            )
    return "\n".join([*lines, end]) + "\n"


def strip_block(table: str, ws_root: Path) -> str:
    """The table without rea's block for this workspace (other lines kept as they are)."""
    begin, end = _markers(ws_root)
    out, inside = [], False
    for line in table.splitlines(keepends=True):
        text = line.rstrip("\n")
        if text == begin:
            inside = True
        elif inside and text == end:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def merge_block(table: str, ws_root: Path, block: str) -> str:
    """The table with this workspace's block replaced by `block` (appended at the end)."""
    kept = strip_block(table, ws_root)
    if kept and not kept.endswith("\n"):
        kept += "\n"
    return kept + block


def read_table(tool: CronTool) -> str:
    """The user's current crontab/scrontab ("" when there is none)."""
    done = _run_tool(tool, ["-l"])
    if done.returncode == 0:
        return done.stdout
    if "no crontab" in done.stderr.lower() or "no scrontab" in done.stderr.lower():
        return ""
    raise SchedulerError(f"`{tool} -l` failed: {_first_line(done.stderr)}")


def write_table(tool: CronTool, table: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".cron", delete=False) as fh:
        fh.write(table)
        path = fh.name
    try:
        done = _run_tool(tool, [path])
    finally:
        os.unlink(path)
    if done.returncode != 0:
        raise SchedulerError(f"`{tool} FILE` refused the new table: {_first_line(done.stderr)}")


def _run_tool(tool: CronTool, args: list[str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(tool)
    if exe is None:
        other = "--crontab" if tool == "scrontab" else "--scrontab"
        raise UsageError(
            f"`{tool}` is not installed on this machine; try {other}, or print the entry "
            "without --apply and install it by hand"
        )
    try:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SchedulerError(f"`{tool} {' '.join(args)}` failed: {exc}") from None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[0]


def tick_installed(ws: Workspace) -> bool:
    """Whether the user's crontab or scrontab holds this workspace's tick entry (False when
    neither can be read: then nothing is known to run `rea tick`)."""
    begin, _ = _markers(ws.root)
    tools: list[CronTool] = ["crontab"]
    if ws.settings.backend == "slurm":
        tools.append("scrontab")
    for tool in tools:
        if shutil.which(tool) is None:
            continue
        try:
            table = read_table(tool)
        except (SchedulerError, UsageError):
            continue
        if begin in table.splitlines():
            return True
    return False


def workspace_cron_block(ws: Workspace, every_min: int = 5, tool: CronTool = "crontab") -> str:
    """This workspace's block, with this Python and this PATH."""
    return cron_block(
        ws.root, sys.executable, every_min, tool, ws.settings.slurm, os.environ.get("PATH")
    )


def install_cron(ws: Workspace, every_min: int = 5, tool: CronTool = "crontab") -> CronChange:
    """Install (or update) this workspace's tick entry; idempotent."""
    block = workspace_cron_block(ws, every_min, tool)
    current = read_table(tool)
    new = merge_block(current, ws.root, block)
    if new == current:
        return CronChange(tool, block, changed=False)
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    write_table(tool, new)
    return CronChange(tool, block, changed=True)


def remove_cron(ws: Workspace, tool: CronTool = "crontab") -> CronChange:
    """Remove this workspace's tick entry; other entries are kept."""
    current = read_table(tool)
    new = strip_block(current, ws.root)
    if new == current:
        return CronChange(tool, "", changed=False)
    write_table(tool, new)
    return CronChange(tool, "", changed=True)

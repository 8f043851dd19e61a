"""`rea doctor`: one preflight of everything a campaign relies on, each check a line with its
verdict and, when it fails, the fix.

Checks: the workspace is writable; its filesystem honours the flock locks rea uses; the insights
DB can be opened (its DuckDB lock is free); disk space; each data set the workspace uses is
present and readable; on Slurm: the cluster answers, the partition / account / QOS / time limit
are valid and a node of the partition can hold one trial's CPUs, memory and GPUs; the `rea tick`
entry is in the crontab or scrontab. Nothing is submitted and nothing is changed.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rea_cli.errors import ReaError
from rea_cli.workspace import Workspace

Verdict = Literal["OK", "WARN", "FAIL", "SKIP"]
MIN_FREE_GB = 2.0
NETWORK_FS = ("nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "beegfs", "fuse.sshfs")


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class NodeCapacity:
    partition: str
    default: bool
    cpus: int
    mem_mb: int
    gpus: int


def parse_gres_gpus(gres: str) -> int:
    """'gpu:4', 'gpu:a100:2(S:0-1)', 'gpu:2,shard:8' or '(null)' -> GPUs per node."""
    total = 0
    for item in gres.split(","):
        m = re.match(r"gpu(?::[A-Za-z0-9_.-]+)?:(\d+)", item.strip())
        if m:
            total += int(m.group(1))
    return total


def parse_sinfo_nodes(text: str) -> list[NodeCapacity]:
    """`sinfo -h -N -o '%P|%c|%m|%G'`: one line per node and partition."""
    nodes = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not parts[1].strip().rstrip("+").isdigit():
            continue
        part, cpus, mem, gres = parts
        nodes.append(
            NodeCapacity(
                partition=part.rstrip("*"),
                default=part.endswith("*"),
                cpus=int(cpus.rstrip("+")),
                mem_mb=int(mem.rstrip("+")) if mem.rstrip("+").isdigit() else 0,
                gpus=parse_gres_gpus(gres),
            )
        )
    return nodes


def fit_check(
    nodes: list[NodeCapacity], partition: str | None, cpus: int, mem_gb: float | None, gpus: int
) -> Check:
    """Whether some node of the partition can hold one trial."""
    mine = [n for n in nodes if (n.partition == partition if partition else n.default)]
    where = f"partition {partition!r}" if partition else "the default partition"
    if not mine:
        return Check(
            "trial fits a node",
            "FAIL",
            f"no node in {where}",
            "set [slurm] partition in rea.toml to a partition `sinfo` lists",
        )
    need_mb = int((mem_gb or 0) * 1024)
    fitting = [n for n in mine if n.cpus >= cpus and n.mem_mb >= need_mb and n.gpus >= gpus]
    want = f"{cpus} CPU(s), {mem_gb or 0:g} GB, {gpus} GPU(s) per trial"
    if fitting:
        return Check("trial fits a node", "OK", f"{want}: {len(fitting)} node(s) of {where}")
    biggest = max(mine, key=lambda n: (n.gpus, n.cpus, n.mem_mb))
    return Check(
        "trial fits a node",
        "FAIL",
        f"{want}, but the largest node of {where} has {biggest.cpus} CPU(s), "
        f"{biggest.mem_mb / 1024:.3g} GB, {biggest.gpus} GPU(s): such a trial pends forever",
        "lower [slurm] cpus_per_trial / mem_gb / gpus_per_trial in rea.toml, or choose "
        "another partition",
    )


def fs_type(path: Path, mounts: str) -> str:
    """The filesystem type of `path` from /proc/mounts text (longest mount point wins)."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


# ---------------------------------------------------------------- probes


def _guard(name: str, probe: Callable[[], Check]) -> Check:
    try:
        return probe()
    except ReaError as exc:
        return Check(name, "FAIL", str(exc))
    except OSError as exc:
        return Check(name, "FAIL", f"{type(exc).__name__}: {exc}")


def check_writable(ws: Workspace) -> Check:
    for folder in (ws.campaigns_dir, ws.state_dir):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".doctor.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    return Check("workspace writable", "OK", str(ws.root))


def check_locks(ws: Workspace) -> Check:
    """A second open file must be refused the lock the first one holds (flock semantics)."""
    path = ws.state_dir / ".doctor.lock"
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    a = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    b = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
            excluded = False
        except BlockingIOError:
            excluded = True
    except OSError as exc:
        return Check(
            "file locks",
            "FAIL",
            f"flock on {path} failed: {exc}",
            "put the workspace on a filesystem with lock support (Lustre: mount with -o flock; "
            "NFS: local_lock=none and a lock manager)",
        )
    finally:
        os.close(a)
        os.close(b)
        path.unlink(missing_ok=True)
    kind = fs_type(ws.root, _read("/proc/mounts"))
    if not excluded:
        return Check(
            "file locks",
            "FAIL",
            f"flock on {kind} does not exclude a second writer",
            "move the workspace to a filesystem whose flock works (campaign and tick locks "
            "rely on it)",
        )
    if kind in NETWORK_FS:
        return Check(
            "file locks",
            "WARN",
            f"flock works here, but the workspace is on {kind}: locks taken on one node may "
            "not be seen on another",
            "check with your site that flock is coherent across nodes (Lustre -o flock)",
        )
    return Check("file locks", "OK", f"flock excludes a second writer ({kind})")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def check_duckdb(ws: Workspace) -> Check:
    from rea_cli.insights import InsightsLocked
    from rea_cli.insights.db import connect

    if not ws.db_path.exists():
        return Check(
            "insights DB", "FAIL", f"{ws.db_path} is missing", f"run `rea init {ws.root}` again"
        )
    try:
        with connect(ws.db_path, read_only=True, retries=0):
            pass
    except InsightsLocked as exc:
        return Check(
            "insights DB",
            "WARN",
            str(exc).split(";")[0],
            "a resume step holds it for seconds; if it stays, stop the process named (an "
            "analyst should open the published copy, `rea insights path`)",
        )
    published = "published copy present" if ws.analyst_db_path.exists() else "not published yet"
    return Check("insights DB", "OK", f"{ws.db_path.name} lock free; {published}")


def check_disk(ws: Workspace) -> Check:
    free_gb = shutil.disk_usage(ws.root).free / 1e9
    if free_gb < MIN_FREE_GB:
        return Check(
            "disk space",
            "FAIL",
            f"{free_gb:.1f} GB free at {ws.root}",
            f"free at least {MIN_FREE_GB:g} GB (checkpoints and results are written here)",
        )
    return Check("disk space", "OK", f"{free_gb:.1f} GB free")


def datasets_in_use(ws: Workspace) -> list[str]:
    """The data sets of the workspace's campaigns and schedules."""
    from rea_cli.app.schedules import ScheduleFiles, load_template, names
    from rea_cli.campaign.store import CampaignStore, list_campaigns

    found = []
    for cid in list_campaigns(ws):
        try:
            found.append(CampaignStore(ws, cid).load().dataset)
        except ReaError:
            continue
    for name in names(ws):
        try:
            found.append(load_template(ScheduleFiles(ws, name)).dataset)
        except ReaError:
            continue
    return list(dict.fromkeys(found))


def check_dataset(dataset: str) -> Check:
    from ranking_models.data.sources import source_files
    from ranking_models.errors import RankingModelsError
    from rea_cli.planner.plan import data_spec

    name = f"data set {dataset}"
    try:
        files = source_files(data_spec(dataset, "standard"))
    except (RankingModelsError, ReaError) as exc:
        return Check(name, "FAIL", str(exc))
    if files is None:
        return Check(name, "OK", "generated on the fly")
    for f in files:
        try:
            with open(f, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            return Check(name, "FAIL", f"{f}: {exc.strerror}", "fix the path or its permissions")
    return Check(name, "OK", f"{len(files)} file(s) readable")


def check_cron(ws: Workspace) -> Check:
    from rea_cli.cron import read_table

    tool: Any = "scrontab" if ws.settings.backend == "slurm" else "crontab"
    tools = [tool, "crontab" if tool == "scrontab" else "scrontab"]
    marker = f"# >>> rea tick {ws.root} >>>"
    for t in tools:
        try:
            table = read_table(t)
        except ReaError:
            continue
        if marker in table:
            return Check("rea tick entry", "OK", f"in your {t}")
    return Check(
        "rea tick entry",
        "WARN",
        "no `rea tick` entry for this workspace in your crontab or scrontab: a campaign whose "
        "wake-up is lost, and every recurring campaign, waits for a human",
        f"rea cron install --apply{' --scrontab' if tool == 'scrontab' else ''}",
    )


def slurm_checks(ws: Workspace) -> list[Check]:
    from rea_cli.executor.backends import make_scheduler, trial_resources, wakeup_resources

    s = ws.settings.slurm
    if ws.settings.backend != "slurm":
        why = "backend is local (rea.toml)"
        return [
            Check(n, "SKIP", why) for n in ("slurm reachable", "slurm request", "trial fits a node")
        ]
    sched: Any = make_scheduler(ws)
    try:
        sched.cluster()
    except ReaError as exc:
        fix = 'run rea where `scontrol ping` answers, or set backend = "local" in rea.toml'
        return [Check("slurm reachable", "FAIL", str(exc), fix)]
    checks = [Check("slurm reachable", "OK", "scontrol answers")]
    resources = trial_resources(ws.settings, float(s.time_limit_min), s.gpus_per_trial)
    try:
        sched.validate(resources)
        sched.validate(wakeup_resources(ws.settings))
        what = (
            ", ".join(
                f"{k} {v}"
                for k, v in (("partition", s.partition), ("account", s.account), ("qos", s.qos))
                if v
            )
            or "defaults"
        )
        checks.append(Check("slurm request", "OK", f"{what}; time limit {s.time_limit_min} min"))
    except ReaError as exc:
        checks.append(Check("slurm request", "FAIL", str(exc)))
    listing = sched.runner.run(["sinfo", "-h", "-N", "-o", "%P|%c|%m|%G"], check=False)
    if not listing.ok:
        checks.append(Check("trial fits a node", "WARN", f"sinfo failed: {listing.error_line()}"))
    else:
        nodes = parse_sinfo_nodes(listing.stdout)
        checks.append(fit_check(nodes, s.partition, s.cpus_per_trial, s.mem_gb, s.gpus_per_trial))
    return checks


def run_checks(ws: Workspace, datasets: list[str] | None = None) -> list[Check]:
    """Every check, in order; none raises."""
    checks = [
        _guard("workspace writable", lambda: check_writable(ws)),
        _guard("file locks", lambda: check_locks(ws)),
        _guard("insights DB", lambda: check_duckdb(ws)),
        _guard("disk space", lambda: check_disk(ws)),
    ]
    for dataset in datasets or datasets_in_use(ws) or ["movielens-100k"]:
        checks.append(_guard(f"data set {dataset}", lambda d=dataset: check_dataset(d)))  # type: ignore[misc]
    try:
        checks += slurm_checks(ws)
    except ReaError as exc:
        checks.append(Check("slurm", "FAIL", str(exc)))
    checks.append(_guard("rea tick entry", lambda: check_cron(ws)))
    return checks

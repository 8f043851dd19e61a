"""Pure parsers for the output of squeue, sacct, scontrol, sacctmgr and sbatch.

No subprocess here: every function takes text and returns data, so each is tested on output
captured from a real cluster (tests/fixtures/slurm/). The command lines that produce the text
are built from the format constants below, so parser and command cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from rea_cli.executor.scheduler import JobInfo, JobState
from rea_cli.executor.slurm.states import to_job_state

# Name last: it is the only free-text field, so a "|" inside it cannot shift the others.
SQUEUE_FIELDS = (
    "JobArrayID",
    "State",
    "Reason",
    "exit_code",
    "NodeList",
    "SubmitTime",
    "StartTime",
    "EndTime",
    "RestartCnt",
    "tres-alloc",
    "TimeUsed",
    "Name",
)
# `Field:|` = no width limit, "|" after each field (squeue -O).
SQUEUE_FORMAT = ",".join(f"{f}:|" for f in SQUEUE_FIELDS)

SACCT_FIELDS = (
    "JobID",
    "State",
    "Reason",
    "ExitCode",
    "NodeList",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "AllocTRES",
    "JobName",
)
SACCT_FORMAT = ",".join(SACCT_FIELDS)

_NO_VALUE = {"", "N/A", "NONE", "None", "Unknown", "(null)", "None assigned"}


@dataclass(frozen=True)
class SlurmRecord:
    """One job (or array task) as one Slurm command reports it."""

    job_id: str
    name: str
    slurm_state: str
    reason: str | None = None
    exit_code: int | None = None
    node: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    elapsed_s: float | None = None
    gpus: int = 0
    restarts: int = 0
    earlier_runs_s: float = 0.0  # elapsed of the earlier runs of a requeued job (sacct -D)
    oom_step: str | None = None  # a step of the last run killed at its memory limit ("12_3.0")
    mem: str | None = None  # the memory allocated ("256M"), from the TRES

    @property
    def state(self) -> JobState:
        state = to_job_state(self.slurm_state, self.reason)
        # with cgroup limits the kernel kills the step, the batch script then exits 1: the job
        # says FAILED and only its step says OUT_OF_MEMORY
        if state is JobState.FAILED and self.oom_step:
            return JobState.OUT_OF_MEMORY
        return state

    def settled(self) -> SlurmRecord:
        """Drop what Slurm prints as 0 before it is known: the exit code of a job that has not
        ended, the elapsed time of one that never started."""
        return replace(
            self,
            exit_code=self.exit_code if self.state.is_terminal else None,
            elapsed_s=self.elapsed_s if self.started_at is not None else None,
        )

    def to_job_info(self) -> JobInfo:
        r = self.settled()
        elapsed = r.elapsed_s
        if r.earlier_runs_s:  # spent counts every run of a requeued job
            elapsed = (elapsed or 0.0) + r.earlier_runs_s
        reason = r.reason
        if r.oom_step and r.state is JobState.OUT_OF_MEMORY:
            limit = f" of {r.mem}" if r.mem else ""
            reason = f"step {r.oom_step} was killed at its memory limit{limit} (OUT_OF_MEMORY)"
        return JobInfo(
            job_id=r.job_id,
            name=r.name,
            state=r.state,
            exit_code=r.exit_code,
            node=r.node,
            submitted_at=r.submitted_at,
            started_at=r.started_at,
            ended_at=r.ended_at,
            elapsed_s=elapsed,
            gpus=r.gpus,
            reason=reason,
            restarts=r.restarts,
        )


# ------------------------------------------------------------------ small fields


def parse_time(text: str) -> datetime | None:
    """Slurm timestamp (cluster local time, no zone) -> aware datetime; N/A, Unknown -> None."""
    text = text.strip()
    if text in _NO_VALUE:
        return None
    try:
        return datetime.fromisoformat(text).astimezone()
    except ValueError:
        return None


def parse_duration(text: str) -> float | None:
    """Slurm duration `[D-][HH:]MM:SS` (also `MM`, `D-HH`) -> seconds; UNLIMITED, N/A -> None."""
    text = text.strip()
    if text in _NO_VALUE or text.upper() in {"UNLIMITED", "INFINITE"}:
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        parts = [int(p) for p in text.split(":")]
        parts += [0] * (3 - len(parts))  # D-HH, D-HH:MM
        hours, minutes, seconds = parts
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:  # minutes
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, minutes, seconds = 0, parts[0], parts[1]
        else:
            hours, minutes, seconds = parts
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def exit_code_from_status(status: str) -> int | None:
    """squeue `exit_code` is a raw wait status: 768 -> 3; killed by signal 9 -> 137."""
    status = status.strip()
    if not status.isdigit():
        return None
    raw = int(status)
    signal = raw & 0x7F
    return 128 + signal if signal else raw >> 8


def exit_code_from_pair(pair: str) -> int | None:
    """sacct/scontrol `ExitCode` is `code:signal`: "3:0" -> 3; "0:9" -> 137."""
    match = re.fullmatch(r"\s*(\d+):(\d+)\s*", pair)
    if match is None:
        return None
    code, signal = int(match[1]), int(match[2])
    return 128 + signal if signal else code


def gpus_from_tres(tres: str) -> int:
    """GPUs in a TRES string ("cpu=1,gres/gpu=2"); typed ones count when no untyped entry."""
    untyped = 0
    typed = 0
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if not value.isdigit():
            continue
        if key == "gres/gpu":
            untyped += int(value)
        elif key.startswith("gres/gpu:"):
            typed += int(value)
    return untyped or typed


def mem_from_tres(tres: str) -> str | None:
    """The memory of a TRES string ("cpu=1,mem=256M,node=1" -> "256M")."""
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key == "mem" and value:
            return value
    return None


def expand_job_id(job_id: str) -> list[str]:
    """`5_[1-3,7%2]` -> ["5_1", "5_2", "5_3", "5_7"]; any other id -> [id]."""
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id.strip())
    if match is None:
        return [job_id.strip()]
    base, spec = match[1], match[2].split("%")[0]
    ids: list[str] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        ids.extend(f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1))
    return ids


def base_job_id(job_id: str) -> str:
    """ "12_3" -> "12" (the array); "12" -> "12"."""
    return job_id.split("_", 1)[0]


def _opt(text: str) -> str | None:
    text = text.strip()
    return None if text in _NO_VALUE else text


# ------------------------------------------------------------------ squeue / sacct


def parse_squeue(text: str) -> list[SlurmRecord]:
    """Parse `squeue -h -r -t all -O SQUEUE_FORMAT`: one record per job or array task."""
    records = []
    n = len(SQUEUE_FIELDS)
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", n - 1)
        if len(parts) < n:
            continue
        f = dict(zip(SQUEUE_FIELDS, parts, strict=True))
        f["Name"] = f["Name"].removesuffix("|")
        restarts = f["RestartCnt"].strip()
        records.append(
            SlurmRecord(
                job_id=f["JobArrayID"].strip(),
                name=f["Name"],
                slurm_state=f["State"].strip(),
                reason=_opt(f["Reason"]),
                exit_code=exit_code_from_status(f["exit_code"]),
                node=_opt(f["NodeList"]),
                submitted_at=parse_time(f["SubmitTime"]),
                started_at=parse_time(f["StartTime"]),
                ended_at=parse_time(f["EndTime"]),
                elapsed_s=parse_duration(f["TimeUsed"]),
                gpus=gpus_from_tres(f["tres-alloc"]),
                restarts=int(restarts) if restarts.isdigit() else 0,
            )
        )
    return records


def parse_sacct(text: str) -> dict[str, SlurmRecord]:
    """Parse `sacct -D -P -n --format=SACCT_FORMAT` into one record per job id.

    With -D a requeued job has one line per run, oldest first: the last one wins, the number
    of earlier lines is its restart count and their elapsed times are kept (spent counts every
    run). Step lines (`12_3.batch`, `12_3.0`) follow their job's line: a step of the last run
    that ended OUT_OF_MEMORY marks the job (cgroup kills show only there). `5_[1-2]` lines
    (tasks that never started) are expanded to one record per task.
    """
    out: dict[str, SlurmRecord] = {}
    n = len(SACCT_FIELDS)
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", n - 1)
        if len(parts) < n:
            continue
        f = dict(zip(SACCT_FIELDS, parts, strict=True))
        job_field = f["JobID"].strip()
        if "." in job_field:  # a step of the job before it
            parent, _, _ = job_field.partition(".")
            job = out.get(parent)
            oom = to_job_state(f["State"]) is JobState.OUT_OF_MEMORY
            if job is not None and oom and job.oom_step is None:
                out[parent] = replace(job, oom_step=job_field)
            continue
        elapsed = f["ElapsedRaw"].strip()
        for job_id in expand_job_id(job_field):
            previous = out.get(job_id)
            record = SlurmRecord(
                job_id=job_id,
                name=f["JobName"],
                slurm_state=f["State"].strip(),
                reason=_opt(f["Reason"]),
                exit_code=exit_code_from_pair(f["ExitCode"]),
                node=_opt(f["NodeList"]),
                submitted_at=parse_time(f["Submit"]),
                started_at=parse_time(f["Start"]),
                ended_at=parse_time(f["End"]),
                elapsed_s=float(elapsed) if elapsed.isdigit() else None,
                gpus=gpus_from_tres(f["AllocTRES"]),
                mem=mem_from_tres(f["AllocTRES"]),
            )
            if previous is not None:
                record = replace(
                    record,
                    restarts=previous.restarts + 1,
                    earlier_runs_s=previous.earlier_runs_s + (previous.elapsed_s or 0.0),
                )
            out[job_id] = record
    return out


def merge_records(live: SlurmRecord | None, accounted: SlurmRecord | None) -> SlurmRecord | None:
    """squeue (the controller, current) wins on state; sacct fills what squeue lacks.

    sacct lags the controller by seconds, so its state is used only for jobs the controller
    has purged. Its Elapsed and AllocTRES are used when it already has the job's end.
    """
    if live is None:
        return accounted
    if accounted is None:
        return live
    # the earlier runs of a requeued job have ended: sacct's figures for them are final
    merged = replace(
        live,
        restarts=max(live.restarts, accounted.restarts),
        earlier_runs_s=max(live.earlier_runs_s, accounted.earlier_runs_s),
    )
    if accounted.state.is_terminal and accounted.ended_at is not None:
        return replace(
            merged,
            elapsed_s=accounted.elapsed_s if accounted.elapsed_s is not None else live.elapsed_s,
            gpus=accounted.gpus or live.gpus,
            oom_step=accounted.oom_step,
            mem=accounted.mem or live.mem,
        )
    return merged


# ------------------------------------------------------------------ scontrol / sacctmgr / sbatch


def parse_config(text: str) -> dict[str, str]:
    """`scontrol show config` -> {"MaxArraySize": "1001", ...}."""
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key.strip() and " " not in key.strip():
            config[key.strip()] = value.strip()
    return config


def overrun_min(config: dict[str, str]) -> float:
    """Minutes a job may run past its --time before Slurm kills it: OverTimeLimit, the
    KillWait grace after the signal, and the ~30 s between the controller's limit checks.
    An UNLIMITED OverTimeLimit is not bounded: count a day, so the reservation stays safe."""
    over = config.get("OverTimeLimit", "0 min").split()[0]
    over_min = 24 * 60.0 if over.upper() in ("UNLIMITED", "INFINITE") else _number(over)
    kill_wait_s = _number(config.get("KillWait", "30 sec").split()[0])
    return over_min + (kill_wait_s + 30.0) / 60.0


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    max_time_min: float | None  # None = unlimited
    state: str
    max_mem_per_node_mb: float | None = None  # None = unlimited
    max_mem_per_cpu_mb: float | None = None
    max_cpus_per_node: int | None = None


def _fields(line: str) -> dict[str, str]:
    """`Key=Value Key=Value ...` of one `scontrol show ... -o` line (words without = skipped)."""
    return dict(
        item.split("=", 1) for item in line.split() if "=" in item and not item.startswith("=")
    )


def _limit(text: str | None) -> float | None:
    """A numeric limit; UNLIMITED, 0 and anything unreadable -> None (no limit)."""
    value = _number(text or "")
    return value if value > 0 else None


def parse_partitions(text: str) -> dict[str, Partition]:
    """`scontrol show partition -o` (one line per partition) -> {name: Partition}."""
    partitions = {}
    for line in text.splitlines():
        fields = _fields(line)
        name = fields.get("PartitionName")
        if not name:
            continue
        max_time = parse_duration(fields.get("MaxTime", "UNLIMITED"))
        cpus = _limit(fields.get("MaxCPUsPerNode"))
        partitions[name] = Partition(
            name=name,
            default=fields.get("Default") == "YES",
            max_time_min=None if max_time is None else max_time / 60.0,
            state=fields.get("State", "UP"),
            max_mem_per_node_mb=_limit(fields.get("MaxMemPerNode")),
            max_mem_per_cpu_mb=_limit(fields.get("MaxMemPerCPU")),
            max_cpus_per_node=None if cpus is None else int(cpus),
        )
    return partitions


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: float  # RealMemory: what jobs may be given
    gpus: int
    partitions: tuple[str, ...]


def gpus_from_gres(gres: str) -> int:
    """GPUs of a node's Gres ("gpu:2", "gpu:a100:4(S:0-1),gpu:v100:1"; "(null)" -> 0)."""
    total = 0
    for item in re.split(r",(?![^(]*\))", gres):
        parts = item.split("(", 1)[0].split(":")
        if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_nodes(text: str) -> list[Node]:
    """`scontrol show node -o` (one line per node) -> nodes with what a task may get there."""
    nodes = []
    for line in text.splitlines():
        fields = _fields(line)
        name = fields.get("NodeName")
        if not name:
            continue
        cpus = fields.get("CPUEfctv") or fields.get("CPUTot") or "0"
        nodes.append(
            Node(
                name=name,
                cpus=int(cpus) if cpus.isdigit() else 0,
                mem_mb=_number(fields.get("RealMemory", "0")),
                gpus=gpus_from_gres(fields.get("Gres", "")),
                partitions=tuple(p for p in fields.get("Partitions", "").split(",") if p),
            )
        )
    return nodes


@dataclass(frozen=True)
class Capacity:
    """The most one task can be given in a partition: its largest node, within its limits.
    Each figure is a maximum over the nodes, not a node that has all three at once."""

    partition: str
    cpus: int
    mem_gb: float
    gpus: int


def capacity(partition: Partition, nodes: list[Node]) -> Capacity | None:
    """What the partition's nodes offer one task; None when no node of it is listed."""
    mine = [n for n in nodes if partition.name in n.partitions]
    if not mine:
        return None
    cpus = max(n.cpus for n in mine)
    if partition.max_cpus_per_node is not None:
        cpus = min(cpus, partition.max_cpus_per_node)
    mem_mb = max(n.mem_mb for n in mine)
    if partition.max_mem_per_node_mb is not None:
        mem_mb = min(mem_mb, partition.max_mem_per_node_mb)
    if partition.max_mem_per_cpu_mb is not None:
        mem_mb = min(mem_mb, partition.max_mem_per_cpu_mb * cpus)
    return Capacity(partition.name, cpus, mem_mb / 1024.0, max(n.gpus for n in mine))


@dataclass(frozen=True)
class Association:
    account: str
    max_submit: int | None
    qos: tuple[str, ...]


def parse_associations(text: str) -> list[Association]:
    """`sacctmgr -n -P show assoc where user=U format=Account,MaxSubmit,QOS`."""
    assocs = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        assocs.append(
            Association(
                account=parts[0],
                max_submit=int(parts[1]) if parts[1].isdigit() else None,
                qos=tuple(q for q in parts[2].split(",") if q),
            )
        )
    return assocs


def parse_qos(text: str) -> dict[str, int | None]:
    """`sacctmgr -n -P show qos format=Name,MaxSubmitPU` -> {qos: max submit per user}."""
    qos: dict[str, int | None] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if parts and parts[0]:
            qos[parts[0]] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return qos


def parse_sbatch_id(text: str) -> str:
    """`sbatch --parsable` prints `123` or `123;cluster` -> "123"; ValueError otherwise."""
    first = text.strip().splitlines()[-1] if text.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise ValueError(f"unexpected sbatch output: {text.strip()!r}")
    return job_id


def lookup(records: dict[str, SlurmRecord], job_id: str) -> SlurmRecord | None:
    """The record of `job_id`; for an array task not split out of its array yet (never
    started: pending, or cancelled while pending), the array's own record `<array>`."""
    record = records.get(job_id)
    if record is None and "_" in job_id:
        record = records.get(base_job_id(job_id))
        if record is not None:
            record = replace(record, job_id=job_id)
    return record


def squeue_says_unknown(stderr: str) -> bool:
    """squeue -j with only unknown (purged) ids fails with this instead of printing nothing."""
    return "Invalid job id" in stderr


def unknown(job_id: str) -> JobInfo:
    return JobInfo(job_id=job_id, name="", state=JobState.UNKNOWN)

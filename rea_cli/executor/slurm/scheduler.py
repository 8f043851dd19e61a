"""SlurmScheduler: the Scheduler interface on a Slurm cluster, through submitit.

- submit_array: one `sbatch --array` per chunk (submitit's executor.batch), chunks bounded by
  MaxArraySize and the user's submit limit; each task runs its argv through `TaskCommand`.
- submit_wakeup: plain sbatch of the rendered wake-up template with --dependency=afterany.
- states/find: squeue -t all (the controller: exact right after a job ends) merged with sacct
  when accounting exists (it lags, but it still knows purged jobs). Never job.result().
- Every Slurm command goes through one SlurmRunner (retries, call counts).
"""

from __future__ import annotations

import getpass
import logging
import os
import shlex
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cloudpickle
import submitit
from submitit.core import utils as submitit_utils
from submitit.slurm.slurm import SlurmJob

from rea_cli.errors import SchedulerError, UsageError
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobInfo,
    JobState,
    Resources,
    SubmissionRequest,
    WakeupRequest,
)
from rea_cli.executor.slurm import parse, task
from rea_cli.executor.slurm.options import (
    check_time_limit,
    option_lines,
    sbatch_options,
    submitit_parameters,
)
from rea_cli.executor.slurm.runner import CommandResult, SlurmRunner
from rea_cli.executor.slurm.wakeup import render_wakeup_script

logger = logging.getLogger(__name__)

FIND_WINDOW = "now-14days"  # how far back find() asks sacct
# A job the controller says FAILED may have been killed at its memory limit, which only sacct's
# step lines tell; right after the end sacct may not have them yet: ask again, briefly.
SACCT_SETTLE_TRIES = 3
SACCT_SETTLE_S = 1.0
_IDS_PER_CALL = 500  # keep command lines short on huge phases
_BENIGN = ("invalid job id", "already finished", "already completing", "not held", "completed")

# The task callable is pickled by value: a compute node needs submitit, not rea_cli.
cloudpickle.register_pickle_by_value(task)


@dataclass
class ClusterInfo:
    """What the scheduler reads once from the cluster (lazily, then cached)."""

    config: dict[str, str]
    partitions: dict[str, parse.Partition] | None = None
    nodes: list[parse.Node] | None = None
    associations: list[parse.Association] | None = None  # None: unreadable
    qos: dict[str, int | None] | None = None  # None: unreadable
    read: set[str] = field(default_factory=set)

    @property
    def accounting(self) -> bool:
        storage = self.config.get("AccountingStorageType", "accounting_storage/none")
        return not storage.endswith("/none")

    @property
    def max_array_size(self) -> int:
        value = self.config.get("MaxArraySize", "1001")
        return int(value) if value.isdigit() else 1001


class SlurmScheduler:
    """Scheduler backend for Slurm. `state_dir` (shared filesystem) holds submitit's files
    (scripts, pickles, wrapper logs) and the rendered wake-up scripts."""

    name = "slurm"

    def __init__(
        self,
        state_dir: Path,
        *,
        python: str = sys.executable,
        max_array_size: int | None = None,
        submit_limit: int | None = None,
        runner: SlurmRunner | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.python = python
        self.max_array_size = max_array_size
        self.submit_limit = submit_limit
        self.runner = runner or SlurmRunner()
        self.user = os.environ.get("USER") or getpass.getuser()
        self._cluster: ClusterInfo | None = None
        self._validated: set[str] = set()  # repr of Resources (holds a dict: unhashable)

    # ------------------------------------------------------------------ cluster facts

    def cluster(self) -> ClusterInfo:
        """`scontrol show config`, once. Raises SchedulerError when Slurm is not reachable."""
        if self._cluster is None:
            result = self.runner.run(["scontrol", "show", "config"], check=False)
            if not result.ok or "MaxArraySize" not in result.stdout:
                raise SchedulerError(
                    f"Slurm is not reachable ({result.error_line()}): run rea on a login node "
                    'where `scontrol ping` answers, or set backend = "local" in rea.toml'
                )
            self._cluster = ClusterInfo(config=parse.parse_config(result.stdout))
        return self._cluster

    def _partitions(self) -> dict[str, parse.Partition]:
        info = self.cluster()
        if info.partitions is None:
            result = self.runner.run(["scontrol", "show", "partition", "-o"])
            info.partitions = parse.parse_partitions(result.stdout)
        return info.partitions

    def _nodes(self) -> list[parse.Node]:
        info = self.cluster()
        if info.nodes is None:
            result = self.runner.run(["scontrol", "show", "node", "-o"], check=False)
            info.nodes = parse.parse_nodes(result.stdout) if result.ok else []
        return info.nodes

    def capacity(self, partition: str | None = None) -> parse.Capacity | None:
        """The most one task can be given in `partition` (default: the cluster's default
        partition); None when Slurm lists no node for it."""
        partitions = self._partitions()
        name = partition or next((p.name for p in partitions.values() if p.default), "")
        part = partitions.get(name)
        return parse.capacity(part, self._nodes()) if part else None

    def max_mem_gb(self, resources: Resources) -> float | None:
        """The most memory a task like `resources` can ask for in its partition."""
        cap = self.capacity(resources.partition)
        return None if cap is None else cap.mem_gb

    def _limits(self) -> ClusterInfo:
        """Associations and QOS of the user from sacctmgr, when accounting exists and answers."""
        info = self.cluster()
        if "sacctmgr" in info.read or not info.accounting:
            return info
        info.read.add("sacctmgr")
        assoc = self.runner.run(
            [
                "sacctmgr", "-n", "-P", "show", "assoc", "where", f"user={self.user}",
                "format=Account,MaxSubmit,QOS",
            ],
            check=False,
        )  # fmt: skip
        if assoc.ok:
            info.associations = parse.parse_associations(assoc.stdout)
        qos = self.runner.run(
            ["sacctmgr", "-n", "-P", "show", "qos", "format=Name,MaxSubmitPU"], check=False
        )
        if qos.ok:
            info.qos = parse.parse_qos(qos.stdout)
        return info

    def validate(self, resources: Resources) -> None:
        """Check resources against the cluster before anything is submitted.

        UsageError (one line, names the rea.toml key) for an invalid time limit, an unknown
        partition, account or QOS, or a time limit above the partition's; SchedulerError when
        Slurm is not reachable.
        """
        if repr(resources) in self._validated:
            return
        check_time_limit(resources.time_limit_min)
        if resources.gpus_per_task < 0 or resources.cpus_per_task < 1:
            raise UsageError(
                "invalid Slurm resources: gpus_per_trial must be >= 0 and cpus_per_trial >= 1"
            )
        self.cluster()
        partitions = self._partitions()
        if resources.partition is not None and resources.partition not in partitions:
            known = ", ".join(sorted(partitions)) or "none"
            raise UsageError(
                f"unknown Slurm partition {resources.partition!r} (known: {known}): "
                "fix [slurm] partition in rea.toml"
            )
        name = resources.partition or next((p.name for p in partitions.values() if p.default), "")
        part = partitions.get(name)
        if part and part.max_time_min is not None and resources.time_limit_min > part.max_time_min:
            raise UsageError(
                f"time limit {resources.time_limit_min} min exceeds partition {name!r} MaxTime "
                f"of {part.max_time_min:.0f} min: lower [slurm] time_limit_min in rea.toml"
            )
        self._check_capacity(resources)
        info = self._limits()
        if resources.account and info.associations is not None:
            accounts = sorted({a.account for a in info.associations})
            if resources.account not in accounts:
                raise UsageError(
                    f"unknown Slurm account {resources.account!r} for user {self.user} "
                    f"(yours: {', '.join(accounts) or 'none'}): fix [slurm] account in rea.toml"
                )
        if resources.qos and info.qos is not None and resources.qos not in info.qos:
            raise UsageError(
                f"unknown Slurm QOS {resources.qos!r} (known: {', '.join(sorted(info.qos))}): "
                "fix [slurm] qos in rea.toml"
            )
        self._validated.add(repr(resources))

    def _check_capacity(self, resources: Resources) -> None:
        """A task asking for more CPUs, memory or GPUs than any node of its partition has
        would pend forever (reason PartitionConfig): refuse it, naming the rea.toml key."""
        cap = self.capacity(resources.partition)
        if cap is None:
            return
        where = f"partition {cap.partition!r}"
        if resources.cpus_per_task > cap.cpus:
            raise UsageError(
                f"{resources.cpus_per_task} CPUs per trial, but the nodes of {where} have at "
                f"most {cap.cpus}: lower [slurm] cpus_per_trial in rea.toml"
            )
        if resources.mem_gb is not None and resources.mem_gb > cap.mem_gb:
            raise UsageError(
                f"{resources.mem_gb:g} GB of memory per trial, but the nodes of {where} offer "
                f"at most {cap.mem_gb:.1f} GB: lower [slurm] mem_gb in rea.toml"
            )
        if resources.gpus_per_task > cap.gpus:
            raise UsageError(
                f"{resources.gpus_per_task} GPUs per trial, but the nodes of {where} have at "
                f"most {cap.gpus}: lower [slurm] gpus_per_trial in rea.toml"
            )

    def enforced_limit_min(self, time_limit_min: float) -> float:
        """Minutes a task with this limit may really run: whole minutes, plus the overrun."""
        return check_time_limit(time_limit_min) + parse.overrun_min(self.cluster().config)

    def effective_submit_limit(self, account: str | None = None) -> int | None:
        """The smallest of: the user's setting, the association's MaxSubmitJobs, the QOS's
        MaxSubmitJobsPerUser (each when known). None = no known limit."""
        info = self._limits()
        limits = [self.submit_limit] if self.submit_limit else []
        for assoc in info.associations or []:
            if assoc.max_submit and (account is None or assoc.account == account):
                limits.append(assoc.max_submit)
        for qos_limit in (info.qos or {}).values():
            if qos_limit:
                limits.append(qos_limit)
        return min(limits) if limits else None

    def chunk_size(self, account: str | None = None) -> int:
        """Tasks per sbatch --array: MaxArraySize (indices 0..MaxArraySize-1) and the limits."""
        sizes = [self.cluster().max_array_size]
        if self.max_array_size:
            sizes.append(self.max_array_size)
        limit = self.effective_submit_limit(account)
        if limit:
            sizes.append(limit)
        return max(1, min(sizes))

    def _queued_jobs(self) -> int:
        result = self.runner.run(["squeue", "-h", "-r", "-u", self.user, "-o", "%i"])
        return sum(1 for line in result.stdout.splitlines() if line.strip())

    # ------------------------------------------------------------------ submission

    def submit_array(self, request: ArrayRequest) -> list[str]:
        tasks, resources = request.tasks, request.resources
        if not tasks:
            return []
        self.validate(resources)
        limit = self.effective_submit_limit(resources.account)
        if limit is not None:
            queued = self._queued_jobs()
            if queued + len(tasks) > limit:
                raise SchedulerError(
                    f"{len(tasks)} tasks would exceed your Slurm submit limit of {limit} jobs "
                    f"({queued} already queued): wait for jobs to end or lower the phase size"
                )
        chunks = split_chunks(len(tasks), self.chunk_size(resources.account))
        # Slurm throttles each array separately: share the parallelism between the chunks.
        per_chunk = max(1, request.parallelism // len(chunks))
        ids: list[str] = []
        try:
            for lo, hi in chunks:
                part = replace(request, tasks=list(tasks[lo:hi]), parallelism=per_chunk)
                ids += self._submit_chunk(part)
        except BaseException:
            if ids:  # all or nothing: a half-submitted phase would be reconciled as submitted
                self.cancel(ids)
            raise
        return ids

    def _submit_chunk(self, request: ArrayRequest) -> list[str]:
        token = uuid.uuid4().hex[:12]
        job_name = request.job_name
        comment = f"{job_name}/{token}"
        executor = _ReaSlurmExecutor(
            self.state_dir / "submitit" / job_name,
            python=self.python,
            sbatch=lambda path: self._sbatch([str(path)], job_name, comment),
        )
        executor.update_parameters(**array_parameters(request, comment))
        jobs = []
        with executor.batch():
            for spec in request.tasks:
                command = task.TaskCommand(
                    spec.argv, str(spec.workdir), dict(spec.env), str(spec.log_dir)
                )
                jobs.append(executor.submit(command))
        return [job.job_id for job in jobs]

    def _sbatch(self, args: Sequence[str], job_name: str, comment: str) -> str:
        """sbatch --parsable args; before a retry, look for the job by its unique comment so
        a submission whose reply was lost is not submitted twice."""

        def already_submitted() -> CommandResult | None:
            found = self._find_by_comment(job_name, comment)
            return CommandResult(("sbatch",), 0, found, "") if found else None

        result = self.runner.run(["sbatch", "--parsable", *args], before_retry=already_submitted)
        try:
            return parse.parse_sbatch_id(result.stdout)
        except ValueError as error:
            raise SchedulerError(f"sbatch: {error}") from None

    def _find_by_comment(self, job_name: str, comment: str) -> str | None:
        argv = ["squeue", "-h", "-t", "all", "-u", self.user, "-n", job_name]
        result = self.runner.run([*argv, "-O", "JobID:|,Comment:|"], check=False)
        for line in result.stdout.splitlines():
            job_id, _, rest = line.partition("|")
            if rest.rstrip("|") == comment:
                return parse.base_job_id(job_id.strip())
        return None

    def submit_wakeup(self, request: WakeupRequest, after: Sequence[str]) -> str:
        self.validate(request.resources)
        log_dir = Path(request.log_dir).absolute()
        log_dir.mkdir(parents=True, exist_ok=True)
        comment = f"{request.job_name}/{uuid.uuid4().hex[:12]}"
        script = wakeup_script(request, comment)
        name = f"{request.job_name}-{comment.rsplit('/', 1)[1]}.sbatch"
        path = self.state_dir / "wakeups" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
        deps = unique_bases(after)
        try:
            return self._sbatch([*dependency_args(deps), str(path)], request.job_name, comment)
        except SchedulerError as error:
            if "dependency" not in str(error).lower() or not deps:
                raise
        # Some of `after` were purged from the controller (ended long ago): depend on the rest.
        alive = {parse.base_job_id(r.job_id) for r in self._squeue_records(deps)}
        kept = [d for d in deps if d in alive]
        logger.info(
            "wake-up %s: dropping purged dependencies %s", request.job_name, set(deps) - alive
        )
        return self._sbatch([*dependency_args(kept), str(path)], request.job_name, comment)

    def render(self, request: SubmissionRequest) -> list[tuple[str, str]]:
        """The array's sbatch command(s) and the wake-up script, exactly as submit sends them:
        split into chunks like submit_array when the cluster's limits require it."""
        array = request.array
        try:
            size = self.chunk_size(array.resources.account)
            note = ""
        except SchedulerError as exc:
            size, note = len(array.tasks) or 1, f"\n  (chunking unknown: {exc})"
        chunks = split_chunks(len(array.tasks), size) or [(0, 0)]
        per_chunk = max(1, array.parallelism // len(chunks))
        lines = []
        for lo, hi in chunks:
            n = hi - lo
            options = [
                # submitit never throttles an array below its own size
                f"--array=0-{max(n - 1, 0)}%{max(1, min(n, per_chunk))}",
                f"--job-name={array.job_name}",
                *option_lines(_array_options(array)),
            ]
            lines.append(f"sbatch {shlex.join(options)}  (through submitit; one task per trial)")
        text = "\n".join(lines) + note
        params = array_parameters(array, f"{array.job_name}/<unique>")
        text += "".join(f"\n  setup: {line}" for line in params["setup"])
        for t in array.tasks:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in t.env.items())
            text += (
                f"\n  task: (cd {shlex.quote(str(t.workdir))} && {env + ' ' if env else ''}"
                f"{shlex.join(str(a) for a in t.argv)})"
            )
        wake = request.wakeup
        return [
            ("array job", text),
            (
                "wake-up job (sbatch --dependency=afterany:<array>, then scontrol release <array>)",
                wakeup_script(wake, f"{wake.job_name}/<unique>"),
            ),
        ]

    def release(self, job_ids: Sequence[str]) -> None:
        for group in _groups(compress_ids(job_ids)):
            self._tolerant(["scontrol", "release", ",".join(group)])

    def cancel(self, job_ids: Sequence[str]) -> None:
        for group in _groups(compress_ids(job_ids)):
            self._tolerant(["scancel", *group])

    def _tolerant(self, argv: list[str]) -> None:
        """Run a command that may name jobs that already ended: that is not an error."""
        result = self.runner.run(argv, check=False)
        if not result.ok and not any(b in result.stderr.lower() for b in _BENIGN):
            raise SchedulerError(f"{argv[0]} failed: {result.error_line()}")

    # ------------------------------------------------------------------ states

    def _squeue_records(self, bases: Sequence[str]) -> list[parse.SlurmRecord]:
        records: list[parse.SlurmRecord] = []
        for group in _groups(list(bases)):
            args = ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(group)]
            result = self.runner.run([*args, "-O", parse.SQUEUE_FORMAT], check=False)
            if result.ok:
                records += parse.parse_squeue(result.stdout)
            elif not parse.squeue_says_unknown(result.stderr):  # only purged ids: nothing known
                self.runner.run([*args, "-O", parse.SQUEUE_FORMAT])  # retried, then raises
        return records

    def _sacct_records(self, args: Sequence[str]) -> dict[str, parse.SlurmRecord]:
        """sacct when accounting exists; {} when it does not or does not answer (it lags)."""
        if not self.cluster().accounting:
            return {}
        # -D: every run of a requeued job; no -X: step lines say OUT_OF_MEMORY
        argv = ["sacct", "-D", "-P", "-n", *args, f"--format={parse.SACCT_FORMAT}"]
        result = self.runner.run(argv, check=False)
        if not result.ok:
            logger.warning("sacct failed (%s); using squeue only", result.error_line())
            return {}
        return parse.parse_sacct(result.stdout)

    def states(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        if not job_ids:
            return {}
        bases = unique_bases(job_ids)
        live = {r.job_id: r for r in self._squeue_records(bases)}
        need_sacct = any(
            (r := parse.lookup(live, j)) is None or r.state.is_terminal or r.restarts
            for j in job_ids
        )
        accounted: dict[str, parse.SlurmRecord] = {}
        if need_sacct:
            accounted = self._sacct_of(bases)
            for _ in range(SACCT_SETTLE_TRIES):
                lagging = self._failed_not_accounted(job_ids, live, accounted)
                if not lagging or not self.cluster().accounting:
                    break
                self.runner.pause(SACCT_SETTLE_S)
                accounted.update(self._sacct_of(unique_bases(lagging)))
        out: dict[str, JobInfo] = {}
        for job_id in job_ids:
            record = parse.merge_records(
                parse.lookup(live, job_id), parse.lookup(accounted, job_id)
            )
            out[job_id] = record.to_job_info() if record else parse.unknown(job_id)
        return out

    def _sacct_of(self, bases: Sequence[str]) -> dict[str, parse.SlurmRecord]:
        accounted: dict[str, parse.SlurmRecord] = {}
        for group in _groups(list(bases)):
            accounted.update(self._sacct_records(["-j", ",".join(group)]))
        return accounted

    @staticmethod
    def _failed_not_accounted(
        job_ids: Sequence[str],
        live: dict[str, parse.SlurmRecord],
        accounted: dict[str, parse.SlurmRecord],
    ) -> list[str]:
        """Jobs the controller says FAILED whose end sacct does not know yet."""
        lagging = []
        for job_id in job_ids:
            now, acc = parse.lookup(live, job_id), parse.lookup(accounted, job_id)
            if now is None or now.state is not JobState.FAILED:
                continue
            if acc is None or not acc.state.is_terminal or acc.ended_at is None:
                lagging.append(job_id)
        return lagging

    def find(self, name_prefix: str) -> list[JobInfo]:
        result = self.runner.run(
            ["squeue", "-h", "-r", "-t", "all", "-u", self.user, "-O", parse.SQUEUE_FORMAT]
        )
        live = {r.job_id: r for r in parse.parse_squeue(result.stdout)}
        accounted = self._sacct_records(["-u", self.user, "-S", FIND_WINDOW])
        found = []
        for job_id in sorted(set(live) | set(accounted), key=_id_key):
            record = parse.merge_records(live.get(job_id), accounted.get(job_id))
            if record is not None and record.name.startswith(name_prefix):
                found.append(record.to_job_info())
        return found


# ---------------------------------------------------------------------- submitit glue


class _ReaSlurmExecutor(submitit.SlurmExecutor):
    """submitit's SlurmExecutor with two changes: every submission is one array (ids are
    always `<array>_<task>`, even for one task), and sbatch runs through rea's SlurmRunner
    (retries, call counts, no double submission) instead of submitit's own subprocess call.
    """

    def __init__(self, folder: Path, *, python: str, sbatch: Any) -> None:
        # max_num_timeout=0: a task at its time limit is not requeued by submitit (see task.py)
        super().__init__(folder, max_num_timeout=0, python=_shell_quote(python))
        self._sbatch = sbatch

    @classmethod
    def affinity(cls) -> int:
        # submitit refuses to start without `srun` on PATH; SlurmScheduler.validate has already
        # checked that Slurm answers, with a clearer message.
        return 2

    def _internal_process_submissions(
        self, delayed_submissions: list[submitit_utils.DelayedSubmission]
    ) -> list[submitit.Job[Any]]:
        folder = submitit_utils.JobPaths.get_first_id_independent_folder(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        timeout_min = self.parameters.get("time", 5)
        pickle_paths = []
        for delayed in delayed_submissions:
            pickle_path = folder / f"{uuid.uuid4().hex}.pkl"
            delayed.set_timeout(timeout_min, self.max_num_timeout)
            delayed.dump(pickle_path)
            pickle_paths.append(pickle_path)
        self.parameters["map_count"] = len(delayed_submissions)
        try:
            array = self._submit_command(self._submitit_command_str)
        finally:
            del self.parameters["map_count"]
        jobs: list[submitit.Job[Any]] = [
            SlurmJob(folder=self.folder, job_id=f"{array.job_id}_{i}", tasks=[0])
            for i in range(len(delayed_submissions))
        ]
        for job, pickle_path in zip(jobs, pickle_paths, strict=True):
            job.paths.move_temporary_file(pickle_path, "submitted_pickle")
        return jobs

    def _submit_command(self, command: str) -> submitit.Job[Any]:
        uid = uuid.uuid4().hex
        folder = submitit_utils.JobPaths.get_first_id_independent_folder(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / f".submission_file_{uid}.sh"
        script.write_text(self._make_submission_file_text(command, uid))
        job_id = self._sbatch(script)
        job: submitit.Job[Any] = SlurmJob(folder=self.folder, job_id=job_id, tasks=[0])
        job.paths.move_temporary_file(script, "submission_file", keep_as_symlink=True)
        return job


# ---------------------------------------------------------------------- pure helpers


def array_parameters(request: ArrayRequest, comment: str) -> dict[str, Any]:
    """submitit parameters of an array request (the preamble runs before the setup lines)."""
    return submitit_parameters(
        request.resources,
        job_name=request.job_name,
        comment=comment,
        parallelism=request.parallelism,
        setup=[*request.preamble.splitlines(), *request.resources.setup],
        hold=request.hold,
        workdir=str(Path(request.workdir).absolute()),
    )


def _array_options(request: ArrayRequest) -> dict[str, str | bool]:
    options = sbatch_options(request.resources)
    if request.hold:
        options["hold"] = True
    options["chdir"] = str(Path(request.workdir).absolute())
    return options


def wakeup_script(request: WakeupRequest, comment: str) -> str:
    """The wake-up job script of a request (its dependency is given on the command line)."""
    return render_wakeup_script(
        job_name=request.job_name,
        comment=comment,
        log_dir=Path(request.log_dir).absolute(),
        workdir=Path(request.workdir).absolute(),
        argv=request.argv,
        options=option_lines(sbatch_options(request.resources)),
        preamble=request.preamble,
        setup=request.resources.setup,
    )


def split_chunks(n: int, size: int) -> list[tuple[int, int]]:
    """[(lo, hi), ...] covering range(n) in slices of at most `size`."""
    return [(lo, min(lo + size, n)) for lo in range(0, n, max(1, size))]


def unique_bases(job_ids: Iterable[str]) -> list[str]:
    """Array ids of job ids, in first-seen order: ["7_0", "7_1", "9"] -> ["7", "9"]."""
    return list(dict.fromkeys(parse.base_job_id(j) for j in job_ids))


def dependency_args(bases: Sequence[str]) -> list[str]:
    """afterany on whole arrays: `afterany:7` waits for every task of array 7."""
    return [f"--dependency=afterany:{':'.join(bases)}"] if bases else []


def compress_ids(job_ids: Iterable[str]) -> list[str]:
    """["7_0", "7_1", "7_2", "7_5", "9"] -> ["7_[0-2,5]", "9"] (Slurm's array syntax)."""
    tasks: dict[str, list[int]] = {}
    plain: list[str] = []
    for job_id in job_ids:
        base, sep, index = job_id.partition("_")
        if sep and index.isdigit():
            tasks.setdefault(base, []).append(int(index))
        elif job_id not in plain:
            plain.append(job_id)
    out = []
    for base, indices in tasks.items():
        ranges: list[str] = []
        values = sorted(set(indices))
        start = prev = values[0]
        for value in [*values[1:], None]:
            if value is not None and value == prev + 1:
                prev = value
                continue
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
            if value is not None:
                start = prev = value
        out.append(f"{base}_[{','.join(ranges)}]")
    return out + plain


def _groups(items: list[str]) -> list[list[str]]:
    return [items[i : i + _IDS_PER_CALL] for i in range(0, len(items), _IDS_PER_CALL)]


def _id_key(job_id: str) -> tuple[int, int]:
    base, _, index = job_id.partition("_")
    return (int(base) if base.isdigit() else 0, int(index) if index.isdigit() else -1)


def _shell_quote(python: str) -> str:
    """An interpreter path is quoted; anything else is taken as a shell command (a container
    wrapper such as `singularity exec img.sif python`), as submitit does."""
    return shlex.quote(python) if Path(python).exists() else python

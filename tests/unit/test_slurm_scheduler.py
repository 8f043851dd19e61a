"""SlurmScheduler logic without a cluster: a runner that answers from captured output.

What runs against the real cluster is in tests/slurm/; here: validation before anything is
submitted, chunking, no double submission, purged dependencies, state merging, call counts.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rea_cli.config import Settings, SlurmSettings
from rea_cli.errors import SchedulerError, UsageError
from rea_cli.executor import backends
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobState,
    Resources,
    SubmissionRequest,
    TaskSpec,
    WakeupRequest,
)
from rea_cli.executor.slurm import SlurmRunner, SlurmScheduler
from rea_cli.executor.slurm.runner import CommandResult

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slurm"
Answer = Callable[[tuple[str, ...]], CommandResult | None]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def ok(argv: tuple[str, ...], stdout: str = "") -> CommandResult:
    return CommandResult(argv, 0, stdout, "")


def err(argv: tuple[str, ...], stderr: str) -> CommandResult:
    return CommandResult(argv, 1, "", stderr)


class FakeRunner(SlurmRunner):
    """Answers Slurm commands from fixtures; `answer` may override any command."""

    def __init__(self, answer: Answer | None = None, accounting: bool = True) -> None:
        super().__init__(retries=2, backoff_s=0.0, sleep=lambda s: None)
        self.answer = answer
        self.accounting = accounting
        self.history: list[tuple[str, ...]] = []
        self.next_job = 100

    def _run_once(self, argv: tuple[str, ...]) -> CommandResult:
        self.calls[argv[0]] += 1
        self.history.append(argv)
        if self.answer is not None and (result := self.answer(argv)) is not None:
            return result
        if argv[:3] == ("scontrol", "show", "config"):
            text = fixture("scontrol_show_config.txt")
            if not self.accounting:
                text = text.replace("accounting_storage/slurmdbd", "accounting_storage/none")
            return ok(argv, text)
        if argv[:3] == ("scontrol", "show", "partition"):
            return ok(argv, fixture("scontrol_show_partition.txt"))
        if argv[:3] == ("scontrol", "show", "node"):
            return ok(argv, fixture("scontrol_show_node.txt"))
        if argv[:4] == ("sacctmgr", "-n", "-P", "show") and argv[4] == "assoc":
            return ok(argv, "proj||normal\nroot||normal\n")
        if argv[:4] == ("sacctmgr", "-n", "-P", "show") and argv[4] == "qos":
            return ok(argv, "normal|\nhigh|\n")
        if argv[0] == "sbatch":
            self.next_job += 1
            return ok(argv, f"{self.next_job}\n")
        if argv[0] == "squeue":
            return ok(argv, "")
        return ok(argv)

    def commands(self, name: str) -> list[tuple[str, ...]]:
        return [a for a in self.history if a[0] == name]


def scheduler(tmp_path: Path, runner: FakeRunner, **kwargs: object) -> SlurmScheduler:
    return SlurmScheduler(tmp_path / "state", runner=runner, **kwargs)  # type: ignore[arg-type]


def tasks(tmp_path: Path, n: int) -> list[TaskSpec]:
    return [TaskSpec(["true"], tmp_path, tmp_path / "logs") for _ in range(n)]


def array_request(tmp_path: Path, n: int = 3, **resources: object) -> ArrayRequest:
    return ArrayRequest(
        job_name="rea.ab12cd.c1.validation.r1",
        tasks=tasks(tmp_path, n),
        resources=Resources(**resources),  # type: ignore[arg-type]
        parallelism=4,
        workdir=tmp_path / "phase dir",
    )


def submit(s: SlurmScheduler, tmp_path: Path, n: int = 3, **resources: object) -> list[str]:
    return s.submit_array(array_request(tmp_path, n, **resources))


def wakeup_request(
    tmp_path: Path,
    argv: Sequence[str],
    resources: Resources | None = None,
    preamble: str = "",
) -> WakeupRequest:
    return WakeupRequest(
        job_name="rea.ab12cd.c1.validation.r1.wake",
        argv=argv,
        resources=resources or Resources(time_limit_min=30, cpus_per_task=1),
        log_dir=tmp_path / "w",
        workdir=tmp_path / "w",
        preamble=preamble,
    )


SITE = Settings(
    backend="slurm",
    slurm=SlurmSettings(
        partition="debug", account="proj", qos="high", gpus_per_trial=2, setup=["module load a"]
    ),
)


def script_of(sbatch: tuple[str, ...]) -> str:
    """The batch script an sbatch call submitted (its last argument)."""
    return Path(sbatch[-1]).read_text()


# ------------------------------------------------------------------ validation


def test_slurm_not_reachable_is_one_line_and_nothing_is_submitted(tmp_path: Path) -> None:
    down = "slurm_load_ctl_conf error: Unable to contact slurm controller (connect failure)"
    runner = FakeRunner(lambda a: err(a, down) if a[0] == "scontrol" else None)

    with pytest.raises(SchedulerError) as error:
        submit(scheduler(tmp_path, runner), tmp_path)

    assert str(error.value).startswith("Slurm is not reachable (")
    assert "\n" not in str(error.value)
    assert runner.calls["sbatch"] == 0
    assert runner.calls["scontrol"] == 3  # transient: retried


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"partition": "nope"}, "unknown Slurm partition 'nope' (known: debug): fix [slurm]"),
        ({"account": "nope"}, "unknown Slurm account 'nope' for user"),
        ({"qos": "nope"}, "unknown Slurm QOS 'nope' (known: high, normal)"),
        ({"time_limit_min": 0}, "invalid Slurm time limit 0"),
    ],
)
def test_bad_resources_are_refused_before_submission(
    tmp_path: Path, resources: dict[str, Any], message: str
) -> None:
    runner = FakeRunner()

    with pytest.raises(UsageError) as error:
        submit(scheduler(tmp_path, runner), tmp_path, **resources)

    assert message in str(error.value) and "\n" not in str(error.value)
    assert runner.calls["sbatch"] == 0


def test_time_limit_above_partition_max_time(tmp_path: Path) -> None:
    partition = "PartitionName=short Default=YES MaxTime=01:00:00 State=UP\n"
    runner = FakeRunner(lambda a: ok(a, partition) if a[1:3] == ("show", "partition") else None)

    with pytest.raises(UsageError, match="exceeds partition 'short' MaxTime of 60 min"):
        submit(scheduler(tmp_path, runner), tmp_path, time_limit_min=61)


def test_known_account_and_qos_pass_and_validation_is_cached(tmp_path: Path) -> None:
    runner = FakeRunner()
    s = scheduler(tmp_path, runner)

    submit(s, tmp_path, account="proj", qos="high")
    submit(s, tmp_path, account="proj", qos="high")

    assert runner.calls["sbatch"] == 2
    # config, partitions, nodes: read once
    assert runner.calls["scontrol"] == 3 and runner.calls["sacctmgr"] == 2


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"cpus_per_task": 4},
            "4 CPUs per trial, but the nodes of partition 'debug' have at most 2: "
            "lower [slurm] cpus_per_trial in rea.toml",
        ),
        (
            {"mem_gb": 64.0},
            "64 GB of memory per trial, but the nodes of partition 'debug' offer at most "
            "21.2 GB: lower [slurm] mem_gb in rea.toml",
        ),
        (
            {"gpus_per_task": 3},
            "3 GPUs per trial, but the nodes of partition 'debug' have at most 2: "
            "lower [slurm] gpus_per_trial in rea.toml",
        ),
    ],
)
def test_resources_no_node_has_are_refused_naming_the_key(
    tmp_path: Path, resources: dict[str, Any], message: str
) -> None:
    """Asked of the 2-CPU, 2-GPU node of the local cluster (scontrol show node, captured)."""
    runner = FakeRunner()

    with pytest.raises(UsageError) as error:
        submit(scheduler(tmp_path, runner), tmp_path, **resources)

    assert str(error.value) == message
    assert runner.calls["sbatch"] == 0


def test_capacity_within_the_partition_limits(tmp_path: Path) -> None:
    partition = (
        "PartitionName=small Default=YES MaxTime=UNLIMITED State=UP MaxCPUsPerNode=1 "
        "MaxMemPerNode=4096\n"
    )
    node = "NodeName=vm CPUTot=2 RealMemory=21694 Gres=gpu:2 Partitions=small State=IDLE\n"

    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[1:3] == ("show", "partition"):
            return ok(argv, partition)
        return ok(argv, node) if argv[1:3] == ("show", "node") else None

    s = scheduler(tmp_path, FakeRunner(answer))

    assert s.max_mem_gb(Resources()) == 4.0
    with pytest.raises(UsageError, match="have at most 1: lower \\[slurm\\] cpus_per_trial"):
        submit(s, tmp_path, cpus_per_task=2)


def test_no_accounting_skips_account_checks_and_sacct(tmp_path: Path) -> None:
    runner = FakeRunner(accounting=False)
    s = scheduler(tmp_path, runner)

    submit(s, tmp_path, account="anything")
    s.states(["101_0"])

    assert runner.calls["sacctmgr"] == 0 and runner.calls["sacct"] == 0


def test_enforced_limit_is_whole_minutes_plus_the_clusters_overrun(tmp_path: Path) -> None:
    s = scheduler(tmp_path, FakeRunner())  # fixture config: OverTimeLimit 0, KillWait 5 s

    assert s.enforced_limit_min(60) == pytest.approx(60 + 35 / 60)
    assert s.enforced_limit_min(1.5) == pytest.approx(2 + 35 / 60)
    assert s.enforced_limit_min(0.02) == pytest.approx(1 + 35 / 60)
    with pytest.raises(UsageError, match="invalid Slurm time limit 0"):
        s.enforced_limit_min(0)


# ------------------------------------------------------------------ submission


def test_one_sbatch_per_array_with_ids_in_order(tmp_path: Path) -> None:
    runner = FakeRunner()

    ids = submit(scheduler(tmp_path, runner), tmp_path, n=3, gpus_per_task=1)

    assert ids == ["101_0", "101_1", "101_2"]
    (sbatch,) = runner.commands("sbatch")
    script = script_of(sbatch)
    assert "#SBATCH --array=0-2%3" in script and "#SBATCH --gres=gpu:1" in script


def test_array_starts_in_the_request_workdir_not_the_callers(tmp_path: Path) -> None:
    runner = FakeRunner()
    request = array_request(tmp_path)

    scheduler(tmp_path, runner).submit_array(request)

    lines = script_of(runner.commands("sbatch")[0]).splitlines()
    workdir = str(request.workdir.absolute())
    assert f"#SBATCH --chdir={shlex.quote(workdir)}" in lines  # quoted: the path has a space
    assert [ln for ln in lines if "--chdir" in ln] == [f"#SBATCH --chdir={shlex.quote(workdir)}"]


def test_preamble_of_the_request_runs_before_the_setup_lines(tmp_path: Path) -> None:
    runner = FakeRunner()
    request = array_request(tmp_path, setup=("module load a",))
    request = replace(request, preamble="# site\nmodule load site")

    scheduler(tmp_path, runner).submit_array(request)

    lines = script_of(runner.commands("sbatch")[0]).splitlines()
    assert lines.index("module load site") < lines.index("module load a")


def test_tasks_beyond_max_array_size_are_split(tmp_path: Path) -> None:
    runner = FakeRunner()

    ids = submit(scheduler(tmp_path, runner, max_array_size=2), tmp_path, n=5)

    assert ids == ["101_0", "101_1", "102_0", "102_1", "103_0"]
    assert runner.calls["sbatch"] == 3


def test_submit_limit_splits_and_refuses_what_cannot_fit(tmp_path: Path) -> None:
    queued = "5\n6\n7\n"
    runner = FakeRunner(lambda a: ok(a, queued) if a[:2] == ("squeue", "-h") else None)
    s = scheduler(tmp_path, runner, submit_limit=6)

    with pytest.raises(SchedulerError, match=r"would exceed your Slurm submit limit of 6 jobs \(3"):
        submit(s, tmp_path, n=4)
    assert runner.calls["sbatch"] == 0

    assert len(submit(s, tmp_path, n=3)) == 3


def test_a_failed_chunk_cancels_the_chunks_already_submitted(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "sbatch" and runner.calls["sbatch"] == 2:
            return err(argv, "sbatch: error: QOSMaxSubmitJobPerUserLimit")
        return None

    runner = FakeRunner(answer)

    with pytest.raises(SchedulerError, match="QOSMaxSubmitJobPerUserLimit"):
        submit(scheduler(tmp_path, runner, max_array_size=2), tmp_path, n=4)

    assert runner.commands("scancel") == [("scancel", "101_[0-1]")]


def test_lost_sbatch_reply_is_not_submitted_twice(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "sbatch":
            return err(argv, "sbatch: error: Batch job submission failed: Socket timed out")
        if argv[0] == "squeue" and "-n" in argv:  # the job did reach the controller
            script = Path(runner.commands("sbatch")[0][-1]).read_text()
            comment = next(ln.split("=", 1)[1] for ln in script.splitlines() if "--comment" in ln)
            return ok(argv, f"77|{comment}|\n")
        return None

    runner = FakeRunner(answer)

    ids = submit(scheduler(tmp_path, runner), tmp_path, n=2)

    assert ids == ["77_0", "77_1"]
    assert runner.calls["sbatch"] == 1


def test_wakeup_depends_on_whole_arrays_and_drops_purged_ones(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "sbatch" and any(a.startswith("--dependency=afterany:7:9") for a in argv):
            return err(argv, "sbatch: error: Batch job submission failed: Job dependency problem")
        if argv[0] == "squeue" and "-j" in argv:  # 7 is purged, 9 still known
            return ok(argv, fixture("squeue_ended.txt").replace("24_", "9_").replace("25|", "9|"))
        return None

    runner = FakeRunner(answer)
    s = scheduler(tmp_path, runner)

    wake = s.submit_wakeup(
        wakeup_request(tmp_path, ["rea", "resume", "c1"], preamble="module load x"),
        ["7_0", "7_1", "9_0"],
    )

    assert wake == "101"
    first, second = runner.commands("sbatch")
    assert "--dependency=afterany:7:9" in first
    assert "--dependency=afterany:9" in second
    script = script_of(second)
    assert "module load x" in script and script.rstrip().endswith("exec rea resume c1")


def render_and_submit(tmp_path: Path, n: int) -> tuple[str, str, list[str], str]:
    """Render a round's request, then submit it: (array text, wake-up text) as rendered,
    (array script lines, wake-up script) as submitted."""
    runner = FakeRunner()
    s = scheduler(tmp_path, runner)
    resources = {"account": "proj", "gpus_per_task": 1, "mem_gb": 2.0, "setup": ("module a",)}
    request = SubmissionRequest(
        replace(array_request(tmp_path, n, **resources), hold=True, preamble="module site"),
        wakeup_request(tmp_path, ["rea", "resume", "c 1"], backends.wakeup_resources(SITE)),
    )

    (_, array_text), (_, wake_text) = s.render(request)
    ids = s.submit_array(request.array)
    s.submit_wakeup(request.wakeup, ids)

    array_sbatch, wake_sbatch = runner.commands("sbatch")
    return array_text, wake_text, script_of(array_sbatch).splitlines(), script_of(wake_sbatch)


def rendered_options(array_text: str) -> list[str]:
    command = array_text.splitlines()[0]
    assert command.startswith("sbatch ")
    return shlex.split(command.removeprefix("sbatch ").split("  (")[0])


def as_sbatch_line(option: str) -> str:
    key, eq, value = option.partition("=")
    return f"#SBATCH {key}{eq}{shlex.quote(value) if eq else ''}"


def test_render_is_exactly_what_submit_sends(tmp_path: Path) -> None:
    """The dry run renders the request submit sends: every rendered sbatch option is in the
    array's script, and the wake-up script is the submitted one but for its unique token."""
    array_text, wake_text, array_lines, submitted = render_and_submit(tmp_path, n=5)

    options = rendered_options(array_text)
    assert {"--array=0-4%4", "--hold", "--account=proj", "--gres=gpu:1", "--mem=2G"} <= set(options)
    for option in options:
        assert as_sbatch_line(option) in array_lines, option
    for line in ("module site", "module a"):
        assert f"  setup: {line}" in array_text and line in array_lines
    token = next(ln for ln in submitted.splitlines() if "--comment=" in ln).rsplit("/", 1)[1]
    assert wake_text == submitted.replace(token, "<unique>")


def test_render_shows_the_throttle_sbatch_gets_when_parallelism_exceeds_the_tasks(
    tmp_path: Path,
) -> None:
    array_text, _, array_lines, _ = render_and_submit(tmp_path, n=3)  # parallelism 4

    (option,) = [o for o in rendered_options(array_text) if o.startswith("--array=")]
    assert as_sbatch_line(option) in array_lines


# ------------------------------------------------------------------ states, find, cancel


def test_states_one_squeue_and_one_sacct_call_for_many_tasks(tmp_path: Path) -> None:
    """One call each for every task; sacct is asked again only while it lags on a job the
    controller says FAILED (it may have been killed at its memory limit: only sacct says)."""
    answers = iter([fixture("sacct_right_after_end.txt"), fixture("sacct_mixed.txt")])

    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "squeue":
            return ok(argv, fixture("squeue_ended.txt"))
        if argv[0] == "sacct":
            return ok(argv, next(answers))  # lagging (24_1 not there yet), then settled
        return None

    runner = FakeRunner(answer)
    ids = ["24_0", "24_1", "24_2", "25"]

    states = scheduler(tmp_path, runner).states(ids)

    assert {j: states[j].state for j in ids} == {
        "24_0": JobState.COMPLETED,
        "24_1": JobState.FAILED,
        "24_2": JobState.COMPLETED,
        "25": JobState.COMPLETED,
    }
    assert states["24_1"].exit_code == 3 and states["24_1"].gpus == 1
    assert runner.calls["squeue"] == 1 and runner.calls["sacct"] == 2
    assert runner.commands("squeue")[0][-3] == "24,25"
    assert runner.commands("sacct")[1][runner.commands("sacct")[1].index("-j") + 1] == "24"


def test_a_cgroup_oom_kill_reads_as_out_of_memory(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "squeue":
            return ok(argv, fixture("squeue_oom_ended.txt"))
        if argv[0] == "sacct":
            assert "-X" not in argv  # the step lines are what says OUT_OF_MEMORY
            return ok(argv, fixture("sacct_oom_step_early.txt"))
        return None

    runner = FakeRunner(answer)

    info = scheduler(tmp_path, runner).states(["412_0"])["412_0"]

    assert info.state is JobState.OUT_OF_MEMORY and runner.calls["sacct"] == 1
    assert info.reason == "step 412.0 was killed at its memory limit of 200M (OUT_OF_MEMORY)"


def test_states_of_purged_jobs_come_from_sacct(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "squeue":
            return err(argv, fixture("squeue_unknown.stderr"))
        if argv[0] == "sacct":
            return ok(argv, fixture("sacct_mixed.txt"))
        return None

    runner = FakeRunner(answer)

    states = scheduler(tmp_path, runner).states(["24_1", "28", "29_2", "999_0"])

    assert states["24_1"].state is JobState.FAILED and states["24_1"].elapsed_s == 1.0
    assert (states["28"].state, states["28"].restarts) == (JobState.CANCELLED, 1)
    assert states["29_2"].state is JobState.CANCELLED
    assert states["999_0"].state is JobState.UNKNOWN


def test_states_of_live_jobs_do_not_ask_sacct(tmp_path: Path) -> None:
    runner = FakeRunner(
        lambda a: ok(a, fixture("squeue_running.txt")) if a[0] == "squeue" else None
    )

    states = scheduler(tmp_path, runner).states(["24_0", "24_2", "25"])

    assert states["24_0"].state is JobState.RUNNING and states["25"].state is JobState.PENDING
    assert runner.calls["sacct"] == 0


def test_find_by_prefix_merges_squeue_and_sacct(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "squeue":
            return ok(argv, fixture("squeue_requeued_cancelled.txt"))
        if argv[0] == "sacct":
            return ok(argv, fixture("sacct_mixed.txt"))
        return None

    s = scheduler(tmp_path, FakeRunner(answer))

    found = [j.job_id for j in s.find("rea.cfix.validation.")]

    assert found == ["24_0", "24_1", "24_2", "25"]
    assert [j.job_id for j in s.find("rea.cfix.requeue")] == ["28"]
    assert s.find("rea.other.") == []


def test_cancel_and_release_tolerate_ended_jobs(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] in ("scancel", "scontrol") and argv[1] != "show":
            return err(argv, "scancel: error: Kill job error on job id 5: Job has already finished")
        return None

    runner = FakeRunner(answer)
    s = scheduler(tmp_path, runner)

    s.cancel(["5_0", "5_1", "6"])
    s.release(["5_0", "5_1"])

    assert runner.commands("scancel") == [("scancel", "5_[0-1]", "6")]
    assert runner.commands("scontrol") == [("scontrol", "release", "5_[0-1]")]


def test_cancel_failure_for_another_reason_is_reported(tmp_path: Path) -> None:
    runner = FakeRunner(
        lambda a: err(a, "scancel: error: Access/permission denied") if a[0] == "scancel" else None
    )

    with pytest.raises(SchedulerError, match="scancel failed: scancel: error: Access/permission"):
        scheduler(tmp_path, runner).cancel(["5_0"])


def test_a_fresh_scheduler_submits_the_wakeup_with_the_sites_account(tmp_path: Path) -> None:
    """The wake-up's resources come with its request (built from the settings), never from
    an array this process submitted before: a fresh `rea resume` that only chains a wake-up
    must still send --account on a site that requires one."""
    runner = FakeRunner()
    fresh = scheduler(tmp_path, runner)

    fresh.submit_wakeup(
        wakeup_request(tmp_path, ["true"], backends.wakeup_resources(SITE)), ["101_0"]
    )

    (sbatch,) = runner.commands("sbatch")
    lines = script_of(sbatch).splitlines()
    for option in ("--account=proj", "--qos=high", "--partition=debug", "--time=30"):
        assert f"#SBATCH {option}" in lines, option
    assert "#SBATCH --cpus-per-task=1" in lines and "module load a" in lines
    assert not any("gres" in line or "--mem" in line for line in lines)  # no GPU, no trial mem
    chdir = shlex.quote(str((tmp_path / "w").absolute()))
    assert f"#SBATCH --chdir={chdir}" in lines


def test_the_wakeup_does_not_inherit_from_the_arrays_this_process_submitted(
    tmp_path: Path,
) -> None:
    runner = FakeRunner()
    s = scheduler(tmp_path, runner)
    submit(s, tmp_path, account="proj", qos="high", gpus_per_task=2, setup=("module load a",))

    s.submit_wakeup(wakeup_request(tmp_path, ["true"], Resources(time_limit_min=7)), ["101_0"])

    script = script_of(runner.commands("sbatch")[-1])
    assert "#SBATCH --time=7" in script and "#SBATCH --cpus-per-task=1" in script
    for inherited in ("--account", "--qos", "module load a", "gres"):
        assert inherited not in script, inherited

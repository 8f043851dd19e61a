"""SlurmScheduler logic without a cluster: a runner that answers from captured output.

What runs against the real cluster is in tests/slurm/; here: validation before anything is
submitted, chunking, no double submission, purged dependencies, state merging, call counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rea_cli.errors import SchedulerError, UsageError
from rea_cli.executor.scheduler import JobState, Resources, TaskSpec
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


def submit(s: SlurmScheduler, tmp_path: Path, n: int = 3, **resources: object) -> list[str]:
    return s.submit_array(
        tasks(tmp_path, n),
        job_name="rea.c1.validation.r1",
        resources=Resources(**resources),  # type: ignore[arg-type]
        parallelism=4,
    )


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
    assert runner.calls["scontrol"] == 2 and runner.calls["sacctmgr"] == 2


def test_no_accounting_skips_account_checks_and_sacct(tmp_path: Path) -> None:
    runner = FakeRunner(accounting=False)
    s = scheduler(tmp_path, runner)

    submit(s, tmp_path, account="anything")
    s.states(["101_0"])

    assert runner.calls["sacctmgr"] == 0 and runner.calls["sacct"] == 0


# ------------------------------------------------------------------ submission


def test_one_sbatch_per_array_with_ids_in_order(tmp_path: Path) -> None:
    runner = FakeRunner()

    ids = submit(scheduler(tmp_path, runner), tmp_path, n=3, gpus_per_task=1)

    assert ids == ["101_0", "101_1", "101_2"]
    (sbatch,) = runner.commands("sbatch")
    script = Path(sbatch[-1]).read_text()
    assert "#SBATCH --array=0-2%3" in script and "#SBATCH --gres=gpu:1" in script


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
    s = scheduler(tmp_path, runner, preamble="module load x")

    wake = s.submit_wakeup(
        ["7_0", "7_1", "9_0"], ["rea", "resume", "c1"], job_name="n.wake", log_dir=tmp_path / "w"
    )

    assert wake == "101"
    first, second = runner.commands("sbatch")
    assert "--dependency=afterany:7:9" in first
    assert "--dependency=afterany:9" in second
    script = Path(second[-1]).read_text()
    assert "module load x" in script and script.rstrip().endswith("exec rea resume c1")


# ------------------------------------------------------------------ states, find, cancel


def test_states_one_squeue_and_one_sacct_call_for_many_tasks(tmp_path: Path) -> None:
    def answer(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "squeue":
            return ok(argv, fixture("squeue_ended.txt"))
        if argv[0] == "sacct":
            return ok(argv, fixture("sacct_right_after_end.txt"))  # lagging: partial
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
    assert runner.calls["squeue"] == 1 and runner.calls["sacct"] == 1
    assert runner.commands("squeue")[0][-3] == "24,25"


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


def test_wakeup_inherits_account_partition_qos_and_setup_of_the_arrays(tmp_path: Path) -> None:
    runner = FakeRunner()
    s = scheduler(tmp_path, runner)
    submit(s, tmp_path, account="proj", qos="high", gpus_per_task=2, setup=("module load a",))

    s.submit_wakeup(["101_0"], ["true"], job_name="n.wake", log_dir=tmp_path / "w")

    script = Path(runner.commands("sbatch")[-1][-1]).read_text()
    assert "#SBATCH --account=proj" in script and "#SBATCH --qos=high" in script
    assert "module load a" in script and "gres" not in script and "#SBATCH --time=30" in script
    explicit = scheduler(tmp_path, FakeRunner(), wakeup_resources=Resources(time_limit_min=7))
    assert explicit.wakeup_resources_for(Resources(account="proj")).account is None

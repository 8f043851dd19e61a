"""Parsers of squeue/sacct/scontrol/sacctmgr/sbatch output, on output captured from the local
cluster (tests/fixtures/slurm/, re-captured with tests/fixtures/slurm/capture.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rea_cli.executor.scheduler import JobState
from rea_cli.executor.slurm import parse

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slurm"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def by_id(records: list[parse.SlurmRecord]) -> dict[str, parse.SlurmRecord]:
    return {r.job_id: r for r in records}


def test_squeue_held_array_and_pending_wakeup() -> None:
    records = by_id(parse.parse_squeue(fixture("squeue_held.txt")))

    assert set(records) == {"24_0", "24_1", "24_2", "25"}
    assert {records[j].state for j in ("24_0", "24_1", "24_2")} == {JobState.HELD}
    wake = records["25"].to_job_info()
    assert (wake.state, wake.reason, wake.name) == (
        JobState.PENDING,
        "Dependency",
        "rea.cfix.validation.r1.wake",
    )
    # not started: no exit code, no elapsed time, no node (Slurm prints 0 / empty)
    assert (wake.exit_code, wake.elapsed_s, wake.node, wake.started_at) == (None, None, None, None)
    assert records["24_0"].gpus == 1 and records["25"].gpus == 0


def test_squeue_running_and_throttled() -> None:
    records = by_id(parse.parse_squeue(fixture("squeue_running.txt")))

    assert records["24_0"].state is JobState.RUNNING
    assert records["24_0"].node == "vm"
    assert records["24_0"].to_job_info().exit_code is None  # not final while running
    assert (records["24_2"].state, records["24_2"].reason) == (
        JobState.PENDING,
        "JobArrayTaskLimit",
    )


def test_squeue_right_after_end_is_complete() -> None:
    """The controller knows every task's final state at once (sacct may not yet)."""
    infos = {r.job_id: r.to_job_info() for r in parse.parse_squeue(fixture("squeue_ended.txt"))}

    assert {j: (i.state, i.exit_code) for j, i in infos.items()} == {
        "24_0": (JobState.COMPLETED, 0),
        "24_1": (JobState.FAILED, 3),  # raw wait status 768
        "24_2": (JobState.COMPLETED, 0),
        "25": (JobState.COMPLETED, 0),
    }
    assert infos["24_1"].elapsed_s == 1.0 and infos["24_1"].gpus == 1
    assert infos["24_1"].ended_at is not None and infos["24_1"].started_at is not None
    assert infos["24_1"].ended_at > infos["24_1"].started_at


def test_squeue_requeued_and_cancelled_while_held() -> None:
    records = by_id(parse.parse_squeue(fixture("squeue_requeued_cancelled.txt")))

    requeued = records["28"].to_job_info()
    assert (requeued.state, requeued.reason, requeued.restarts) == (
        JobState.PENDING,
        "BeginTime",
        1,
    )
    assert {records[f"29_{i}"].state for i in range(4)} == {JobState.CANCELLED}


def test_sacct_lags_right_after_end() -> None:
    """Captured a moment after the array ended: sacct knows only some of the tasks."""
    records = parse.parse_sacct(fixture("sacct_right_after_end.txt"))

    assert set(records) < {"24_0", "24_1", "24_2", "25"}


def test_sacct_mixed_requeue_expansion_and_exit_codes() -> None:
    records = parse.parse_sacct(fixture("sacct_mixed.txt"))

    assert records["24_1"].to_job_info().exit_code == 3
    assert records["24_1"].state is JobState.FAILED
    assert (records["24_1"].elapsed_s, records["24_1"].gpus) == (1.0, 1)
    # -D: the requeued run is listed first; the last line wins and counts one restart
    assert (records["28"].state, records["28"].restarts) == (JobState.CANCELLED, 1)
    assert records["28"].slurm_state == "CANCELLED by 0"
    # a never-started array comes as one `29_[0-3]` line: one record per task
    assert {f"29_{i}" for i in range(4)} <= set(records)
    assert records["29_3"].job_id == "29_3" and records["29_3"].node is None


def test_merge_prefers_controller_state_and_sacct_usage() -> None:
    live = by_id(parse.parse_squeue(fixture("squeue_ended.txt")))
    accounted = parse.parse_sacct(fixture("sacct_mixed.txt"))

    merged = parse.merge_records(live["24_1"], accounted["24_1"])

    assert merged is not None
    assert (merged.state, merged.elapsed_s, merged.gpus) == (JobState.FAILED, 1.0, 1)
    assert parse.merge_records(None, accounted["24_1"]) is accounted["24_1"]
    assert parse.merge_records(live["24_1"], None) is live["24_1"]
    assert parse.merge_records(None, None) is None


def test_merge_ignores_stale_sacct_state() -> None:
    running = parse.SlurmRecord("7", "x", "RUNNING")
    stale = parse.SlurmRecord("7", "x", "PENDING", elapsed_s=0.0)

    merged = parse.merge_records(running, stale)

    assert merged is not None and merged.state is JobState.RUNNING


def test_lookup_falls_back_to_the_array_record_for_unsplit_tasks() -> None:
    meta = parse.SlurmRecord("85", "n", "CANCELLED")
    records = {"85": meta, "85_0": parse.SlurmRecord("85_0", "n", "CANCELLED")}

    assert parse.lookup(records, "85_0") is records["85_0"]
    found = parse.lookup(records, "85_2")
    assert found is not None and found.job_id == "85_2" and found.state is JobState.CANCELLED
    assert parse.lookup(records, "86_0") is None


def test_config_partitions_and_limits() -> None:
    config = parse.parse_config(fixture("scontrol_show_config.txt"))
    partitions = parse.parse_partitions(fixture("scontrol_show_partition.txt"))

    assert config["MaxArraySize"] == "1001"
    assert config["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert partitions["debug"].default and partitions["debug"].max_time_min is None
    assert [a.account for a in parse.parse_associations(fixture("sacctmgr_assoc.txt"))] == ["root"]
    assert parse.parse_qos(fixture("sacctmgr_qos.txt")) == {"normal": None}


def test_overrun_on_the_captured_config() -> None:
    """OverTimeLimit = 0 min, KillWait = 5 sec: the 5 s grace plus the controller's ~30 s."""
    config = parse.parse_config(fixture("scontrol_show_config.txt"))

    assert (config["OverTimeLimit"], config["KillWait"]) == ("0 min", "5 sec")
    assert parse.overrun_min(config) == pytest.approx(35 / 60)


@pytest.mark.parametrize(
    ("over", "kill_wait", "minutes"),
    [
        ("2 min", "30 sec", 3.0),
        ("0 min", "0 sec", 0.5),
        ("UNLIMITED", "30 sec", 24 * 60 + 1.0),  # unbounded: a day, so reservations stay safe
        (None, None, 1.0),  # keys missing: Slurm's defaults (0 min, 30 sec)
    ],
)
def test_overrun_from_overtimelimit_and_killwait(
    over: str | None, kill_wait: str | None, minutes: float
) -> None:
    config = {"MaxArraySize": "1001"}
    if over is not None:
        config["OverTimeLimit"] = over
    if kill_wait is not None:
        config["KillWait"] = kill_wait

    assert parse.overrun_min(config) == pytest.approx(minutes)


def test_partition_max_time_and_limits_parsing() -> None:
    text = (
        "PartitionName=gpu Default=NO MaxTime=2-00:00:00 State=UP TRES=cpu=2\n"
        "PartitionName=short Default=YES MaxTime=30:00 State=UP\n"
    )
    partitions = parse.parse_partitions(text)

    assert partitions["gpu"].max_time_min == 2 * 24 * 60
    assert partitions["short"].max_time_min == 30 and partitions["short"].default
    assocs = parse.parse_associations("proj||normal,high\nproj2|100|normal\n")
    assert [(a.account, a.max_submit, a.qos) for a in assocs] == [
        ("proj", None, ("normal", "high")),
        ("proj2", 100, ("normal",)),
    ]
    assert parse.parse_qos("normal|\nlimited|50\n") == {"normal": None, "limited": 50}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:01", 1.0),
        ("12:34", 754.0),
        ("1:00:00", 3600.0),
        ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5.0),
        ("2-03", 2 * 86400 + 3 * 3600.0),
        ("30", 1800.0),
        ("UNLIMITED", None),
        ("N/A", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse.parse_duration(text) == seconds


def test_exit_codes_times_tres_ids() -> None:
    assert parse.exit_code_from_status("768") == 3
    assert parse.exit_code_from_status("9") == 137  # killed by SIGKILL
    assert parse.exit_code_from_status("") is None
    assert parse.exit_code_from_pair("3:0") == 3
    assert parse.exit_code_from_pair("0:15") == 143
    assert parse.exit_code_from_pair("") is None
    assert parse.parse_time("Unknown") is None and parse.parse_time("N/A") is None
    stamp = parse.parse_time("2026-11-22T03:37:49")
    assert stamp is not None and stamp.tzinfo is not None
    assert parse.gpus_from_tres("billing=1,cpu=1,gres/gpu=2,mem=1000M,node=1") == 2
    assert parse.gpus_from_tres("cpu=4,gres/gpu:a100=4") == 4
    assert parse.gpus_from_tres("cpu=4,gres/gpu=4,gres/gpu:a100=4") == 4
    assert parse.gpus_from_tres("") == 0
    assert parse.expand_job_id("5_[1-2,7%2]") == ["5_1", "5_2", "5_7"]
    assert parse.expand_job_id("5_3") == ["5_3"]
    assert parse.base_job_id("5_3") == "5" and parse.base_job_id("5") == "5"


def test_sbatch_id_and_unknown_ids() -> None:
    assert parse.parse_sbatch_id("1234\n") == "1234"
    assert parse.parse_sbatch_id("1234;cluster\n") == "1234"
    with pytest.raises(ValueError, match="unexpected sbatch output"):
        parse.parse_sbatch_id("sbatch: error: nope")
    assert parse.squeue_says_unknown(fixture("squeue_unknown.stderr"))
    assert parse.unknown("9").state is JobState.UNKNOWN


def test_sacct_step_out_of_memory_makes_a_failed_job_out_of_memory() -> None:
    """cgroup OOM: the job line says FAILED 1:0, only the step `.0` says OUT_OF_MEMORY."""
    for name in ("sacct_oom_step.txt", "sacct_oom_step_early.txt"):
        records = parse.parse_sacct(fixture(name))
        record = parse.lookup(records, "412_0")
        assert record is not None and record.slurm_state == "FAILED"
        info = record.to_job_info()
        assert info.state is JobState.OUT_OF_MEMORY, name
        assert info.reason is not None and "memory limit of 200M" in info.reason
        assert record.oom_step is not None and record.oom_step.endswith(".0")
    # squeue alone cannot tell: FAILED, NonZeroExitCode
    (live,) = parse.parse_squeue(fixture("squeue_oom_ended.txt"))
    assert (live.state, live.reason) == (JobState.FAILED, "NonZeroExitCode")
    merged = parse.merge_records(live, parse.parse_sacct(fixture("sacct_oom_step.txt"))["412_0"])
    assert merged is not None and merged.to_job_info().state is JobState.OUT_OF_MEMORY


def test_sacct_duplicates_count_every_run_of_a_requeued_job() -> None:
    """sacct -D: one line per run; spent counts them all, not only the last."""
    (record,) = parse.parse_sacct(fixture("sacct_requeued_runs.txt")).values()
    lines = [x.split("|") for x in fixture("sacct_requeued_runs.txt").splitlines()]
    runs = [float(f[8]) for f in lines if "." not in f[0]]
    assert len(runs) == 3 and record.restarts == 2
    info = record.to_job_info()
    assert info.state is JobState.COMPLETED
    assert info.elapsed_s == sum(runs) > runs[-1]
    # a step that failed in an earlier run says nothing of the last one
    assert record.oom_step is None

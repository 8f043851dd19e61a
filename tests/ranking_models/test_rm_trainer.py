import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rm_helpers import (
    TINY_DATA,
    movielens_or_skip,
    read_metrics,
    read_result,
    tiny_config,
    write_spec,
)

from ranking_models import optim
from ranking_models import train as train_mod
from ranking_models.config import validate_config
from ranking_models.contracts import AttemptResult, AttemptStart, read_contract
from ranking_models.data.processing import load_data
from ranking_models.trainer import Trainer, lr_factor

RESULT_KEYS = {field.alias or name for name, field in AttemptResult.model_fields.items()}
METRIC_KEYS = {"auc", "logloss", "ne", "ne_eval", "calibration"}
FAILURE_KEYS = {"kind", "message", "epoch", "step", "exit_code"}
ROOT = Path(__file__).resolve().parents[2]


def test_tiny_trial_writes_the_contract_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REA_JOB_ID", "local-7")
    spec = write_spec(tmp_path)
    assert train_mod.run_trial(spec) == 0
    folder = spec.parent / "attempts" / "1"
    attempt = read_contract(folder / "attempt.json", AttemptStart)
    assert attempt.attempt == 1 and attempt.job_id == "local-7" and attempt.pid == os.getpid()
    assert attempt.trial_id == "t-s0" and attempt.started_at and attempt.host
    parsed = read_contract(folder / "result.json", AttemptResult)
    result = read_result(spec)
    assert set(result) == RESULT_KEYS and parsed.dump() == result
    assert result["status"] == "succeeded" and result["failure"] is None
    assert set(result["valid"]) == METRIC_KEYS and set(result["test"]) == METRIC_KEYS
    assert result["valid"]["auc"] > 0.6  # the planted signal is learnable
    assert result["epochs_completed"] == 2 and result["resumed_from_epoch"] == 0
    assert result["stopped"] is None and result["job_id"] == "local-7"
    assert [c["epoch"] for c in result["curve"]] == [0, 1]
    assert result["valid"] == result["curve"][result["best_epoch"]]["valid"]
    assert result["samples_seen"] == 2 * 3200  # TINY_DATA: 3,200 train rows
    assert 0 < result["device_time_s"] <= result["wall_time_s"]
    assert result["startup_s"] is not None and result["startup_s"] > 0
    assert result["device"] == "cpu" and result["n_params"] > 0 and result["peak_memory_mb"] > 0
    assert result["samples_per_s"] > 0 and result["versions"]["torch"] == torch.__version__
    events = read_metrics(spec)
    train = [e for e in events if e["event"] == "train"]
    evals = [e for e in events if e["event"] == "eval"]
    assert {
        "epoch",
        "step",
        "loss",
        "grad_norm",
        "samples_per_s",
        "memory_mb",
        "lr",
        "time",
    } <= set(train[0])
    best = result["best_epoch"]
    assert [(e["epoch"], e["split"]) for e in evals] == [(0, "valid"), (1, "valid"), (best, "test")]
    assert (
        evals[best]["auc"] == result["valid"]["auc"] and evals[-1]["auc"] == result["test"]["auc"]
    )
    losses = [e["loss"] for e in train if e["epoch"] == 0]  # log_every_steps > steps per epoch
    assert result["curve"][0]["train_loss"] == pytest.approx(losses[-1])
    assert not list((spec.parent / "attempts" / "1").glob(".*tmp"))


@pytest.mark.parametrize("family", ["lr", "fm", "wide_deep", "deepfm", "dlrm", "finalmlp"])
def test_every_family_trains(tmp_path: Path, family: str) -> None:
    spec = write_spec(tmp_path, config=tiny_config(family, epochs=1))
    assert train_mod.run_trial(spec) == 0
    assert read_result(spec)["valid"]["auc"] > 0.55


def test_same_seed_same_metrics_other_seed_differs(tmp_path: Path) -> None:
    config = tiny_config("dcn_v2", epochs=1)
    a = write_spec(tmp_path / "a", config=config, seed=1)
    b = write_spec(tmp_path / "b", config=config, seed=1)
    c = write_spec(tmp_path / "c", config=config, seed=2)
    for spec in (a, b, c):
        assert train_mod.run_trial(spec) == 0
    assert read_result(a)["test"] == read_result(b)["test"]
    assert read_result(a)["test"] != read_result(c)["test"]


def test_rerun_is_a_new_attempt_that_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path, config=tiny_config("fm", epochs=1))
    assert train_mod.run_trial(spec) == 0
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "88")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_JOB_ID", "91")
    assert train_mod.run_trial(spec) == 0
    second = read_result(spec, attempt=2)
    assert second["attempt"] == 2 and second["job_id"] == "88_3"
    assert second["resumed_from_epoch"] == 1 and second["epochs_completed"] == 1
    assert second["valid"] == read_result(spec)["valid"]


def test_job_id_precedence() -> None:
    env = {
        "REA_JOB_ID": "r",
        "SLURM_ARRAY_JOB_ID": "5",
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURM_JOB_ID": "9",
    }
    assert train_mod.job_id_from_env(env) == "r"
    del env["REA_JOB_ID"]
    assert train_mod.job_id_from_env(env) == "5_2"
    assert train_mod.job_id_from_env({"SLURM_JOB_ID": "9"}) == "9"
    assert train_mod.job_id_from_env({}) is None


def test_absurd_learning_rate_really_gives_nan_and_exit_3(tmp_path: Path) -> None:
    # Only the NaN detector is on, so the loss must really become NaN.
    config = tiny_config(
        "deepfm",
        lr_dense=1e30,
        lr_sparse=1e30,
        loss_explosion_factor=None,
        grad_norm_threshold=None,
    )
    spec = write_spec(tmp_path, config=config)
    assert train_mod.run_trial(spec) == 3
    result = read_result(spec)
    assert result["status"] == "failed" and result["test"] is None
    assert set(result["failure"]) == FAILURE_KEYS
    assert result["failure"]["kind"] == "nan_loss" and result["failure"]["exit_code"] == 3
    assert result["failure"]["epoch"] == 0 and 0 < result["failure"]["step"] < 20
    assert "nan" in result["failure"]["message"].lower()


def test_absurd_learning_rate_with_default_detectors_stops_early(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path, config=tiny_config("dcn_v2", lr_dense=1e6, lr_sparse=1e6, optimizer="sgd")
    )
    assert train_mod.run_trial(spec) == 3
    failure = read_result(spec)["failure"]
    assert failure["kind"] in ("nan_loss", "loss_explosion", "grad_explosion")
    assert failure["step"] < 30


def test_gradient_norm_threshold(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, config=tiny_config("fm", grad_norm_threshold=1e-9))
    assert train_mod.run_trial(spec) == 3
    failure = read_result(spec)["failure"]
    assert failure["kind"] == "grad_explosion" and failure["step"] == 0


def test_loss_explosion_against_running_median() -> None:
    from ranking_models.config import validate_config
    from ranking_models.data.processing import load_data
    from ranking_models.trainer import TrialFailure

    trainer = Trainer(validate_config(tiny_config("lr")), load_data(TINY_DATA), seed=0)
    for _ in range(30):
        trainer._check_loss(0.5, epoch=0)
    trainer._check_loss(4.9, epoch=0)  # under 10 x median
    with pytest.raises(TrialFailure) as err:
        trainer._check_loss(5.1, epoch=0)
    assert err.value.kind == "loss_explosion" and err.value.exit_code == 3


def test_oom_is_recorded_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Trainer, epoch: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Trainer, "_train_epoch", boom)
    spec = write_spec(tmp_path)
    assert train_mod.run_trial(spec) == 4
    failure = read_result(spec)["failure"]
    assert (
        failure["kind"] == "oom" and failure["exit_code"] == 4 and "20.00 GiB" in failure["message"]
    )


def test_cpu_allocation_failure_is_oom_and_other_errors_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cpu_oom(self: Trainer, epoch: int) -> None:
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory"
        )

    monkeypatch.setattr(Trainer, "_train_epoch", cpu_oom)
    assert train_mod.run_trial(write_spec(tmp_path / "a")) == 4

    def bug(self: Trainer, epoch: int) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(Trainer, "_train_epoch", bug)
    spec = write_spec(tmp_path / "b")
    assert train_mod.run_trial(spec) == 1
    assert read_result(spec)["failure"]["kind"] == "error"


def test_bad_config_and_bad_data_exit_2_with_a_record(tmp_path: Path) -> None:
    config = tiny_config("dcn_v2")
    config["model"]["embeding_dim"] = 8
    spec = write_spec(tmp_path / "a", config=config)
    assert train_mod.run_trial(spec) == 2
    failure = read_result(spec)["failure"]
    assert failure["kind"] == "config_error" and "embeding_dim" in failure["message"]
    spec = write_spec(tmp_path / "b", data={"name": "byo", "path": str(tmp_path / "none.toml")})
    assert train_mod.run_trial(spec) == 2
    failure = read_result(spec)["failure"]
    assert failure["kind"] == "data_error" and "none.toml" in failure["message"]


def test_unreadable_spec_exits_2_without_an_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "spec.json"
    bad.write_text("{not json")
    assert train_mod.run_trial(bad) == 2
    bad.write_text(json.dumps({"trial_id": "x"}))
    assert train_mod.run_trial(bad) == 2
    assert train_mod.main([]) == 2
    good = json.loads(write_spec(tmp_path).read_text())
    for field, value, expected in [("seed", True, "seed"), ("schema", 2, "schema 2")]:
        caplog.clear()
        bad.write_text(json.dumps({**good, field: value}))
        assert train_mod.run_trial(bad) == 2
        (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert expected in line and "\n" not in line
    assert not (tmp_path / "t-s0" / "attempts").exists()


def test_attempt_allocation_is_next_free_integer(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "3").mkdir()
    (tmp_path / "notes").mkdir()
    assert train_mod.allocate_attempt(tmp_path) == (4, tmp_path / "4")
    assert train_mod.allocate_attempt(tmp_path)[0] == 5


def test_lr_schedule_warmup_and_decay() -> None:
    assert [lr_factor(s, 100, 4, "constant") for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_factor(52, 100, 4, "linear") == pytest.approx(0.5)
    assert lr_factor(52, 100, 4, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 4, "cosine") == pytest.approx(0.0)


# ---------------------------------------------------------------- real processes


def _slow_spec(tmp_path: Path, name: str) -> Path:
    config = tiny_config("dcn_v2", epochs=3, batch_size=128, log_every_steps=1000)
    data = {
        "name": "synthetic",
        "n_rows": 40000,
        "n_categorical": 4,
        "n_numerical": 2,
        "vocab_size": 50,
    }
    return write_spec(tmp_path / name, config=config, data=data)


def _start(spec: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REA_TORCH_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "ranking_models.train", str(spec)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.005)


@pytest.mark.slow
def test_killed_after_epoch_1_resumes_from_epoch_2_with_identical_results(tmp_path: Path) -> None:
    spec = _slow_spec(tmp_path, "killed")
    proc = _start(spec)
    _wait_for(spec.parent / "checkpoint" / "checkpoint.pt", proc)
    proc.kill()  # SIGKILL: no chance to clean up, like a node failure
    proc.wait()
    assert not (spec.parent / "attempts" / "1" / "result.json").exists()
    assert train_mod.run_trial(spec) == 0
    result = read_result(spec, attempt=2)
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 3
    assert [c["epoch"] for c in result["curve"]] == [0, 1, 2]  # epoch 0 from attempt 1
    assert result["samples_seen"] == 2 * 32000
    epochs_trained = {e["epoch"] for e in read_metrics(spec, attempt=2) if e["event"] == "train"}
    assert epochs_trained == {1, 2}  # epoch 0 was not redone
    reference = _slow_spec(tmp_path, "reference")
    assert train_mod.run_trial(reference) == 0
    expected = read_result(reference)
    assert expected["test"] == result["test"]  # resuming changes nothing
    assert expected["curve"] == result["curve"] and expected["best_epoch"] == result["best_epoch"]


@pytest.mark.slow
def test_sigterm_is_recorded_and_leaves_no_result(tmp_path: Path) -> None:
    spec = _slow_spec(tmp_path, "term")
    proc = _start(spec)
    metrics = spec.parent / "attempts" / "1" / "metrics.jsonl"
    _wait_for(metrics, proc)
    while not metrics.read_text():  # training has started (the first epoch's train event)
        assert proc.poll() is None
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    events = read_metrics(spec)
    assert events[-1]["event"] == "signal" and events[-1]["signal"] == "SIGTERM"
    assert not (spec.parent / "attempts" / "1" / "result.json").exists()


@pytest.mark.slow
def test_movielens_default_lr_trains_well(tmp_path: Path) -> None:
    movielens_or_skip()
    from ranking_models.config import default_config

    config = default_config("lr")
    config["train"]["epochs"] = 2
    spec = write_spec(tmp_path, config=config, data={"name": "movielens-100k"})
    assert train_mod.run_trial(spec) == 0
    result = read_result(spec)
    assert result["valid"]["auc"] > 0.75  # facts.md: one-hot LR gives about 0.77
    assert result["valid"]["ne"] < 0.95


@pytest.mark.parametrize(("fraction", "steps"), [(1.0, 13), (0.25, 4)])
def test_data_fraction_lowers_the_steps(tmp_path: Path, fraction: float, steps: int) -> None:
    # TINY_DATA: 3,200 train rows; batch 256 -> 13 steps, a quarter (800 rows) -> 4 steps.
    spec = write_spec(tmp_path, config=tiny_config("lr", epochs=1, data_fraction=fraction))
    assert train_mod.run_trial(spec) == 0
    train = [e for e in read_metrics(spec) if e["event"] == "train"]
    assert train[-1]["step"] == steps


def test_one_row_last_batch_is_dropped_and_epoch_end_still_logged(tmp_path: Path) -> None:
    data = {**TINY_DATA, "n_rows": 1285}  # 1,029 train rows = 4 x 257 + 1
    config = tiny_config("deepfm", epochs=1, batch_size=257, log_every_steps=1000)
    config["model"]["norm"] = "batch"
    spec = write_spec(tmp_path, config=config, data=data)
    assert train_mod.run_trial(spec) == 0
    train = [e for e in read_metrics(spec) if e["event"] == "train"]
    assert [e["step"] for e in train] == [4]


@pytest.mark.parametrize(
    "train",
    [
        {
            "optimizer": "sgd",
            "lr_dense": 0.05,
            "lr_sparse": 0.05,
            "lr_schedule": "cosine",
            "warmup_steps": 5,
        },
        {
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "lr_schedule": "linear",
            "grad_clip_norm": 0.5,
        },
        {"optimizer": "adagrad", "lr_dense": 0.05, "lr_sparse": 0.05, "weight_decay_sparse": 1e-6},
    ],
    ids=["sgd-cosine-warmup", "adamw-linear-clip", "adagrad"],
)
def test_optimizers_schedules_and_clipping_train(tmp_path: Path, train: dict) -> None:
    spec = write_spec(tmp_path, config=tiny_config("deepfm", **train))
    assert train_mod.run_trial(spec) == 0
    result = read_result(spec)
    assert result["valid"]["auc"] > 0.55
    lrs = [e["lr"] for e in read_metrics(spec) if e["event"] == "train"]
    if train.get("lr_schedule", "constant") != "constant":
        assert lrs[-1] < max(lrs)  # decayed


def test_bf16_autocast_path_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CUDA path uses bf16 autocast; exercise the same code on CPU autocast.
    from ranking_models.config import validate_config
    from ranking_models.data.processing import load_data

    trainer = Trainer(validate_config(tiny_config("dcn_v2", epochs=1)), load_data(TINY_DATA), 0)
    trainer.autocast = True
    outcome = trainer.run()
    assert outcome.valid["auc"] > 0.5 and outcome.epochs_completed == 1


# ---------------------------------------------------------------- optimisation knobs


@pytest.mark.parametrize(
    ("sparse", "kind"),
    [("adagrad", optim.Adagrad), ("rowwise_adagrad", optim.RowWiseAdagrad), ("sgd", optim.SGD)],
)
def test_sparse_optimizer_owns_the_embedding_tables(
    tmp_path: Path, sparse: str, kind: type
) -> None:
    config = validate_config(tiny_config("deepfm", sparse_optimizer=sparse, lr_sparse=0.05))
    trainer = Trainer(config, load_data(TINY_DATA), seed=0)
    opt = trainer.optimizer
    assert isinstance(opt, optim.Chained) and [type(p) for p in opt.parts] == [optim.Adam, kind]
    tables = {id(p) for p in trainer.model.sparse_parameters()}
    assert {id(p) for p in opt.parts[1].param_groups[0]["params"]} == tables
    assert not tables & {id(p) for p in opt.parts[0].param_groups[0]["params"]}
    if sparse == "sgd":
        assert opt.parts[1].param_groups[0]["momentum"] == 0.0
    spec = write_spec(
        tmp_path, config=tiny_config("deepfm", sparse_optimizer=sparse, lr_sparse=0.05)
    )
    assert train_mod.run_trial(spec) == 0
    assert read_result(spec)["valid"]["auc"] > 0.55


def test_same_sparse_optimizer_is_one_optimizer_with_two_groups() -> None:
    trainer = Trainer(validate_config(tiny_config("deepfm")), load_data(TINY_DATA), seed=0)
    assert isinstance(trainer.optimizer, optim.Adam) and len(trainer.optimizer.param_groups) == 2


@pytest.mark.parametrize(("scaling", "factor"), [("none", 1.0), ("linear", 0.25), ("sqrt", 0.5)])
def test_lr_batch_scaling(tmp_path: Path, scaling: str, factor: float) -> None:
    # batch 256 against a reference of 1024: a quarter of the reference batch
    train = {"lr_batch_scaling": scaling, "reference_batch_size": 1024, "epochs": 1}
    config = tiny_config("deepfm", **train)
    trainer = Trainer(validate_config(config), load_data(TINY_DATA), seed=0)
    t = trainer.train_cfg
    assert t.lr_dense != t.lr_sparse
    assert [g["base_lr"] for g in trainer.optimizer.param_groups] == pytest.approx(
        [t.lr_dense * factor, t.lr_sparse * factor]
    )
    spec = write_spec(tmp_path, config=config)
    assert train_mod.run_trial(spec) == 0
    lrs = [e["lr"] for e in read_metrics(spec) if e["event"] == "train"]
    assert lrs == pytest.approx([t.lr_dense * factor] * len(lrs))  # the dense LR, as trained


# ---------------------------------------------------------------- compute accounting


def test_process_age_is_the_age_of_this_process() -> None:
    code = (
        "import time; from ranking_models.train import process_age_s\n"
        "a = process_age_s(); time.sleep(0.3); b = process_age_s()\n"
        "print(a, b)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    a, b = (float(x) for x in out.stdout.split())
    assert 0 < a < 10 and b - a == pytest.approx(0.3, abs=0.05)


def test_startup_of_a_forked_trial_counts_from_the_fork(tmp_path: Path) -> None:
    import multiprocessing

    spec = write_spec(tmp_path, config=tiny_config("lr", epochs=1))
    time.sleep(0.5)  # the parent is older than the work before the child's first step
    parent_age = train_mod.process_age_s()
    child = multiprocessing.get_context("fork").Process(target=train_mod.main, args=([str(spec)],))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    result = read_result(spec)
    assert parent_age is not None and 0 < result["startup_s"] < parent_age


@pytest.mark.slow
def test_device_time_and_startup_of_a_command_line_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, config=tiny_config("dcn_v2", epochs=2))
    t0 = time.monotonic()
    proc = _start(spec)
    assert proc.wait(timeout=120) == 0
    outer = time.monotonic() - t0
    result = read_result(spec)
    assert 0 < result["device_time_s"] <= result["wall_time_s"] < outer
    # interpreter + imports + data + model come before the first step: startup covers them
    assert 0.2 < result["startup_s"] < outer
    assert result["startup_s"] + result["device_time_s"] <= outer + 0.05  # 10 ms tick

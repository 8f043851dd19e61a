"""attempt.json tells, before the first batch, what no batch size changes: the parameters, where
they live and the resident memory once data and model are set up. A trial killed at its memory
limit leaves no result.json; this is what the agent weighs against the limit."""

from __future__ import annotations

from pathlib import Path

from rm_helpers import read_result, tiny_config, write_spec

from ranking_models.contracts import AttemptStart, read_contract
from ranking_models.train import run_trial


def test_attempt_json_has_the_footprint_before_the_first_batch(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, config=tiny_config(epochs=1))
    attempt = spec.parent / "attempts" / "1" / "attempt.json"

    assert run_trial(spec) == 0

    start: AttemptStart = read_contract(attempt, AttemptStart)
    result = read_result(spec)
    assert start.n_params == result["n_params"] > 0
    assert start.device == result["device"] == "cpu"
    assert start.ready_memory_mb is not None
    assert 0 < start.ready_memory_mb <= result["peak_memory_mb"]
    assert (start.trial_id, start.attempt) == ("t-s0", 1)


def test_a_trial_that_fails_before_its_model_is_built_has_no_footprint(tmp_path: Path) -> None:
    data = {"name": "criteo", "path": str(tmp_path / "missing.tsv")}
    spec = write_spec(tmp_path, data=data)

    assert run_trial(spec) == 2

    start: AttemptStart = read_contract(
        spec.parent / "attempts" / "1" / "attempt.json", AttemptStart
    )
    assert start.ready_memory_mb is None and start.n_params is None

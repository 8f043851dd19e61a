"""`rea doctor` against the real local Slurm cluster: the request and the node fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_workspace, run_rea

pytestmark = pytest.mark.slurm


def _checks(ws: Path) -> tuple[int, dict[str, dict[str, str]]]:
    done = run_rea(ws, "doctor", "--dataset", "synthetic", "--json")
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_doctor_on_slurm(tmp_path: Path) -> None:
    fits = make_workspace(
        tmp_path / "ok", "slurm", "[slurm]\ncpus_per_trial = 1\nmem_gb = 1\ngpus_per_trial = 1\n"
    )
    rc, checks = _checks(fits)
    assert checks["slurm reachable"]["verdict"] == "OK"
    assert checks["slurm request"]["verdict"] == "OK", checks["slurm request"]
    assert checks["trial fits a node"]["verdict"] == "OK", checks["trial fits a node"]
    assert rc == 0

    # the test node has 2 CPUs: a 64-CPU trial would pend forever
    too_big = make_workspace(tmp_path / "big", "slurm", "[slurm]\ncpus_per_trial = 64\n")
    rc, checks = _checks(too_big)
    assert rc == 1
    fit = checks["trial fits a node"]
    assert fit["verdict"] == "FAIL" and "pends forever" in fit["detail"]
    assert "cpus_per_trial" in fit["fix"]

    wrong = make_workspace(tmp_path / "part", "slurm", '[slurm]\npartition = "nope"\n')
    rc, checks = _checks(wrong)
    assert rc == 1
    assert checks["slurm request"]["verdict"] == "FAIL"
    assert "unknown Slurm partition 'nope'" in checks["slurm request"]["detail"]

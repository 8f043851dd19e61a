"""pyproject.toml declares what the code really needs: every third-party import, the torch APIs
the trainer calls, submitit bounded to the minor whose private methods rea overrides. And the
Slurm contract suite fails, not skips, on a broken import when the cluster is up."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"yaml": "pyyaml"}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements() -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in _project()["project"]["dependencies"]]
    return {r.name.lower(): r for r in reqs}


def _imported_modules() -> set[str]:
    """Top-level modules imported anywhere in the two packages (lazy imports included)."""
    names: set[str] = set()
    for package in ("rea_cli", "ranking_models"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"rea_cli", "ranking_models"}


def test_every_third_party_import_is_declared() -> None:
    declared = set(_requirements())
    missing = {m for m in _imported_modules() if DISTRIBUTIONS.get(m, m) not in declared}
    assert not missing, f"imported but not in [project].dependencies: {sorted(missing)}"


def test_torch_minimum_covers_the_trainer_apis() -> None:
    trainer = (REPO / "ranking_models" / "trainer.py").read_text()
    torch = _requirements()["torch"].specifier
    if "get_total_norm" in trainer or "clip_grads_with_norm_" in trainer:
        assert not torch.contains("2.5.1"), f"the trainer needs torch 2.6+, declared {torch}"
    import torch as installed

    assert torch.contains(installed.__version__.split("+")[0])


def test_submitit_is_bounded_to_the_tested_minor() -> None:
    import submitit

    spec = _requirements()["submitit"].specifier
    assert spec.contains(submitit.__version__)
    major, minor = (int(x) for x in submitit.__version__.split(".")[:2])
    assert not spec.contains(f"{major}.{minor + 1}.0"), f"submitit unbounded above: {spec}"


def test_wheel_target_holds_only_build_settings() -> None:
    wheel = _project()["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert set(wheel) <= {"packages", "force-include", "only-include", "exclude"}, wheel


def test_contract_suite_fails_on_a_broken_slurm_import(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.contract import conftest

    down = conftest._slurm_unavailable()
    if down:
        pytest.skip(down)
    monkeypatch.setitem(sys.modules, "rea_cli.executor.slurm", None)  # import -> ImportError
    try:
        conftest._make_slurm(Path("/nonexistent"))
    except BaseException as exc:  # pytest.skip raises an exception that is no Exception
        assert isinstance(exc, ImportError), f"{type(exc).__name__}: {exc}"
    else:
        raise AssertionError("a broken import built a scheduler")

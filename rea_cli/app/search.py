"""The exploitation search port, with Optuna: ask-and-tell over a study stored in the campaign
folder (a journal file), so the search survives hibernation and a kill at any point.

Nothing is asked twice: points asked by an earlier process that the campaign never recorded
(killed between ask and record) are still RUNNING in the study, and are handed out again before
anything new is asked. Finished points are told once (telling is skipped for a point the study
already has as finished). The study is warm-started once with every earlier full-fidelity trial
of the campaign that lies in the space. Each search space (a new incumbent) has its own study,
named by the engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rea_cli.faults import crash_point
from rea_cli.planner.engine.search import Knob, SearchPoint

log = logging.getLogger(__name__)


def _distribution(knob: Knob) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if knob.kind == "choice":
        return CategoricalDistribution([json.dumps(c, sort_keys=True) for c in knob.choices])
    assert knob.low is not None and knob.high is not None
    if knob.kind == "int":
        return IntDistribution(int(knob.low), int(knob.high), log=knob.log and knob.low >= 1)
    return FloatDistribution(float(knob.low), float(knob.high), log=knob.log)


class OptunaSearch:
    """SearchPort over `folder`/study.log (Optuna's JournalFileBackend)."""

    def __init__(self, folder: Path, campaign_id: str, seed: int = 0) -> None:
        self.folder = folder
        self.campaign_id = campaign_id
        self.seed = seed

    def ask(
        self,
        study: str,
        space: Sequence[Knob],
        n: int,
        finished: Sequence[SearchPoint],
        warm: Sequence[SearchPoint],
        in_flight: set[int],
    ) -> list[tuple[int, dict[str, Any]]]:
        import optuna
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.folder.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(self.folder / "study.log")))
        distributions = {k.key: _distribution(k) for k in space}
        sampler = optuna.samplers.TPESampler(
            seed=self.seed * 100_003 + len(finished),  # campaigns seeded apart sample apart
            multivariate=True,
            constant_liar=True,
            n_startup_trials=min(5, max(1, len(space))),
        )
        opt = optuna.create_study(
            study_name=f"{self.campaign_id}-{study}",
            storage=storage,
            direction="maximize",
            sampler=sampler,
            load_if_exists=True,
        )
        trials = {t.number: t for t in opt.get_trials(deepcopy=False)}
        warmed = {t.user_attrs.get("warm") for t in trials.values()}
        for point in warm:
            key = json.dumps(point.params, sort_keys=True)
            if key in warmed or point.value is None:
                continue
            try:
                opt.add_trial(
                    create_trial(
                        params=point.params,
                        distributions=distributions,
                        value=point.value,
                        intermediate_values=point.intermediate,
                        user_attrs={"warm": key},
                    )
                )
            except ValueError as exc:  # outside this space: not a warm start for it
                log.debug("warm start skipped: %s", exc)
        for point in finished:
            t = trials.get(point.number) if point.number is not None else None
            if t is None or t.state is not TrialState.RUNNING:
                continue
            live = optuna.trial.Trial(opt, t._trial_id)
            for step, value in sorted(point.intermediate.items()):
                live.report(value, step)
            if point.state == "complete" and point.value is not None:
                opt.tell(t.number, point.value, skip_if_finished=True)
            elif point.state == "pruned":
                opt.tell(t.number, state=TrialState.PRUNED, skip_if_finished=True)
            else:
                opt.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        out: list[tuple[int, dict[str, Any]]] = []
        for t in opt.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number not in in_flight and len(out) < n:
                out.append((t.number, dict(t.params)))  # asked before, never recorded
        while len(out) < n:
            trial = opt.ask(distributions)
            out.append((trial.number, dict(trial.params)))
        crash_point("search_asked")  # asked and stored in the study, not yet in the campaign
        return out

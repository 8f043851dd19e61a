"""Live progress for `rea watch`: the saved campaign plus the scheduler's current job states.

Read-only: watching never writes campaign state, so Ctrl-C cannot hurt a campaign.
"""

from __future__ import annotations

from typing import Any

from rea_cli.campaign.store import CampaignStore
from rea_cli.executor.backends import make_scheduler
from rea_cli.executor.scheduler import JobState
from rea_cli.lifecycle import summary
from rea_cli.workspace import Workspace


def live_summary(ws: Workspace, store: CampaignStore) -> dict[str, Any]:
    c = store.load()
    if c.state.value == "RUNNING":
        open_jobs = {
            t.jobs[-1].job_id: t.jobs[-1]
            for t in c.trials.values()
            if t.jobs and t.status == "submitted"
        }
        if open_jobs:
            infos = make_scheduler(ws).states(sorted(open_jobs))
            for jid, job in open_jobs.items():
                info = infos.get(jid)
                if info is not None:
                    job.state = info.state.value
                    job.reason = info.reason
            for t in c.trials.values():
                # finished but not yet ingested: show as done from the scheduler's view
                if t.status == "submitted" and t.jobs:
                    st = t.jobs[-1].state
                    if st == JobState.COMPLETED.value:
                        t.status = "succeeded"
                    elif st != JobState.UNKNOWN.value and JobState(st).is_terminal:
                        t.status = "failed"
    return summary(c)

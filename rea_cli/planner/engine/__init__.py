"""The hypothesis engine: what a campaign runs next, decided from its plan and its results.

Pure: `next_step` reads the plan and the campaign record (and asks the search port for new
points in exploitation) and returns the next Step (trials to run) or a Finish (the proposal).
It is recomputed from scratch at every resume, so a crash anywhere cannot leave a decision half
taken: the same state gives the same step, and trials that already exist are not run again.

Phases (docs/campaigns.md):
- validation: a probe (the baseline at full fidelity on the validation seeds: its learning curve
  is the training profile and the reference every rung compares with), successive-halving rungs
  (hypotheses stop at an early epoch; the best continue from their checkpoints to the full
  horizon), and a gate that corrects for choosing among many;
- combination: greedy forward selection over the winners;
- exploitation: model-based search (Optuna, through the search port) around the incumbent,
  in batches with in-trial pruning, then a confirmation of the best candidate against the
  baseline at full fidelity on fresh paired seeds;
- the proposal: the confirmed gain with its interval on valid and test, or "keep the baseline".
"""

from rea_cli.planner.engine.common import Finish, Step, TrialDef
from rea_cli.planner.engine.decide import next_step, te_gpu_hours

__all__ = ["Finish", "Step", "TrialDef", "next_step", "te_gpu_hours"]

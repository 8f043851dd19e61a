"""The application layer: what rea's commands do, over the campaign store.

The human commands (plan, approve, launch, cancel, review), the wake-up (resume) and the
watchdog (tick) all live here and share the same building blocks; the CLI calls only this
layer. Below it: the planner (pure decisions), the campaign store (the only writer of campaign
state), the executor (scheduler backends and the round submission protocol), the runbooks and
the insights DB. Nothing below imports from here.
"""

"""Campaign state: the state machine, the event journal and the store (the only writer)."""

"""An analyst in a loop: `python insights_reader.py ANALYST_DB STOP_FILE OUT_JSON`.

Each read opens the analyst copy read-only (as a notebook would), checks that what it sees is
one consistent snapshot, and closes, until STOP_FILE exists (60 s at most). Then it writes
its tally to OUT_JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

# Each query returns a number of violations; every one is 0 in a consistent snapshot.
CHECKS = {
    # the journal is ingested as a prefix: seq 1..max with no gap and no duplicate
    "events_prefix": "SELECT coalesce(max(seq), 0) - count(*) FROM events",
    # a succeeded attempt's result.json and its final metrics rows arrive in one transaction
    "final_metrics": """
        SELECT count(*) FROM attempts a WHERE a.status = 'succeeded' AND NOT EXISTS (
            SELECT 1 FROM metrics m WHERE m.campaign_id = a.campaign_id
            AND m.trial_id = a.trial_id AND m.attempt = a.attempt AND m.line = 0)""",
    # metrics lines of an attempt are a prefix 1..max of its file
    "metric_lines": """
        SELECT count(*) FROM (SELECT max(line) - count(*) AS gap FROM metrics
            WHERE line > 0 GROUP BY campaign_id, trial_id, attempt) WHERE gap <> 0""",
    # no duplicate keys
    "duplicates": """
        SELECT count(*) - count(DISTINCT (campaign_id, trial_id, attempt, line, split))
        FROM metrics""",
}


def main() -> None:
    db, stop, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    reads = 0
    errors: list[str] = []
    violations: list[str] = []
    metrics_seen: list[int] = []
    deadline = time.monotonic() + 60
    last = -1
    while time.monotonic() < deadline and not stop.exists():
        if not db.exists():
            time.sleep(0.01)
            continue
        try:
            con = duckdb.connect(str(db), read_only=True)
            try:
                for name, sql in CHECKS.items():
                    bad = con.execute(sql).fetchall()[0][0]
                    if bad:
                        violations.append(f"{name}: {bad}")
                n = con.execute("SELECT count(*) FROM metrics").fetchall()[0][0]
            finally:
                con.close()
        except duckdb.Error as exc:
            errors.append(str(exc).splitlines()[0])
            continue
        if n < last:
            violations.append(f"metrics went back from {last} to {n}")
        if n != last:
            metrics_seen.append(n)
        last = n
        reads += 1
        time.sleep(0.05)  # an analyst, not a benchmark: leave the 2 cores to the agent
    tally = {
        "reads": reads,
        "errors": errors,
        "violations": violations,
        "metrics_seen": metrics_seen,
    }
    out.write_text(json.dumps(tally))


if __name__ == "__main__":
    main()

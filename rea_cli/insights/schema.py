"""The insights DB schema: ordered migrations (frozen SQL text) and the analyst views.

A migration is never edited once released: a change to the schema is a new migration at the end
of MIGRATIONS. Each one runs in a single transaction together with its schema_version row, so a
crash leaves the database at the previous version or the next, never in between.
See docs/insights.md for the tables, the views and example queries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
)
"""

# v1: the first released schema (kept to upgrade old files; tests/fixtures/insights/v1.duckdb).
_V1 = (
    """
    CREATE TABLE campaigns (
        campaign_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMPTZ, created_by VARCHAR, state VARCHAR, phase VARCHAR, goal VARCHAR,
        model_family VARCHAR, dataset VARCHAR, metric VARCHAR, direction VARCHAR,
        backend VARCHAR, plan_hash VARCHAR, approved_gpu_hours DOUBLE, spent_gpu_hours DOUBLE
    )
    """,
    """
    CREATE TABLE hypotheses (
        campaign_id VARCHAR, hypothesis_id VARCHAR,
        title VARCHAR, rationale VARCHAR, source VARCHAR, delta JSON, model_family VARCHAR,
        PRIMARY KEY (campaign_id, hypothesis_id)
    )
    """,
    """
    CREATE TABLE trials (
        campaign_id VARCHAR, trial_id VARCHAR,
        hypothesis_id VARCHAR, phase VARCHAR, seed INTEGER, fidelity JSON, status VARCHAR,
        PRIMARY KEY (campaign_id, trial_id)
    )
    """,
    """
    CREATE TABLE attempts (
        campaign_id VARCHAR, trial_id VARCHAR, attempt INTEGER,
        job_id VARCHAR, host VARCHAR, status VARCHAR, failure_kind VARCHAR,
        started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, wall_time_s DOUBLE,
        PRIMARY KEY (campaign_id, trial_id, attempt)
    )
    """,
    """
    CREATE TABLE metrics (
        campaign_id VARCHAR, trial_id VARCHAR, attempt INTEGER, line INTEGER,
        event VARCHAR, epoch INTEGER, step BIGINT, split VARCHAR,
        loss DOUBLE, auc DOUBLE, logloss DOUBLE,
        PRIMARY KEY (campaign_id, trial_id, attempt, line)
    )
    """,
    """
    CREATE TABLE events (
        campaign_id VARCHAR, seq BIGINT, event_at TIMESTAMPTZ, event VARCHAR, details JSON,
        PRIMARY KEY (campaign_id, seq)
    )
    """,
)

# v2: the full schema. metrics gains `split` in its key (final values from result.json sit
# beside the stream), so it is rebuilt; the other v1 tables only gain columns.
_METRIC_COLUMNS = (
    "loss DOUBLE, grad_norm DOUBLE, samples_per_s DOUBLE, memory_mb DOUBLE, lr DOUBLE, "
    "time DOUBLE, auc DOUBLE, logloss DOUBLE, ne DOUBLE, ne_eval DOUBLE, calibration DOUBLE"
)

_V2_TABLES = (
    "ALTER TABLE campaigns ADD COLUMN reserved_gpu_hours DOUBLE",
    "ALTER TABLE campaigns ADD COLUMN pause_reason VARCHAR",
    "ALTER TABLE campaigns ADD COLUMN campaign_dir VARCHAR",
    "ALTER TABLE campaigns ADD COLUMN synced_at TIMESTAMPTZ",
    "ALTER TABLE hypotheses ADD COLUMN parents JSON",
    "ALTER TABLE trials ADD COLUMN fidelity_key VARCHAR",
    "ALTER TABLE trials ADD COLUMN diagnosis VARCHAR",
    "ALTER TABLE trials ADD COLUMN metric_value DOUBLE",
    "ALTER TABLE trials ADD COLUMN config JSON",
    "ALTER TABLE trials ADD COLUMN data JSON",
    "ALTER TABLE trials ADD COLUMN data_name VARCHAR",
    "UPDATE trials SET fidelity_key = CAST(fidelity AS VARCHAR)",
    "ALTER TABLE attempts ADD COLUMN pid BIGINT",
    "ALTER TABLE attempts ADD COLUMN failure_message VARCHAR",
    "ALTER TABLE attempts ADD COLUMN failure_epoch INTEGER",
    "ALTER TABLE attempts ADD COLUMN failure_step BIGINT",
    "ALTER TABLE attempts ADD COLUMN exit_code INTEGER",
    "ALTER TABLE attempts ADD COLUMN epochs_completed INTEGER",
    "ALTER TABLE attempts ADD COLUMN resumed_from_epoch INTEGER",
    "ALTER TABLE attempts ADD COLUMN samples_per_s DOUBLE",
    "ALTER TABLE attempts ADD COLUMN peak_memory_mb DOUBLE",
    "ALTER TABLE attempts ADD COLUMN n_params BIGINT",
    "ALTER TABLE attempts ADD COLUMN device VARCHAR",
    "ALTER TABLE attempts ADD COLUMN versions JSON",
    "ALTER TABLE attempts ADD COLUMN node VARCHAR",
    "ALTER TABLE attempts ADD COLUMN job_state VARCHAR",
    "ALTER TABLE attempts ADD COLUMN job_exit_code INTEGER",
    "ALTER TABLE attempts ADD COLUMN gpu_seconds DOUBLE",
    f"""
    CREATE TABLE metrics_v2 (
        campaign_id VARCHAR, trial_id VARCHAR, attempt INTEGER, line INTEGER, split VARCHAR,
        event VARCHAR, epoch INTEGER, step BIGINT, {_METRIC_COLUMNS}, extra JSON,
        PRIMARY KEY (campaign_id, trial_id, attempt, line, split)
    )
    """,
    """
    INSERT INTO metrics_v2 (campaign_id, trial_id, attempt, line, split, event, epoch, step,
                            loss, auc, logloss)
    SELECT campaign_id, trial_id, attempt, line,
           coalesce(split, CASE WHEN event = 'train' THEN 'train' ELSE 'valid' END),
           event, epoch, step, loss, auc, logloss
    FROM metrics
    """,
    "DROP TABLE metrics",
    "ALTER TABLE metrics_v2 RENAME TO metrics",
    "ALTER TABLE events ADD COLUMN trial_id VARCHAR",
    "ALTER TABLE events ADD COLUMN attempt INTEGER",
    "ALTER TABLE events ADD COLUMN job_id VARCHAR",
    """
    CREATE TABLE approvals (
        campaign_id VARCHAR PRIMARY KEY,
        plan_hash VARCHAR, approved_by VARCHAR, approved_at TIMESTAMPTZ,
        approved_gpu_hours DOUBLE, approval JSON
    )
    """,
    """
    CREATE TABLE plans (
        campaign_id VARCHAR PRIMARY KEY,
        plan_hash VARCHAR, file_sha256 VARCHAR, n_trials INTEGER,
        estimated_gpu_hours DOUBLE, plan JSON
    )
    """,
    """
    CREATE TABLE phases (
        campaign_id VARCHAR, phase VARCHAR,
        status VARCHAR, n_rounds INTEGER, submitted_at TIMESTAMPTZ,
        gate_passed BOOLEAN, gate_detail VARCHAR, rounds JSON,
        n_planned_trials INTEGER, estimated_gpu_hours DOUBLE,
        PRIMARY KEY (campaign_id, phase)
    )
    """,
    """
    CREATE TABLE jobs (
        campaign_id VARCHAR, trial_id VARCHAR, job_id VARCHAR,
        round INTEGER, state VARCHAR, exit_code INTEGER, node VARCHAR,
        started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, gpu_seconds DOUBLE, gpus INTEGER,
        time_limit_min INTEGER, reason VARCHAR, restarts INTEGER,
        PRIMARY KEY (campaign_id, trial_id, job_id)
    )
    """,
    """
    CREATE TABLE failures (
        campaign_id VARCHAR, seq BIGINT,
        diagnosed_at TIMESTAMPTZ, trial_id VARCHAR, attempt INTEGER, job_id VARCHAR,
        diagnosis VARCHAR, action VARCHAR, detail VARCHAR,
        PRIMARY KEY (campaign_id, seq)
    )
    """,
    """
    CREATE TABLE proposals (
        campaign_id VARCHAR PRIMARY KEY,
        hypothesis_id VARCHAR, delta JSON, metric VARCHAR, direction VARCHAR,
        baseline_mean DOUBLE, candidate_mean DOUBLE, gain DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
        n INTEGER, test_gain DOUBLE, summary VARCHAR, created_at TIMESTAMPTZ
    )
    """,
    """
    CREATE TABLE reviews (
        campaign_id VARCHAR PRIMARY KEY,
        decision VARCHAR, reviewed_by VARCHAR, reviewed_at TIMESTAMPTZ, note VARCHAR
    )
    """,
    """
    CREATE TABLE ingested_files (
        campaign_id VARCHAR, path VARCHAR,
        size BIGINT, mtime_ns BIGINT, inode BIGINT, read_offset BIGINT, lines BIGINT,
        ingested_at TIMESTAMPTZ,
        PRIMARY KEY (campaign_id, path)
    )
    """,
)

# Two-sided 95% Student t quantiles by degrees of freedom; a df between two rows uses the
# smaller df (a slightly wider, conservative interval).
_T975 = (
    "(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (6, 2.447), (7, 2.365), "
    "(8, 2.306), (9, 2.262), (10, 2.228), (11, 2.201), (12, 2.179), (13, 2.160), (14, 2.145), "
    "(15, 2.131), (16, 2.120), (17, 2.110), (18, 2.101), (19, 2.093), (20, 2.086), "
    "(25, 2.060), (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (1000000, 1.960)"
)


def _metric_case(alias: str) -> str:
    names = ("auc", "logloss", "ne", "ne_eval", "calibration")
    whens = " ".join(f"WHEN '{n}' THEN {alias}.{n}" for n in names)
    return f"CASE c.metric {whens} END"


_V2_VIEWS = (
    f"""
    CREATE OR REPLACE VIEW trial_results AS
    WITH last_ok AS (
        SELECT campaign_id, trial_id, max(attempt) AS attempt
        FROM attempts WHERE status = 'succeeded' GROUP BY campaign_id, trial_id
    )
    SELECT t.campaign_id, t.trial_id, t.hypothesis_id, t.phase, t.seed, t.fidelity_key,
           c.model_family, c.dataset, c.metric, c.direction, a.attempt,
           {_metric_case("v")} AS value,
           {_metric_case("s")} AS test_value
    FROM trials t
    JOIN campaigns c USING (campaign_id)
    JOIN last_ok a USING (campaign_id, trial_id)
    LEFT JOIN metrics v ON v.campaign_id = t.campaign_id AND v.trial_id = t.trial_id
        AND v.attempt = a.attempt AND v.line = 0 AND v.split = 'valid'
    LEFT JOIN metrics s ON s.campaign_id = t.campaign_id AND s.trial_id = t.trial_id
        AND s.attempt = a.attempt AND s.line = 0 AND s.split = 'test'
    """,
    f"""
    CREATE OR REPLACE VIEW hypothesis_effects AS
    WITH r AS (
        SELECT tr.*, h.source, CAST(h.delta AS VARCHAR) AS delta
        FROM trial_results tr JOIN hypotheses h USING (campaign_id, hypothesis_id)
    ),
    base AS (
        SELECT campaign_id, seed, fidelity_key,
               avg(value) AS base_value, avg(test_value) AS base_test_value
        FROM r WHERE source = 'baseline' GROUP BY campaign_id, seed, fidelity_key
    ),
    pairs AS (
        SELECT r.*, b.base_value,
               CASE WHEN r.direction = 'min' THEN -1 ELSE 1 END
                   * (r.value - b.base_value) AS gain,
               CASE WHEN r.direction = 'min' THEN -1 ELSE 1 END
                   * (r.test_value - b.base_test_value) AS test_gain
        FROM r JOIN base b USING (campaign_id, seed, fidelity_key)
        WHERE r.source <> 'baseline' AND r.value IS NOT NULL AND b.base_value IS NOT NULL
    ),
    agg AS (
        SELECT model_family, dataset, metric, direction, hypothesis_id, delta,
               any_value(source) AS source,
               count(*) AS n,
               count(DISTINCT campaign_id) AS n_campaigns,
               avg(base_value) AS baseline_mean,
               avg(value) AS candidate_mean,
               avg(gain) AS mean_gain,
               stddev_samp(gain) AS sd_gain,
               avg(test_gain) AS mean_test_gain
        FROM pairs
        GROUP BY model_family, dataset, metric, direction, hypothesis_id, delta
    ),
    t975(df, t) AS (VALUES {_T975})
    SELECT agg.*,
           mean_gain - tq.t * sd_gain / sqrt(n) AS ci_low,
           mean_gain + tq.t * sd_gain / sqrt(n) AS ci_high
    FROM agg
    LEFT JOIN LATERAL (
        SELECT t FROM t975 WHERE t975.df <= agg.n - 1 ORDER BY t975.df DESC LIMIT 1
    ) tq ON true
    """,
    """
    CREATE OR REPLACE VIEW campaign_summary AS
    WITH tr AS (
        SELECT campaign_id, count(*) AS n_trials,
               count(*) FILTER (WHERE status = 'succeeded') AS n_trials_succeeded,
               count(*) FILTER (WHERE status = 'failed') AS n_trials_failed
        FROM trials GROUP BY campaign_id
    ),
    att AS (
        SELECT campaign_id, count(*) AS n_attempts,
               count(*) FILTER (WHERE status = 'failed'
                   OR (status IS NULL AND job_state IN
                       ('FAILED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'CANCELLED',
                        'PREEMPTED', 'BOOT_FAIL', 'DEADLINE'))) AS n_attempts_failed
        FROM attempts GROUP BY campaign_id
    ),
    hy AS (SELECT campaign_id, count(*) AS n_hypotheses FROM hypotheses GROUP BY campaign_id)
    SELECT c.campaign_id, c.state, c.phase, c.goal, c.model_family, c.dataset, c.metric,
           c.direction, c.backend, c.created_at, c.created_by,
           c.approved_gpu_hours, c.reserved_gpu_hours, c.spent_gpu_hours,
           coalesce(hy.n_hypotheses, 0) AS n_hypotheses,
           coalesce(tr.n_trials, 0) AS n_trials,
           coalesce(tr.n_trials_succeeded, 0) AS n_trials_succeeded,
           coalesce(tr.n_trials_failed, 0) AS n_trials_failed,
           coalesce(att.n_attempts, 0) AS n_attempts,
           coalesce(att.n_attempts_failed, 0) AS n_attempts_failed,
           p.hypothesis_id AS proposal_hypothesis_id, p.gain AS proposal_gain,
           p.ci_low AS proposal_ci_low, p.ci_high AS proposal_ci_high,
           rv.decision AS review_decision, rv.reviewed_by, c.synced_at
    FROM campaigns c
    LEFT JOIN hy USING (campaign_id)
    LEFT JOIN tr USING (campaign_id)
    LEFT JOIN att USING (campaign_id)
    LEFT JOIN proposals p USING (campaign_id)
    LEFT JOIN reviews rv USING (campaign_id)
    """,
    """
    CREATE OR REPLACE VIEW failure_stats AS
    WITH failed AS (
        SELECT a.campaign_id, a.trial_id, a.attempt, c.model_family, c.dataset,
               coalesce(a.failure_kind, lower(a.job_state), 'unknown') AS failure_kind
        FROM attempts a
        JOIN campaigns c USING (campaign_id)
        WHERE a.status = 'failed'
           OR (a.status IS NULL AND a.job_state IN
               ('FAILED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'CANCELLED',
                'PREEMPTED', 'BOOT_FAIL', 'DEADLINE'))
    ),
    diag AS (
        SELECT campaign_id, trial_id, attempt,
               arg_max(diagnosis, seq) AS diagnosis, arg_max(action, seq) AS action
        FROM failures WHERE attempt IS NOT NULL
        GROUP BY campaign_id, trial_id, attempt
    )
    SELECT f.model_family, f.dataset, f.failure_kind,
           coalesce(d.diagnosis, 'undiagnosed') AS diagnosis,
           coalesce(d.action, 'none') AS action,
           count(*) AS n_attempts,
           count(DISTINCT f.campaign_id || '/' || f.trial_id) AS n_trials,
           count(DISTINCT f.campaign_id) AS n_campaigns
    FROM failed f
    LEFT JOIN diag d USING (campaign_id, trial_id, attempt)
    GROUP BY ALL
    """,
    """
    CREATE OR REPLACE VIEW budget_burn AS
    WITH j AS (
        SELECT j.campaign_id, coalesce(t.phase, 'unknown') AS phase,
               count(*) AS n_jobs,
               sum(j.gpu_seconds) / 3600.0 AS spent_gpu_hours,
               sum(j.time_limit_min * j.gpus) / 60.0 AS limit_gpu_hours,
               min(j.started_at) AS first_started_at, max(j.ended_at) AS last_ended_at
        FROM jobs j LEFT JOIN trials t USING (campaign_id, trial_id)
        GROUP BY ALL
    ),
    ph AS (
        SELECT campaign_id, phase,
               p.estimated_gpu_hours, p.status AS phase_status,
               coalesce(j.n_jobs, 0) AS n_jobs,
               coalesce(j.spent_gpu_hours, 0) AS spent_gpu_hours,
               coalesce(j.limit_gpu_hours, 0) AS limit_gpu_hours,
               j.first_started_at, j.last_ended_at
        FROM phases p FULL OUTER JOIN j USING (campaign_id, phase)
    )
    SELECT ph.campaign_id, ph.phase,
           CASE ph.phase WHEN 'validation' THEN 1 WHEN 'combination' THEN 2
                         WHEN 'exploitation' THEN 3 ELSE 4 END AS phase_order,
           ph.phase_status, ph.estimated_gpu_hours, ph.n_jobs, ph.spent_gpu_hours,
           ph.limit_gpu_hours, ph.first_started_at, ph.last_ended_at,
           sum(ph.spent_gpu_hours) OVER (
               PARTITION BY ph.campaign_id ORDER BY phase_order, ph.phase
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_gpu_hours,
           c.approved_gpu_hours,
           cumulative_gpu_hours / nullif(c.approved_gpu_hours, 0) AS fraction_of_budget
    FROM ph LEFT JOIN campaigns c USING (campaign_id)
    """,
)

# v3: the hypothesis engine. Job records carry fractional time limits (the local backend
# enforces seconds) and their own diagnosis; attempts carry the trainer's device time; hypotheses
# name the knowledge-base strategy they instantiate; campaigns their data traits. Views: exact t
# quantiles (t_table), relative gains, strategy effects for the planner's history, and the
# budget's reserved figure with the one rule for ended jobs (rea_cli/budget.ENDED_STATES).
_ENDED_STATES_SQL = (
    "'COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'PREEMPTED', "
    "'UNKNOWN'"
)
_V3_TABLES = (
    "ALTER TABLE jobs ALTER COLUMN time_limit_min TYPE DOUBLE",
    "ALTER TABLE jobs ADD COLUMN failure_kind VARCHAR",
    "ALTER TABLE jobs ADD COLUMN runbook VARCHAR",
    "ALTER TABLE jobs ADD COLUMN diagnosis VARCHAR",
    "ALTER TABLE jobs ADD COLUMN action VARCHAR",
    "ALTER TABLE attempts ADD COLUMN device_time_s DOUBLE",
    "ALTER TABLE attempts ADD COLUMN startup_s DOUBLE",
    "ALTER TABLE attempts ADD COLUMN samples_seen BIGINT",
    "ALTER TABLE attempts ADD COLUMN best_epoch INTEGER",
    "ALTER TABLE attempts ADD COLUMN stopped VARCHAR",
    "ALTER TABLE hypotheses ADD COLUMN strategy VARCHAR",
    "ALTER TABLE hypotheses ADD COLUMN trigger VARCHAR",
    "ALTER TABLE campaigns ADD COLUMN traits VARCHAR",
    "ALTER TABLE trials ADD COLUMN test_value DOUBLE",
    "ALTER TABLE trials ADD COLUMN reused_from VARCHAR",
)


def _v3_views() -> tuple[str, ...]:
    from rea_cli.insights.t_table import values_sql

    t975 = values_sql()
    return (
        f"""
        CREATE OR REPLACE VIEW hypothesis_effects AS
        WITH r AS (
            SELECT tr.*, h.source, h.strategy, CAST(h.delta AS VARCHAR) AS delta
            FROM trial_results tr JOIN hypotheses h USING (campaign_id, hypothesis_id)
        ),
        base AS (
            SELECT campaign_id, seed, fidelity_key,
                   avg(value) AS base_value, avg(test_value) AS base_test_value
            FROM r WHERE source = 'baseline' GROUP BY campaign_id, seed, fidelity_key
        ),
        pairs AS (
            SELECT r.*, b.base_value,
                   CASE WHEN r.direction = 'min' THEN -1 ELSE 1 END
                       * (r.value - b.base_value) AS gain,
                   CASE WHEN r.direction = 'min' THEN -1 ELSE 1 END
                       * (r.test_value - b.base_test_value) AS test_gain
            FROM r JOIN base b USING (campaign_id, seed, fidelity_key)
            WHERE r.source <> 'baseline' AND r.value IS NOT NULL AND b.base_value IS NOT NULL
        ),
        agg AS (
            SELECT model_family, dataset, metric, direction, hypothesis_id, delta,
                   any_value(source) AS source,
                   any_value(strategy) AS strategy,
                   count(*) AS n,
                   count(DISTINCT campaign_id) AS n_campaigns,
                   avg(base_value) AS baseline_mean,
                   avg(value) AS candidate_mean,
                   avg(gain) AS mean_gain,
                   stddev_samp(gain) AS sd_gain,
                   avg(gain / nullif(abs(base_value), 0)) AS mean_rel_gain,
                   avg(test_gain) AS mean_test_gain
            FROM pairs
            GROUP BY model_family, dataset, metric, direction, hypothesis_id, delta
        ),
        t975(df, t) AS (VALUES {t975})
        SELECT agg.*,
               mean_gain - tq.t * sd_gain / sqrt(n) AS ci_low,
               mean_gain + tq.t * sd_gain / sqrt(n) AS ci_high
        FROM agg
        LEFT JOIN LATERAL (
            SELECT t FROM t975 WHERE t975.df <= agg.n - 1 ORDER BY t975.df DESC LIMIT 1
        ) tq ON true
        """,
        """
        CREATE OR REPLACE VIEW strategy_effects AS
        WITH r AS (
            SELECT tr.*, h.strategy, c.traits
            FROM trial_results tr
            JOIN hypotheses h USING (campaign_id, hypothesis_id)
            JOIN campaigns c USING (campaign_id)
        ),
        base AS (
            SELECT campaign_id, seed, fidelity_key, avg(value) AS base_value
            FROM r WHERE hypothesis_id = 'baseline' GROUP BY campaign_id, seed, fidelity_key
        ),
        pairs AS (
            SELECT r.campaign_id, r.hypothesis_id, r.strategy, r.model_family, r.metric,
                   r.direction, coalesce(r.traits, '') AS traits,
                   CASE WHEN r.direction = 'min' THEN -1 ELSE 1 END
                       * (r.value - b.base_value) / nullif(abs(b.base_value), 0) AS rel_gain
            FROM r JOIN base b USING (campaign_id, seed, fidelity_key)
            WHERE r.strategy IS NOT NULL AND r.value IS NOT NULL AND b.base_value IS NOT NULL
        )
        SELECT strategy, model_family, metric, direction, traits,
               count(*) AS n, count(DISTINCT hypothesis_id) AS n_hypotheses,
               count(DISTINCT campaign_id) AS n_campaigns,
               avg(rel_gain) AS mean_rel_gain, stddev_samp(rel_gain) AS sd_rel_gain
        FROM pairs
        GROUP BY strategy, model_family, metric, direction, traits
        """,
        f"""
        CREATE OR REPLACE VIEW budget_burn AS
        WITH j AS (
            SELECT j.campaign_id, coalesce(t.phase, 'unknown') AS phase,
                   count(*) AS n_jobs,
                   sum(j.gpu_seconds) / 3600.0 AS spent_gpu_hours,
                   sum(j.time_limit_min * greatest(j.gpus, 1)) / 60.0 AS limit_gpu_hours,
                   sum(CASE WHEN j.state IN ({_ENDED_STATES_SQL}) THEN 0
                            ELSE j.time_limit_min * greatest(j.gpus, 1) END) / 60.0
                       AS reserved_gpu_hours,
                   min(j.started_at) AS first_started_at, max(j.ended_at) AS last_ended_at
            FROM jobs j LEFT JOIN trials t USING (campaign_id, trial_id)
            GROUP BY ALL
        ),
        ph AS (
            SELECT campaign_id, phase,
                   p.estimated_gpu_hours, p.status AS phase_status,
                   coalesce(j.n_jobs, 0) AS n_jobs,
                   coalesce(j.spent_gpu_hours, 0) AS spent_gpu_hours,
                   coalesce(j.reserved_gpu_hours, 0) AS reserved_gpu_hours,
                   coalesce(j.limit_gpu_hours, 0) AS limit_gpu_hours,
                   j.first_started_at, j.last_ended_at
            FROM phases p FULL OUTER JOIN j USING (campaign_id, phase)
        )
        SELECT ph.campaign_id, ph.phase,
               CASE ph.phase WHEN 'validation' THEN 1 WHEN 'combination' THEN 2
                             WHEN 'exploitation' THEN 3 ELSE 4 END AS phase_order,
               ph.phase_status, ph.estimated_gpu_hours, ph.n_jobs, ph.spent_gpu_hours,
               ph.reserved_gpu_hours, ph.limit_gpu_hours, ph.first_started_at, ph.last_ended_at,
               sum(ph.spent_gpu_hours) OVER (
                   PARTITION BY ph.campaign_id ORDER BY phase_order, ph.phase
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_gpu_hours,
               c.approved_gpu_hours,
               cumulative_gpu_hours / nullif(c.approved_gpu_hours, 0) AS fraction_of_budget
        FROM ph LEFT JOIN campaigns c USING (campaign_id)
        """,
    )


# v4: the sync watermark: per campaign, the state of its folder (a digest of every file the
# sync reads: path, size, mtime, inode) and the last journal seq this database reflects. The
# analyst copy carries the table as of its publication, so "is the copy behind the files" is a
# comparison of two digests, without reading any file.
_V4 = (
    """
    CREATE TABLE sync_watermark (
        campaign_id VARCHAR PRIMARY KEY, folder_digest VARCHAR NOT NULL, journal_seq BIGINT,
        state VARCHAR, files INTEGER, synced_at TIMESTAMPTZ
    )
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1),
    Migration(2, "full campaign index, file index, analyst views", _V2_TABLES + _V2_VIEWS),
    Migration(
        3, "hypothesis engine: device time, strategies, exact t, reserved", _V3_TABLES + _v3_views()
    ),
    Migration(4, "sync watermark", _V4),
)
LATEST_VERSION = MIGRATIONS[-1].version

VIEWS = (
    "trial_results",
    "hypothesis_effects",
    "strategy_effects",
    "campaign_summary",
    "failure_stats",
    "budget_burn",
)
# Internal tables: bookkeeping of the sync, not analyst data.
INTERNAL_TABLES = ("schema_version", "ingested_files", "sync_watermark")

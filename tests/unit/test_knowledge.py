"""The knowledge base: shipped files, the file format's errors, instantiation against baselines."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ranking_models.config import FAMILIES, apply_delta, default_config, validate_config
from rea_cli.errors import UsageError
from rea_cli.paths import shipped_dir
from rea_cli.planner.knowledge import (
    Candidate,
    Dropped,
    Strategy,
    candidates,
    load_file,
    load_knowledge,
    strategies_from_entries,
    strategy_entries,
)
from rea_cli.planner.rules import profile_facts

REPO = Path(__file__).resolve().parents[2]

# A profile where every data rule of the shipped files holds, and a curve that trips every
# training rule (improving at the end, overfitting and unstable at once: unrealistic, thorough).
RICH_DATA = {
    "n_rows": 5_000_000,
    "n_train": 4_000_000,
    "label_rate": 0.03,
    "n_categorical": 26,
    "n_numerical": 13,
    "max_abs_skew": 12.0,
    "n_skewed": 8,
    "n_heavy_tailed": 6,
    "n_nonmonotone": 3,
    "max_cardinality": 2_000_000,
    "max_rare_mass": 0.3,
    "imbalance": 0.03,
    "best_pair_score": 0.02,
}
RICH_TRAINING = {
    "improving_at_end": True,
    "last_gain_rel": 0.02,
    "best_epoch_frac": 0.5,
    "overfit_gap": 0.1,
    "unstable": True,
    "epochs": 3,
}
# MovieLens-100k-like: no heavy tails, a little rare mass, one non-monotone column
PLAIN_DATA = {
    **RICH_DATA,
    "n_rows": 100_000,
    "n_train": 80_000,
    "n_skewed": 1,
    "max_abs_skew": 2.1,
    "n_heavy_tailed": 0,
    "n_nonmonotone": 0,
    "max_cardinality": 1644,
    "max_rare_mass": 0.03,
    "best_pair_score": 0.004,
}


@pytest.fixture(scope="module")
def shipped() -> tuple[Strategy, ...]:
    return load_knowledge().strategies


def _run(
    strategies: tuple[Strategy, ...] | list[Strategy],
    base: dict[str, Any],
    data: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> tuple[dict[str, Candidate], list[Dropped]]:
    found, dropped = candidates(strategies, base, profile_facts(base, data, training))
    return {c.hypothesis_id: c for c in found}, dropped


def _dropped(dropped: list[Dropped], strategy_id: str) -> list[Dropped]:
    return [d for d in dropped if d.strategy_id == strategy_id]


# ----------------------------------------------------------------------------- shipped files


def test_shipped_files_load_and_ship_with_the_wheel(shipped: tuple[Strategy, ...]) -> None:
    assert shipped_dir("knowledge") == REPO / "knowledge"
    files = sorted(p.name for p in (REPO / "knowledge").glob("*.toml"))
    assert len(files) >= 5
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["knowledge"] == "rea_cli/_shipped/knowledge"
    assert len(shipped) >= 25
    assert {s.category for s in shipped} == {
        "feature",
        "training",
        "optimization",
        "capacity",
        "architecture",
        "regularization",
    }
    assert all(s.source == "shipped" and s.reference and s.rationale for s in shipped)
    assert len({s.id for s in shipped}) == len(shipped)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_shipped_strategy_instantiates_for_every_family(
    shipped: tuple[Strategy, ...], family: str
) -> None:
    base = default_config(family)
    found, dropped = _run(shipped, base, RICH_DATA, RICH_TRAINING)
    assert found
    # nothing waits (every fact is known), nothing shipped is invalid for a default config
    assert [d for d in dropped if d.kind in ("waiting", "invalid", "duplicate")] == []
    for hid, c in found.items():
        changed = apply_delta(base, c.delta)
        validate_config(changed)
        assert changed != base, hid
        assert hid.startswith(f"{c.strategy_id}@") or hid == c.strategy_id
        assert c.title and "→" in c.title, hid
        assert c.cost > 0 and c.prior_sd > 0
        for key, space in c.search.items():
            value = c.delta[key]
            if space.kind == "choice":
                assert value in (space.choices or []), (hid, key)
            else:
                assert space.low is not None and space.high is not None
                assert space.low <= value <= space.high, (hid, key, space)


def test_every_shipped_strategy_is_reachable(shipped: tuple[Strategy, ...]) -> None:
    """Each strategy proposes something for some family and some baseline: no dead entries."""
    proposed: set[str] = set()
    for family in FAMILIES:
        for scaling in ("none", "sqrt"):
            base = apply_delta(default_config(family), {"train.lr_batch_scaling": scaling})
            found, _ = _run(shipped, base, RICH_DATA, RICH_TRAINING)
            proposed |= {c.strategy_id for c in found.values()}
    assert {s.id for s in shipped} - proposed == set()


# ----------------------------------------------------------------------------- profile rules


def test_numeric_strategies_follow_the_numerical_columns(shipped: tuple[Strategy, ...]) -> None:
    base = default_config("dcn_v2")
    none = {**PLAIN_DATA, "n_numerical": 0, "n_skewed": 0, "n_nonmonotone": 0}
    found, dropped = _run(shipped, base, none)
    assert not any(c.delta.get("features.numeric_buckets") for c in found.values())
    (d,) = _dropped(dropped, "numeric_buckets")
    assert d.kind == "rule" and "data.n_numerical >= 1 (it is 0)" in d.reason

    found, _ = _run(shipped, base, PLAIN_DATA)
    plain = found["numeric_buckets@32"]
    assert not plain.boosted and plain.trigger == "research prior"
    assert plain.prior_mean == pytest.approx(0.002)

    found, _ = _run(shipped, base, {**PLAIN_DATA, "n_nonmonotone": 3})
    boosted = found["numeric_buckets@32"]
    assert boosted.boosted and boosted.prior_mean > plain.prior_mean
    assert boosted.trigger == "3 numerical column(s) with a clearly non-monotone label curve"


def test_embedding_strategies_need_categorical_columns(shipped: tuple[Strategy, ...]) -> None:
    base = default_config("deepfm")
    numeric_only = {**PLAIN_DATA, "n_categorical": 0, "max_rare_mass": 0.0, "best_pair_score": 0}
    found, dropped = _run(shipped, base, numeric_only)
    touched = {k for c in found.values() for k in c.delta}
    assert not touched & {
        "model.embedding_dim",
        "train.lr_sparse",
        "train.sparse_optimizer",
        "features.min_frequency",
        "features.top_k_crosses",
    }
    (d,) = _dropped(dropped, "embedding_dim")
    assert "data.n_categorical >= 1 (it is 0)" in d.reason


def test_train_longer_reads_the_baseline_curve(shipped: tuple[Strategy, ...]) -> None:
    base = default_config("dcn_v2")
    # before the baseline ran: the training.* rules wait, and say which
    found, dropped = _run(shipped, base, PLAIN_DATA)
    (d,) = _dropped(dropped, "train_longer")
    assert d.kind == "waiting" and d.waiting == ["training.improving_at_end"]
    assert not any(c.strategy_id == "train_longer" for c in found.values())

    found, dropped = _run(shipped, base, PLAIN_DATA, {"improving_at_end": False})
    (d,) = _dropped(dropped, "train_longer")
    assert d.kind == "rule"

    curve = {"improving_at_end": True, "last_gain_rel": 0.004}
    found, _ = _run(shipped, base, PLAIN_DATA, curve)
    c = found["train_longer@x2"]
    assert c.delta == {"train.epochs": 6, "train.early_stopping_patience": 2}
    assert c.title == "epochs 3 → 6 (x2) with early stopping (patience 2)"
    assert c.trigger == "the valid metric still improved 0.40% in the baseline's last epoch"
    assert not c.boosted and c.cost == pytest.approx(1.8)
    assert found["train_longer@x3"].delta["train.epochs"] == 9

    found, _ = _run(shipped, base, PLAIN_DATA, {"improving_at_end": True, "last_gain_rel": 0.03})
    c = found["train_longer@x2"]
    assert c.boosted and "far from converged" in c.trigger and c.prior_mean == pytest.approx(0.01)


def test_boost_rules_on_absent_facts_are_reported(shipped: tuple[Strategy, ...]) -> None:
    found, _ = _run(shipped, default_config("dcn_v2"), PLAIN_DATA)
    c = found["cosine_schedule@cosine"]
    assert c.waiting == ["training.unstable"] and not c.boosted


def test_unstable_baseline_gets_the_stabilisers(shipped: tuple[Strategy, ...]) -> None:
    base = default_config("dlrm")
    found, _ = _run(shipped, base, PLAIN_DATA, {"unstable": True})
    assert found["lower_lr_unstable@x0.3"].title == (
        "lr_dense 0.002 → 0.0006 (x0.3), lr_sparse 0.01 → 0.003 (x0.3)"
    )
    assert found["grad_clip@1"].title == "grad_clip_norm none → 1"
    assert found["cosine_schedule@cosine_warmup"].boosted
    found, dropped = _run(shipped, base, PLAIN_DATA, {"unstable": False})
    assert "grad_clip@1" not in found and _dropped(dropped, "grad_clip")[0].kind == "rule"


# ----------------------------------------------------------------------------- titles, no-ops


@pytest.mark.parametrize(
    ("family", "hid", "title"),
    [
        ("dcn_v2", "lr_sparse@x0.15", "lr_sparse 0.02 → 0.003 (x0.15)"),
        # the same strategy on another family's baseline states that family's real numbers
        ("deepfm", "lr_sparse@x0.15", "lr_sparse 0.005 → 0.00075 (x0.15)"),
        ("lr", "lr_dense@x3", "lr_dense 0.02 → 0.06 (x3)"),
        ("dcn_v2", "lr_dense@x3", "lr_dense 0.002 → 0.006 (x3)"),
        ("dcn_v2", "numeric_buckets@32", "numeric_buckets 0 → 32"),
        ("dcn_v2", "min_frequency@3", "min_frequency none → 3"),
        (
            "dcn_v2",
            "numeric_buckets_replace@16",
            "numeric_buckets 0 → 16, numeric_bucket_mode extra → replace",
        ),
        ("dcn_v2", "embedding_dim@x2", "embedding_dim 16 → 32 (x2)"),
        ("dcn_v2", "mlp_depth@deeper1", "hidden_dims [128, 64] → [128, 64, 64]"),
        ("dcn_v2", "dropout@minus0.1", "dropout 0.2 → 0.1 (x0.5)"),
        ("dcn_v2", "dcn_cross_layers@plus2", "cross_layers 3 → 5 (x1.7)"),
        (
            "dcn_v2",
            "family_switch@finalmlp",
            "family dcn_v2 → finalmlp (its default architecture; train and feature settings kept)",
        ),
        (
            "dcn_v2",
            "batch_size_scaled@x0.5",
            "batch_size 1024 → 512 (x0.5), lr_batch_scaling none → sqrt",
        ),
    ],
)
def test_titles_state_the_real_change(
    shipped: tuple[Strategy, ...], family: str, hid: str, title: str
) -> None:
    found, _ = _run(shipped, default_config(family), PLAIN_DATA)
    assert found[hid].title == title


def test_relative_levels_follow_the_baseline(shipped: tuple[Strategy, ...]) -> None:
    base = apply_delta(default_config("dcn_v2"), {"train.batch_size": 512})
    found, _ = _run(shipped, base, PLAIN_DATA)
    c = found["batch_size_scaled@x2"]
    # the LRs were tuned at the baseline's batch size: that becomes the reference
    assert c.delta == {
        "train.batch_size": 1024,
        "train.lr_batch_scaling": "sqrt",
        "train.reference_batch_size": 512,
    }
    lr = found["lr_sparse@x3"]
    assert lr.search["train.lr_sparse"].model_dump() == {
        "kind": "float",
        "low": 0.001,
        "high": 0.4,
        "log": True,
        "choices": None,
    }


def test_no_op_levels_are_dropped_with_a_reason(shipped: tuple[Strategy, ...]) -> None:
    base = apply_delta(
        default_config("dcn_v2"),
        {
            "features.numeric_buckets": 32,
            "model.structure": "stacked",
            "train.lr_schedule": "cosine",
        },
    )
    found, dropped = _run(shipped, base, PLAIN_DATA)
    assert "numeric_buckets@32" not in found and "numeric_buckets@8" in found
    (noop,) = [d for d in dropped if d.hypothesis_id == "numeric_buckets@32"]
    assert noop.kind == "noop"
    assert noop.reason == (
        "no change: the baseline already has features.numeric_buckets = 32, "
        "features.numeric_bucket_mode = extra"
    )
    # the replace strategy at 64 changes the mode only... and 16 both
    assert found["numeric_buckets_replace@16"].delta == {
        "features.numeric_buckets": 16,
        "features.numeric_bucket_mode": "replace",
    }
    assert "dcn_structure@parallel" in found and "dcn_structure@stacked" not in found
    assert _dropped(dropped, "cosine_schedule")[0].kind == "rule"
    assert all(c.delta for c in found.values())


def test_invalid_levels_are_dropped_with_the_config_error(shipped: tuple[Strategy, ...]) -> None:
    # 4 heads do not divide a last layer of 6: that level is invalid for this baseline
    base = apply_delta(
        default_config("finalmlp"),
        {"model.hidden_dims": [128, 6], "model.hidden_dims_2": [64, 6]},
    )
    found, dropped = _run(shipped, base, PLAIN_DATA)
    assert "finalmlp_heads@1" in found and "finalmlp_heads@4" not in found
    (bad,) = [d for d in dropped if d.hypothesis_id == "finalmlp_heads@4"]
    assert bad.kind == "invalid" and "divisible by n_heads (4)" in bad.reason


def test_a_relative_change_of_a_none_value_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "rank.toml"
    path.write_text(
        GOOD.replace('"ok"', '"rank"')
        .replace("features.numeric_buckets", "model.low_rank")
        .replace("{ levels = [8] }", "{ scale = [2.0] }")
        .replace("prior =", 'families = ["dcn_v2"]\nprior =')
    )
    base = default_config("dcn_v2")
    found, dropped = _run(load_file(path), base, PLAIN_DATA)
    assert found == {}
    assert [(d.hypothesis_id, d.kind, d.reason) for d in dropped] == [
        (
            "rank@x2",
            "invalid",
            "the baseline has no value of model.low_rank to change relatively (it is none)",
        )
    ]
    found, _ = _run(load_file(path), apply_delta(base, {"model.low_rank": 8}), PLAIN_DATA)
    assert found["rank@x2"].title == "low_rank 8 → 16 (x2)"


def test_family_switch_keeps_train_and_features(shipped: tuple[Strategy, ...]) -> None:
    base = apply_delta(
        default_config("dcn_v2"), {"train.epochs": 7, "features.numeric_buckets": 32}
    )
    found, dropped = _run(shipped, base, PLAIN_DATA)
    c = found["family_switch@deepfm"]
    assert c.delta == {"model.family": "deepfm"}
    changed = apply_delta(base, c.delta)
    assert changed["model"] == default_config("deepfm")["model"]
    assert changed["train"] == base["train"] and changed["features"] == base["features"]
    assert [d.kind for d in dropped if d.hypothesis_id == "family_switch@dcn_v2"] == ["noop"]


# ----------------------------------------------------------------------------- bad files


GOOD = """
[[strategy]]
id = "ok"
category = "feature"
name = "fine"
rationale = "r"
reference = "ref"
prior = { mean = 0.001, sd = 0.002 }
[strategy.delta]
"features.numeric_buckets" = { levels = [8] }
"""


def _entry(**lines: str) -> str:
    fields = {
        "id": '"bad"',
        "category": '"capacity"',
        "name": '"n"',
        "rationale": '"r"',
        "reference": '"ref"',
        "prior": "{ mean = 0.001, sd = 0.002 }",
        "families": '["deepfm"]',
    }
    fields.update({k: v for k, v in lines.items() if k != "delta"})
    body = "\n".join(f"{k} = {v}" for k, v in fields.items() if v)
    delta = lines.get("delta", '"model.embedding_dim" = 32')
    return f"[[strategy]]\n{body}\n[strategy.delta]\n{delta}\n"


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        (_entry(nmae='"x"'), "nmae: unknown key; valid keys here: id, category, name"),
        (_entry(category='"speed"'), "category: Input should be 'feature', 'training'"),
        (_entry(prior=""), "prior: missing; add it"),
        (_entry(prior="{ mean = 0.001, sd = 0 }"), "prior.sd: Input should be greater than 0"),
        (
            _entry(prior="{ mean = 0.001, sdev = 1 }"),
            "prior.sdev: unknown key; valid keys here: mean, sd",
        ),
        (_entry(when='["data.n_numerical >>= 1"]'), "when[0]: cannot parse rule"),
        (_entry(when='["ok", "dataset.n_rows > 5"]'), "when[0]: cannot parse rule"),
        (_entry(when='["dataset.n_rows > 5"]'), "when[0]: unknown fact namespace 'dataset'"),
        (_entry(observation='"{data.rows}"'), "observation: unknown fact 'data.rows'"),
        (_entry(families='["dcn_v2", "xgboost"]'), "families: unknown family 'xgboost'"),
        (
            _entry(delta='"features.numeric_buckets" = { levels = ["many"] }'),
            "delta.features.numeric_buckets.levels: 'many' is not valid: "
            "Input should be a valid integer",
        ),
        (
            _entry(delta='"features.numeric_buckets" = { levels = ["32"] }'),
            "delta.features.numeric_buckets.levels: '32' is a string; "
            "write the value without quotes",
        ),
        (
            _entry(delta='"model.dropout" = 1.5', families='["deepfm"]'),
            "delta.model.dropout: 1.5 is not valid: Input should be less than 1",
        ),
        (
            _entry(delta='"model.cross_layers" = 4', families='["dcn_v2", "deepfm"]'),
            "delta.model.cross_layers: not a config key of family 'deepfm'; list only the "
            "families that have it in `families`, or use one of: model.embedding_dim, "
            "model.hidden_dims, model.dropout, model.norm, model.activation, model.family",
        ),
        (
            _entry(delta='"train.lr" = 0.1'),
            "delta.train.lr: not a config key of family 'deepfm'; list only the families that "
            "have it in `families`, or use one of: train.epochs, train.batch_size",
        ),
        (
            _entry(
                delta='"model.embedding_dim" = { scale = [2], levels = [3] }', families='["fm"]'
            ),
            "delta.model.embedding_dim: a table here must hold exactly one of: levels, scale",
        ),
        (
            _entry(delta='"model.embedding_dim" = { scale = [2], mn = 3 }', families='["fm"]'),
            "delta.model.embedding_dim.mn: unknown key; valid keys here: scale, min, max",
        ),
        (
            _entry(delta='"train.lr_schedule" = { scale = [2] }'),
            "delta.train.lr_schedule: 'scale' needs a numerical key",
        ),
        (
            _entry(delta='"train.lr_dense" = { range = [1.0, 0.1], log = true }'),
            "delta.train.lr_dense: range [1, 0.1]: low must be below high",
        ),
        (
            _entry(delta='"train.lr_dense" = { range = [0.1, 1.0], probe = [2.0] }'),
            "delta.train.lr_dense: probe 2 is outside the range",
        ),
        (
            _entry(
                delta='"train.epochs" = { scale = [2, 3] }\n"train.warmup_steps" = { levels = [5] }'
            ),
            "delta.train.warmup_steps: has 1 levels but delta.train.epochs has 2",
        ),
        (
            _entry(delta='"model.family" = { levels = ["deepfm", "gbdt"] }'),
            "delta.model.family: 'gbdt' is not a family",
        ),
        (
            _entry(delta='"model.family" = "deepfm"\n"model.cross_layers" = 2', families='["lr"]'),
            "delta.model.cross_layers: not a config key of family 'deepfm'",
        ),
        (_entry(cost="[1.0, 2.0]"), "cost: give one number, or one per level (1); got 2"),
        (_entry(cost="0"), "cost: a cost multiplier must be a positive number"),
        (_entry(labels='["a b"]'), "labels: 'a b': use 1-24 of"),
        (
            _entry(delta='"model.dropout" = { levels = [0.1, 0.10000001] }'),
            "labels: the levels get the labels 0.1, 0.1, not all different; give labels = [...]",
        ),
        (
            _entry(boosted="{ mean = 0.01, sd = 0.01 }"),
            "boosted: a boosted prior needs [[strategy.boost]] rules",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_entry_and_key(
    tmp_path: Path, entry: str, needle: str
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD + entry)
    with pytest.raises(UsageError) as info:
        load_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"knowledge {path}: strategy 2 (bad): "), message
    assert needle in message, message


def test_bad_and_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "ids.toml"
    path.write_text(GOOD + _entry(id='"Bad Id"'))
    with pytest.raises(UsageError) as info:
        load_file(path)
    assert str(info.value) == (
        f"knowledge {path}: strategy 2 (Bad Id): id: String should match pattern "
        "'^[a-z0-9][a-z0-9_.-]{0,39}$' (got 'Bad Id'); fix the value"
    )
    path.write_text(GOOD + _entry() + _entry())
    with pytest.raises(UsageError) as info:
        load_file(path)
    assert str(info.value) == (
        f"knowledge {path}: strategy 3 (bad): id: this id is used by an earlier entry; "
        "give each its own"
    )


def test_boost_without_a_boosted_prior_and_bad_boost_rules(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    boost = '\n[[strategy.boost]]\nrule = "data.n_rows > 1"\nobservation = "big"\n'
    path.write_text(GOOD + boost)
    with pytest.raises(UsageError, match=r"strategy 1 \(ok\): boosted: boost rules need"):
        load_file(path)
    path.write_text(
        GOOD.replace("prior =", "boosted = { mean = 0.01, sd = 0.01 }\nprior =")
        + boost.replace("> 1", "> big")
    )
    with pytest.raises(UsageError, match=r"boost\[0\]\.rule: rule 'data.n_rows > big'"):
        load_file(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[strategy]\nid = 1", "not valid TOML"),
        ("[[strategies]]\nid = 'x'", "unknown top-level key 'strategies'; write each strategy as"),
        ("strategy = 3", "'strategy' must be [[strategy]] tables"),
    ],
)
def test_bad_file_structure(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_file(path)
    assert needle in str(info.value) and str(path) in str(info.value)


# ----------------------------------------------------------------------------- workspace


def test_workspace_strategies_replace_shipped_ones_by_id(tmp_path: Path) -> None:
    (tmp_path / "knowledge").mkdir()
    (tmp_path / "knowledge" / "site.toml").write_text(
        GOOD.replace('"ok"', '"lr_sparse"')
        .replace("features.numeric_buckets", "train.lr_sparse")
        .replace("levels = [8]", "levels = [0.001]")
        + GOOD.replace('"ok"', '"site_buckets"').replace("[8]", "[32]")
    )
    kb = load_knowledge(tmp_path)
    ids = [s.id for s in kb.strategies]
    assert ids[:2] == ["lr_sparse", "site_buckets"] and ids.count("lr_sparse") == 1
    assert kb.strategies[0].source == "workspace"
    found, dropped = _run(kb.strategies, default_config("dcn_v2"), PLAIN_DATA)
    assert found["lr_sparse@0.001"].title == "lr_sparse 0.02 → 0.001 (x0.05)"
    assert "lr_sparse@x0.15" not in found
    # the shipped numeric_buckets@32 makes the same change as the workspace's: reported
    (dup,) = [d for d in dropped if d.hypothesis_id == "numeric_buckets@32"]
    assert dup.kind == "duplicate" and dup.reason == "same change as site_buckets@32"


def test_a_workspace_id_defined_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "knowledge").mkdir()
    (tmp_path / "knowledge" / "a.toml").write_text(GOOD)
    (tmp_path / "knowledge" / "b.toml").write_text(GOOD)
    with pytest.raises(UsageError, match=r"strategy id 'ok' is also defined in .*a.toml"):
        load_knowledge(tmp_path)


LEGACY = """
[[hypothesis]]
id = "emb64_wd"
title = "Embedding dim 64 with weight decay"
rationale = "Our production model uses 64; decay keeps the larger tables in check."
delta = { "model.embedding_dim" = 64, "train.weight_decay" = 1e-5 }
families = ["dcn_v2", "deepfm"]
prior = 0.9
reference = "internal wiki: ranking/emb-size"

[[hypothesis]]
id = "gbdt_leaves"
title = "Leaves"
delta = { "model.embedding_dim" = 8 }
families = ["dcn_v2", "gbdt"]

[[hypothesis]]
id = "typo"
title = "A key that does not exist"
delta = { "model.embeding_dim" = 8 }

[[hypothesis]]
id = "same"
title = "What the baseline already has"
delta = { "train.epochs" = 3 }
"""


def test_legacy_hypotheses_toml_still_works(tmp_path: Path) -> None:
    (tmp_path / "hypotheses.toml").write_text(LEGACY)
    kb = load_knowledge(tmp_path)
    legacy = [s for s in kb.strategies if s.source == "legacy"]
    assert [s.id for s in legacy] == ["emb64_wd", "typo", "same"]
    (gbdt,) = kb.dropped
    assert gbdt.strategy_id == "gbdt_leaves" and gbdt.kind == "load"
    assert "unknown family 'gbdt' in families" in gbdt.reason

    found, dropped = _run(kb.strategies, default_config("dcn_v2"), PLAIN_DATA)
    c = found["emb64_wd"]
    assert c.delta == {"model.embedding_dim": 64, "train.weight_decay": 1e-5}
    assert c.title == "embedding_dim 16 → 64 (x4), weight_decay 0 → 1e-05"
    assert c.name == "Embedding dim 64 with weight decay" and c.source == "legacy"
    assert c.prior_mean == pytest.approx(0.008) and c.trigger == "research prior"
    by_id = {d.strategy_id: d for d in dropped if d.source == "legacy"}
    assert by_id["typo"].kind == "invalid" and "model.embeding_dim" in by_id["typo"].reason
    assert by_id["same"].kind == "noop"

    found, dropped = _run(kb.strategies, default_config("lr"), PLAIN_DATA)
    assert _dropped(dropped, "emb64_wd")[0].kind == "family"


def test_a_bad_legacy_entry_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "hypotheses.toml"
    path.write_text('[[hypothesis]]\nid = "x"\ntitle = "t"\ndelta = {}\n')
    with pytest.raises(UsageError) as info:
        load_knowledge(tmp_path)
    assert str(info.value) == (
        f"{path}: hypothesis 1 (x): delta: Dictionary should have at least 1 item after "
        "validation, not 0; fix the value"
    )


def test_a_plan_can_freeze_the_knowledge_and_instantiate_it_again(tmp_path: Path) -> None:
    (tmp_path / "knowledge").mkdir()
    (tmp_path / "knowledge" / "site.toml").write_text(GOOD)
    (tmp_path / "hypotheses.toml").write_text(LEGACY)
    kb = load_knowledge(tmp_path)
    frozen = json.loads(json.dumps(strategy_entries(kb.strategies)))
    again = strategies_from_entries(frozen)
    assert [(s.id, s.source) for s in again] == [(s.id, s.source) for s in kb.strategies]
    base = default_config("dcn_v2")
    facts = profile_facts(base, RICH_DATA, RICH_TRAINING)
    assert candidates(again, base, facts) == candidates(kb.strategies, base, facts)

    frozen[0]["entry"]["prior"] = {"mean": 0.001}
    with pytest.raises(UsageError) as info:
        strategies_from_entries(frozen)
    assert str(info.value) == (
        f"knowledge entry 1 (ok) from {tmp_path / 'knowledge' / 'site.toml'}: prior.sd: "
        "missing; add it"
    )

"""The knowledge base's rule language: parsing, type checks, evaluation, observation texts."""

from __future__ import annotations

import pytest

from rea_cli.planner import rules
from rea_cli.planner.rules import Outcome, RuleError, evaluate, parse_rule

FACTS = {
    "data.n_numerical": 3,
    "data.max_rare_mass": 0.12,
    "training.improving_at_end": True,
    "training.unstable": False,
    "model.family": "dcn_v2",
    "model.low_rank": None,
    "train.epochs": 3,
}


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("data.n_numerical >= 1", Outcome.TRUE),
        ("data.n_numerical>3", Outcome.FALSE),
        ("data.n_numerical == 3", Outcome.TRUE),
        ("data.n_numerical != 3", Outcome.FALSE),
        ("data.max_rare_mass < 0.1", Outcome.FALSE),
        ("data.max_rare_mass <= 0.12", Outcome.TRUE),
        ("training.improving_at_end", Outcome.TRUE),
        ("training.unstable", Outcome.FALSE),
        ("training.unstable == false", Outcome.TRUE),
        ('model.family in ["dcn_v2", "dlrm"]', Outcome.TRUE),
        ("model.family in ['deepfm']", Outcome.FALSE),
        ('model.family == "dcn_v2"', Outcome.TRUE),
        ("train.epochs in [1, 2]", Outcome.FALSE),
        # absent facts (and a None config value) make the rule false, and say so
        ("training.overfit_gap >= 0.05", Outcome.ABSENT),
        ("data.n_categorical >= 1", Outcome.ABSENT),
        ("model.low_rank >= 1", Outcome.ABSENT),
    ],
)
def test_evaluate(text: str, outcome: Outcome) -> None:
    assert evaluate(parse_rule(text), FACTS) is outcome


def test_a_boolean_never_equals_a_number() -> None:
    # Python says True == 1; a rule must not
    assert evaluate(parse_rule("train.epochs == 1"), {"train.epochs": True}) is Outcome.FALSE
    assert evaluate(parse_rule("train.epochs > 0"), {"train.epochs": True}) is Outcome.FALSE
    assert evaluate(parse_rule("train.epochs > 0"), {"train.epochs": "3"}) is Outcome.FALSE


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data.n_numerical >>= 1", "cannot parse rule"),
        ("n_numerical >= 1", "cannot parse rule"),
        ("data.n_numerical >=", "cannot parse rule"),
        ("dataset.n_rows > 1", "unknown fact namespace 'dataset'"),
        ("data.n_numeric >= 1", "unknown fact 'data.n_numeric'; known data facts: data.n_rows"),
        ("training.improving >= 1", "known training facts: training.improving_at_end"),
        ("model.embeding_dim > 8", "known model facts:"),
        ("data.n_numerical", "is a number; compare it"),
        ("model.family == dcn_v2", "quote strings"),
        ("data.n_rows > 'many'", "'>' compares numbers"),
        ("data.n_rows == 'many'", "is a number"),
        ("training.unstable == 1", "compare it with true/false"),
        ("model.family in 'dcn_v2'", "'in' needs a non-empty [list]"),
        ("model.family in []", "'in' needs a non-empty [list]"),
        ("model.family == ['dcn_v2']", "a list goes with 'in'"),
        ("data.n_rows > {a = 1}", "must be a number, a string"),
        ("data.n_rows > nan", "must be a number, a string"),
    ],
)
def test_bad_rules_say_how_to_fix(text: str, needle: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(text)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_render_fills_facts_with_their_format() -> None:
    text = "{data.n_numerical} columns, {data.max_rare_mass:.0%} rare, {training.overfit_gap:.1%}"
    assert rules.render(text, FACTS) == "3 columns, 12% rare, ?"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{data.rows} rows", "unknown fact 'data.rows'"),
        ("{foo.bar}", "unknown fact namespace 'foo'"),
        ("{data.n_rows:.2q}", "bad format '.2q'"),
    ],
)
def test_bad_templates(text: str, needle: str) -> None:
    with pytest.raises(RuleError, match=needle):
        rules.check_template(text)


def test_profile_facts_flatten_config_data_and_training() -> None:
    from ranking_models.config import default_config

    config = default_config("dcn_v2")
    data = {"n_numerical": 2, "n_categorical": 5, "categorical": [{"name": "x"}], "name": "d"}
    facts = rules.profile_facts(config, data, {"improving_at_end": True})
    assert facts["model.family"] == "dcn_v2"
    assert facts["train.epochs"] == 3
    assert facts["features.numeric_buckets"] == 0
    assert facts["data.n_numerical"] == 2
    assert "data.categorical" not in facts and "data.name" not in facts
    assert facts["training.improving_at_end"] is True
    with pytest.raises(RuleError, match="unknown training fact 'improving'"):
        rules.profile_facts(config, None, {"improving": True})


def test_data_facts_match_the_data_profile() -> None:
    """DATA_FACTS must list the DataProfile's summary fields (ranking_models' rm-data branch)."""
    profile = pytest.importorskip("ranking_models.data.profile")
    fields = profile.DataProfile.model_fields
    summary = {
        name
        for name, f in fields.items()
        if f.annotation in (int, float) and name not in ("version",)
    }
    assert summary == set(rules.DATA_FACTS)

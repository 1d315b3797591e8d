"""The three shipped rule sets on one small cohort, and rule-set files as validated data."""

import pytest
from conftest import exam
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.decide.rules import load_rules, shipped_rule_sets
from osteo_core.errors import InputError
from osteo_core.resources import data_dir

# name: (exam changes, standard, bhof2022, aace2020) as (eligibility, recommendation)
COHORT = {
    "osteopenia_smoker": (
        {"current_smoker": "true", "frax_mof": "8", "frax_hip": "1"},
        ("eligible", "oral_bisphosphonate"),
        ("not_eligible", "lifestyle_and_monitor"),
        ("not_eligible", "lifestyle_and_monitor"),
    ),
    "osteopenia_frax_hip_3": (
        {"frax_mof": "8", "frax_hip": "3"},
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
    ),
    "normal_wrist_fracture": (
        {"femoral_neck_t": "-0.5", "total_hip_t": "-0.5", "prior_fragility_fracture": "true"},
        ("not_eligible", "lifestyle_and_monitor"),
        ("not_eligible", "lifestyle_and_monitor"),
        ("eligible", "oral_bisphosphonate"),
    ),
    "radius_only_osteoporosis": (
        {
            "femoral_neck_t": "-1.2",
            "total_hip_t": "-1.2",
            "spine_t": "-1.2",
            "radius33_t": "-2.8",
            "frax_mof": "8",
            "frax_hip": "1",
        },
        ("eligible", "oral_bisphosphonate"),
        ("not_eligible", "lifestyle_and_monitor"),
        ("eligible", "oral_bisphosphonate"),
    ),
    "t_minus_3_1": (
        {"femoral_neck_t": "-3.1"},
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "anabolic_referral"),
    ),
    "t_minus_3_0": (
        {"femoral_neck_t": "-3.0"},
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
    ),
    "osteoporosis_frax_hip_4_6": (
        {"femoral_neck_t": "-2.6", "frax_mof": "20", "frax_hip": "4.6"},
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "anabolic_referral"),
    ),
    "osteoporosis_frax_hip_4_5": (
        {"femoral_neck_t": "-2.6", "frax_mof": "30", "frax_hip": "4.5"},
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
    ),
    "osteopenia_frax_mof_31": (
        {"frax_mof": "31", "frax_hip": "2"},
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "oral_bisphosphonate"),
        ("eligible", "anabolic_referral"),
    ),
    "normal_high_frax": (
        {"femoral_neck_t": "-0.5", "total_hip_t": "-0.5", "frax_mof": "35", "frax_hip": "5"},
        ("not_eligible", "lifestyle_and_monitor"),
        ("not_eligible", "lifestyle_and_monitor"),
        ("not_eligible", "lifestyle_and_monitor"),
    ),
    "osteopenia_no_frax": (
        {},
        ("needs_frax", "calculate_frax"),
        ("needs_frax", "calculate_frax"),
        ("needs_frax", "calculate_frax"),
    ),
}


@pytest.mark.parametrize("rule_set", ["standard", "bhof2022", "aace2020"])
def test_shipped_rule_sets_on_one_cohort(screen_rows, rule_set):
    rules = load_rules(rule_set)
    rows = [exam(exam_id=name, **changes) for name, (changes, *_) in COHORT.items()]
    result = {r["exam_id"]: r for r in screen_rows(rows, rules=rules).iter_rows(named=True)}
    column = ["standard", "bhof2022", "aace2020"].index(rule_set)
    for name, (_, *expected) in COHORT.items():
        got = (result[name]["eligibility"], result[name]["recommendation"])
        assert got == expected[column], name
        assert result[name]["rule_set"] == load_rules(rule_set).label


def test_aace_very_high_risk_reason_codes(screen_rows):
    rows = [exam(femoral_neck_t="-3.1", frax_mof="31", frax_hip="4.6")]
    reasons = screen_rows(rows, rules=load_rules("aace2020")).row(0, named=True)["eligibility_reasons"]
    assert reasons == [
        "t_score_osteoporosis",
        "very_high_risk_very_low_t_score",
        "very_high_risk_frax_mof",
        "very_high_risk_frax_hip",
    ]


@pytest.mark.parametrize("rule_set", ["standard", "bhof2022", "aace2020"])
def test_a_hip_fracture_is_shown_as_hip_or_vertebral_fracture_first_in_every_rule_set(screen_rows, rule_set):
    """aace2020 once showed only ``fragility_fracture``: explain gave a clinician less evidence than standard."""
    rows = [exam(femoral_neck_t="-1.5", prior_hip_fracture="true")]
    reasons = screen_rows(rows, rules=load_rules(rule_set)).row(0, named=True)["eligibility_reasons"]
    assert reasons[0] == "hip_or_vertebral_fracture"


def test_aace2020_reports_hip_or_vertebral_fracture_without_changing_a_decision(screen_rows):
    rows = [
        exam(exam_id="H", femoral_neck_t="-1.5", prior_hip_fracture="true"),
        exam(exam_id="W", femoral_neck_t="-0.5", prior_fragility_fracture="true"),
    ]
    result = {r["exam_id"]: r for r in screen_rows(rows, rules=load_rules("aace2020")).iter_rows(named=True)}
    assert result["H"]["eligibility_reasons"] == ["hip_or_vertebral_fracture", "fragility_fracture"]
    assert result["W"]["eligibility_reasons"] == ["fragility_fracture"]
    assert {r["eligibility"] for r in result.values()} == {"eligible"}
    assert load_rules("aace2020").version == "1.1.0"  # a changed output needs a new version


def test_shipped_rule_sets_are_the_three_named():
    assert shipped_rule_sets() == ["aace2020", "bhof2022", "standard"]


STANDARD = (data_dir() / "rules" / "standard.toml").read_text()


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("normal_t_at_or_above", "normal_t_at_or_abov"), "unknown key 'normal_t_at_or_abov' in [who_category]"),
        (
            (
                'code = "frax_hip_ge_3"\ncondition = "frax_hip_at_least"',
                'code = "frax_hip_ge_3"\ncondition = "frax_hip_atleast"',
            ),
            "unknown condition 'frax_hip_atleast'",
        ),
        (("threshold = 57.6", "treshold = 57.6"), "reason 'osteopenia_with_low_weight': unknown key 'treshold'"),
        (("threshold = 57.6", 'threshold = "57.6"'), "'threshold' has the wrong type"),
        (
            ('categories = ["osteopenia"]\nthreshold = 3.0', 'categories = ["osteopaenia"]\nthreshold = 3.0'),
            "categories must list WHO categories",
        ),
        (("[next_dxa]", "[next_dexa]"), "unknown section [next_dexa]"),
        (("cap_percent = 100\n", ""), "missing key 'cap_percent' in [frax_adjustment]"),
        (('version = "1.0.0"', "version = 1"), "[rule_set] version has the wrong type"),
        (
            ('diagnostic = ["femoral_neck", "total_hip", "spine", "radius33"]', 'diagnostic = ["femoral_neck", "hip"]'),
            "[sites] diagnostic must list",
        ),
        (('code = "osteopenia_with_alcohol"', 'code = "osteopenia_with_smoking"'), "listed twice"),
    ],
)
def test_rule_set_typos_are_input_errors_naming_file_and_key(tmp_path, edit, problem):
    old, new = edit
    assert old in STANDARD
    path = tmp_path / "mine.toml"
    path.write_text(STANDARD.replace(old, new, 1))
    with pytest.raises(InputError) as err:
        load_rules(str(path))
    assert err.value.source == str(path)
    assert problem in err.value.problem


def test_a_users_rule_set_changes_a_threshold_without_python(tmp_path, screen_rows):
    path = tmp_path / "local.toml"
    path.write_text(
        STANDARD.replace('name = "standard"', 'name = "local"').replace("threshold = 3.0", "threshold = 2.5")
    )
    rules = load_rules(str(path))
    r = screen_rows([exam(frax_mof="8", frax_hip="2.6")], rules=rules).row(0, named=True)
    assert (r["eligibility_reasons"], r["rule_set"]) == (["frax_hip_ge_3"], "local@1.0.0")


RISK_FACTORS = {
    "prior_fragility_fracture": "true",
    "prior_hip_fracture": "true",
    "prior_vertebral_fracture": "true",
    "parental_hip_fracture": "true",
    "current_smoker": "true",
    "alcohol_3plus_daily": "true",
    "cancer_bone_loss_therapy": "true",
    "rheumatoid_arthritis": "true",
    "weight_kg": "45",
    "glucocorticoid_mg_daily": "10",
    "chronic_kidney_disease": "true",
}
score = st.one_of(st.none(), st.decimals(min_value=-5, max_value=3, places=1).map(str))
frax = st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=1).map(str))


@settings(max_examples=20, deadline=None)
@given(
    t=st.tuples(score, score, score),
    mof=frax,
    hip=frax,
    factor=st.sampled_from(sorted(RISK_FACTORS)),
    rule_set=st.sampled_from(["standard", "bhof2022", "aace2020"]),
)
def test_adding_a_risk_factor_never_turns_eligible_into_anything_else(screen_rows, t, mof, hip, factor, rule_set):
    if hip is not None and mof is not None and float(hip) > float(mof):
        hip, mof = mof, hip
    scores = dict(zip(("spine_t", "total_hip_t", "femoral_neck_t"), t, strict=True))
    if all(v is None for v in scores.values()):
        scores["femoral_neck_t"] = "-1.5"
    base = exam(exam_id="A", frax_mof=mof, frax_hip=hip, glucocorticoid_months="6", **scores)
    more = {**base, "exam_id": "B", factor: RISK_FACTORS[factor]}
    frame = screen_rows([base, more], rules=load_rules(rule_set)).sort("exam_id")
    before, after = frame.get_column("eligibility").to_list()
    if before == "eligible":
        assert after == "eligible"
    assert all(
        v is None or v <= 100
        for v in frame.get_column("frax_mof_adjusted").to_list() + frame.get_column("frax_hip_adjusted").to_list()
    )


@settings(max_examples=25, deadline=None)
@given(
    mof=st.decimals(min_value=0, max_value=100, places=2),
    ratio=st.decimals(min_value=0, max_value=1, places=2),
    dose=st.one_of(st.none(), st.decimals(min_value=0, max_value=80, places=1)),
)
def test_adjusted_frax_never_exceeds_100(screen_rows, mof, ratio, dose):
    hip = mof * ratio
    r = screen_rows(
        [exam(frax_mof=str(mof), frax_hip=str(hip), glucocorticoid_mg_daily=None if dose is None else str(dose))]
    ).row(0, named=True)
    assert 0 <= r["frax_mof_adjusted"] <= 100 and 0 <= r["frax_hip_adjusted"] <= 100

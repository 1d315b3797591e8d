"""docs/rules.md §4–7 for the `standard` rule set: one test per table row, each at its boundary."""

import datetime as dt

import pytest
from conftest import exam

OSTEOPENIA = {"spine_t": "-1.5", "total_hip_t": "-1.5", "femoral_neck_t": "-1.5"}
NO_RISK = {
    "prior_fragility_fracture": "false",
    "prior_hip_fracture": "false",
    "prior_vertebral_fracture": "false",
    "parental_hip_fracture": "false",
    "current_smoker": "false",
    "alcohol_3plus_daily": "false",
    "glucocorticoid_mg_daily": "0",
    "glucocorticoid_months": "0",
    "cancer_bone_loss_therapy": "false",
    "rheumatoid_arthritis": "false",
    "inflammatory_bowel_disease": "false",
    "chronic_liver_disease": "false",
    "chronic_kidney_disease": "false",
    "weight_kg": "70",
}


def row(screen_rows, **changes):
    return screen_rows([exam(**{**NO_RISK, **changes})]).row(0, named=True)


def osteopenic(screen_rows, **changes):
    return row(screen_rows, **{**OSTEOPENIA, "frax_mof": "10", "frax_hip": "1", **changes})


# §9 worked example ---------------------------------------------------------------------------------
def test_worked_example(screen_rows):
    base = row(screen_rows, weight_kg=None)
    assert (base["lowest_t_score"], base["lowest_t_site"], base["who_category"]) == (-1.8, "total_hip", "osteopenia")
    assert (base["eligibility"], base["recommendation"], base["eligibility_reasons"]) == (
        "needs_frax",
        "calculate_frax",
        [],
    )
    assert base["next_dxa_due"] == dt.date(2026, 3, 1)
    smoker = row(screen_rows, weight_kg=None, current_smoker="true")
    assert (smoker["eligibility"], smoker["eligibility_reasons"], smoker["recommendation"]) == (
        "eligible",
        ["osteopenia_with_smoking"],
        "oral_bisphosphonate",
    )
    frax = row(screen_rows, weight_kg=None, frax_mof="12", frax_hip="1.5")
    assert (frax["eligibility"], frax["recommendation"]) == ("not_eligible", "lifestyle_and_monitor")


# §5 reason table, each at its boundary and just short of it -----------------------------------------
@pytest.mark.parametrize("flag", ["prior_hip_fracture", "prior_vertebral_fracture"])
@pytest.mark.parametrize("t", ["0.5", "-1.5", "-3.0"])
def test_hip_or_vertebral_fracture_any_bmd(screen_rows, flag, t):
    r = row(screen_rows, femoral_neck_t=t, **{flag: "true"})
    assert r["eligibility_reasons"][0] == "hip_or_vertebral_fracture" and r["eligibility"] == "eligible"


def test_hip_or_vertebral_fracture_without_any_usable_t_score(screen_rows):
    only_z = {"spine_t": None, "total_hip_t": None, "femoral_neck_t": None, "total_hip_z": "-1.0"}
    assert row(screen_rows, **only_z, prior_hip_fracture="true")["eligibility"] == "eligible"
    no_fracture = row(screen_rows, **only_z, current_smoker="true", frax_hip="9", frax_mof="40")
    assert (no_fracture["who_category"], no_fracture["eligibility"]) == (None, "not_eligible")


@pytest.mark.parametrize(("t", "reason"), [("-2.5", True), ("-2.45", True), ("-2.44", False)])
def test_t_score_osteoporosis(screen_rows, t, reason):
    r = row(screen_rows, femoral_neck_t=t, frax_mof="5", frax_hip="0.5")
    assert ("t_score_osteoporosis" in r["eligibility_reasons"]) is reason


def test_severe_osteoporosis_is_t_score_osteoporosis_too(screen_rows):
    r = row(screen_rows, femoral_neck_t="-2.6", prior_fragility_fracture="true")
    assert (r["who_category"], r["eligibility_reasons"]) == ("severe_osteoporosis", ["t_score_osteoporosis"])


@pytest.mark.parametrize(("hip", "reason"), [("3.0", True), ("2.99", False), ("3", True)])
def test_frax_hip_ge_3(screen_rows, hip, reason):
    r = osteopenic(screen_rows, frax_hip=hip)
    assert (r["eligibility_reasons"] == ["frax_hip_ge_3"]) is reason
    assert r["eligibility"] == ("eligible" if reason else "not_eligible")


@pytest.mark.parametrize(("mof", "reason"), [("20", True), ("19.99", False), ("20.0%", True)])
def test_frax_mof_ge_20(screen_rows, mof, reason):
    assert (osteopenic(screen_rows, frax_mof=mof)["eligibility_reasons"] == ["frax_mof_ge_20"]) is reason


def test_frax_reasons_need_osteopenia(screen_rows):
    normal = row(screen_rows, **{k: "-0.5" for k in OSTEOPENIA}, frax_mof="25", frax_hip="4")
    assert (normal["who_category"], normal["eligibility"]) == ("normal", "not_eligible")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"prior_fragility_fracture": "true"}, "osteopenia_with_fragility_fracture"),
        ({"parental_hip_fracture": "true"}, "osteopenia_with_parental_hip_fracture"),
        ({"cancer_bone_loss_therapy": "true"}, "osteopenia_with_cancer_therapy"),
        ({"current_smoker": "true"}, "osteopenia_with_smoking"),
        ({"alcohol_3plus_daily": "true"}, "osteopenia_with_alcohol"),
        ({"rheumatoid_arthritis": "true"}, "osteopenia_with_chronic_disease"),
        ({"inflammatory_bowel_disease": "true"}, "osteopenia_with_chronic_disease"),
        ({"chronic_liver_disease": "true"}, "osteopenia_with_chronic_disease"),
        ({"chronic_kidney_disease": "true"}, "osteopenia_with_chronic_disease"),
    ],
)
def test_osteopenia_risk_factor_reasons(screen_rows, changes, code):
    assert osteopenic(screen_rows, **changes)["eligibility_reasons"] == [code]
    normal = row(screen_rows, **{k: "-0.5" for k in OSTEOPENIA}, **changes)
    assert code not in normal["eligibility_reasons"]


@pytest.mark.parametrize(("weight", "reason"), [("57.5", True), ("57.6", False), ("57.59", True)])
def test_osteopenia_with_low_weight(screen_rows, weight, reason):
    assert (
        osteopenic(screen_rows, weight_kg=weight)["eligibility_reasons"] == ["osteopenia_with_low_weight"]
    ) is reason


@pytest.mark.parametrize(
    ("mg", "months", "reason"),
    [("7.5", "3", True), ("7.49", "3", False), ("7.5", "2.9", False), ("20", "12", True)],
)
def test_osteopenia_with_glucocorticoids(screen_rows, mg, months, reason):
    r = osteopenic(screen_rows, glucocorticoid_mg_daily=mg, glucocorticoid_months=months, frax_mof=None, frax_hip=None)
    assert ("osteopenia_with_glucocorticoids" in r["eligibility_reasons"]) is reason


def test_reasons_in_rule_order(screen_rows):
    r = osteopenic(
        screen_rows,
        frax_hip="3",
        frax_mof="20",
        current_smoker="true",
        weight_kg="50",
        prior_vertebral_fracture="true",
        chronic_kidney_disease="true",
    )
    assert r["eligibility_reasons"] == [
        "hip_or_vertebral_fracture",
        "frax_hip_ge_3",
        "frax_mof_ge_20",
        "osteopenia_with_fragility_fracture",
        "osteopenia_with_low_weight",
        "osteopenia_with_smoking",
        "osteopenia_with_chronic_disease",
    ]


# unknown vs false risk factors -----------------------------------------------------------------------
def test_unknown_risk_factors_are_not_reasons_and_not_absent(screen_rows):
    unknown = {k: None for k in NO_RISK}
    no_frax = row(screen_rows, **OSTEOPENIA, **unknown)
    assert (no_frax["eligibility"], no_frax["eligibility_reasons"]) == ("needs_frax", [])
    with_frax = row(screen_rows, **OSTEOPENIA, **unknown, frax_mof="10", frax_hip="1")
    assert with_frax["eligibility"] == "not_eligible"


def test_one_frax_value_is_evaluated_the_other_unknown(screen_rows):
    assert osteopenic(screen_rows, frax_mof=None, frax_hip="3.1")["eligibility"] == "eligible"
    assert osteopenic(screen_rows, frax_mof=None, frax_hip="1.0")["eligibility"] == "not_eligible"
    assert osteopenic(screen_rows, frax_mof="25", frax_hip=None)["eligibility"] == "eligible"


def test_needs_frax_only_for_osteopenia(screen_rows):
    assert row(screen_rows, **{k: "-0.5" for k in OSTEOPENIA})["eligibility"] == "not_eligible"


# z-score basis ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("z", "fracture", "eligibility"),
    [("-2.0", "false", "specialist_review"), ("-1.9", "false", "not_eligible"), ("-1.0", "true", "specialist_review")],
)
def test_z_basis(screen_rows, z, fracture, eligibility):
    r = row(
        screen_rows,
        menopausal_status="pre",
        femoral_neck_z=z,
        prior_fragility_fracture=fracture,
        current_smoker="true",
        femoral_neck_t="-3.0",
    )
    assert (r["eligibility"], r["eligibility_reasons"]) == (eligibility, [])
    expected = "secondary_causes_workup" if eligibility == "specialist_review" else "lifestyle_and_monitor"
    assert r["recommendation"] == expected


# §4 glucocorticoid adjustment ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dose", "mof", "hip"),
    [
        ("7.5", 23.0, 3.6),
        ("7.49", 20.0, 3.0),
        ("2.5", 20.0, 3.0),
        ("2.49", 16.0, 1.95),
        ("0", 20.0, 3.0),
        (None, 20.0, 3.0),
        ("0.1", 16.0, 1.95),
    ],
)
def test_glucocorticoid_frax_adjustment(screen_rows, dose, mof, hip):
    r = osteopenic(screen_rows, glucocorticoid_mg_daily=dose, frax_mof="20", frax_hip="3")
    assert r["frax_mof_adjusted"] == pytest.approx(mof) and r["frax_hip_adjusted"] == pytest.approx(hip)


def test_adjusted_frax_decides_and_is_capped(screen_rows):
    lifted = osteopenic(screen_rows, glucocorticoid_mg_daily="10", frax_hip="2.5", frax_mof="17.4")
    assert lifted["eligibility_reasons"] == ["frax_hip_ge_3", "frax_mof_ge_20"]
    lowered = osteopenic(screen_rows, glucocorticoid_mg_daily="1", frax_hip="3.5", frax_mof="24")
    assert lowered["eligibility_reasons"] == []
    capped = osteopenic(screen_rows, glucocorticoid_mg_daily="30", frax_mof="95", frax_hip="90")
    assert (capped["frax_mof_adjusted"], capped["frax_hip_adjusted"]) == (100.0, 100.0)


# §6 recommendation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("egfr", "intolerance", "recommendation"),
    [
        ("34.9", "false", "denosumab"),
        ("35", "false", "oral_bisphosphonate"),
        (None, "true", "denosumab"),
        (None, None, "oral_bisphosphonate"),
        ("60", "true", "denosumab"),
    ],
)
def test_recommendation_for_eligible(screen_rows, egfr, intolerance, recommendation):
    r = row(screen_rows, femoral_neck_t="-2.7", egfr=egfr, bisphosphonate_intolerance=intolerance)
    assert (r["eligibility"], r["recommendation"]) == ("eligible", recommendation)


# §7 next DXA -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "due"),
    [
        ({"femoral_neck_t": "0.5", "spine_t": "0", "total_hip_t": "0"}, dt.date(2029, 3, 1)),
        (
            {"femoral_neck_t": "0.5", "spine_t": "0", "total_hip_t": "0", "prior_hip_fracture": "true"},
            dt.date(2026, 3, 1),
        ),
        (
            {"femoral_neck_t": "0.5", "spine_t": "0", "total_hip_t": "0", "glucocorticoid_mg_daily": "0.5"},
            dt.date(2025, 3, 1),
        ),
        ({"cancer_bone_loss_therapy": "true"}, dt.date(2025, 3, 1)),
        ({}, dt.date(2026, 3, 1)),
        (
            {"menopausal_status": "pre", "femoral_neck_t": "0.5", "spine_t": "0", "total_hip_t": "0"},
            dt.date(2026, 3, 1),
        ),
    ],
)
def test_next_dxa(screen_rows, changes, due):
    assert row(screen_rows, **changes)["next_dxa_due"] == due


def test_next_dxa_from_29_february_is_28_february(screen_rows):
    assert row(screen_rows, exam_date="2024-02-29")["next_dxa_due"] == dt.date(2026, 2, 28)

"""docs/rules.md §1–3, one test per rule and boundary."""

import pytest
from conftest import exam

SCORES_BLANK = {"spine_t": None, "total_hip_t": None, "femoral_neck_t": None}


def one(screen_rows, **changes):
    return screen_rows([exam(**changes)]).row(0, named=True)


def only(**scores):
    """Changes that blank the base exam's T-scores and set just these."""
    return {**SCORES_BLANK, **scores}


# §3 WHO category boundaries (with §2 rounding of the value as written)
@pytest.mark.parametrize(
    ("t", "category"),
    [
        ("-1.0", "normal"),
        ("-0.95", "normal"),
        ("-1.04", "normal"),
        ("-1.05", "osteopenia"),
        ("-1.1", "osteopenia"),
        ("-2.4", "osteopenia"),
        ("-2.44", "osteopenia"),
        ("-2.45", "osteoporosis"),
        ("-2.5", "osteoporosis"),
        ("-2.6", "osteoporosis"),
        ("0.0", "normal"),
        ("1.5", "normal"),
    ],
)
def test_who_category_boundaries(screen_rows, t, category):
    row = one(screen_rows, **only(femoral_neck_t=t))
    assert row["who_category"] == category
    assert row["diagnostic_basis"] == "t_score"


@pytest.mark.parametrize(
    ("raw", "rounded"),
    [
        ("-1.95", -2.0),
        ("-2.45", -2.5),
        ("-0.95", -1.0),
        ("-1.94", -1.9),
        ("1.95", 2.0),
        ("-0.05", -0.1),
        ("-2.449", -2.4),
    ],
)
def test_rounding_half_away_from_zero_on_the_decimal_as_written(screen_rows, raw, rounded):
    assert one(screen_rows, **only(total_hip_t=raw))["lowest_t_score"] == rounded


@pytest.mark.parametrize("flag", ["prior_fragility_fracture", "prior_hip_fracture", "prior_vertebral_fracture"])
def test_severe_osteoporosis_needs_a_fragility_fracture(screen_rows, flag):
    assert one(screen_rows, femoral_neck_t="-2.5", **{flag: "true"})["who_category"] == "severe_osteoporosis"
    assert one(screen_rows, femoral_neck_t="-2.5", **{flag: "false"})["who_category"] == "osteoporosis"
    assert one(screen_rows, femoral_neck_t="-2.5", **{flag: None})["who_category"] == "osteoporosis"


def test_fracture_does_not_upgrade_osteopenia(screen_rows):
    assert one(screen_rows, femoral_neck_t="-2.4", prior_hip_fracture="true")["who_category"] == "osteopenia"


# §2 lowest site and ties
def test_worked_example_lowest_site(screen_rows):
    row = one(screen_rows)
    assert (row["lowest_t_score"], row["lowest_t_site"], row["who_category"]) == (-1.8, "total_hip", "osteopenia")


@pytest.mark.parametrize(
    ("scores", "site"),
    [
        ({"spine_t": "-2.0", "total_hip_t": "-2.0", "femoral_neck_t": "-2.0", "radius33_t": "-2.0"}, "femoral_neck"),
        ({"spine_t": "-2.0", "total_hip_t": "-2.0", "femoral_neck_t": "-1.0", "radius33_t": "-2.0"}, "total_hip"),
        ({"spine_t": "-2.0", "total_hip_t": "-1.0", "femoral_neck_t": "-1.0", "radius33_t": "-2.0"}, "spine"),
        ({"spine_t": "-1.96", "total_hip_t": "-1.0", "femoral_neck_t": "-1.0", "radius33_t": "-2.0"}, "spine"),
        ({"spine_t": "-1.0", "total_hip_t": "-1.0", "femoral_neck_t": "-1.0", "radius33_t": "-2.0"}, "radius33"),
    ],
)
def test_ties_go_to_neck_then_hip_then_spine_then_radius(screen_rows, scores, site):
    assert one(screen_rows, **scores)["lowest_t_site"] == site


@pytest.mark.parametrize(("levels", "used"), [("L1-L4", True), ("L1,L3", True), ("L2", False), (None, True)])
def test_spine_needs_two_vertebrae(screen_rows, levels, used):
    row = one(screen_rows, spine_t="-3.0", spine_levels=levels)
    assert (row["lowest_t_site"] == "spine") is used
    assert row["lowest_t_score"] == (-3.0 if used else -1.8)


def test_single_vertebra_spine_alone_gives_no_category(screen_rows):
    row = one(screen_rows, **only(spine_t="-3.0"), spine_levels="L3")
    assert row["lowest_t_score"] is None and row["who_category"] is None


# §1 which score applies
@pytest.mark.parametrize(
    ("sex", "status", "birth", "basis"),
    [
        ("M", None, "1975-03-02", "z_score"),  # 48 at the exam (2024-03-01)
        ("M", None, "1974-03-01", "t_score"),  # exactly 50 on the exam day
        ("M", None, "1974-03-02", "z_score"),  # one day short of 50
        ("F", "pre", "1950-01-01", "z_score"),  # premenopausal at any age
        ("F", "peri", "1990-01-01", "t_score"),
        ("F", "post", "1990-01-01", "t_score"),
        ("F", None, "1974-03-02", "z_score"),  # unknown status and under 50
        ("F", None, "1974-03-01", "t_score"),
    ],  # unknown status and 50
)
def test_diagnostic_basis(screen_rows, sex, status, birth, basis):
    assert one(screen_rows, sex=sex, menopausal_status=status, birth_date=birth)["diagnostic_basis"] == basis


def test_age_years_used_when_no_birth_date(screen_rows):
    row = one(screen_rows, sex="M", birth_date=None, age_years="49.9", menopausal_status=None)
    assert (row["age_years"], row["diagnostic_basis"]) == (49, "z_score")
    assert one(screen_rows, sex="M", birth_date=None, age_years="50")["diagnostic_basis"] == "t_score"


@pytest.mark.parametrize(
    ("z", "category"),
    [
        ("-2.0", "below_expected"),
        ("-1.95", "below_expected"),
        ("-1.94", "within_expected"),
        ("-1.9", "within_expected"),
        ("-2.1", "below_expected"),
    ],
)
def test_z_category_boundary(screen_rows, z, category):
    row = one(screen_rows, menopausal_status="pre", femoral_neck_z=z)
    assert (row["diagnostic_basis"], row["z_category"], row["who_category"]) == ("z_score", category, None)
    assert row["lowest_t_score"] == -1.8  # T-score still reported for the z basis


def test_t_basis_has_no_z_category_but_reports_lowest_z(screen_rows):
    row = one(screen_rows, femoral_neck_z="-2.5")
    assert (row["z_category"], row["lowest_z_score"]) == (None, -2.5)


def test_only_z_scores_give_no_who_category(screen_rows):
    row = one(screen_rows, **only(total_hip_z="-1.0"))
    assert (row["lowest_t_score"], row["who_category"], row["lowest_z_score"]) == (None, None, -1.0)


def test_rule_set_recorded_on_every_row(screen_rows, standard_rules):
    frame = screen_rows([exam(exam_id="E1"), exam(exam_id="E2")])
    assert frame.get_column("rule_set").to_list() == [standard_rules.label] * 2

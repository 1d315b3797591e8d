"""Both hips (issue 13): the lower hip gives the diagnosis (ISCD 2023; the mean is never used for it), the
side is recorded, and an exam that gives one value per hip and one per exam for the same site is quarantined."""

import pytest
from conftest import AS_OF, exam, scans_frame

from osteo_core.decide.screening import screen
from osteo_core.validate.scans import validate_scans

NO_UNSIDED_HIP = {"total_hip_t": None, "femoral_neck_t": None, "spine_t": "-0.5"}


def one(screen_rows, **changes):
    return screen_rows([exam(**{**NO_UNSIDED_HIP, **changes})]).row(0, named=True)


@pytest.mark.parametrize(
    ("left", "right", "lowest", "side", "category"),
    [
        ("-2.6", "-2.3", -2.6, "left", "osteoporosis"),  # the mean (-2.45) would say osteopenia
        ("-2.3", "-2.6", -2.6, "right", "osteoporosis"),
        ("-2.4", "-2.4", -2.4, "left", "osteopenia"),  # a tie goes to the left
        ("-2.44", "-2.45", -2.5, "right", "osteoporosis"),  # the lower value as written, then rounded
        (None, "-1.2", -1.2, "right", "osteopenia"),  # one hip given: that hip
        ("-1.2", None, -1.2, "left", "osteopenia"),
    ],
)
def test_the_lower_hip_gives_the_diagnosis(screen_rows, left, right, lowest, side, category):
    row = one(screen_rows, left_total_hip_t=left, right_total_hip_t=right)
    assert (row["lowest_t_score"], row["lowest_t_site"], row["lowest_t_side"]) == (lowest, "total_hip", side)
    assert row["who_category"] == category


def test_the_side_belongs_to_the_lowest_site(screen_rows):
    row = one(
        screen_rows,
        left_total_hip_t="-1.4",
        right_total_hip_t="-1.9",
        left_femoral_neck_t="-2.1",
        right_femoral_neck_t="-1.8",
    )
    assert (row["lowest_t_score"], row["lowest_t_site"], row["lowest_t_side"]) == (-2.1, "femoral_neck", "left")
    spine = one(screen_rows, spine_t="-3.0", left_total_hip_t="-1.0", right_total_hip_t="-2.0")
    assert (spine["lowest_t_site"], spine["lowest_t_side"]) == ("spine", None)


def test_single_hip_exports_have_no_side(screen_rows):
    row = screen_rows([exam()]).row(0, named=True)
    assert (row["lowest_t_score"], row["lowest_t_site"], row["lowest_t_side"]) == (-1.8, "total_hip", None)


def test_z_scores_also_come_from_the_lower_hip(screen_rows):
    row = one(screen_rows, menopausal_status="pre", left_femoral_neck_z="-2.1", right_femoral_neck_z="-1.9")
    assert (row["diagnostic_basis"], row["lowest_z_score"], row["z_category"]) == ("z_score", -2.1, "below_expected")


def test_hip_scores_alone_are_enough_for_an_exam(screen_rows):
    row = one(screen_rows, spine_t=None, right_femoral_neck_t="-0.4")
    assert (row["lowest_t_score"], row["lowest_t_side"], row["who_category"]) == (-0.4, "right", "normal")


@pytest.mark.parametrize("measure", ["t", "z", "bmd"])
@pytest.mark.parametrize("site", ["total_hip", "femoral_neck"])
def test_one_value_per_exam_and_one_per_hip_is_quarantined(generic_profile, bounds, site, measure):
    value = "0.8" if measure == "bmd" else "-1.0"
    rows = [exam(), exam(exam_id="E2", **{f"{site}_{measure}": value, f"right_{site}_{measure}": value})]
    result = validate_scans(scans_frame(rows).lazy(), generic_profile, AS_OF, bounds)
    assert result.valid.get_column("exam_id").to_list() == ["E1"]
    failing = result.quarantine.select("exam_id", "column", "check").rows()
    assert failing == [("E2", f"{site}_{measure}", "not_with_sided_values")]


def test_a_sided_value_out_of_range_is_quarantined_by_its_own_column(generic_profile, bounds):
    rows = [exam(**NO_UNSIDED_HIP, left_femoral_neck_t="-12.4")]
    result = validate_scans(scans_frame(rows).lazy(), generic_profile, AS_OF, bounds)
    assert result.valid.is_empty()
    assert result.quarantine.select("column", "check").row(0) == ("left_femoral_neck_t", "in_range(-7, 7)")


def test_the_fold_leaves_one_hip_frames_unchanged(standard_rules, generic_profile, bounds):
    """A typed frame without any sided column (as older callers build them) screens as before."""
    result = validate_scans(scans_frame([exam()]).lazy(), generic_profile, AS_OF, bounds)
    without = result.valid.drop([c for c in result.valid.columns if c.startswith(("left_", "right_"))])
    assert (
        screen(without.lazy(), standard_rules).collect().equals(screen(result.valid.lazy(), standard_rules).collect())
    )

"""docs/inputs.md (scans): every rule is a check; failing rows are quarantined whole, one row per failing cell."""

import datetime as dt

import polars as pl
import pytest
from conftest import AS_OF, exam, scans_frame

from osteo_core.validate.scans import validate_scans


@pytest.fixture()
def validate(generic_profile, bounds):
    def run(rows, as_of=AS_OF):
        return validate_scans(scans_frame(rows).lazy(), generic_profile, as_of, bounds)

    return run


def failures_of(result):
    return sorted((r["column"], r["check"], r["value"]) for r in result.quarantine.iter_rows(named=True))


NO_SCORES = {c: None for c in ("spine_t", "total_hip_t", "femoral_neck_t")}

CASES = [
    # (changes, column, check, value)
    ({"patient_id": None}, "patient_id", "required", None),
    ({"patient_id": "   "}, "patient_id", "required", None),
    ({"exam_id": None}, "exam_id", "required", None),
    ({"exam_date": None}, "exam_date", "required", None),
    ({"exam_date": "2024-02-30"}, "exam_date", "is_date", "2024-02-30"),
    ({"exam_date": "2026-01-02"}, "exam_date", "not_after_as_of", "2026-01-02"),
    ({"exam_date": "1984-12-31", "birth_date": "1930-01-01"}, "exam_date", "not_before_1985-01-01", "1984-12-31"),
    ({"sex": None}, "sex", "required", None),
    ({"sex": "X"}, "sex", "allowed_value", "X"),
    ({"birth_date": "15/06/1950"}, "birth_date", "is_date", "15/06/1950"),
    ({"birth_date": "2024-03-02"}, "birth_date", "not_after_exam_date", "2024-03-02"),
    ({"birth_date": "2006-03-02"}, "age_years", "in_range(18, 120)", "17.0"),
    ({"birth_date": "1903-02-28"}, "age_years", "in_range(18, 120)", "121.0"),
    ({"birth_date": None, "age_years": "17.9"}, "age_years", "in_range(18, 120)", "17.0"),
    ({"birth_date": None, "age_years": "old"}, "age_years", "is_number", "old"),
    ({"menopausal_status": "post-ish"}, "menopausal_status", "allowed_value", "post-ish"),
    ({"weight_kg": "19.9"}, "weight_kg", "in_range(20, 350)", "19.9"),
    ({"weight_kg": "350.1"}, "weight_kg", "in_range(20, 350)", "350.1"),
    ({"height_cm": "99"}, "height_cm", "in_range(100, 250)", "99"),
    ({"height_cm": "tall"}, "height_cm", "is_number", "tall"),
    ({"spine_t": "-7.1"}, "spine_t", "in_range(-7, 7)", "-7.1"),
    ({"total_hip_z": "7.01"}, "total_hip_z", "in_range(-7, 7)", "7.01"),
    ({"femoral_neck_bmd": "0.09"}, "femoral_neck_bmd", "in_range(0.1, 2.5)", "0.09"),
    ({"radius33_bmd": "2.6"}, "radius33_bmd", "in_range(0.1, 2.5)", "2.6"),
    ({"spine_levels": "L0-L9"}, "spine_levels", "spine_levels_format", "L0-L9"),
    ({"frax_mof": "100.5"}, "frax_mof", "in_range(0, 100)", "100.5"),
    ({"frax_mof": "-1"}, "frax_mof", "in_range(0, 100)", "-1"),
    ({"frax_mof": "10", "frax_hip": "10.1"}, "frax_hip", "not_above_frax_mof", "10.1"),
    ({"current_smoker": "sometimes"}, "current_smoker", "is_boolean", "sometimes"),
    ({"prior_hip_fracture": "2"}, "prior_hip_fracture", "is_boolean", "2"),
    ({"glucocorticoid_mg_daily": "-0.1"}, "glucocorticoid_mg_daily", "greater_than_or_equal_to(0)", "-0.1"),
    ({"glucocorticoid_months": "-1"}, "glucocorticoid_months", "greater_than_or_equal_to(0)", "-1"),
    ({"egfr": "n/a"}, "egfr", "is_number", "n/a"),
    ({"birth_date": None, "age_years": None}, None, "birth_date_or_age_required", None),
    (NO_SCORES, None, "at_least_one_score", None),
]


@pytest.mark.parametrize(("changes", "column", "check", "value"), CASES, ids=[c[2] + ":" + str(c[1]) for c in CASES])
def test_each_check_quarantines_the_row(validate, changes, column, check, value):
    good = exam(exam_id="GOOD")
    bad = exam(**{"exam_id": "BAD", **changes})
    result = validate([good, bad])
    assert (column, check, value) in failures_of(result)
    assert result.valid.get_column("exam_id").to_list() == ["GOOD"]
    row = result.quarantine.row(0, named=True)
    assert (row["source_file"], row["source_row"], row["input"]) == ("scans.csv", 2, "scans")
    assert result.quarantined_rows == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"weight_kg": "20"},
        {"weight_kg": "350"},
        {"spine_t": "-7"},
        {"spine_t": "7"},
        {"frax_mof": "0", "frax_hip": "0"},
        {"frax_mof": "100%", "frax_hip": "100"},
        {"exam_date": "1985-01-01", "birth_date": "1930-01-01"},
        {"exam_date": "2026-01-01"},
        {"sex": "female"},
        {"sex": "MALE", "menopausal_status": None},
        {"menopausal_status": "unknown"},
        {"birth_date": None, "age_years": "18"},
        {"birth_date": None, "age_years": "120.9"},
        {"birth_date": "1950-06-15", "age_years": "not used"},
        {"spine_t": "\u22121.5"},
        {"glucocorticoid_mg_daily": "0"},
    ],
)
def test_edge_values_that_are_valid(validate, changes):
    result = validate([exam(**changes)])
    assert failures_of(result) == []
    assert result.valid.height == 1


def test_birth_on_the_exam_day_breaks_the_age_rule_not_the_date_order(validate):
    result = validate([exam(birth_date="2024-03-01", exam_date="2024-03-01")])
    assert failures_of(result) == [("age_years", "in_range(18, 120)", "0.0")]


def test_one_quarantine_row_per_failing_cell(validate):
    result = validate([exam(sex="?", spine_t="x", weight_kg="5")])
    assert [c[0] for c in failures_of(result)] == ["sex", "spine_t", "weight_kg"]
    assert result.quarantined_rows == 1 and result.valid.height == 0


def test_age_years_ignored_when_birth_date_present(validate):
    result = validate([exam(age_years="abc")])
    assert result.valid.height == 1
    assert result.valid.get_column("age_years").item() == 73.0


def test_identical_duplicates_kept_once_whatever_the_extra_columns(validate):
    first = exam(sex="F", spine_t="-1.50", note="first export")
    again = exam(sex="female", spine_t="-1.5", note="re-export")
    result = validate([first, again])
    assert (result.valid.height, result.duplicates, result.quarantined_rows) == (1, 1, 0)
    assert result.valid.get_column("source_row").to_list() == [1]


def test_kept_duplicate_is_validated_like_any_row(validate):
    result = validate([exam(weight_kg="999"), exam(weight_kg="999")])
    assert (result.valid.height, result.duplicates, result.quarantined_rows) == (0, 1, 1)


def test_conflicting_duplicates_all_quarantined(validate):
    rows = [exam(total_hip_t="-1.8"), exam(total_hip_t="-1.8"), exam(total_hip_t="-1.9"), exam(exam_id="E2")]
    result = validate(rows)
    assert result.duplicates == 0
    assert result.quarantined_rows == 3
    assert set(result.quarantine.get_column("check")) == {"unique_exam_id"}
    assert result.valid.get_column("exam_id").to_list() == ["E2"]


def test_rows_are_accounted_for(validate):
    rows = [exam(exam_id=f"E{i}") for i in range(5)] + [exam(exam_id="E1"), exam(exam_id="E9", sex="?")]
    result = validate(rows)
    assert result.rows_in == result.valid.height + result.quarantined_rows + result.duplicates == 7


def test_dates_in_profile_format(bounds):
    from osteo_core.ingest.profiles import load_profile

    profile = load_profile("densitometer_us")
    frame = scans_frame(
        [exam(exam_date="03/01/2024", birth_date="06/15/1950", sex="Female", menopausal_status="Postmenopausal")]
    )
    result = validate_scans(frame.lazy(), profile, AS_OF, bounds)
    assert result.quarantine.is_empty()
    row = result.valid.row(0, named=True)
    assert (row["exam_date"], row["sex"], row["menopausal_status"]) == (dt.date(2024, 3, 1), "F", "post")


def test_valid_frame_is_typed(validate):
    valid = validate([exam(current_smoker="Y", frax_mof="12%", frax_hip="1.5")]).valid
    assert valid.schema["exam_date"] == pl.Date
    assert valid.row(0, named=True)["current_smoker"] is True
    assert valid.row(0, named=True)["frax_mof"] == 12.0

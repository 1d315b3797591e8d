"""docs/tables.md care_gaps and patients: each gap opens at its window edge and not a day before."""

import datetime as dt
import json

import polars as pl
import pytest
from conftest import exam, screen_synthetic, sql_json, write_scans_csv, write_synthetic

from osteo_core import reference
from osteo_core.cli import main
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = "2026-01-01"
PRIORITY = reference.care_gap_parameters()["priority"]  # the data file's, so a renumbering is not a failure here
TREATED = {"femoral_neck_t": "-1.0", "total_hip_t": "-0.5", "spine_t": "-0.5"}  # normal: no other gap


def _csv(path, rows: list[dict]):
    columns = sorted({k for r in rows for k in r})
    pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema={c: pl.Utf8 for c in columns}).write_csv(path)
    return path


def screen(tmp_path, scans, meds=None, fractures=None, as_of=AS_OF, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    scan_file = write_scans_csv(tmp_path / "scans.csv", scans)
    meds_file = _csv(tmp_path / "meds.csv", meds) if meds else None
    fracture_file = _csv(tmp_path / "fractures.csv", fractures) if fractures else None
    out = tmp_path / "out"
    manifest = run_screen(
        ScreenRequest(
            scans=[str(scan_file)],
            meds=str(meds_file) if meds_file else None,
            fractures=str(fracture_file) if fracture_file else None,
            out=str(out),
            as_of=as_of,
            max_reject_rate=1.0,
            **options,
        )
    )
    tables = {t: pl.read_parquet(out / f"{t}.parquet") for t in ("care_gaps", "patients", "screening", "quarantine")}
    return manifest, tables


def gaps_of(tables, gap):
    return tables["care_gaps"].filter(pl.col("gap") == gap).rows(named=True)


def dose(patient="P1", drug="Prolia", date="2025-01-01", **extra):
    return {"patient_id": patient, "drug": drug, "event_date": date, **extra}


# denosumab_lapse: last dose + 6 calendar months (clamped) + 28 days < as-of ----------------------------
@pytest.mark.parametrize(
    ("last_dose", "as_of", "opens"),
    [
        ("2025-05-01", "2025-11-29", False),  # 2025-11-01 + 28 days = 2025-11-29: not before the as-of date
        ("2025-05-01", "2025-11-30", True),
        ("2025-08-31", "2026-03-28", False),  # 2026-02-28 (clamped) + 28 = 2026-03-28: not before as-of
        ("2025-08-31", "2026-03-29", True),
    ],
)
def test_denosumab_lapse_window_edge(tmp_path, last_dose, as_of, opens):
    _, tables = screen(tmp_path, [exam(**TREATED)], meds=[dose(date=last_dose)], as_of=as_of)
    rows = gaps_of(tables, "denosumab_lapse")
    assert bool(rows) is opens
    if rows:
        due = {"2025-05-01": dt.date(2025, 11, 29), "2025-08-31": dt.date(2026, 3, 28)}[last_dose]
        assert (
            rows[0]["since"] == due
            and rows[0]["priority"] == PRIORITY["denosumab_lapse"]
            and rows[0]["exam_id"] is None
        )


def test_bisphosphonate_after_denosumab_closes_the_lapse(tmp_path):
    meds = [dose(date="2025-01-01"), dose(drug="zoledronic acid", date="2025-07-15", dose_mg="5")]
    _, tables = screen(tmp_path, [exam(**TREATED)], meds=meds)
    assert gaps_of(tables, "denosumab_lapse") == []


def test_oncology_products_never_count_as_treatment(tmp_path):
    meds = [
        dose(date="2025-01-01"),
        dose(drug="Zometa", date="2025-07-15"),
        dose(drug="zoledronic acid", date="2025-08-15", dose_mg="4"),
        dose(drug="Xgeva", date="2025-09-01"),
        dose(drug="denosumab", date="2025-10-01", dose_mg="120"),
    ]
    manifest, tables = screen(tmp_path, [exam(**TREATED)], meds=meds)
    lapse = gaps_of(tables, "denosumab_lapse")
    assert [r["since"] for r in lapse] == [dt.date(2025, 7, 29)]  # from the 2025-01-01 Prolia dose only
    patient = tables["patients"].row(0, named=True)
    assert (patient["last_treatment_date"], patient["last_treatment_drug"]) == (dt.date(2025, 1, 1), "denosumab")


# untreated_high_risk: latest exam eligible, no treatment in [exam − 365 days, as-of] --------------------
@pytest.mark.parametrize(("event", "opens"), [("2023-03-01", False), ("2023-02-28", True), (None, True)])
def test_untreated_high_risk_lookback_edge(tmp_path, event, opens):
    meds = [dose(drug="alendronate", date=event)] if event else None  # exam 2024-03-01 − 365 days = 2023-03-02
    scans = [exam(femoral_neck_t="-2.7", exam_date="2024-03-01")]
    if event == "2023-03-01":
        scans = [exam(femoral_neck_t="-2.7", exam_date="2024-02-29")]  # leap year: − 365 days = 2023-03-01
    _, tables = screen(tmp_path, scans, meds=meds)
    rows = gaps_of(tables, "untreated_high_risk")
    assert bool(rows) is opens
    if rows:
        assert rows[0]["since"] == tables["screening"].row(0, named=True)["exam_date"]
        assert rows[0]["exam_id"] == "E1" and rows[0]["priority"] == PRIORITY["untreated_high_risk"]


def test_untreated_high_risk_treatment_up_to_as_of_counts(tmp_path):
    _, tables = screen(tmp_path, [exam(femoral_neck_t="-2.7")], meds=[dose(drug="Actonel", date=AS_OF)])
    assert gaps_of(tables, "untreated_high_risk") == []


def test_the_latest_exam_decides(tmp_path):
    scans = [
        exam(exam_id="E1", exam_date="2022-01-01", femoral_neck_t="-2.8"),
        exam(exam_id="E2", exam_date="2024-01-01", **TREATED),
        exam(exam_id="E0", exam_date="2024-01-01", femoral_neck_t="-2.8"),
    ]  # same day, lower exam_id
    _, tables = screen(tmp_path, scans)
    assert gaps_of(tables, "untreated_high_risk") == []
    assert tables["patients"].row(0, named=True)["latest_exam_id"] == "E2"


def test_untreated_high_risk_view_joins_the_latest_screening_row(tmp_path, capsys):
    scans = [
        exam(exam_id="E1", exam_date="2022-01-01", femoral_neck_t="-1.0"),
        exam(exam_id="E2", exam_date="2024-01-01", femoral_neck_t="-2.7", egfr="30"),
    ]
    screen(tmp_path, scans)
    rows = sql_json(
        capsys,
        tmp_path / "out",
        "SELECT patient_id, gap, exam_id, since, priority, who_category, "
        "eligibility, recommendation, rule_set FROM untreated_high_risk",
    )
    assert rows == [
        {
            "patient_id": "P1",
            "gap": "untreated_high_risk",
            "exam_id": "E2",
            "since": "2024-01-01",
            "priority": PRIORITY["untreated_high_risk"],
            "who_category": "osteoporosis",
            "eligibility": "eligible",
            "recommendation": "denosumab",
            "rule_set": "standard@1.0.0",
        }
    ]


# post_fracture_untreated --------------------------------------------------------------------------------
def fracture(date="2025-03-01", patient="P1", **extra):
    return {"patient_id": patient, "fracture_date": date, "icd10": "S72.001A", **extra}


@pytest.mark.parametrize(("as_of", "opens"), [("2025-08-28", False), ("2025-08-29", True)])
def test_post_fracture_window_closes_after_180_days(tmp_path, as_of, opens):
    # fracture 2025-03-01 + 180 days = 2025-08-28; as-of must be after it
    _, tables = screen(tmp_path, [exam(**TREATED, exam_date="2024-01-01")], fractures=[fracture()], as_of=as_of)
    rows = gaps_of(tables, "post_fracture_untreated")
    assert bool(rows) is opens
    if rows:
        assert rows[0]["since"] == dt.date(2025, 3, 1) and rows[0]["priority"] == PRIORITY["post_fracture_untreated"]


@pytest.mark.parametrize(("date", "opens"), [("2024-01-01", True), ("2023-12-31", False)])
def test_post_fracture_only_in_the_last_two_years(tmp_path, date, opens):
    _, tables = screen(tmp_path, [exam(**TREATED, exam_date="2022-01-01")], fractures=[fracture(date)])
    assert bool(gaps_of(tables, "post_fracture_untreated")) is opens


@pytest.mark.parametrize(
    ("event", "opens"),
    [("2025-08-28", False), ("2025-08-29", True), ("2024-03-01", False), ("2024-02-29", True)],
)
def test_post_fracture_treatment_windows(tmp_path, event, opens):
    # treatment in [fracture − 365 days, fracture + 180 days] closes it (2024-03-01 .. 2025-08-28)
    _, tables = screen(
        tmp_path,
        [exam(**TREATED, exam_date="2022-01-01")],
        fractures=[fracture()],
        meds=[dose(drug="alendronate", date=event)],
    )
    assert bool(gaps_of(tables, "post_fracture_untreated")) is opens


@pytest.mark.parametrize(
    ("exam_date", "opens"), [("2025-08-28", False), ("2025-03-01", False), ("2025-08-29", True), ("2025-02-28", True)]
)
def test_post_fracture_exam_in_window_closes_it(tmp_path, exam_date, opens):
    _, tables = screen(tmp_path, [exam(**TREATED, exam_date=exam_date)], fractures=[fracture()], as_of="2025-12-01")
    assert bool(gaps_of(tables, "post_fracture_untreated")) is opens


@pytest.mark.parametrize(
    ("fracture_row", "opens"),
    [
        ({"birth_date": "1975-03-01"}, True),
        ({"birth_date": "1975-03-02"}, False),
        ({}, True),
        ({"icd10": "S62.101A"}, False),
        ({"icd10": "S72.001D"}, False),
        ({"icd10": None, "site": "wrist"}, True),
        ({"icd10": "S02.0XXA"}, False),
        ({"icd10": "S82.001A"}, True),
    ],
)
def test_post_fracture_age_site_and_encounter(tmp_path, fracture_row, opens):
    row = {**fracture(patient="F1"), **fracture_row}
    _, tables = screen(tmp_path, [exam(**TREATED)], fractures=[row])
    rows = gaps_of(tables, "post_fracture_untreated")
    assert bool(rows) is opens


def test_patient_known_only_from_fractures_is_listed(tmp_path):
    _, tables = screen(
        tmp_path,
        [exam(**TREATED)],
        fractures=[fracture(patient="ONLY-FX", icd10="S32.401A"), fracture(patient="ONLY-FX", date="2024-06-01")],
    )
    rows = gaps_of(tables, "post_fracture_untreated")
    assert [(r["patient_id"], r["since"]) for r in rows] == [("ONLY-FX", dt.date(2025, 3, 1))]
    assert "pelvis" in rows[0]["detail"]
    listed = tables["patients"].filter(pl.col("patient_id") == "ONLY-FX").row(0, named=True)
    assert listed["latest_exam_id"] is None and listed["on_treatment"] is False


def test_scan_birth_date_gives_the_age(tmp_path):
    young = exam(**TREATED, birth_date="1980-01-01")  # 45 at the fracture: no gap
    _, tables = screen(tmp_path, [young], fractures=[fracture()])
    assert gaps_of(tables, "post_fracture_untreated") == []


# significant_bmd_loss ------------------------------------------------------------------------------------
def pair(earlier: dict, later: dict, device=("D1", "D1")):
    first = exam(exam_id="E1", exam_date="2022-01-01", device_id=device[0], **TREATED, **earlier)
    second = exam(exam_id="E2", exam_date="2024-01-01", device_id=device[1], **TREATED, **later)
    return [first, second]


@pytest.mark.parametrize(
    ("site", "before", "after", "opens"),
    [
        ("femoral_neck_bmd", "1.000", "0.931", True),
        ("femoral_neck_bmd", "1.000", "0.932", False),
        ("total_hip_bmd", "0.800", "0.760", True),
        ("total_hip_bmd", "0.800", "0.761", False),
        ("spine_bmd", "1.000", "0.947", True),
        ("spine_bmd", "1.000", "0.948", False),
    ],
)
def test_bmd_loss_at_the_least_significant_change(tmp_path, site, before, after, opens):
    _, tables = screen(tmp_path, pair({site: before}, {site: after}))
    rows = gaps_of(tables, "significant_bmd_loss")
    assert bool(rows) is opens
    if rows:
        assert (rows[0]["exam_id"], rows[0]["since"], rows[0]["priority"]) == (
            "E2",
            dt.date(2024, 1, 1),
            PRIORITY["significant_bmd_loss"],
        )


@pytest.mark.parametrize(
    ("devices", "levels", "opens"),
    [
        (("D1", "D2"), ("L1-L4", "L1-L4"), False),
        ((None, None), ("L1-L4", "L1-L4"), False),
        (("D1", "D1"), ("L1-L4", "L2-L4"), False),
        (("D1", "D1"), ("L1,L2,L3,L4", "L1-L4"), True),
        (("D1", "D1"), ("L3", "L3"), False),
        (("D1", "D1"), (None, None), True),
    ],
)
def test_bmd_loss_needs_same_device_and_spine_levels(tmp_path, devices, levels, opens):
    rows = pair(
        {"spine_bmd": "1.0", "spine_levels": levels[0]}, {"spine_bmd": "0.9", "spine_levels": levels[1]}, device=devices
    )
    _, tables = screen(tmp_path, rows)
    assert bool(gaps_of(tables, "significant_bmd_loss")) is opens


def test_bmd_loss_uses_only_the_two_latest_exams(tmp_path):
    rows = pair({"femoral_neck_bmd": "0.8"}, {"femoral_neck_bmd": "0.79"})
    rows.insert(0, exam(exam_id="E0", exam_date="2020-01-01", device_id="D1", femoral_neck_bmd="1.2", **TREATED))
    _, tables = screen(tmp_path, rows)
    assert gaps_of(tables, "significant_bmd_loss") == []


def test_per_device_lsc_file(tmp_path):
    lsc = tmp_path / "lsc.csv"
    lsc.write_text("device_id,site,lsc\nD1,femoral_neck,0.02\n")
    rows = pair({"femoral_neck_bmd": "1.000"}, {"femoral_neck_bmd": "0.980"})
    _, tables = screen(tmp_path, rows, lsc=str(lsc))
    assert "LSC 2.0%" in gaps_of(tables, "significant_bmd_loss")[0]["detail"]


# overdue_dxa -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("as_of", "opens"), [("2026-03-01", False), ("2026-03-02", True)])
def test_overdue_dxa_edge(tmp_path, as_of, opens):
    _, tables = screen(
        tmp_path,
        [exam(femoral_neck_t="-1.5", current_smoker="true")],
        as_of=as_of,
        meds=[dose(drug="alendronate", date="2024-03-01")],
    )
    rows = gaps_of(tables, "overdue_dxa")
    assert bool(rows) is opens
    if rows:
        assert (rows[0]["since"], rows[0]["priority"], rows[0]["exam_id"]) == (
            dt.date(2026, 3, 1),
            PRIORITY["overdue_dxa"],
            "E1",
        )


# patients, coverage, references, accounting --------------------------------------------------------------
def test_on_treatment_on_the_as_of_date(tmp_path):
    meds = [dose(drug="alendronate", date="2025-12-03", days_supply="30")]  # covers 12-03 .. 2026-01-01
    _, tables = screen(tmp_path, [exam(**TREATED)], meds=meds)
    assert tables["patients"].row(0, named=True)["on_treatment"] is True
    _, tables = screen(
        tmp_path / "b", [exam(**TREATED)], meds=[dose(drug="alendronate", date="2025-12-02", days_supply="30")]
    )
    assert tables["patients"].row(0, named=True)["on_treatment"] is False


def test_treatment_intervals_merge_overlapping_courses(tmp_path):
    meds = [
        dose(drug="Fosamax", date="2025-01-01"),
        dose(drug="alendronate", date="2025-01-31"),
        dose(drug="M05BA04", date="2025-06-01"),
    ]
    screen(tmp_path, [exam(**TREATED)], meds=meds)
    intervals = pl.read_parquet(tmp_path / "out" / "treatment_intervals.parquet")
    assert intervals.select("interval_start", "interval_end", "days_covered").rows() == [
        (dt.date(2025, 1, 1), dt.date(2025, 3, 2), 60),
        (dt.date(2025, 6, 1), dt.date(2025, 7, 1), 30),
    ]


def test_unknown_drugs_are_kept_and_counted(tmp_path):
    meds = [dose(drug="Calcium D3"), dose(drug="calcium   d3"), dose(drug="Prolia")]
    manifest, tables = screen(tmp_path, [exam(**TREATED)], meds=meds)
    assert manifest["unrecognised_drugs"] == {"rows": 2, "distinct": 1, "most_common": {"calcium d3": 2}}
    assert manifest["rows_by_input"]["meds"] == {"rows_in": 3, "valid": 3, "quarantined": 0, "duplicate": 0}
    assert tables["quarantine"].is_empty()


@pytest.mark.parametrize(
    ("row", "column", "check"),
    [
        ({"drug": None}, "drug", "required"),
        ({"event_date": "2026-01-02"}, "event_date", "not_after_as_of"),
        ({"days_supply": "0"}, "days_supply", "in_range(1, 400)"),
        ({"days_supply": "401"}, "days_supply", "in_range(1, 400)"),
        ({"days_supply": "2.5"}, "days_supply", "is_integer"),
        # whole, but beyond any integer column: not readable as one (it stopped the run before)
        ({"days_supply": "18446744073709551615"}, "days_supply", "is_integer"),
        ({"days_supply": "1e300"}, "days_supply", "is_integer"),
        ({"dose_mg": "lots"}, "dose_mg", "is_number"),
    ],
)
def test_medication_rows_are_validated(tmp_path, row, column, check):
    manifest, tables = screen(tmp_path, [exam(**TREATED)], meds=[dose(), {**dose(), **row}])
    q = tables["quarantine"].row(0, named=True)
    assert (q["input"], q["source_row"], q["column"], q["check"]) == ("meds", 2, column, check)
    assert manifest["rows_by_input"]["meds"]["quarantined"] == 1


@pytest.mark.parametrize(
    ("row", "column", "check"),
    [
        ({"fracture_date": "2026-02-01"}, "fracture_date", "not_after_as_of"),
        ({"icd10": "12345"}, "icd10", "icd10_format"),
        ({"icd10": None, "site": "knee"}, "site", "allowed_value"),
        ({"icd10": None}, None, "site_or_icd10_required"),
        ({"patient_id": None}, "patient_id", "required"),
    ],
)
def test_fracture_rows_are_validated(tmp_path, row, column, check):
    _, tables = screen(tmp_path, [exam(**TREATED)], fractures=[fracture(), {**fracture(), **row}])
    q = tables["quarantine"].row(0, named=True)
    assert (q["input"], q["source_row"], q["column"], q["check"]) == ("fractures", 2, column, check)


def test_every_gap_points_at_an_existing_patient_and_exam(tmp_path):
    screen_synthetic(write_synthetic(tmp_path, 300, seed=3), tmp_path / "out", "2026-07-01")
    read = lambda t: pl.read_parquet(tmp_path / "out" / f"{t}.parquet")  # noqa: E731
    gaps, patients, screening = read("care_gaps"), read("patients"), read("screening")
    assert set(gaps.get_column("gap")) == {
        "denosumab_lapse",
        "untreated_high_risk",
        "post_fracture_untreated",
        "significant_bmd_loss",
        "overdue_dxa",
    }
    assert set(gaps.get_column("patient_id")) <= set(patients.get_column("patient_id"))
    assert set(gaps.get_column("exam_id").drop_nulls()) <= set(screening.get_column("exam_id"))
    assert patients.get_column("patient_id").is_unique().all()
    assert gaps.select("patient_id", "gap").is_unique().all()
    ordered = gaps.sort("priority", "since", "patient_id")
    assert gaps.equals(ordered)


def test_fractures_export_feeds_the_rules(tmp_path, standard_rules):
    scans = [
        exam(exam_id="E1", femoral_neck_t="-2.6", exam_date="2024-03-01"),
        exam(exam_id="E2", patient_id="P2", exam_date="2024-03-01", frax_mof="5", frax_hip="1"),
    ]
    fx = [
        fracture(date="2024-03-01"),
        fracture(patient="P2", date="2024-03-01", icd10="S52.501A"),
        fracture(patient="P2", date="2024-03-02"),
    ]  # after the exam: does not count
    _, tables = screen(tmp_path, scans, fractures=fx)
    rows = {r["exam_id"]: r for r in tables["screening"].iter_rows(named=True)}
    assert rows["E1"]["who_category"] == "severe_osteoporosis"
    assert rows["E1"]["eligibility_reasons"] == ["hip_or_vertebral_fracture", "t_score_osteoporosis"]
    assert rows["E2"]["eligibility_reasons"] == ["osteopenia_with_fragility_fracture"]


def test_aace_recent_and_multiple_fractures_from_the_export(tmp_path):
    scans = [exam(femoral_neck_t="-2.6", exam_date="2024-03-01")]
    fx = [fracture(date="2023-03-01", icd10="S52.501A"), fracture(date="2020-01-01", icd10="S42.201A")]
    _, tables = screen(tmp_path, scans, fractures=fx, rules="aace2020")
    row = tables["screening"].row(0, named=True)
    assert row["eligibility_reasons"] == [
        "fragility_fracture",
        "t_score_osteoporosis",
        "very_high_risk_recent_fracture",
        "very_high_risk_multiple_fractures",
    ]
    assert row["recommendation"] == "anabolic_referral"
    _, tables = screen(
        tmp_path / "b", scans, fractures=[fracture(date="2023-02-28", icd10="S52.501A")], rules="aace2020"
    )
    assert tables["screening"].row(0, named=True)["recommendation"] == "oral_bisphosphonate"


def test_gaps_command_formats_and_filter(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    screen(tmp_path, [exam(femoral_neck_t="-2.7", exam_date="2020-01-01")], meds=[dose(date="2018-06-01")])
    out = str(tmp_path / "out")
    capsys.readouterr()
    assert main(["gaps", "--out", out, "--format", "table"]) == 0  # a pipe without --format gets CSV
    table = capsys.readouterr().out
    assert max(len(line) for line in table.splitlines()) <= 80
    assert table.index("denosumab_lapse") < table.index("untreated_high_risk") < table.index("overdue_dxa")
    assert main(["gaps", "--out", out, "--format", "json", "--gap", "overdue_dxa"]) == 0
    assert [r["gap"] for r in json.loads(capsys.readouterr().out)] == ["overdue_dxa"]
    assert main(["gaps", "--out", out, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "patient_id,gap,since,exam_id,priority,detail,first_seen,status"
    assert main(["gaps", "--out", out, "--gap", "nonsense"]) == 2


# both hips: like is compared with like (issue 13) ----------------------------------------------------------
def hips(site="total_hip", left=None, right=None) -> dict:
    return {f"left_{site}_bmd": left, f"right_{site}_bmd": right}


@pytest.mark.parametrize(
    ("earlier", "later", "detail"),
    [
        # both exams give both hips: their mean is compared; the sum lost exactly 5 % (LSC 0.050) opens it
        (hips(left="0.800", right="0.800"), hips(left="0.760", right="0.760"), "(mean of both hips) 0.8 → 0.76"),
        (hips(left="0.800", right="0.800"), hips(left="0.760", right="0.761"), None),
        # one hip lost 7.5 %, the mean only 3.75 %: monitoring follows the mean, not the worse hip
        (hips(left="0.800", right="0.800"), hips(left="0.740", right="0.800"), None),
        # the later exam gives the left hip only: left against left
        (hips(left="0.800", right="0.700"), hips(left="0.760"), "(left hip) 0.8 → 0.76"),
        (hips(left="0.800", right="0.700"), hips(right="0.665"), "(right hip) 0.7 → 0.665"),
        # no hip in common, or one exam unsided and the other sided: nothing like to compare
        (hips(right="0.800"), hips(left="0.600"), None),
        ({"total_hip_bmd": "0.800"}, hips(left="0.600", right="0.600"), None),
        (hips(site="femoral_neck", left="1.000", right="1.000"), hips("femoral_neck", "0.931", "0.931"), "(mean"),
    ],
)
def test_bmd_loss_with_both_hips_compares_like_with_like(tmp_path, earlier, later, detail):
    _, tables = screen(tmp_path, pair(earlier, later))
    rows = gaps_of(tables, "significant_bmd_loss")
    assert tables["quarantine"].is_empty()
    if detail is None:
        assert rows == []
    else:
        assert len(rows) == 1 and detail in rows[0]["detail"], rows

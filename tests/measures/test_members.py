"""The quality measures' members on typed frames (docs/measures.md): each window edge (day 180/181, 730/731,
365/366, 30 June/1 July, six calendar months), each age edge on 31 December, each exclusion, enrolment around the
fracture and on the period's end, fracture-only patients and patients outside the roster."""

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.decide.events import classify_fractures, classify_meds
from osteo_core.gaps.population import enrolment_stretches, roster_patients
from osteo_core.measures.members import OPEN, all_members, split, summary
from osteo_core.measures.specs import load_measures

YEAR = 2025
AS_OF = dt.date(2026, 6, 30)
D = dt.date.fromisoformat
DAY = dt.timedelta(days=1)
ROSTER_COLUMNS = ["patient_id", "sex", "birth_date", "death_date", "enrolled_from", "enrolled_to"]
SPEC = {s.id: s for s in load_measures()}


def _dates(frame: pl.DataFrame, columns) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).str.to_date() for c in columns)


def run(roster, exams=(), meds=(), fractures=(), year=YEAR, as_of=AS_OF) -> pl.DataFrame:
    """All measures' rows. ``roster``: (id, sex, birth, death, from, to); ``exams``: (id, date); ``meds``: (id,
    drug, date, days_supply); ``fractures``: (id, date, icd10[, site word])."""
    rows = pl.DataFrame(list(roster), schema=dict.fromkeys(ROSTER_COLUMNS, pl.Utf8), orient="row")
    rows = _dates(rows, ROSTER_COLUMNS[2:])
    people = roster_patients(rows.lazy(), as_of, ())
    exam_frame = _dates(
        pl.DataFrame(list(exams), schema={"patient_id": pl.Utf8, "exam_date": pl.Utf8}, orient="row"), ["exam_date"]
    )
    med_rows = pl.DataFrame(
        list(meds),
        schema={"patient_id": pl.Utf8, "drug": pl.Utf8, "event_date": pl.Utf8, "days_supply": pl.Int64},
        orient="row",
    )
    med_rows = _dates(med_rows, ["event_date"]).with_columns(pl.lit(None, dtype=pl.Float64).alias("dose_mg"))
    fracture_rows = pl.DataFrame(
        [(*f, None)[:4] for f in fractures],
        schema={"patient_id": pl.Utf8, "fracture_date": pl.Utf8, "icd10": pl.Utf8, "site": pl.Utf8},
        orient="row",
    )
    fracture_rows = _dates(fracture_rows, ["fracture_date"]).with_columns(
        pl.lit(None, dtype=pl.Date).alias("birth_date")
    )
    return all_members(
        people,
        enrolment_stretches(rows.lazy()),
        exam_frame.lazy(),
        classify_meds(med_rows.lazy()),
        classify_fractures(fracture_rows.lazy()),
        year,
        as_of,
    ).collect()


def rows_of(members: pl.DataFrame, measure: str) -> dict[str, dict]:
    return {r["patient_id"]: r for r in members.filter(pl.col("measure") == measure).iter_rows(named=True)}


def woman(pid, birth="1950-06-15", death=None, enrolled_from=None, enrolled_to=None):
    return (pid, "F", birth, death, enrolled_from, enrolled_to)


HIP = "S72001A"  # as validation leaves a code: upper case, no dot
IESD = D("2025-03-01")


def days(n: int) -> str:
    """The index fracture's date plus ``n`` days, as text."""
    return (IESD + dt.timedelta(days=n)).isoformat()


# --- OMW -------------------------------------------------------------------------------------------------


def test_omw_ages_67_and_85_on_31_december_count_66_and_86_do_not():
    births = {"AGE66": "1959-01-01", "AGE67": "1958-12-31", "AGE85": "1940-01-01", "AGE86": "1939-12-31"}
    members = rows_of(
        run([woman(p, b) for p, b in births.items()], fractures=[(p, "2025-03-01", HIP) for p in births]), "OMW"
    )
    assert sorted(members) == ["AGE67", "AGE85"]


def test_omw_intake_runs_from_1_july_of_the_prior_year_to_30_june():
    dates = {"JUN30_PRIOR": "2024-06-30", "JUL01_PRIOR": "2024-07-01", "JUN30": "2025-06-30", "JUL01": "2025-07-01"}
    members = rows_of(run([woman(p) for p in dates], fractures=[(p, d, HIP) for p, d in dates.items()]), "OMW")
    assert sorted(members) == ["JUL01_PRIOR", "JUN30"]


def test_omw_numerator_day_180_counts_day_181_does_not_for_a_test_or_a_drug():
    people = ["DXA180", "DXA181", "DRUG180", "DRUG181", "DXA0"]
    members = rows_of(
        run(
            [woman(p) for p in people],
            exams=[("DXA180", days(180)), ("DXA181", days(181)), ("DXA0", days(0))],
            meds=[("DRUG180", "alendronate", days(180), 30), ("DRUG181", "alendronate", days(181), 30)],
            fractures=[(p, days(0), HIP) for p in people],
        ),
        "OMW",
    )
    met = {p: r["in_numerator"] for p, r in members.items()}
    assert met == {"DXA180": True, "DXA181": False, "DRUG180": True, "DRUG181": False, "DXA0": True}
    assert members["DXA180"]["evidence"] == "DXA exam" and members["DXA180"]["evidence_date"] == D(days(180))
    assert members["DRUG180"]["evidence"] == "osteoporosis drug: alendronate"
    assert members["DXA181"]["evidence"] == f"none from {days(0)} to {days(180)}"
    assert all(r["in_denominator"] and not r["excluded"] for r in members.values())


def test_omw_excludes_a_test_in_the_730_days_before_not_731():
    members = rows_of(
        run(
            [woman("DXA730"), woman("DXA731")],
            exams=[("DXA730", days(-730)), ("DXA731", days(-731))],
            fractures=[("DXA730", days(0), HIP), ("DXA731", days(0), HIP)],
        ),
        "OMW",
    )
    assert members["DXA730"]["excluded"] and members["DXA730"]["exclusion_reason"] == "bone_density_test_before"
    assert members["DXA730"]["evidence_date"] == D(days(-730)) and not members["DXA730"]["in_numerator"]
    assert not members["DXA731"]["excluded"] and members["DXA731"]["exclusion_reason"] is None


def test_omw_excludes_a_drug_dispensed_or_still_covering_in_the_365_days_before():
    members = rows_of(
        run(
            [woman(p) for p in ("DRUG365", "DRUG366", "ACTIVE")],
            meds=[
                ("DRUG365", "alendronate", days(-365), 1),  # dispensed on day −365
                ("DRUG366", "alendronate", days(-366), 1),  # covers day −366 only
                ("ACTIVE", "alendronate", days(-400), 90),  # dispensed earlier, still covering day −311
            ],
            fractures=[(p, days(0), HIP) for p in ("DRUG365", "DRUG366", "ACTIVE")],
        ),
        "OMW",
    )
    assert {p: r["exclusion_reason"] for p, r in members.items()} == {
        "DRUG365": "osteoporosis_medication_before",
        "DRUG366": None,
        "ACTIVE": "osteoporosis_medication_before",
    }


def test_omw_a_test_before_wins_over_a_drug_before_the_spec_order():
    members = rows_of(
        run(
            [woman("BOTH")],
            exams=[("BOTH", days(-10))],
            meds=[("BOTH", "alendronate", days(-10), 30)],
            fractures=[("BOTH", days(0), HIP)],
        ),
        "OMW",
    )
    assert members["BOTH"]["exclusion_reason"] == "bone_density_test_before"


def test_omw_needs_enrolment_from_12_months_before_to_180_days_after():
    start, end = (IESD.replace(year=IESD.year - 1)).isoformat(), days(180)
    late_start = (IESD.replace(year=IESD.year - 1) + DAY).isoformat()
    roster = [
        woman("EXACT", enrolled_from=start, enrolled_to=end),
        woman("STARTS_LATE", enrolled_from=late_start, enrolled_to=None),
        woman("ENDS_EARLY", enrolled_from=start, enrolled_to=days(179)),
        woman("DIED", death=days(100)),
        woman("GAP", enrolled_from="2000-01-01", enrolled_to=days(-30)),  # a month without cover …
        woman("GAP", enrolled_from=days(1), enrolled_to=None),  # … before the fracture
        woman("JOINED", enrolled_from="2000-01-01", enrolled_to=days(-1)),  # spans day after day are one
        woman("JOINED", enrolled_from=days(0), enrolled_to=None),
    ]
    ids = sorted({r[0] for r in roster})
    members = rows_of(run(roster, fractures=[(p, days(0), HIP) for p in ids]), "OMW")
    assert {p: r["in_denominator"] for p, r in members.items()} == {
        "EXACT": True,
        "STARTS_LATE": False,
        "ENDS_EARLY": False,
        "DIED": False,
        "GAP": False,
        "JOINED": True,
    }
    assert members["STARTS_LATE"]["evidence"] == f"not enrolled from {start} to {end}"
    assert not members["STARTS_LATE"]["excluded"] and not members["STARTS_LATE"]["in_numerator"]


def test_omw_index_is_the_first_fragility_fracture_not_fingers_nor_a_later_encounter():
    members = rows_of(
        run(
            [woman("FIRST"), woman("FINGER"), woman("LATER")],
            exams=[("FIRST", days(200))],  # 200 days after the first fracture, 100 after the second
            fractures=[
                ("FIRST", days(0), HIP),
                ("FIRST", days(100), HIP),
                ("FINGER", days(0), "S62101A"),
                ("LATER", days(0), "S72001D"),
            ],
        ),
        "OMW",
    )
    assert sorted(members) == ["FIRST"]
    assert not members["FIRST"]["in_numerator"]


def test_a_fracture_only_patient_counts_and_a_patient_outside_the_roster_does_not():
    members = run(
        [woman("FRACTURE_ONLY")],
        meds=[("FRACTURE_ONLY", "Prolia", days(30), None), ("OUTSIDER", "alendronate", days(30), 30)],
        fractures=[("FRACTURE_ONLY", days(0), HIP), ("OUTSIDER", days(0), HIP)],
    )
    assert "OUTSIDER" not in members.get_column("patient_id").to_list()
    omw = rows_of(members, "OMW")["FRACTURE_ONLY"]
    assert omw["in_numerator"] and omw["evidence"] == "osteoporosis drug: denosumab"


def test_a_window_still_open_on_the_as_of_date_says_so_and_is_counted():
    as_of = IESD + dt.timedelta(days=90)
    rows = run([woman("OPEN"), woman("CLOSED")], fractures=[("OPEN", days(0), HIP)], as_of=as_of)
    members = rows_of(rows, "OMW")
    assert members["OPEN"]["evidence"] == f"window open until {days(180)}"
    assert not members["OPEN"]["in_numerator"]
    published, still_open = split(rows)
    assert OPEN not in published.columns and still_open["OMW"] == 1 and still_open["MIPS418"] == 1


def test_omw_a_death_ends_enrolment_the_day_before():
    roster = [woman("DIES_180", death=days(180)), woman("DIES_181", death=days(181))]
    members = rows_of(run(roster, fractures=[(p, days(0), HIP) for p in ("DIES_180", "DIES_181")]), "OMW")
    assert {p: r["in_denominator"] for p, r in members.items()} == {"DIES_180": False, "DIES_181": True}


@pytest.mark.parametrize("code", ["M810", "Z87310", "M8430XA"])
def test_a_code_that_is_not_a_fracture_is_no_index_event(code):
    members = run([woman("CODED")], fractures=[("CODED", days(0), code)])
    assert members.filter(pl.col("measure").is_in(["OMW", "MIPS418"])).height == 0


def test_a_site_word_or_a_pathological_fracture_code_is_an_index_event():
    members = run(
        [woman("WORD"), woman("M80")], fractures=[("WORD", days(0), None, "wrist"), ("M80", days(0), "M8008XA")]
    )
    assert sorted(rows_of(members, "OMW")) == ["M80", "WORD"]


def test_omw_a_drug_with_no_days_supply_covers_its_default_days_in_the_look_back():
    # Prolia covers 183 days by default: given 200 days before the fracture it still covers day -18
    members = rows_of(
        run([woman("PROLIA")], meds=[("PROLIA", "Prolia", days(-200), None)], fractures=[("PROLIA", days(0), HIP)]),
        "OMW",
    )
    assert members["PROLIA"]["exclusion_reason"] == "osteoporosis_medication_before"


def test_an_oncology_product_is_not_osteoporosis_treatment_for_a_measure():
    members = rows_of(
        run([woman("XGEVA")], meds=[("XGEVA", "Xgeva", days(10), None)], fractures=[("XGEVA", days(0), HIP)]), "OMW"
    )
    assert not members["XGEVA"]["in_numerator"]


# --- MIPS 418 --------------------------------------------------------------------------------------------


def test_mips418_ages_50_to_85_and_no_enrolment_window():
    births = {"AGE49": "1976-01-01", "AGE50": "1975-12-31", "AGE85": "1940-01-01", "AGE86": "1939-12-31"}
    roster = [woman(p, b, enrolled_from="2025-01-01", enrolled_to="2025-02-01") for p, b in births.items()]
    members = rows_of(run(roster, fractures=[(p, days(0), HIP) for p in births]), "MIPS418")
    assert sorted(members) == ["AGE50", "AGE85"]
    assert all(r["in_denominator"] for r in members.values())


def test_mips418_numerator_is_six_calendar_months_with_the_day_clamped():
    fracture = "2024-08-31"  # six months later: 28 February 2025
    members = rows_of(
        run(
            [woman("FEB28"), woman("MAR01")],
            exams=[("FEB28", "2025-02-28"), ("MAR01", "2025-03-01")],
            fractures=[("FEB28", fracture, HIP), ("MAR01", fracture, HIP)],
        ),
        "MIPS418",
    )
    assert {p: r["in_numerator"] for p, r in members.items()} == {"FEB28": True, "MAR01": False}


# --- MIPS 039 --------------------------------------------------------------------------------------------


def test_mips039_women_65_to_85_ever_scanned_up_to_the_period_end():
    births = {"AGE64": "1961-01-01", "AGE65": "1960-12-31", "AGE85": "1940-01-01", "AGE86": "1939-12-31"}
    roster = [woman(p, b) for p, b in births.items()] + [woman("LONG_AGO"), woman("AFTER"), woman("NEVER")]
    exams = [("AGE65", "2025-12-31"), ("LONG_AGO", "2001-05-05"), ("AFTER", "2026-01-01")]
    members = rows_of(run(roster, exams=exams), "MIPS039")
    assert sorted(members) == ["AFTER", "AGE65", "AGE85", "LONG_AGO", "NEVER"]
    assert {p: r["in_numerator"] for p, r in members.items()} == {
        "AFTER": False,  # after the period's end
        "AGE65": True,
        "AGE85": False,
        "LONG_AGO": True,
        "NEVER": False,
    }
    assert members["LONG_AGO"]["evidence_date"] == D("2001-05-05")
    assert members["NEVER"]["evidence"] == "none on or before 2025-12-31"


def test_mips039_excludes_an_osteoporosis_code_and_needs_enrolment_on_the_period_end():
    roster = [
        woman("CODED"),
        woman("CODED_AND_SCANNED"),
        woman("LEFT", enrolled_from="2000-01-01", enrolled_to="2025-12-30"),
        woman("DIED", death="2025-12-31"),
        woman("ENROLLED_TO_END", enrolled_from="2000-01-01", enrolled_to="2025-12-31"),
    ]
    members = rows_of(
        run(
            roster,
            exams=[("CODED_AND_SCANNED", "2025-02-01")],
            fractures=[("CODED", "2019-01-01", "M810"), ("CODED_AND_SCANNED", "2025-02-15", "M810")],
        ),
        "MIPS039",
    )
    assert members["CODED"]["exclusion_reason"] == "osteoporosis_diagnosis" and not members["CODED"]["in_numerator"]
    assert members["CODED"]["evidence"] == "osteoporosis code M810"
    # a DXA on record counts as screened, whatever code she also has
    scanned = members["CODED_AND_SCANNED"]
    assert scanned["in_numerator"] and not scanned["excluded"] and scanned["evidence"] == "DXA exam"
    assert {p: r["in_denominator"] for p, r in members.items()} == {
        "CODED": True,
        "CODED_AND_SCANNED": True,
        "LEFT": False,
        "DIED": False,
        "ENROLLED_TO_END": True,
    }
    assert members["LEFT"]["evidence"] == "not alive and enrolled on 2025-12-31"


def test_mips039_enrolment_is_judged_on_the_as_of_date_when_that_is_earlier():
    roster = [woman("ENDS_AFTER_AS_OF", enrolled_from="2000-01-01", enrolled_to="2026-03-01")]
    members = rows_of(run(roster, year=2026, as_of=D("2026-02-01")), "MIPS039")
    assert members["ENDS_AFTER_AS_OF"]["in_denominator"]


def test_summary_counts_and_rate_over_those_not_excluded():
    members = run(
        [woman(p) for p in ("MET", "UNMET", "EXCLUDED")],
        exams=[("MET", days(10)), ("EXCLUDED", days(-5))],
        fractures=[(p, days(0), HIP) for p in ("MET", "UNMET", "EXCLUDED")],
    )
    rates = {r["measure"]: r for r in summary(members.lazy()).iter_rows(named=True)}
    assert set(rates) == set(SPEC)
    omw = rates["OMW"]
    assert (omw["denominator"], omw["exclusions"], omw["numerator"]) == (3, 1, 1)
    assert omw["rate"] == pytest.approx(0.5) and omw["version"] == SPEC["OMW"].version


def test_summary_of_a_roster_nobody_qualifies_for_is_zero_with_no_rate():
    rates = summary(run([woman("YOUNG", "2000-01-01")]).lazy())
    assert rates.height == len(SPEC)
    assert rates.select("denominator", "exclusions", "numerator").sum().row(0) == (0, 0, 0)
    assert rates.get_column("rate").null_count() == len(SPEC)


# --- property: OMW's windows against a plain reading of the definition --------------------------------------

offsets = st.lists(st.integers(-800, 250), max_size=3)


@settings(max_examples=25, deadline=None)
@given(exam_days=offsets, drug_days=offsets, supply=st.integers(1, 120), fracture_day=st.integers(0, 364))
def test_omw_matches_a_plain_reading_of_its_windows(exam_days, drug_days, supply, fracture_day):
    index = D("2024-07-01") + dt.timedelta(days=fracture_day)  # somewhere in the intake period

    def on(n: int) -> str:
        return (index + dt.timedelta(days=n)).isoformat()

    members = rows_of(
        run(
            [woman("P")],
            exams=[("P", on(n)) for n in exam_days],
            meds=[("P", "alendronate", on(n), supply) for n in drug_days],
            fractures=[("P", on(0), HIP)],
        ),
        "OMW",
    )
    year_before = set(range(-365, 0))  # the 365 days before the fracture
    dxa_before = any(-730 <= n <= -1 for n in exam_days)
    drug_before = any(set(range(n, n + supply)) & year_before for n in drug_days)  # a day it covers
    met = any(0 <= n <= 180 for n in exam_days + drug_days)
    row = members["P"]
    assert row["in_denominator"]
    expected_reason = (
        "bone_density_test_before" if dxa_before else "osteoporosis_medication_before" if drug_before else None
    )
    assert row["exclusion_reason"] == expected_reason
    assert row["in_numerator"] == (met and expected_reason is None)


# --- spec files --------------------------------------------------------------------------------------------


def _omw_raw():
    import tomllib

    from osteo_core.resources import data_dir

    return tomllib.loads((data_dir() / "measures" / "omw.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["numerator"].pop("value_sets"), "[numerator]: 'value_sets' is missing"),
        (lambda r: r["numerator"].update(value_sets=[]), "[numerator]: value_sets is empty"),
        (lambda r: r["numerator"].update(value_sets=["xray"]), "unknown value set 'xray'"),
        (lambda r: r["exclusions"][0].pop("value_set"), "[[exclusions]] 1: 'value_set' is missing"),
        (lambda r: r["population"].update(min_age_years=90), "min_age_years is above max_age_years"),
        (lambda r: r["index_event"].update({"to": {"year": 0, "month": 2, "day": 29}}), "not a day of every year"),
        (lambda r: r["numerator"].update(days_after_index=-1), "'days_after_index' must not be negative"),
        (lambda r: r["population"].update(colour="red"), "unknown key(s) ['colour']"),
        (lambda r: r["enrolment"].update(required="sometimes"), "required must be one of"),
    ],
)
def test_a_broken_spec_is_refused_naming_the_file_and_the_key(change, message):
    from osteo_core.measures.specs import parse_spec

    raw = _omw_raw()
    change(raw)
    with pytest.raises(ValueError, match="data/measures/omw.toml") as caught:
        parse_spec(raw, "data/measures/omw.toml")
    assert message in str(caught.value)


def test_the_shipped_specs_parse_and_their_generics_are_drugs_the_tool_knows():
    from osteo_core.measures.specs import value_sets

    assert sorted(SPEC) == ["MIPS039", "MIPS418", "OMW"]
    assert "denosumab" in value_sets()["osteoporosis_medication"]["generics"]

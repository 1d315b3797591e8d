"""Issue 13: a wide scans export and the same exams reshaped into the shipped long shapes screen alike.

The wide export (one row per exam, canonical headers, profile ``generic``) is reshaped by
``osteo_core.demo.long_shapes`` into an EHR result extract (``ehr_loinc_long``), into per-region tables
with a visits table (``dxa2_single_type``) and into a FHIR Bulk Data export (``fhir_bulk``); the four full
screens must give the same screening table,
quarantine the same exams for the same cells, and the long runs must account for every row they read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from conftest import AS_OF, scans_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from osteo_core.demo.long_shapes import ehr_long, fhir_resources, region_tables, write_fhir
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from schemas.scans import SCORE_COLUMNS, sided
from schemas.sites import HIP_SITES, SIDES

MEASURES = ("t", "z", "bmd")
BIRTH_DATES = ("1936-04-12", "1948-11-30", "1955-06-15", "1962-01-01", "1971-09-09")
EXAM_DATES = ("2016-05-02", "2018-07-19", "2020-01-31", "2021-12-01", "2023-03-15", "2024-02-29", "2025-10-10")
# an impossible day, a date after AS_OF, a date before the earliest exam date accepted (1985)
BAD_DATES = ("2024-02-30", "2026-06-01", "1980-05-05")
FAULTS = ("score_out_of_range", "sided_and_one_value", "frax_hip_above_mof")
MEASUREMENT_TABLES = ("hip", "spine", "radius")

score = st.integers(-45, 30).map(lambda i: f"{i / 10:.1f}")
bmd = st.integers(400, 1400).map(lambda i: f"{i / 1000:.3f}")
VALUES = {"t": score, "z": score, "bmd": bmd}
# for each hip site and measure: no value, the exam's one value, one hip's, or both hips'
HIP_LAYOUTS = {"none": (), "one": (None,), "left": ("left",), "right": ("right",), "both": SIDES}

SETTINGS = settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@st.composite
def measurements(draw) -> dict[str, str]:
    """A random subset of the BMD, T and Z columns; never one value and a hip's for the same site and
    measure (quarantined by design); at least one T- or Z-score."""
    row: dict[str, str] = {}
    for site in ("spine", "radius33"):
        for measure in MEASURES:
            if draw(st.booleans()):
                row[f"{site}_{measure}"] = draw(VALUES[measure])
    for site in HIP_SITES:
        for measure in MEASURES:
            for side in HIP_LAYOUTS[draw(st.sampled_from(list(HIP_LAYOUTS)))]:
                row[sided(side, site, measure) if side else f"{site}_{measure}"] = draw(VALUES[measure])
    if not any(c in SCORE_COLUMNS for c in row):  # no score of any site: any score column is free
        column = draw(st.sampled_from(SCORE_COLUMNS))
        row[column] = draw(VALUES[column.rsplit("_", 1)[1]])
    return row


@st.composite
def risk_factors(draw) -> dict[str, str]:
    row: dict[str, str] = {}
    if draw(st.booleans()):
        mof = draw(st.integers(1, 400))
        row["frax_mof"] = f"{mof / 10:.1f}"
        if draw(st.booleans()):
            row["frax_hip"] = f"{draw(st.integers(0, mof)) / 10:.1f}"
    fracture = draw(st.sampled_from([None, "true", "false"]))
    if fracture:
        row["prior_fragility_fracture"] = fracture
    if draw(st.booleans()):
        row["glucocorticoid_mg_daily"] = draw(st.sampled_from(["0", "2.5", "7.5", "10", "20"]))
    return row


@st.composite
def fault(draw, row: dict[str, str]) -> str | None:
    """Make ``row`` invalid in one of several ways (or not): the name of the fault made."""
    made = draw(st.sampled_from([None, None, *FAULTS]))
    if made == "score_out_of_range":
        scores = sorted(c for c in row if c in SCORE_COLUMNS)
        row[draw(st.sampled_from(scores))] = draw(st.sampled_from(["-9", "7.5", "-12.0"]))
    elif made == "sided_and_one_value":
        site, measure = draw(st.sampled_from(HIP_SITES)), draw(st.sampled_from(MEASURES))
        side = draw(st.sampled_from(SIDES))
        row[f"{site}_{measure}"] = draw(VALUES[measure])
        row[sided(side, site, measure)] = draw(VALUES[measure])
    elif made == "frax_hip_above_mof":
        row["frax_mof"], row["frax_hip"] = "10.0", "12.5"
    return made


@st.composite
def registries(draw, invalid: bool = False) -> tuple[list[dict[str, str]], set[str]]:
    """Exams of 1-3 patients (1-3 exams each, on distinct dates), distinct exam ids, rows in random order;
    with ``invalid``, some exams made invalid: (rows, exam ids expected in quarantine)."""
    rows: list[dict[str, str]] = []
    bad: list[bool] = []
    for patient in range(1, draw(st.integers(1, 3)) + 1):
        # an unknown sex is the patient's (FHIR's Patient.gender): it quarantines each of the patient's exams
        sex = draw(st.sampled_from(["F", "M", "x"] if invalid else ["F", "M"]))
        birth = draw(st.sampled_from(BIRTH_DATES))
        pool = EXAM_DATES + (BAD_DATES if invalid else ())
        for date in draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)):
            row = {"patient_id": f"P{patient}", "exam_date": date, "sex": sex, "birth_date": birth}
            if sex == "F":
                status = draw(st.sampled_from([None, "pre", "post"]))
                if status:
                    row["menopausal_status"] = status
            row |= draw(measurements()) | draw(risk_factors())
            made = draw(fault(row)) if invalid else None
            rows.append(row)
            bad.append(made is not None or date in BAD_DATES or sex == "x")
    numbers = draw(st.permutations(range(len(rows))))
    for row, number in zip(rows, numbers, strict=True):
        row["exam_id"] = f"E{number:03d}"
    order = draw(st.permutations(range(len(rows))))
    expected = {rows[i]["exam_id"] for i, b in enumerate(bad) if b}
    return [rows[i] for i in order], expected


def _screen(scans: Path, profile: str) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame]:
    out = scans.parent / f"out-{scans.name}"
    manifest = run_screen(
        ScreenRequest(scans=[str(scans)], out=str(out), as_of=AS_OF.isoformat(), profile=profile, max_reject_rate=1.0)
    )
    screening = pl.read_parquet(out / "screening.parquet").sort("exam_id")
    return manifest, screening, pl.read_parquet(out / "quarantine.parquet")


def screen_four_ways(folder: Path, rows: list[dict[str, str]]) -> dict[str, tuple[dict, pl.DataFrame, pl.DataFrame]]:
    """Screen the wide export, its EHR extract, its region tables and its FHIR Bulk Data export; check the
    long runs' row counts."""
    wide = scans_frame(rows).drop("source_file", "source_row")
    wide.write_csv(folder / "wide.csv")
    extract = ehr_long(wide)
    extract.write_csv(folder / "ehr.csv")
    regions = folder / "regions"
    regions.mkdir()
    measured = 0
    for name, table in region_tables(wide).items():  # a table no exam has rows in is a header line
        table.write_csv(regions / f"{name}.csv")
        measured += table.height if name in MEASUREMENT_TABLES else 0
    resources = fhir_resources(wide)
    write_fhir(resources, folder / "fhir")
    runs = {
        "generic": _screen(folder / "wide.csv", "generic"),
        "ehr_loinc_long": _screen(folder / "ehr.csv", "ehr_loinc_long"),
        "dxa2_single_type": _screen(regions, "dxa2_single_type"),
        "fhir_bulk": _screen(folder / "fhir", "generic"),  # a Bulk Data folder chooses its profile
    }
    observations = len(resources["Observation"])
    shapes = (("ehr_loinc_long", extract.height), ("dxa2_single_type", measured), ("fhir_bulk", observations))
    for profile, measurement_rows in shapes:
        counts = runs[profile][0]["rows"]
        assert counts["rows_in"] == counts["exams_assembled"] == len(rows), profile
        assert counts["measurement_rows"] == measurement_rows, profile
        assert counts["measurement_rows_not_screened"] == counts["patient_rows_without_exam"] == 0, profile
    return runs


def assert_same_screening(profile: str, screening: pl.DataFrame, wide: pl.DataFrame) -> None:
    try:
        assert_frame_equal(screening, wide)
    except AssertionError as err:
        raise AssertionError(f"{profile} screening differs from the wide export's: {err}") from None


def quarantined(quarantine: pl.DataFrame, with_values: bool = True) -> set[tuple]:
    """(exam, column, check, value) of each scans quarantine row; FHIR's values are JSON numbers, which keep
    no written form (-12.0 reads as -12): compared without the value."""
    columns = ["exam_id", "column", "check", "value"][: 4 if with_values else 3]
    return set(quarantine.filter(pl.col("input") == "scans").select(columns).rows())


@SETTINGS
@given(registry=registries())
def test_long_shapes_screen_exactly_as_the_wide_export(tmp_path_factory, registry):
    rows, _ = registry
    runs = screen_four_ways(tmp_path_factory.mktemp("valid"), rows)
    manifest, wide, quarantine = runs.pop("generic")
    assert manifest["rows"]["valid"] == wide.height == len(rows) and quarantine.is_empty()
    for profile, (_, screening, long_quarantine) in runs.items():
        assert long_quarantine.is_empty(), (profile, long_quarantine.to_dicts())
        assert_same_screening(profile, screening, wide)


@SETTINGS
@given(registry=registries(invalid=True))
def test_long_shapes_quarantine_the_same_exams_as_the_wide_export(tmp_path_factory, registry):
    rows, expected = registry
    runs = screen_four_ways(tmp_path_factory.mktemp("invalid"), rows)
    manifest, wide, quarantine = runs.pop("generic")
    assert set(quarantine.get_column("exam_id")) == expected
    assert manifest["rows"]["quarantined"] == len(expected) and wide.height == len(rows) - len(expected)
    for profile, (long_manifest, screening, long_quarantine) in runs.items():
        assert {k: long_manifest["rows"][k] for k in manifest["rows"]} == manifest["rows"], profile
        written = profile != "fhir_bulk"
        assert quarantined(long_quarantine, written) == quarantined(quarantine, written), profile
        assert_same_screening(profile, screening, wide)


def test_ehr_long_writes_a_radius_t_score_under_the_only_code_there_is():
    """Before: ``ehr_long`` raised on any radius33_t column (its one unsided code, 38265-5, is marked misused);
    the extract now carries it under that code, with a component name that names the site."""
    wide = scans_frame([{"patient_id": "P1", "exam_id": "E1", "exam_date": "2024-03-01", "radius33_t": "-2.6"}])
    extract = ehr_long(wide.drop("source_file", "source_row"))
    assert extract.select("LOINC_CODE", "COMPONENT_NAME", "ORD_VALUE").rows() == [
        ("38265-5", "DXA 1/3 Radius T-score", "-2.6")
    ]

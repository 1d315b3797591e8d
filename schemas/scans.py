"""Pandera schemas for the scans export (CONTRACT.md §1.1), in two tiers.

* ``raw_scans_schema``: the export as read, every cell text. Checks that required cells are present
  and that each non-blank cell can be read as its type (same expressions as the cast in
  ``schemas.checks.reader``), plus the two row-level presence rules.
* ``typed_scans_schema``: the parsed values. Checks ranges, date order, age, FRAX hip ≤ MOF and
  exam-id uniqueness (after identical duplicates have been set aside).

Every check has a stable name; that name is what lands in ``quarantine.check``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandera.polars as pa
import polars as pl

from schemas.checks import DTYPES, Words, column_check, frame_check, not_after, ordered, range_check, text_schema
from schemas.fields import Field, fields_of_kind
from schemas.tables import SITES

SCORE_COLUMNS = tuple(f"{site}_{kind}" for site in SITES for kind in ("t", "z"))

SCANS_FIELDS: tuple[Field, ...] = (
    Field("patient_id", "text", "Patient identifier (PHI: never logged)", required=True),
    Field("exam_id", "text", "DXA exam identifier, unique per exam", required=True),
    Field("exam_date", "date", "Date of the DXA exam", required=True),
    Field("sex", "sex", "F or M", required=True),
    Field("birth_date", "date", "Date of birth (PHI); wins over age_years"),
    Field("age_years", "number", "Age at the exam, used when birth_date is blank", range_key="age_years"),
    Field("menopausal_status", "menopausal", "pre / peri / post; blank or 'unknown' = unknown"),
    Field("weight_kg", "number", "Body weight in kg", range_key="weight_kg"),
    Field("height_cm", "number", "Height in cm", range_key="height_cm"),
    Field("device_id", "text", "Scanner identifier, for comparing serial exams"),
    *(
        Field(f"{site}_{kind}", "number", f"{site} {label}", range_key=rk)
        for site in SITES
        for kind, label, rk in (("t", "T-score", "t_score"), ("z", "Z-score", "z_score"), ("bmd", "BMD g/cm²", "bmd"))
    ),
    Field("spine_levels", "spine_levels", "Evaluable lumbar vertebrae, e.g. L1-L4 or L1,L3"),
    Field("frax_mof", "number", "10-year FRAX major osteoporotic fracture probability, %", range_key="frax"),
    Field("frax_hip", "number", "10-year FRAX hip fracture probability, %", range_key="frax"),
    Field("prior_fragility_fracture", "boolean", "Any low-trauma fracture in adulthood"),
    Field("prior_hip_fracture", "boolean", "Prior hip fracture"),
    Field("prior_vertebral_fracture", "boolean", "Prior clinical or morphometric vertebral fracture"),
    Field("parental_hip_fracture", "boolean", "Parent had a hip fracture"),
    Field("current_smoker", "boolean", "Current smoker"),
    Field("alcohol_3plus_daily", "boolean", "Three or more units of alcohol a day"),
    Field("glucocorticoid_mg_daily", "number", "Prednisone-equivalent mg/day", range_key="glucocorticoid_mg_daily"),
    Field("glucocorticoid_months", "number", "Months of glucocorticoid use", range_key="glucocorticoid_months"),
    Field("cancer_bone_loss_therapy", "boolean", "Aromatase inhibitor or androgen deprivation therapy"),
    Field("rheumatoid_arthritis", "boolean", "Rheumatoid arthritis"),
    Field("inflammatory_bowel_disease", "boolean", "Inflammatory bowel disease"),
    Field("chronic_liver_disease", "boolean", "Chronic liver disease"),
    Field("chronic_kidney_disease", "boolean", "Chronic kidney disease"),
    Field("egfr", "number", "eGFR, mL/min/1.73 m²"),
    Field("bisphosphonate_intolerance", "boolean", "Bisphosphonate intolerance (e.g. upper GI)"),
)
SCANS_COLUMNS = tuple(f.name for f in SCANS_FIELDS)
REQUIRED_HEADERS = tuple(f.name for f in SCANS_FIELDS if f.required)
AGE_SOURCES = ("birth_date", "age_years")  # at least one of these headers must be present

SEX_WORDS: dict[str, str | None] = {"f": "F", "female": "F", "m": "M", "male": "M"}
MENOPAUSAL_WORDS: dict[str, str | None] = {"pre": "pre", "peri": "peri", "post": "post", "unknown": None}

# Columns added by the pipeline to the typed frame (not in the export).
SPINE_LEVEL_COUNT = "spine_level_count"


def raw_scans_schema(date_formats: list[str], words: Words) -> pa.DataFrameSchema:
    """Tier 1: the export as text. ``words`` maps kind (sex, menopausal) → accepted words."""
    any_score = pl.any_horizontal([pl.col(c).is_not_null() for c in SCORE_COLUMNS])
    row_checks = [
        frame_check(
            "birth_date_or_age_required",
            pl.col("birth_date").is_not_null() | pl.col("age_years").is_not_null(),
            "either birth_date or age_years is required",
        ),
        frame_check("at_least_one_score", any_score, "at least one site T-score or Z-score is required"),
    ]
    # age_years is checked only when birth_date is blank
    only_when = {"age_years": lambda: pl.col("birth_date").is_null()}
    return text_schema("scans_raw", SCANS_FIELDS, date_formats, words, row_checks, only_when)


def typed_scans_schema(
    as_of: dt.date, bounds: dict[str, Any], conflicting_exam_ids: pl.Series | None = None
) -> pa.DataFrameSchema:
    """Tier 2: parsed values. ``bounds`` is ``data/validation/scans.toml``.

    ``conflicting_exam_ids``: exam ids seen under different patients anywhere in the run (those copies
    sit in different patient partitions, so a partition cannot see the conflict by itself).
    """
    earliest = bounds["earliest_exam_date"]
    elsewhere = conflicting_exam_ids if conflicting_exam_ids is not None else pl.Series([], dtype=pl.Utf8)
    extra: dict[str, list[pa.Check]] = {
        "exam_id": [
            column_check(
                "unique_exam_id",
                lambda c: pl.col(c).is_null() | (pl.col(c).is_unique() & pl.col(c).is_in(elsewhere.implode()).not_()),
                "the same exam_id appears with different content",
            ),
        ],
        "exam_date": [
            not_after("not_after_as_of", as_of),
            column_check(
                f"not_before_{earliest}",
                lambda c: pl.col(c).is_null() | (pl.col(c) >= pl.lit(earliest)),
                f"exam_date is before {earliest}",
            ),
        ],
        "birth_date": [ordered("not_after_exam_date", "birth_date", "exam_date")],
        "frax_hip": [ordered("not_above_frax_mof", "frax_hip", "frax_mof")],
    }
    columns: dict[str, pa.Column] = {}
    for f in SCANS_FIELDS:
        checks = list(extra.get(f.name, []))
        if f.range_key:
            checks.append(range_check(bounds["ranges"][f.range_key]))
        columns[f.name] = pa.Column(DTYPES[f.kind], checks=checks, nullable=True, description=f.description)
    columns[SPINE_LEVEL_COUNT] = pa.Column(pl.Int8, nullable=True, description="Vertebrae in spine_levels")
    return pa.DataFrameSchema(columns, name="scans_typed", strict=False)


BOOLEAN_COLUMNS = fields_of_kind(SCANS_FIELDS, "boolean")

"""Pandera schemas for the optional medications and fractures exports (CONTRACT.md §1.2–1.3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandera.polars as pa
import polars as pl

from schemas.checks import DTYPES, Words, frame_check, not_after, range_check, text_schema
from schemas.fields import Field

MEDS_FIELDS: tuple[Field, ...] = (
    Field("patient_id", "text", "Patient identifier", required=True),
    Field("drug", "text", "Generic name, brand name or ATC code", required=True),
    Field("event_date", "date", "Dispensing or administration date", required=True),
    Field("days_supply", "integer", "Days the dispensing covers (blank: the drug's default)", range_key="days_supply"),
    Field("dose_mg", "number", "Dose in mg (tells oncology products apart)"),
)
MEDS_REQUIRED_HEADERS = ("patient_id", "drug", "event_date")

FRACTURE_SITES = ("hip", "vertebral", "wrist", "humerus", "pelvis", "other")
FRACTURES_FIELDS: tuple[Field, ...] = (
    Field("patient_id", "text", "Patient identifier", required=True),
    Field("fracture_date", "date", "Date of the fracture", required=True),
    Field("site", "fracture_site", "hip / vertebral / wrist / humerus / pelvis / other"),
    Field("icd10", "icd10", "ICD-10(-CM) code, with or without the dot"),
    Field("birth_date", "date", "Date of birth (lets the age rule apply to patients with no scan)"),
)
FRACTURES_REQUIRED_HEADERS = ("patient_id", "fracture_date")
FRACTURE_SITE_SOURCES = ("site", "icd10")
EVENT_WORDS: Words = {"fracture_site": {site: site for site in FRACTURE_SITES}}


def raw_meds_schema(date_formats: list[str]) -> pa.DataFrameSchema:
    return text_schema("medications_raw", MEDS_FIELDS, date_formats, EVENT_WORDS, [])


def typed_meds_schema(as_of: dt.date, bounds: dict[str, Any]) -> pa.DataFrameSchema:
    checks = {
        "event_date": [not_after("not_after_as_of", as_of)],
        "days_supply": [range_check(bounds["ranges"]["days_supply"])],
    }
    return pa.DataFrameSchema(
        {
            f.name: pa.Column(DTYPES[f.kind], checks=checks.get(f.name, []), nullable=True, description=f.description)
            for f in MEDS_FIELDS
        },
        name="medications_typed",
        strict=False,
    )


def raw_fractures_schema(date_formats: list[str]) -> pa.DataFrameSchema:
    either = frame_check(
        "site_or_icd10_required",
        pl.col("site").is_not_null() | pl.col("icd10").is_not_null(),
        "either site or icd10 is required",
    )
    return text_schema("fractures_raw", FRACTURES_FIELDS, date_formats, EVENT_WORDS, [either])


def typed_fractures_schema(as_of: dt.date) -> pa.DataFrameSchema:
    checks = {"fracture_date": [not_after("not_after_as_of", as_of)]}
    return pa.DataFrameSchema(
        {
            f.name: pa.Column(DTYPES[f.kind], checks=checks.get(f.name, []), nullable=True, description=f.description)
            for f in FRACTURES_FIELDS
        },
        name="fractures_typed",
        strict=False,
    )

"""Pandera schemas of the inputs, in two tiers (docs/inputs.md).

* ``raw_scans_schema``: the export as read, every cell text (or a native type of its field, ``types``). Checks that
  required cells are present and that each non-blank cell can be read as its type (same expressions as the cast in
  ``schemas.checks.reader``), plus the two row-level presence rules.
* ``typed_scans_schema``: the parsed values. Checks ranges, date order, age, FRAX hip ≤ MOF and
  exam-id uniqueness (after identical duplicates have been set aside).

Every check has a stable name; that name is what lands in ``quarantine.check``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandera.polars as pa
import polars as pl

from schemas.checks import column_check, frame_check, not_after, ordered, range_check, text_schema
from schemas.events import DXA_PROCEDURES_FIELDS, EVENT_WORDS, FRACTURES_FIELDS, MEDS_FIELDS
from schemas.population import POPULATION_FIELDS
from schemas.readers import DTYPES, Words
from schemas.scans import MEASURES, SCANS_FIELDS, SCORE_COLUMNS, SPINE_LEVEL_COUNT, sided
from schemas.sites import HIP_SITES, SIDES

Types = Mapping[str, pl.DataType]  # column → the native type it was given in (``schemas.readers.stays_typed``)


def raw_scans_schema(
    date_formats: list[str], words: Words, decimal: str = ".", types: Types | None = None
) -> pa.DataFrameSchema:
    """Tier 1: the export as read. ``words`` maps kind (sex, menopausal) → accepted words; ``types``: the
    columns given in a native type of their field (every other column is text)."""
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
    return text_schema("scans_raw", SCANS_FIELDS, date_formats, words, row_checks, only_when, decimal, types)


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
    for site in HIP_SITES:  # one value for the exam and one per hip: which one is the diagnosis? ask, never pick
        for kind, _, _ in MEASURES:
            sides = [sided(side, site, kind) for side in SIDES]
            extra[f"{site}_{kind}"] = [
                column_check(
                    "not_with_sided_values",
                    lambda c, sides=sides: pl.col(c).is_null() | pl.all_horizontal(pl.col(s).is_null() for s in sides),
                    f"{site}_{kind} given together with {' or '.join(sides)}: map one value per hip or one per exam",
                )
            ]
    columns: dict[str, pa.Column] = {}
    for f in SCANS_FIELDS:
        checks = list(extra.get(f.name, []))
        if f.range_key:
            checks.append(range_check(bounds["ranges"][f.range_key]))
        columns[f.name] = pa.Column(DTYPES[f.kind], checks=checks, nullable=True, description=f.description)
    columns[SPINE_LEVEL_COUNT] = pa.Column(pl.Int8, nullable=True, description="Vertebrae in spine_levels")
    return pa.DataFrameSchema(columns, name="scans_typed", strict=False)


def _typed_events_schema(name: str, fields, checks: dict[str, list]) -> pa.DataFrameSchema:
    """An event export's parsed values: each field in its type, nullable, with the checks named for it."""
    return pa.DataFrameSchema(
        {
            f.name: pa.Column(DTYPES[f.kind], checks=checks.get(f.name, []), nullable=True, description=f.description)
            for f in fields
        },
        name=name,
        strict=False,
    )


def raw_meds_schema(date_formats: list[str], decimal: str = ".", types: Types | None = None) -> pa.DataFrameSchema:
    return text_schema("medications_raw", MEDS_FIELDS, date_formats, EVENT_WORDS, [], decimal=decimal, types=types)


def typed_meds_schema(as_of: dt.date, bounds: dict[str, Any]) -> pa.DataFrameSchema:
    checks = {
        "event_date": [not_after("not_after_as_of", as_of)],
        "days_supply": [range_check(bounds["ranges"]["days_supply"])],
    }
    return _typed_events_schema("medications_typed", MEDS_FIELDS, checks)


def raw_fractures_schema(date_formats: list[str], decimal: str = ".", types: Types | None = None) -> pa.DataFrameSchema:
    either = frame_check(
        "site_or_icd10_required",
        pl.col("site").is_not_null() | pl.col("icd10").is_not_null(),
        "either site or icd10 is required",
    )
    return text_schema(
        "fractures_raw", FRACTURES_FIELDS, date_formats, EVENT_WORDS, [either], decimal=decimal, types=types
    )


def typed_fractures_schema(as_of: dt.date) -> pa.DataFrameSchema:
    checks = {"fracture_date": [not_after("not_after_as_of", as_of)]}
    return _typed_events_schema("fractures_typed", FRACTURES_FIELDS, checks)


def raw_dxa_procedures_schema(
    date_formats: list[str], decimal: str = ".", types: Types | None = None
) -> pa.DataFrameSchema:
    return text_schema(
        "dxa_procedures_raw", DXA_PROCEDURES_FIELDS, date_formats, EVENT_WORDS, [], decimal=decimal, types=types
    )


def typed_dxa_procedures_schema(as_of: dt.date) -> pa.DataFrameSchema:
    checks = {"procedure_date": [not_after("not_after_as_of", as_of)]}
    return _typed_events_schema("dxa_procedures_typed", DXA_PROCEDURES_FIELDS, checks)


def raw_population_schema(date_formats: list[str], words: Words, types: Types | None = None) -> pa.DataFrameSchema:
    """The roster as read: patient, sex and birth date present; every date and sex readable."""
    return text_schema("population_raw", POPULATION_FIELDS, date_formats, words, [], types=types)


def typed_population_schema(as_of: dt.date) -> pa.DataFrameSchema:
    """The roster's parsed values: dates in order (birth ≤ death, birth ≤ as-of, a span's start ≤ its end),
    and a patient's rows agreeing on sex, birth and death date (every row of a patient who disagrees fails,
    so the patient is never screened on one row's word against another's)."""

    def agrees(column: str) -> pa.Check:
        return column_check(
            "same_for_the_patient",
            lambda c: pl.col(c).drop_nulls().n_unique().over("patient_id") <= 1,
            f"the patient's rows give different {column} values",
        )

    checks = {
        "sex": [agrees("sex")],
        "birth_date": [not_after("not_after_as_of", as_of), agrees("birth_date")],
        "death_date": [ordered("not_before_birth_date", "birth_date", "death_date"), agrees("death_date")],
        "enrolled_to": [ordered("not_before_enrolled_from", "enrolled_from", "enrolled_to")],
    }
    return pa.DataFrameSchema(
        {
            f.name: pa.Column(DTYPES[f.kind], checks=checks.get(f.name, []), nullable=True, description=f.description)
            for f in POPULATION_FIELDS
        },
        name="population_typed",
        strict=False,
    )

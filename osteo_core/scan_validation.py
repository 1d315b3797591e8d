"""Scans export: text → typed values, duplicates set aside, every rule checked, bad rows quarantined.

Row accounting: every input row is exactly one of valid, quarantined (whole row, one quarantine row per
failing cell) or an identical duplicate of a kept copy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from osteo_core import parsing
from osteo_core.ingest import SOURCE_FILE, SOURCE_ROW
from osteo_core.profiles import Profile
from osteo_core.quarantine import ROW, failures, quarantine_rows
from schemas.scans import SCANS_FIELDS, SPINE_LEVEL_COUNT, raw_scans_schema, typed_scans_schema

_DERIVED = frozenset({"age_years"})  # typed age_years is the age at the exam, computed


@dataclass(frozen=True)
class ScanValidation:
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    quarantined_rows: int
    duplicates: int


def normalise_text(raw: pl.LazyFrame) -> pl.LazyFrame:
    """All canonical columns present (absent ones blank); canonical cells trimmed, empty → null."""
    present = set(raw.collect_schema().names())
    return raw.with_columns(
        parsing.blank_to_null(pl.col(f.name)).alias(f.name)
        if f.name in present
        else pl.lit(None, dtype=pl.Utf8).alias(f.name)
        for f in SCANS_FIELDS
    )


def _parser(kind: str, profile: Profile):
    return {
        "text": lambda e: e,
        "date": lambda e: parsing.date(e, profile.date_formats),
        "sex": lambda e: parsing.coded(e, profile.words["sex"]),
        "menopausal": lambda e: parsing.coded(e, profile.words["menopausal"]),
        "number": parsing.number,
        "boolean": parsing.boolean,
        "spine_levels": parsing.spine_levels,
    }[kind]


def parse_scans(text: pl.LazyFrame, profile: Profile) -> pl.LazyFrame:
    """Typed canonical columns, ``spine_level_count`` and the age at the exam (completed years).

    Unreadable cells become null here; the raw-tier checks report them.
    """
    typed = text.select(
        ROW,
        SOURCE_FILE,
        SOURCE_ROW,
        *(_parser(f.kind, profile)(pl.col(f.name)).alias(f.name) for f in SCANS_FIELDS),
        pl.col("birth_date").is_not_null().alias("_birth_given"),
    )
    from_birth = parsing.completed_years(pl.col("birth_date"), pl.col("exam_date"))
    age = (
        pl.when(pl.col("_birth_given"))
        .then(pl.when(pl.col("birth_date") <= pl.col("exam_date")).then(from_birth.cast(pl.Float64)))
        .otherwise(pl.col("age_years").floor())
    )
    return typed.with_columns(
        age.alias("age_years"),
        parsing.spine_level_count(pl.col("spine_levels")).alias(SPINE_LEVEL_COUNT),
    ).drop("_birth_given")


def _duplicate_mask(text: pl.LazyFrame, profile: Profile) -> pl.LazyFrame:
    """``_row`` and whether it is a later identical copy of an exam (same content after parsing)."""
    keys = [
        pl.coalesce(_parser(f.kind, profile)(pl.col(f.name)).cast(pl.Utf8), pl.col(f.name)).alias(f.name)
        for f in SCANS_FIELDS
    ]
    content = pl.struct(keys)
    identical = content.n_unique().over("exam_id") == 1
    later_copy = pl.int_range(pl.len()).over("exam_id") > 0
    return text.select(ROW, (pl.col("exam_id").is_not_null() & identical & later_copy).alias("_duplicate"))


def validate_scans(raw: pl.LazyFrame, profile: Profile, as_of: dt.date, bounds: dict[str, Any]) -> ScanValidation:
    """Validate the concatenated scans exports (text) of one run."""
    text = normalise_text(raw).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64)).collect()
    duplicate = _duplicate_mask(text.lazy(), profile).collect().get_column("_duplicate")
    kept_text = text.filter(duplicate.not_())
    typed = parse_scans(kept_text.lazy(), profile).collect()

    failed = pl.concat(
        [
            failures(raw_scans_schema(profile.date_formats, profile.words), kept_text),
            failures(typed_scans_schema(as_of, bounds), typed),
        ]
    )
    quarantine = quarantine_rows(
        failed, kept_text, "scans", {"patient_id": "patient_id", "exam_id": "exam_id"}, derived=_DERIVED
    )
    bad_rows = failed.get_column(ROW).unique()
    valid = typed.filter(pl.col(ROW).is_in(bad_rows.implode()).not_())
    return ScanValidation(
        valid=valid.drop(ROW),
        quarantine=quarantine,
        rows_in=text.height,
        quarantined_rows=bad_rows.len(),
        duplicates=int(duplicate.sum()),
    )

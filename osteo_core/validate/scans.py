"""Scans export: text → typed values, duplicates set aside, every rule checked, bad rows quarantined.

Row accounting: every input row is exactly one of valid, quarantined (whole row, one quarantine row per
failing cell) or an identical duplicate of a kept copy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from osteo_core.ingest.assemble import EXAM, Assembled
from osteo_core.ingest.profiles import Profile
from osteo_core.validate import rows as validation
from osteo_core.validate.quarantine import ROW
from osteo_core.validate.rows import (
    SOURCE_COLUMNS,
    Validated,
    check_rows,
    native_types,
    typed_columns,
    with_row_numbers,
)
from schemas import parsing
from schemas.input_checks import raw_scans_schema, typed_scans_schema
from schemas.scans import SCANS_FIELDS, SPINE_LEVEL_COUNT
from schemas.tables import QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_ROW

_DERIVED = frozenset({"age_years"})  # typed age_years is the age at the exam, computed
_BUCKET_SEED = 7


def normalise_text(raw: pl.LazyFrame) -> pl.LazyFrame:
    return validation.normalise_text(raw, SCANS_FIELDS)


def parse_scans(text: pl.LazyFrame, profile: Profile) -> pl.LazyFrame:
    """Typed canonical columns, ``spine_level_count`` and the age at the exam (completed years).

    Unreadable cells become null here; the raw-tier checks report them.
    """
    typed = text.select(
        *SOURCE_COLUMNS,
        *_typed_columns(profile, native_types(text.collect_schema(), SCANS_FIELDS)),
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


EXAM_ID_BUCKET = "_bucket"


def exam_id_pairs(rows: pl.LazyFrame, buckets: int) -> pl.LazyFrame:
    """Trimmed (exam id, patient id) of every row that has an exam id, with its exam-id hash bucket.

    Written by ingest from each file's raw layer, so the run-wide check reads each bucket's own files only.
    """
    trimmed = [parsing.blank_to_null(pl.col(c).cast(pl.Utf8)).alias(c) for c in ("exam_id", "patient_id")]
    return (
        rows.select(trimmed)
        .filter(pl.col("exam_id").is_not_null())
        .with_columns((pl.col("exam_id").hash(_BUCKET_SEED) % buckets).cast(pl.Int64).alias(EXAM_ID_BUCKET))
    )


def exam_ids_under_several_patients(pairs: pl.LazyFrame) -> pl.DataFrame:
    """Exam ids that appear with more than one (or with a blank) patient id: always conflicting copies.

    ``pairs`` are ``exam_id_pairs`` rows; run-wide, so the caller passes one exam-id bucket at a time.
    """
    return (
        pairs.group_by("exam_id")
        .agg(pl.col("patient_id").n_unique().alias("patients"))
        .filter(pl.col("patients") > 1)
        .select("exam_id")
        .collect()
    )


def _typed_columns(profile: Profile, types: dict[str, pl.DataType]) -> list[pl.Expr]:
    return typed_columns(SCANS_FIELDS, profile.date_formats, profile.words, profile.decimal, types)


def _duplicate_mask(text: pl.LazyFrame, profile: Profile) -> pl.LazyFrame:
    """``_row`` and whether it is a later identical copy of an exam (same content after parsing).

    Only rows whose exam id occurs more than once are parsed and compared (a small share of a registry).
    """
    typed = _typed_columns(profile, native_types(text.collect_schema(), SCANS_FIELDS))
    keys = [
        pl.coalesce(value.cast(pl.Utf8), pl.col(f.name).cast(pl.Utf8)).alias(f.name)
        for f, value in zip(SCANS_FIELDS, typed, strict=True)
    ]
    repeated = text.filter(pl.col("exam_id").is_not_null() & pl.col("exam_id").is_duplicated())
    # keys first, window second: a map_batches inside .over() would run once per exam id
    with_keys = repeated.sort(ROW).select(ROW, "exam_id", pl.struct(keys).alias("_content"))
    identical = pl.col("_content").n_unique().over("exam_id") == 1
    later_copy = pl.int_range(pl.len()).over("exam_id") > 0
    copies = with_keys.select(ROW, (identical & later_copy).alias("_duplicate"))
    return (
        text.select(ROW)
        .join(copies, on=ROW, how="left", maintain_order="left")
        .with_columns(pl.col("_duplicate").fill_null(False))
    )


def validate_scans(
    raw: pl.LazyFrame,
    profile: Profile,
    as_of: dt.date,
    bounds: dict[str, Any],
    conflicting_exam_ids: pl.Series | None = None,
    assembled: Assembled | None = None,
) -> Validated:
    """Validate scans exports (text): a whole run, or one patient partition of it.

    ``assembled``: the exams of a long export (``raw`` is then ``assembled.exams``): its problems
    quarantine their exams, and a failing cell is reported at the row it was read from."""
    text = with_row_numbers(normalise_text(raw))
    duplicate = _duplicate_mask(text.lazy(), profile).collect().get_column("_duplicate")
    kept_text = text.filter(duplicate.not_())
    typed = parse_scans(kept_text.lazy(), profile).collect()
    valid, quarantine, quarantined = check_rows(
        kept_text,
        typed,
        raw_scans_schema(profile.date_formats, profile.words, profile.decimal, native_types(text.schema, SCANS_FIELDS)),
        typed_scans_schema(as_of, bounds, conflicting_exam_ids),
        "scans",
        {"patient_id": "patient_id", "exam_id": "exam_id"},
        derived=_DERIVED,
        set_aside=None if assembled is None else _problem_rows(assembled, kept_text),
    )
    if assembled is not None:
        quarantine = pl.concat([_at_cell_rows(quarantine, assembled, kept_text), _problems(assembled, kept_text)])
    return Validated(valid, quarantine, text.height, quarantined, duplicates=int(duplicate.sum()))


def _problem_rows(assembled: Assembled, text: pl.DataFrame) -> pl.Series:
    return text.filter(pl.col(EXAM).is_in(assembled.problems.get_column(EXAM).implode())).get_column(ROW)


def _problems(assembled: Assembled, text: pl.DataFrame) -> pl.DataFrame:
    """A long export's assembly problems as quarantine rows, each at its own file and row."""
    ids = text.select(EXAM, "patient_id", "exam_id")
    return (
        assembled.problems.join(ids, on=EXAM, how="inner")
        .with_columns(pl.lit("scans").alias("input"))
        .select(*QUARANTINE_SCHEMA)
        .cast(QUARANTINE_SCHEMA)
    )


def _at_cell_rows(quarantine: pl.DataFrame, assembled: Assembled, text: pl.DataFrame) -> pl.DataFrame:
    """A long export's failing cell is reported at the file and row it was read from, not at its exam's
    first row (row-level failures stay there)."""
    exam_rows = text.select(EXAM, pl.col(SOURCE_FILE).alias("_exam_file"), pl.col(SOURCE_ROW).alias("_exam_row"))
    origins = assembled.origins.join(exam_rows, on=EXAM, how="inner").select(
        pl.col("_exam_file").alias(SOURCE_FILE),
        pl.col("_exam_row").alias(SOURCE_ROW),
        "column",
        pl.col(SOURCE_FILE).alias("_cell_file"),
        pl.col(SOURCE_ROW).alias("_cell_row"),
    )
    return (
        quarantine.join(origins, on=[SOURCE_FILE, SOURCE_ROW, "column"], how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("_cell_file", SOURCE_FILE).alias(SOURCE_FILE),
            pl.coalesce("_cell_row", SOURCE_ROW).alias(SOURCE_ROW),
        )
        .select(*QUARANTINE_SCHEMA)
    )

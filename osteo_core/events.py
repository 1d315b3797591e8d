"""The optional medications and fractures exports: validated like scans, then normalised.

Medications: each row is matched to a drug (generic, brand or ATC code), oncology products are told
apart, and the days it covers are set. Unrecognised drugs are kept and counted, never quarantined.
Fractures: each row gets a site (``site`` wins over ``icd10``), whether it is a fragility fracture, and
whether it is a new fracture (a later-encounter or sequela code is kept and ignored).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from osteo_core import reference
from osteo_core.validation import (
    SOURCE_COLUMNS,
    Validated,
    check_rows,
    normalise_text,
    typed_columns,
    with_row_numbers,
)
from schemas.events import (
    EVENT_WORDS,
    FRACTURES_FIELDS,
    MEDS_FIELDS,
    raw_fractures_schema,
    raw_meds_schema,
    typed_fractures_schema,
    typed_meds_schema,
)

# Text compared without case when telling identical event rows apart ("Prolia" is "PROLIA").
_CASELESS = frozenset({"drug"})


def _content(name: str) -> pl.Expr:
    """A canonical value as compared between rows: parsed where it parses, else as written."""
    value = pl.coalesce(name, f"_text_{name}")
    return (value.str.to_lowercase() if name in _CASELESS else value).alias(name)


def _validate(raw, fields, date_formats, raw_schema, typed_schema, name) -> Validated:
    """Both Pandera tiers over one input; identical rows (every canonical value equal after parsing, the
    drug name without case) are set aside first: the first copy is validated, the others counted."""
    text = with_row_numbers(normalise_text(raw, fields))
    typed_all = text.lazy().select(*SOURCE_COLUMNS, *typed_columns(fields, date_formats, EVENT_WORDS)).collect()
    as_text = typed_all.select(pl.col(f.name).cast(pl.Utf8) for f in fields).hstack(
        text.select(pl.col(f.name).alias(f"_text_{f.name}") for f in fields)
    )
    duplicate = as_text.select(pl.struct([_content(f.name) for f in fields]).is_first_distinct().not_()).to_series()
    kept, typed = text.filter(duplicate.not_()), typed_all.filter(duplicate.not_())
    valid, quarantine, quarantined = check_rows(
        kept, typed, raw_schema, typed_schema, name, {"patient_id": "patient_id", "exam_id": None}
    )
    return Validated(valid, quarantine, text.height, quarantined, duplicates=int(duplicate.sum()))


def validate_meds(raw: pl.LazyFrame, date_formats: list[str], as_of: dt.date, bounds: dict[str, Any]) -> Validated:
    return _validate(
        raw, MEDS_FIELDS, date_formats, raw_meds_schema(date_formats), typed_meds_schema(as_of, bounds), "meds"
    )


def validate_fractures(raw: pl.LazyFrame, date_formats: list[str], as_of: dt.date) -> Validated:
    return _validate(
        raw,
        FRACTURES_FIELDS,
        date_formats,
        raw_fractures_schema(date_formats),
        typed_fractures_schema(as_of),
        "fractures",
    )


def classify_meds(meds: pl.LazyFrame) -> pl.LazyFrame:
    """Valid medication rows + ``generic``, ``drug_class``, ``oncology``, ``osteoporosis_treatment``,
    ``coverage_days`` and ``coverage_end`` (exclusive: covered on event_date … coverage_end − 1)."""
    lookup = reference.drug_lookup().lazy()
    matched = meds.with_columns(reference.drug_key(pl.col("drug")).alias("key")).join(lookup, on="key", how="left")
    dose = pl.col("dose_mg")
    oncology = pl.col("oncology_brand").fill_null(False) | (
        pl.col("oncology_dose_mg").is_not_null() & (dose == pl.col("oncology_dose_mg")).fill_null(False)
    )
    default_days = (
        pl.when(pl.col("iv_dose_mg").is_not_null() & (dose == pl.col("iv_dose_mg")).fill_null(False))
        .then(pl.col("iv_coverage_days"))
        .otherwise(pl.col("coverage_days"))
    )
    return (
        matched.with_columns(
            oncology.alias("oncology"),
            pl.coalesce(pl.col("days_supply"), default_days).cast(pl.Int64).alias("coverage_days"),
        )
        .with_columns(
            (pl.col("generic").is_not_null() & pl.col("oncology").not_()).alias("osteoporosis_treatment"),
            (pl.col("event_date") + pl.duration(days=pl.col("coverage_days"))).alias("coverage_end"),
        )
        .drop("key", "oncology_brand", "iv_dose_mg", "iv_coverage_days", "oncology_dose_mg", "route")
    )


def classify_fractures(fractures: pl.LazyFrame) -> pl.LazyFrame:
    """Valid fracture rows + ``fracture_site``, ``fragility`` and ``new_fracture``."""
    codes = reference.fracture_codes()
    by_length: dict[int, dict[str, str]] = {}
    for prefix, site in codes["prefixes"].items():
        by_length.setdefault(len(prefix), {})[prefix] = site
    icd = pl.col("icd10")
    from_code = pl.coalesce(
        [
            icd.str.slice(0, length).replace_strict(mapping, default=None, return_dtype=pl.Utf8)
            for length, mapping in sorted(by_length.items(), reverse=True)
        ]
        + [pl.when(icd.is_not_null()).then(pl.lit("other"))]
    )
    site = pl.coalesce(pl.col("site"), from_code)
    later_encounter = icd.str.slice(6, 1).is_in(codes["encounters"]["later_7th_characters"]).fill_null(False)
    fragile = [s for s, is_fragility in codes["sites"].items() if is_fragility]
    return fractures.with_columns(site.alias("fracture_site")).with_columns(
        pl.col("fracture_site").is_in(fragile).alias("fragility"),
        later_encounter.not_().alias("new_fracture"),
    )


def unrecognised_drugs(meds: pl.DataFrame) -> dict[str, Any]:
    """Rows whose drug is not an osteoporosis drug (kept, ignored), counted per normalised name."""
    unknown = meds.filter(pl.col("generic").is_null())
    per_name = unknown.group_by(reference.drug_key(pl.col("drug")).alias("drug")).len()
    return {"rows": unknown.height, "counts": {r["drug"]: r["len"] for r in per_name.iter_rows(named=True)}}

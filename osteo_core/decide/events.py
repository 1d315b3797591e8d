"""Valid medication and fracture events, interpreted: the drug and its class, oncology products told
apart, the days a dose covers; the fracture site, whether it is a fragility fracture and a new one.
Unrecognised drugs are kept and counted, never quarantined. Code lists live in ``data/reference/``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from osteo_core import reference


def classify_meds(meds: pl.LazyFrame) -> pl.LazyFrame:
    """Valid medication rows + ``generic``, ``drug_class``, ``oncology``, ``osteoporosis_treatment``,
    ``coverage_days`` and ``coverage_end`` (exclusive: covered on event_date … coverage_end − 1)."""
    lookup = reference.drug_lookup().lazy()
    matched = meds.with_columns(reference.drug_key(pl.col("drug")).alias("key")).join(lookup, on="key", how="left")
    dose = pl.col("dose_mg")
    oncology = pl.col("oncology_brand").fill_null(False) | dose.is_in(pl.col("oncology_doses_mg")).fill_null(False)
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
        .drop(
            "key", "oncology_brand", "iv_dose_mg", "iv_coverage_days", "oncology_dose_mg", "oncology_doses_mg", "route"
        )
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


def is_fracture() -> pl.Expr:
    """A fractures row that is a fracture: a site word, or a fracture code (``fracture_codes.toml`` ``[fhir]
    fracture_prefixes``: the S-chapter fracture categories, M80, M48.5). Not any code: M81 is an osteoporosis
    diagnosis without a fracture, which the quality measures read as such."""
    code = pl.col("icd10")
    prefixes = reference.fracture_codes()["fhir"]["fracture_prefixes"]
    return (code.is_null() | pl.any_horizontal([code.str.starts_with(p) for p in prefixes])).fill_null(False)


def unrecognised_drugs(meds: pl.DataFrame) -> dict[str, Any]:
    """Rows whose drug is not an osteoporosis drug (kept, ignored), counted per normalised name."""
    unknown = meds.filter(pl.col("generic").is_null())
    per_name = unknown.group_by(reference.drug_key(pl.col("drug")).alias("drug")).len()
    return {"rows": unknown.height, "counts": {r["drug"]: r["len"] for r in per_name.iter_rows(named=True)}}

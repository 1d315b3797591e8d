"""Reference data under ``data/reference/``: drugs, fracture codes and care-gap parameters."""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl

from osteo_core.resources import OUTREACH, shipped_toml

DRUGS = "reference/drugs.toml"
FRACTURE_CODES = "reference/fracture_codes.toml"
CARE_GAPS = "reference/care_gaps.toml"
DXA_LOINC = "reference/dxa_loinc.toml"


def versions() -> dict[str, str]:
    """name → version of every reference file, for the manifest."""
    return {
        shipped_toml(path)["reference"]["name"]: shipped_toml(path)["reference"]["version"]
        for path in (DRUGS, FRACTURE_CODES, CARE_GAPS, DXA_LOINC, OUTREACH)
    }


def drug_key(expr: pl.Expr) -> pl.Expr:
    """How a drug cell is matched: trimmed, lower case, inner whitespace collapsed."""
    return expr.str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")


@cache
def drug_lookup() -> pl.DataFrame:
    """One row per recognised word (generic, synonym, brand, oncology brand, ATC code)."""
    rows: list[dict[str, Any]] = []
    for drug in shipped_toml(DRUGS)["drugs"]:
        common = {
            "generic": drug["generic"],
            "drug_class": drug["class"],
            "route": drug["route"],
            "coverage_days": drug["coverage_days"],
            "iv_dose_mg": float(drug["iv_dose_mg"]) if "iv_dose_mg" in drug else None,
            "iv_coverage_days": drug.get("iv_coverage_days"),
            "oncology_dose_mg": float(drug["oncology_dose_mg"]) if "oncology_dose_mg" in drug else None,
        }
        words = [drug["generic"], *drug["synonyms"], *drug["brands"], *drug["atc"]]
        rows += [{"key": w.lower(), "oncology_brand": False, **common} for w in words]
        rows += [{"key": w.lower(), "oncology_brand": True, **common} for w in drug.get("oncology_brands", [])]
    frame = pl.DataFrame(rows)
    duplicated = frame.filter(pl.col("key").is_duplicated()).get_column("key").to_list()
    if duplicated:
        raise ValueError(f"{DRUGS}: words listed for two drugs: {duplicated}")
    return frame


@cache
def fracture_codes() -> dict[str, Any]:
    return shipped_toml(FRACTURE_CODES)


def care_gap_parameters() -> dict[str, Any]:
    return shipped_toml(CARE_GAPS)


LOINC_MEASURES = ("t", "z", "bmd")


@cache
def dxa_loinc() -> pl.DataFrame:
    """The LOINC codes of DXA results: code → system, site (null when the code does not say femoral neck
    or total hip), side (null when unsided), measure (t/z/bmd), name, and whether public data misuses it.

    For the long and FHIR exports (issue 13): a code outside this table is not a DXA result we read.
    """
    from schemas.tables import SIDES, SITES

    rows = shipped_toml(DXA_LOINC)["code"]
    frame = pl.DataFrame(
        [
            {
                "code": r["code"],
                "system": r["system"],
                "site": r["site"] or None,
                "side": r["side"] or None,
                "measure": r["measure"],
                "name": r["name"],
                "misused": bool(r.get("misused", False)),
            }
            for r in rows
        ],
        schema={
            "code": pl.Utf8,
            "system": pl.Utf8,
            "site": pl.Utf8,
            "side": pl.Utf8,
            "measure": pl.Utf8,
            "name": pl.Utf8,
            "misused": pl.Boolean,
        },
    )
    problems = frame.filter(
        pl.col("code").is_duplicated()
        | ~pl.col("measure").is_in(LOINC_MEASURES)
        | ~(pl.col("site").is_null() | pl.col("site").is_in(SITES))
        | ~(pl.col("side").is_null() | pl.col("side").is_in(SIDES))
    )
    if not problems.is_empty():
        raise ValueError(f"{DXA_LOINC}: bad rows for codes {problems.get_column('code').to_list()}")
    return frame


@cache
def dxa_words() -> dict[str, dict[str, tuple[str, ...]]]:
    """``site``, ``hip_site`` and ``side`` → value → the lower-case words in a text that name it."""
    words = shipped_toml(DXA_LOINC)["words"]
    return {kind: {value: tuple(w.lower() for w in ws) for value, ws in table.items()} for kind, table in words.items()}


@cache
def dxa_units() -> dict[str, tuple[str, ...]]:
    """measure (t, z, bmd) → the units accepted for it, lower case."""
    return {measure: tuple(u.lower() for u in units) for measure, units in shipped_toml(DXA_LOINC)["units"].items()}

"""Reference data under ``data/reference/``: drugs, fracture codes and care-gap parameters."""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl

from osteo_core.resources import shipped_toml

DRUGS = "reference/drugs.toml"
FRACTURE_CODES = "reference/fracture_codes.toml"
CARE_GAPS = "reference/care_gaps.toml"


def versions() -> dict[str, str]:
    """name → version of every reference file, for the manifest."""
    return {
        shipped_toml(path)["reference"]["name"]: shipped_toml(path)["reference"]["version"]
        for path in (DRUGS, FRACTURE_CODES, CARE_GAPS)
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

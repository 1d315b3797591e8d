"""Schemas of the published tables (CONTRACT.md §3), with the descriptions ``osteo sql --tables`` shows."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from osteo_core.care_gaps import GAPS_SCHEMA, PATIENTS_SCHEMA
from osteo_core.coverage import INTERVALS_SCHEMA
from osteo_core.quarantine import QUARANTINE_SCHEMA

_SCREENING: dict[str, tuple[pl.DataType, str]] = {
    "exam_id": (pl.Utf8, "DXA exam identifier"),
    "patient_id": (pl.Utf8, "Patient identifier"),
    "exam_date": (pl.Date, "Date of the exam"),
    "sex": (pl.Utf8, "F or M"),
    "age_years": (pl.Int64, "Age at the exam, completed years"),
    "diagnostic_basis": (pl.Utf8, "t_score or z_score (RULES.md §1)"),
    "lowest_t_score": (pl.Float64, "Lowest usable T-score, rounded to one decimal"),
    "lowest_t_site": (pl.Utf8, "Site of the lowest T-score"),
    "who_category": (pl.Utf8, "normal / osteopenia / osteoporosis / severe_osteoporosis (basis t_score)"),
    "lowest_z_score": (pl.Float64, "Lowest usable Z-score, rounded to one decimal"),
    "z_category": (pl.Utf8, "within_expected / below_expected (basis z_score)"),
    "frax_mof_adjusted": (pl.Float64, "FRAX major osteoporotic %, after glucocorticoid adjustment"),
    "frax_hip_adjusted": (pl.Float64, "FRAX hip %, after glucocorticoid adjustment"),
    "eligibility": (pl.Utf8, "eligible / not_eligible / needs_frax / specialist_review"),
    "eligibility_reasons": (pl.List(pl.Utf8), "Reason codes, in rule order; empty when none"),
    "recommendation": (
        pl.Utf8,
        "oral_bisphosphonate / denosumab / calculate_frax / secondary_causes_workup / lifestyle_and_monitor"
        " / anabolic_referral (aace2020)",
    ),
    "next_dxa_due": (pl.Date, "Date the next DXA is due"),
    "rule_set": (pl.Utf8, "Name@version of the rule set applied"),
}

_QUARANTINE_DESCRIPTIONS = {
    "source_file": "Input file the row came from",
    "source_row": "1-based data row in that file",
    "input": "scans / meds / fractures",
    "column": "Failing column (null for row-level problems)",
    "check": "Name of the failed check",
    "value": "The offending value as text",
    "patient_id": "Patient identifier, when readable",
    "exam_id": "Exam identifier, when readable",
}

_PATIENTS_DESCRIPTIONS = {
    "patient_id": "Patient identifier",
    "latest_exam_id": "Latest exam on or before the as-of date (ties: highest exam_id); null if no scan",
    "latest_exam_date": "Date of that exam",
    "who_category": "WHO category of the latest exam",
    "eligibility": "Eligibility of the latest exam",
    "recommendation": "Recommendation of the latest exam",
    "next_dxa_due": "Next DXA due after the latest exam",
    "on_treatment": "Osteoporosis-drug coverage on the as-of date",
    "last_treatment_date": "Latest osteoporosis-drug event on or before the as-of date",
    "last_treatment_drug": "Generic name of that drug",
}
_GAPS_DESCRIPTIONS = {
    "patient_id": "Patient identifier",
    "gap": "denosumab_lapse / untreated_high_risk / post_fracture_untreated / significant_bmd_loss / overdue_dxa",
    "since": "Date the gap opened",
    "exam_id": "Exam the gap refers to (null for denosumab_lapse and post_fracture_untreated)",
    "priority": "1 = most urgent",
    "detail": "Short explanation",
}
_INTERVALS_DESCRIPTIONS = {
    "patient_id": "Patient identifier",
    "interval_start": "First day covered by osteoporosis treatment",
    "interval_end": "First day no longer covered (exclusive)",
    "days_covered": "Days covered up to and including the as-of date",
    "drugs": "Generic names given in the interval",
}

TABLE_DESCRIPTIONS = {
    "screening": "One row per valid exam: WHO category, eligibility, recommendation, next DXA",
    "quarantine": "One row per failing cell of a rejected input row",
    "patients": "One row per patient: latest exam's decision and treatment status on the as-of date",
    "care_gaps": "One row per open care gap, highest priority first",
    "treatment_intervals": "Merged stretches of osteoporosis-drug coverage per patient",
    "untreated_high_risk": "untreated_high_risk gaps joined to the patient's latest screening row",
    "medications": "Valid medication events with drug, class, oncology flag and coverage",
    "fractures": "Valid fracture events with site, fragility and new-fracture flags",
}

SCREENING_COLUMNS = tuple(_SCREENING)
SCREENING_SCHEMA = {name: dtype for name, (dtype, _) in _SCREENING.items()}

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "screening": {name: text for name, (_, text) in _SCREENING.items()},
    "quarantine": _QUARANTINE_DESCRIPTIONS,
    "patients": _PATIENTS_DESCRIPTIONS,
    "care_gaps": _GAPS_DESCRIPTIONS,
    "treatment_intervals": _INTERVALS_DESCRIPTIONS,
}


def _schema(name: str, dtypes: dict[str, pl.DataType], descriptions: dict[str, str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {col: pa.Column(dtype, nullable=True, description=descriptions[col]) for col, dtype in dtypes.items()},
        name=name,
        strict=True,
        ordered=True,
    )


PUBLISHED_SCHEMAS = {
    "screening": _schema("screening", SCREENING_SCHEMA, COLUMN_DESCRIPTIONS["screening"]),
    "quarantine": _schema("quarantine", QUARANTINE_SCHEMA, _QUARANTINE_DESCRIPTIONS),
    "patients": _schema("patients", PATIENTS_SCHEMA, _PATIENTS_DESCRIPTIONS),
    "care_gaps": _schema("care_gaps", GAPS_SCHEMA, _GAPS_DESCRIPTIONS),
    "treatment_intervals": _schema("treatment_intervals", INTERVALS_SCHEMA, _INTERVALS_DESCRIPTIONS),
}

"""The scans export's fields (docs/inputs.md, scans): names, kinds, descriptions, required headers and the
words accepted for coded fields. Plain data: ``schemas.input_checks`` builds the Pandera schemas from it."""

from __future__ import annotations

from schemas.fields import Field, fields_of_kind
from schemas.sites import HIP_SITES, SIDES, SITES, UNSPECIFIED_SITE

MEASURES = (("t", "T-score", "t_score"), ("z", "Z-score", "z_score"), ("bmd", "BMD g/cm²", "bmd"))


def sided(side: str, site: str, kind: str) -> str:
    """``left_total_hip_t``: one hip's value, for exports of both hips (dual-femur scans)."""
    return f"{side}_{site}_{kind}"


SIDED_COLUMNS = tuple(sided(side, site, kind) for site in HIP_SITES for kind, _, _ in MEASURES for side in SIDES)
# a T-score whose site the export does not state: read only when the profile says so ([scores] unsited_t)
UNSPECIFIED_T = f"{UNSPECIFIED_SITE}_t"
# any T- or Z-score, unsided or of one hip: an exam needs at least one
SCORE_COLUMNS = (
    tuple(f"{site}_{kind}" for site in SITES for kind in ("t", "z"))
    + tuple(sided(side, site, kind) for site in HIP_SITES for kind in ("t", "z") for side in SIDES)
    + (UNSPECIFIED_T,)
)
UNSIDED_SCORE_COLUMNS = tuple(c for c in SCORE_COLUMNS if c not in SIDED_COLUMNS)

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
        for kind, label, rk in MEASURES
    ),
    *(
        Field(sided(side, site, kind), "number", f"{site} {label}, {side} hip (instead of {site}_{kind})", range_key=rk)
        for site in HIP_SITES
        for kind, label, rk in MEASURES
        for side in SIDES
    ),
    Field(
        UNSPECIFIED_T,
        "number",
        'T-score of a site the export does not state (read only with a profile\'s [scores] unsited_t = "use";'
        " the WHO category's lowest T-score, never BMD change)",
        range_key="t_score",
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
# What a long export's patient rows may say of the patient beside the scans fields (a FHIR Patient): whether and
# when she died, and her medical record number. Never exam fields: read into the partition's deaths (gaps.deaths).
PATIENT_FACTS = ("deceased", "death_date", "mrn")
REQUIRED_HEADERS = tuple(f.name for f in SCANS_FIELDS if f.required)
AGE_SOURCES = ("birth_date", "age_years")  # at least one of these headers must be present

SEX_WORDS: dict[str, str | None] = {"f": "F", "female": "F", "m": "M", "male": "M"}
MENOPAUSAL_WORDS: dict[str, str | None] = {"pre": "pre", "peri": "peri", "post": "post", "unknown": None}

# Columns added by the pipeline to the typed frame (not in the export).
SPINE_LEVEL_COUNT = "spine_level_count"


BOOLEAN_COLUMNS = fields_of_kind(SCANS_FIELDS, "boolean")

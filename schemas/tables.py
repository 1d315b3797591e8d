"""The one registry of the tables a run publishes: their names, columns, types and descriptions (what names a
gap or an input kind takes it from its own registry, ``schemas.gaps``, ``schemas.inputs``). Plain data (no
Pandera): the engine, the catalog and ``osteo sql --tables`` read it, and ``schemas.published`` builds the Pandera
schemas that validate what is published from it.
"""

from __future__ import annotations

import polars as pl

from schemas.gaps import GAP_NAMES, GAP_VIEWS, GAPS, SCREENING_DUE

SOURCE_FILE = "source_file"  # every input row keeps where it came from: file, 1-based data row
SOURCE_ROW = "source_row"

TABLES = (  # OUT/<table>.parquet
    "screening",
    "quarantine",
    "patients",
    "care_gaps",
    "treatment_intervals",
    "measure_members",
    "measure_summary",
    "closed_gaps",
)
RUN_WIDE_TABLES = ("measure_summary",)  # made once at publish from the merged tables, not per partition
# valid events, and the roster's patients (when a roster is given): in the run folder and the catalog only
EVENT_TABLES = ("medications", "fractures", "population", "dxa_procedures")
CATALOG_TABLES = (*TABLES, *EVENT_TABLES)
# not part of any run: OUT/outreach.sqlite, the log of outreach marks (osteo worklist mark; a SQLite database, one
# transaction a batch), read live by osteo sql and osteo worklist, never written into a run folder or osteo.duckdb
LIVE_TABLES = ("outreach",)

QUARANTINE_SCHEMA = {
    SOURCE_FILE: pl.Utf8,
    SOURCE_ROW: pl.Int64,
    "input": pl.Utf8,
    "column": pl.Utf8,
    "check": pl.Utf8,
    "value": pl.Utf8,
    "patient_id": pl.Utf8,
    "exam_id": pl.Utf8,
}
FOUND_GAPS_SCHEMA = {  # what a partition finds
    "patient_id": pl.Utf8,
    "gap": pl.Utf8,
    "since": pl.Date,
    "exam_id": pl.Utf8,
    "priority": pl.Int64,
    "detail": pl.Utf8,
}
LIFECYCLE_SCHEMA = {"first_seen": pl.Date, "status": pl.Utf8}  # filled at publish, against the last published run
GAPS_SCHEMA = FOUND_GAPS_SCHEMA | LIFECYCLE_SCHEMA
CLOSED_SCHEMA = {
    "patient_id": pl.Utf8,
    "gap": pl.Utf8,
    "since": pl.Date,
    "first_seen": pl.Date,
    "closed_on": pl.Date,
    "closed_because": pl.Utf8,
    "closed_detail": pl.Utf8,
}
OUTREACH_SCHEMA = {
    "mark": pl.Int64,
    "marked_at": pl.Datetime("us", "UTC"),
    "patient_id": pl.Utf8,
    "gap": pl.Utf8,
    "first_seen": pl.Date,
    "status": pl.Utf8,
    "hide_until": pl.Date,
    "note": pl.Utf8,
    "marked_by": pl.Utf8,
    "run_id": pl.Utf8,
}
PATIENTS_SCHEMA = {
    "patient_id": pl.Utf8,
    "mrn": pl.Utf8,
    "latest_exam_id": pl.Utf8,
    "latest_exam_date": pl.Date,
    "who_category": pl.Utf8,
    "eligibility": pl.Utf8,
    "recommendation": pl.Utf8,
    "next_dxa_due": pl.Date,
    "on_treatment": pl.Boolean,
    "last_treatment_date": pl.Date,
    "last_treatment_drug": pl.Utf8,
}
INTERVALS_SCHEMA = {
    "patient_id": pl.Utf8,
    "interval_start": pl.Date,
    "interval_end": pl.Date,
    "days_covered": pl.Int64,
    "drugs": pl.List(pl.Utf8),
}
MEMBERS_SCHEMA = {
    "measure": pl.Utf8,
    "version": pl.Utf8,
    "patient_id": pl.Utf8,
    "in_denominator": pl.Boolean,
    "excluded": pl.Boolean,
    "exclusion_reason": pl.Utf8,
    "in_numerator": pl.Boolean,
    "evidence_date": pl.Date,
    "evidence": pl.Utf8,
}
SUMMARY_SCHEMA = {
    "measure": pl.Utf8,
    "version": pl.Utf8,
    "denominator": pl.Int64,
    "exclusions": pl.Int64,
    "numerator": pl.Int64,
    "rate": pl.Float64,
}

_SCREENING: dict[str, tuple[pl.DataType, str]] = {
    "exam_id": (pl.Utf8, "DXA exam identifier"),
    "patient_id": (pl.Utf8, "Patient identifier"),
    "exam_date": (pl.Date, "Date of the exam"),
    "sex": (pl.Utf8, "F or M"),
    "age_years": (pl.Int64, "Age at the exam, completed years"),
    "diagnostic_basis": (pl.Utf8, "t_score or z_score (docs/rules.md §1)"),
    "lowest_t_score": (pl.Float64, "Lowest usable T-score, rounded to one decimal"),
    "lowest_t_site": (
        pl.Utf8,
        "Site of the lowest T-score: spine, total_hip, femoral_neck, radius33, or unspecified (a T-score the export"
        ' does not place, read only with a profile\'s [scores] unsited_t = "use")',
    ),
    "lowest_t_side": (pl.Utf8, "left / right: the hip that gave the lowest T-score (exports of both hips); else null"),
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
    "input": "scans / meds / fractures / population / dxa_procedures",
    "column": "Failing column (null for row-level problems)",
    "check": "Name of the failed check",
    "value": "The offending value as text",
    "patient_id": "Patient identifier, when readable",
    "exam_id": "Exam identifier, when readable",
}

MRN_DESCRIPTION = (
    "Medical record number the export gives (a FHIR Patient's identifier of type MR; several different: the"
    " first read); null when it gives none (a CSV export)"
)
_PATIENTS_DESCRIPTIONS = {
    "patient_id": "Patient identifier",
    "mrn": MRN_DESCRIPTION,
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
_WITHOUT_EXAM = [gap.name for gap in GAPS if not gap.exam]
_GAPS_DESCRIPTIONS = {
    "patient_id": "Patient identifier",
    "gap": " / ".join(GAP_NAMES),
    "since": "Date the gap opened",
    "exam_id": f"Exam the gap refers to (null for {', '.join(_WITHOUT_EXAM[:-1])} and {_WITHOUT_EXAM[-1]})",
    "priority": "1 = most urgent",
    "detail": "Short explanation",
    "first_seen": "As-of date of the first published run, in an unbroken series, with this gap open",
    "status": "new (not open in the last published run) / persisting",
}
_CLOSED_DESCRIPTIONS = {
    "patient_id": "Patient identifier",
    "gap": "The gap that was open in the last published run and is not now",
    "since": "Date the gap had opened",
    "first_seen": "As-of date of the first published run that had it open",
    "closed_on": "As-of date of this run",
    "closed_because": "input_missing / left_population / treatment_started / dxa_done / window_passed /"
    " no_longer_eligible",
    "closed_detail": "For left_population: died (not alive on the as-of date), disenrolled (alive, not enrolled) or"
    f" left_roster (a {SCREENING_DUE.name} gap of a patient the roster no longer lists); else blank",
}
_OUTREACH_DESCRIPTIONS = {
    "mark": "1, 2, 3 … in the order the marks were recorded (the latest mark of a gap is its status)",
    "marked_at": "When the mark was recorded (UTC)",
    "patient_id": "Patient identifier",
    "gap": "The open gap the mark is about",
    "first_seen": "first_seen of that gap when marked: the mark belongs to this episode of the gap",
    "status": "contacted / scheduled / declined / not_appropriate / reopened (docs/worklist.md)",
    "hide_until": "declined / not_appropriate: hidden from the default worklist while the as-of date is before this",
    "note": "Free text given with --note (keep clinical detail in the record system)",
    "marked_by": "Who recorded it (--by, else the login name)",
    "run_id": "The published run in which the gap was open when marked",
}
_WORKLIST_OUTREACH_DESCRIPTIONS = {  # the live worklist view's own columns, after the roster's routing columns
    "days_open": "Days since first_seen, on the run's as-of date",
    "outreach_status": "Status of the latest outreach mark of this episode of the gap (same first_seen; null: none)",
    "outreach_mark": "Its number in the outreach log (the later of two marks has the higher number)",
    "outreach_marked_at": "When that mark was recorded (UTC)",
    "outreach_by": "Who recorded it",
    "outreach_note": "Its note",
    "hide_until": "declined / not_appropriate: hidden from the default worklist until this date",
    "hidden": "Hidden from the default osteo worklist on the run's as-of date (still in care_gaps and the measures)",
}
_INTERVALS_DESCRIPTIONS = {
    "patient_id": "Patient identifier",
    "interval_start": "First day covered by osteoporosis treatment",
    "interval_end": "First day no longer covered (exclusive)",
    "days_covered": "Days covered up to and including the as-of date",
    "drugs": "Generic names given in the interval",
}
_MEMBERS_DESCRIPTIONS = {
    "measure": "Measure id (OMW, MIPS418, MIPS039; docs/measures.md)",
    "version": "Version of the measure spec (data/measures/)",
    "patient_id": "Patient identifier (a roster patient of the measure's sex and age band)",
    "in_denominator": "Meets the denominator: for fracture measures, a fracture in the intake period and the enrolment",
    "excluded": "Excluded from the denominator (exclusion_reason says why)",
    "exclusion_reason": "The first exclusion that applies, in spec order; null when none",
    "in_numerator": "Meets the numerator (only when in the denominator and not excluded)",
    "evidence_date": "Date of the event that decided the numerator or the exclusion",
    "evidence": "What decided it (DXA exam, osteoporosis drug: NAME, osteoporosis code …), or why not",
}
_SUMMARY_DESCRIPTIONS = {
    "measure": "Measure id",
    "version": "Version of the measure spec",
    "denominator": "Patients in the denominator (exclusions included)",
    "exclusions": "Of those, excluded",
    "numerator": "Of the rest, meeting the numerator",
    "rate": "numerator / (denominator - exclusions); null when that is 0",
}

TABLE_DESCRIPTIONS = {
    "screening": "One row per valid exam: WHO category, eligibility, recommendation, next DXA",
    "quarantine": "One row per failing cell of a rejected input row",
    "patients": "One row per patient: latest exam's decision and treatment status on the as-of date",
    "care_gaps": "One row per open care gap, highest priority first",
    "treatment_intervals": "Merged stretches of osteoporosis-drug coverage per patient",
    "measure_members": "One row per quality measure and roster patient it considers: denominator, exclusion, numerator",
    "measure_summary": "One row per quality measure: denominator, exclusions, numerator, rate (empty without a roster)",
    "closed_gaps": "One row per gap open in the last published run and not in this one, with why it closed",
    **{name: f"{name} gaps joined to the patient's latest screening row" for name in GAP_VIEWS},
    "medications": "Valid medication events with drug, class, oncology flag and coverage",
    "fractures": "Valid fracture events with site, fragility and new-fracture flags",
    "population": "One row per patient of the population roster: alive and enrolled on the as-of date, routing",
    "dxa_procedures": "Valid completed DXA procedures of a FHIR export (a DXA done, with or without a result)",
    "worklist": "One row per open care gap with the roster's routing columns (no clinical text beyond the gap); "
    "osteo sql adds the latest outreach status (live)",
    "outreach": "The outreach log (OUT/outreach.sqlite, live): one row per mark, in the order recorded",
}

SCREENING_COLUMNS = tuple(_SCREENING)
SCREENING_SCHEMA = {name: dtype for name, (dtype, _) in _SCREENING.items()}

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "screening": {name: text for name, (_, text) in _SCREENING.items()},
    "quarantine": _QUARANTINE_DESCRIPTIONS,
    "patients": _PATIENTS_DESCRIPTIONS,
    "care_gaps": _GAPS_DESCRIPTIONS,
    "treatment_intervals": _INTERVALS_DESCRIPTIONS,
    "measure_members": _MEMBERS_DESCRIPTIONS,
    "measure_summary": _SUMMARY_DESCRIPTIONS,
    "closed_gaps": _CLOSED_DESCRIPTIONS,
    "outreach": _OUTREACH_DESCRIPTIONS,
}

DTYPES: dict[str, dict[str, pl.DataType]] = {
    "screening": SCREENING_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "patients": PATIENTS_SCHEMA,
    "care_gaps": GAPS_SCHEMA,
    "treatment_intervals": INTERVALS_SCHEMA,
    "measure_members": MEMBERS_SCHEMA,
    "measure_summary": SUMMARY_SCHEMA,
    "closed_gaps": CLOSED_SCHEMA,
    "outreach": OUTREACH_SCHEMA,
}

_SOURCE_DESCRIPTIONS = {
    SOURCE_FILE: "Input file the row came from",
    SOURCE_ROW: "1-based data row in that file",
    "patient_id": "Patient identifier",
}
EVENT_COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "medications": _SOURCE_DESCRIPTIONS
    | {
        "drug": "Drug as exported: generic name, brand or ATC code",
        "event_date": "Date dispensed or administered",
        "days_supply": "Days supplied, as exported (blank: the drug's default coverage applies)",
        "dose_mg": "Dose in mg, as exported",
        "generic": "Generic name the drug was recognised as (blank: not an osteoporosis drug)",
        "drug_class": "bisphosphonate, denosumab, SERM or anabolic",
        "coverage_days": "Days this event covers",
        "oncology": "An oncology product (Xgeva, Zometa, or their oncology doses): never osteoporosis treatment",
        "osteoporosis_treatment": "Counts as osteoporosis treatment",
        "coverage_end": "First day no longer covered by this event (exclusive)",
    },
    "fractures": _SOURCE_DESCRIPTIONS
    | {
        "fracture_date": "Date of the fracture",
        "site": "Site as exported (a FHIR Condition coded in SNOMED CT: the site its concept maps to)",
        "icd10": "ICD-10(-CM) code as exported (a FHIR Condition coded in SNOMED CT as an osteoporosis diagnosis: "
        "the ICD-10-CM category its concept belongs to, fracture_codes.toml)",
        "birth_date": "Date of birth, as exported",
        "fracture_site": "Site used: the exported site, else the one its ICD-10 code maps to (no_fracture: an "
        "osteoporosis diagnosis without a fracture)",
        "fragility": "A fragility fracture (not fingers, toes, face or skull)",
        "new_fracture": "A new fracture (not a later encounter or sequela code)",
    },
    "dxa_procedures": _SOURCE_DESCRIPTIONS
    | {
        "procedure_date": "Date the DXA was performed",
        "code": "The procedure's DXA code as exported (a CPT or SNOMED CT code of dxa_procedures.toml)",
    },
    "population": {
        "patient_id": "Patient identifier",
        "sex": "Sex (F or M)",
        "birth_date": "Date of birth",
        "death_date": "Date of death (blank: alive)",
        "enrolled_since": "First day of the unbroken enrolment covering the as-of date (blank: not enrolled then)",
        "alive": "Alive on the as-of date",
        "enrolled": "Enrolled on the as-of date",
    },
}
# the worklist view's column right after patient_id (the care_gaps columns follow it)
WORKLIST_MRN_DESCRIPTIONS = {
    "mrn": "Right after patient_id: her medical record number, the patients table's (the export's), else a roster"
    " column named mrn; null when neither gives one",
}
WORKLIST_ROSTER_DESCRIPTIONS = {  # the worklist view's column before the roster's routing columns
    "in_roster": "The population roster lists the patient, validly or in rows held back in quarantine (blank: the"
    " run had no roster); a patient it does not list keeps her gaps, one it lists as dead or not enrolled has none",
}
# osteo worklist's per-patient list (outputs.worklist.by_patient): its own columns, which no roster column may be
WORKLIST_PATIENT_COLUMNS = (
    "patient_id", "mrn", "priority", "gap", "since", "detail", "exam_id", "gap_outreach_status", "gaps",
    "in_roster", "open_gaps", "days_on_list",
    "outreach_status", "outreach_mark", "outreach_marked_at", "outreach_by", "outreach_note", "hidden",
)  # fmt: skip
ROUTING_DESCRIPTION = "Routing column passed through from the roster (profile [population] routing)"


def catalog_column_descriptions(name: str) -> dict[str, str]:
    """Descriptions of a catalog table's or view's columns (``COMMENT ON COLUMN`` in ``osteo.duckdb``)."""
    if name in COLUMN_DESCRIPTIONS:
        return COLUMN_DESCRIPTIONS[name]
    if name in GAP_VIEWS:  # the care_gaps columns, then the screening columns
        return COLUMN_DESCRIPTIONS["screening"] | COLUMN_DESCRIPTIONS["care_gaps"]
    if name == "worklist":  # patient_id, mrn, the other care_gaps columns, the roster's routing columns, outreach
        gaps = COLUMN_DESCRIPTIONS["care_gaps"]
        return (
            {"patient_id": gaps["patient_id"]}
            | WORKLIST_MRN_DESCRIPTIONS
            | gaps
            | WORKLIST_ROSTER_DESCRIPTIONS
            | _WORKLIST_OUTREACH_DESCRIPTIONS
        )
    return EVENT_COLUMN_DESCRIPTIONS.get(name, {})

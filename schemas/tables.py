"""The one registry of the tables a run publishes: their names, columns, types and descriptions (what names a
gap or an input kind takes it from its own registry, ``schemas.gaps``, ``schemas.inputs``). Plain data (no
Pandera): the engine, the catalog and ``osteo sql --tables`` read it, and ``schemas.published`` builds the Pandera
schemas that validate what is published from it.

Each column is declared once, its name, type and description together (``Column``), and each table once, its
description and its columns in order (``Table``); a column or a table without a description cannot be declared.
The dicts the rest of the code reads (``*_SCHEMA``, ``DTYPES``, ``COLUMN_DESCRIPTIONS``, ``TABLE_DESCRIPTIONS`` …)
are made from these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl

from schemas.gaps import GAP_NAMES, GAP_VIEWS, GAPS, SCREENING_DUE

SOURCE_FILE = "source_file"  # every input row keeps where it came from: file, 1-based data row
SOURCE_ROW = "source_row"


@dataclass(frozen=True)
class Column:
    """One published column: its name, its Polars type, and what it holds (the docs, ``osteo sql --tables`` and
    the catalog's ``COMMENT ON COLUMN``). ``dtype`` is None where this registry does not type the column: the
    valid events' columns (typed by their input's fields, ``schemas.inputs``) and the worklist view's own."""

    name: str
    dtype: pl.DataType | type[pl.DataType] | None
    description: str

    def __post_init__(self) -> None:
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"published column {self.name!r}: a description is required")


@dataclass(frozen=True)
class Table:
    """A published table, a catalog view or the live outreach log: its description (``COMMENT ON``) and its columns,
    in order (a view whose columns are other tables' has none of its own: ``catalog_column_descriptions``)."""

    name: str
    description: str
    columns: tuple[Column, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"published table {self.name!r}: a description is required")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"published table {self.name!r}: a column declared twice")

    def dtypes(self) -> dict[str, pl.DataType]:
        return _dtypes(self.columns, self.name)

    def descriptions(self) -> dict[str, str]:
        return {c.name: c.description for c in self.columns}


def _dtypes(columns: tuple[Column, ...], where: str) -> dict[str, pl.DataType]:
    untyped = [c.name for c in columns if c.dtype is None]
    if untyped:
        raise ValueError(f"published table {where!r}: no type declared for {untyped}")
    return {c.name: c.dtype for c in columns}


def _untyped(*columns: Column) -> tuple[Column, ...]:
    return tuple(replace(c, dtype=None) for c in columns)


_PATIENT_ID = Column("patient_id", pl.Utf8, "Patient identifier")
_SOURCE_FILE = Column(SOURCE_FILE, pl.Utf8, "Input file the row came from")
_SOURCE_ROW = Column(SOURCE_ROW, pl.Int64, "1-based data row in that file")

MRN_DESCRIPTION = (
    "Medical record number the export gives (a FHIR Patient's identifier of type MR; several different: the"
    " first read); null when it gives none (a CSV export)"
)
_WITHOUT_EXAM = [gap.name for gap in GAPS if not gap.exam]

_SCREENING = Table(
    "screening",
    "One row per valid exam: WHO category, eligibility, recommendation, next DXA",
    (
        Column("exam_id", pl.Utf8, "DXA exam identifier"),
        _PATIENT_ID,
        Column("exam_date", pl.Date, "Date of the exam"),
        Column("sex", pl.Utf8, "F or M"),
        Column("age_years", pl.Int64, "Age at the exam, completed years"),
        Column("diagnostic_basis", pl.Utf8, "t_score or z_score (docs/rules.md §1)"),
        Column("lowest_t_score", pl.Float64, "Lowest usable T-score, rounded to one decimal"),
        Column(
            "lowest_t_site",
            pl.Utf8,
            "Site of the lowest T-score: spine, total_hip, femoral_neck, radius33, or unspecified (a T-score the"
            ' export does not place, read only with a profile\'s [scores] unsited_t = "use")',
        ),
        Column(
            "lowest_t_side",
            pl.Utf8,
            "left / right: the hip that gave the lowest T-score (exports of both hips); else null",
        ),
        Column("who_category", pl.Utf8, "normal / osteopenia / osteoporosis / severe_osteoporosis (basis t_score)"),
        Column("lowest_z_score", pl.Float64, "Lowest usable Z-score, rounded to one decimal"),
        Column("z_category", pl.Utf8, "within_expected / below_expected (basis z_score)"),
        Column("frax_mof_adjusted", pl.Float64, "FRAX major osteoporotic %, after glucocorticoid adjustment"),
        Column("frax_hip_adjusted", pl.Float64, "FRAX hip %, after glucocorticoid adjustment"),
        Column("eligibility", pl.Utf8, "eligible / not_eligible / needs_frax / specialist_review"),
        Column("eligibility_reasons", pl.List(pl.Utf8), "Reason codes, in rule order; empty when none"),
        Column(
            "recommendation",
            pl.Utf8,
            "oral_bisphosphonate / denosumab / calculate_frax / secondary_causes_workup / lifestyle_and_monitor"
            " / anabolic_referral (aace2020)",
        ),
        Column("next_dxa_due", pl.Date, "Date the next DXA is due"),
        Column("rule_set", pl.Utf8, "Name@version of the rule set applied"),
    ),
)
_QUARANTINE = Table(
    "quarantine",
    "One row per failing cell of a rejected input row",
    (
        _SOURCE_FILE,
        _SOURCE_ROW,
        Column("input", pl.Utf8, "scans / meds / fractures / population / dxa_procedures"),
        Column("column", pl.Utf8, "Failing column (null for row-level problems)"),
        Column("check", pl.Utf8, "Name of the failed check"),
        Column("value", pl.Utf8, "The offending value as text"),
        Column("patient_id", pl.Utf8, "Patient identifier, when readable"),
        Column("exam_id", pl.Utf8, "Exam identifier, when readable"),
    ),
)
_PATIENTS = Table(
    "patients",
    "One row per patient: latest exam's decision and treatment status on the as-of date",
    (
        _PATIENT_ID,
        Column("mrn", pl.Utf8, MRN_DESCRIPTION),
        Column(
            "latest_exam_id",
            pl.Utf8,
            "Latest exam on or before the as-of date (ties: highest exam_id); null if no scan",
        ),
        Column("latest_exam_date", pl.Date, "Date of that exam"),
        Column("who_category", pl.Utf8, "WHO category of the latest exam"),
        Column("eligibility", pl.Utf8, "Eligibility of the latest exam"),
        Column("recommendation", pl.Utf8, "Recommendation of the latest exam"),
        Column("next_dxa_due", pl.Date, "Next DXA due after the latest exam"),
        Column("on_treatment", pl.Boolean, "Osteoporosis-drug coverage on the as-of date"),
        Column("last_treatment_date", pl.Date, "Latest osteoporosis-drug event on or before the as-of date"),
        Column("last_treatment_drug", pl.Utf8, "Generic name of that drug"),
    ),
)
_FOUND_GAPS = (  # what a partition finds
    _PATIENT_ID,
    Column("gap", pl.Utf8, " / ".join(GAP_NAMES)),
    Column("since", pl.Date, "Date the gap opened"),
    Column(
        "exam_id",
        pl.Utf8,
        f"Exam the gap refers to (null for {', '.join(_WITHOUT_EXAM[:-1])} and {_WITHOUT_EXAM[-1]})",
    ),
    Column("priority", pl.Int64, "1 = most urgent"),
    Column("detail", pl.Utf8, "Short explanation"),
)
_LIFECYCLE = (  # filled at publish, against the last published run
    Column("first_seen", pl.Date, "As-of date of the first published run, in an unbroken series, with this gap open"),
    Column("status", pl.Utf8, "new (not open in the last published run) / persisting"),
)
_CARE_GAPS = Table("care_gaps", "One row per open care gap, highest priority first", (*_FOUND_GAPS, *_LIFECYCLE))
_INTERVALS = Table(
    "treatment_intervals",
    "Merged stretches of osteoporosis-drug coverage per patient",
    (
        _PATIENT_ID,
        Column("interval_start", pl.Date, "First day covered by osteoporosis treatment"),
        Column("interval_end", pl.Date, "First day no longer covered (exclusive)"),
        Column("days_covered", pl.Int64, "Days covered up to and including the as-of date"),
        Column("drugs", pl.List(pl.Utf8), "Generic names given in the interval"),
    ),
)
_MEMBERS = Table(
    "measure_members",
    "One row per quality measure and roster patient it considers: denominator, exclusion, numerator",
    (
        Column("measure", pl.Utf8, "Measure id (OMW, MIPS418, MIPS039; docs/measures.md)"),
        Column("version", pl.Utf8, "Version of the measure spec (data/measures/)"),
        Column("patient_id", pl.Utf8, "Patient identifier (a roster patient of the measure's sex and age band)"),
        Column(
            "in_denominator",
            pl.Boolean,
            "Meets the denominator: for fracture measures, a fracture in the intake period and the enrolment",
        ),
        Column("excluded", pl.Boolean, "Excluded from the denominator (exclusion_reason says why)"),
        Column("exclusion_reason", pl.Utf8, "The first exclusion that applies, in spec order; null when none"),
        Column("in_numerator", pl.Boolean, "Meets the numerator (only when in the denominator and not excluded)"),
        Column("evidence_date", pl.Date, "Date of the event that decided the numerator or the exclusion"),
        Column(
            "evidence",
            pl.Utf8,
            "What decided it (DXA exam, osteoporosis drug: NAME, osteoporosis code …), or why not",
        ),
    ),
)
_SUMMARY = Table(
    "measure_summary",
    "One row per quality measure: denominator, exclusions, numerator, rate (empty without a roster)",
    (
        Column("measure", pl.Utf8, "Measure id"),
        Column("version", pl.Utf8, "Version of the measure spec"),
        Column("denominator", pl.Int64, "Patients in the denominator (exclusions included)"),
        Column("exclusions", pl.Int64, "Of those, excluded"),
        Column("numerator", pl.Int64, "Of the rest, meeting the numerator"),
        Column("rate", pl.Float64, "numerator / (denominator - exclusions); null when that is 0"),
    ),
)
_CLOSED = Table(
    "closed_gaps",
    "One row per gap open in the last published run and not in this one, with why it closed",
    (
        _PATIENT_ID,
        Column("gap", pl.Utf8, "The gap that was open in the last published run and is not now"),
        Column("since", pl.Date, "Date the gap had opened"),
        Column("first_seen", pl.Date, "As-of date of the first published run that had it open"),
        Column("closed_on", pl.Date, "As-of date of this run"),
        Column(
            "closed_because",
            pl.Utf8,
            "input_missing / left_population / treatment_started / dxa_done / window_passed / no_longer_eligible",
        ),
        Column(
            "closed_detail",
            pl.Utf8,
            "For left_population: died (not alive on the as-of date), disenrolled (alive, not enrolled) or"
            f" left_roster (a {SCREENING_DUE.name} gap of a patient the roster no longer lists); else blank",
        ),
    ),
)
_OUTREACH = Table(
    "outreach",
    "The outreach log (OUT/outreach.sqlite, live): one row per mark, in the order recorded",
    (
        Column(
            "mark", pl.Int64, "1, 2, 3 … in the order the marks were recorded (the latest mark of a gap is its status)"
        ),
        Column("marked_at", pl.Datetime("us", "UTC"), "When the mark was recorded (UTC)"),
        _PATIENT_ID,
        Column("gap", pl.Utf8, "The open gap the mark is about"),
        Column(
            "first_seen", pl.Date, "first_seen of that gap when marked: the mark belongs to this episode of the gap"
        ),
        Column("status", pl.Utf8, "contacted / scheduled / declined / not_appropriate / reopened (docs/worklist.md)"),
        Column(
            "hide_until",
            pl.Date,
            "declined / not_appropriate: hidden from the default worklist while the as-of date is before this",
        ),
        Column("note", pl.Utf8, "Free text given with --note (keep clinical detail in the record system)"),
        Column("marked_by", pl.Utf8, "Who recorded it (--by, else the login name)"),
        Column("run_id", pl.Utf8, "The published run in which the gap was open when marked"),
    ),
)

# the valid events and the roster's patients: described here, typed by their input's fields (schemas.inputs)
_EVENT_SOURCE = _untyped(_SOURCE_FILE, _SOURCE_ROW, _PATIENT_ID)
_MEDICATIONS = Table(
    "medications",
    "Valid medication events with drug, class, oncology flag and coverage",
    (
        *_EVENT_SOURCE,
        Column("drug", None, "Drug as exported: generic name, brand or ATC code"),
        Column("event_date", None, "Date dispensed or administered"),
        Column("days_supply", None, "Days supplied, as exported (blank: the drug's default coverage applies)"),
        Column("dose_mg", None, "Dose in mg, as exported"),
        Column("generic", None, "Generic name the drug was recognised as (blank: not an osteoporosis drug)"),
        Column("drug_class", None, "bisphosphonate, denosumab, SERM or anabolic"),
        Column("coverage_days", None, "Days this event covers"),
        Column(
            "oncology",
            None,
            "An oncology product (Xgeva, Zometa, or their oncology doses): never osteoporosis treatment",
        ),
        Column("osteoporosis_treatment", None, "Counts as osteoporosis treatment"),
        Column("coverage_end", None, "First day no longer covered by this event (exclusive)"),
    ),
)
_FRACTURES = Table(
    "fractures",
    "Valid fracture events with site, fragility and new-fracture flags",
    (
        *_EVENT_SOURCE,
        Column("fracture_date", None, "Date of the fracture"),
        Column("site", None, "Site as exported (a FHIR Condition coded in SNOMED CT: the site its concept maps to)"),
        Column(
            "icd10",
            None,
            "ICD-10(-CM) code as exported (a FHIR Condition coded in SNOMED CT as an osteoporosis diagnosis: the"
            " ICD-10-CM category its concept belongs to, fracture_codes.toml)",
        ),
        Column("birth_date", None, "Date of birth, as exported"),
        Column(
            "fracture_site",
            None,
            "Site used: the exported site, else the one its ICD-10 code maps to (no_fracture: an osteoporosis"
            " diagnosis without a fracture)",
        ),
        Column("fragility", None, "A fragility fracture (not fingers, toes, face or skull)"),
        Column("new_fracture", None, "A new fracture (not a later encounter or sequela code)"),
    ),
)
_POPULATION = Table(
    "population",
    "One row per patient of the population roster: alive and enrolled on the as-of date, routing",
    (
        *_untyped(_PATIENT_ID),
        Column("sex", None, "Sex (F or M)"),
        Column("birth_date", None, "Date of birth"),
        Column("death_date", None, "Date of death (blank: alive)"),
        Column(
            "enrolled_since",
            None,
            "First day of the unbroken enrolment covering the as-of date (blank: not enrolled then)",
        ),
        Column("alive", None, "Alive on the as-of date"),
        Column("enrolled", None, "Enrolled on the as-of date"),
    ),
)
_DXA_PROCEDURES = Table(
    "dxa_procedures",
    "Valid completed DXA procedures of a FHIR export (a DXA done, with or without a result)",
    (
        *_EVENT_SOURCE,
        Column("procedure_date", None, "Date the DXA was performed"),
        Column("code", None, "The procedure's DXA code as exported (a CPT or SNOMED CT code of dxa_procedures.toml)"),
    ),
)

# the catalog's views: the gap views are a gap's care_gaps rows joined to the screening row; the worklist is the
# care_gaps columns with mrn after patient_id, then in_roster, the roster's routing columns, and its own columns
_GAP_VIEW_TABLES = tuple(Table(name, f"{name} gaps joined to the patient's latest screening row") for name in GAP_VIEWS)
_WORKLIST = Table(
    "worklist",
    "One row per open care gap with the roster's routing columns (no clinical text beyond the gap); osteo sql adds"
    " the latest outreach status (live)",
)
_WORKLIST_MRN = Column(  # right after patient_id (the care_gaps columns follow it)
    "mrn",
    None,
    "Right after patient_id: her medical record number, the patients table's (the export's), else a roster column"
    " named mrn; null when neither gives one",
)
_WORKLIST_ROSTER = Column(  # before the roster's routing columns
    "in_roster",
    None,
    "The population roster lists the patient, validly or in rows held back in quarantine (blank: the run had no"
    " roster); a patient it does not list keeps her gaps, one it lists as dead or not enrolled has none",
)
_WORKLIST_OUTREACH = (  # the live worklist view's own columns, after the roster's routing columns
    Column("days_open", None, "Days since first_seen, on the run's as-of date"),
    Column(
        "outreach_status",
        None,
        "Status of the latest outreach mark of this episode of the gap (same first_seen; null: none)",
    ),
    Column("outreach_mark", None, "Its number in the outreach log (the later of two marks has the higher number)"),
    Column("outreach_marked_at", None, "When that mark was recorded (UTC)"),
    Column("outreach_by", None, "Who recorded it"),
    Column("outreach_note", None, "Its note"),
    Column("hide_until", None, "declined / not_appropriate: hidden from the default worklist until this date"),
    Column(
        "hidden",
        None,
        "Hidden from the default osteo worklist on the run's as-of date (still in care_gaps and the measures)",
    ),
)

_PUBLISHED = (_SCREENING, _QUARANTINE, _PATIENTS, _CARE_GAPS, _INTERVALS, _MEMBERS, _SUMMARY, _CLOSED)
_EVENTS = (_MEDICATIONS, _FRACTURES, _POPULATION, _DXA_PROCEDURES)
# every declaration, in the catalog's order: the published tables, the gap views, the events, the worklist, the log
DECLARATIONS: dict[str, Table] = {t.name: t for t in (*_PUBLISHED, *_GAP_VIEW_TABLES, *_EVENTS, _WORKLIST, _OUTREACH)}

TABLES = tuple(t.name for t in _PUBLISHED)  # OUT/<table>.parquet
RUN_WIDE_TABLES = ("measure_summary",)  # made once at publish from the merged tables, not per partition
# valid events, and the roster's patients (when a roster is given): in the run folder and the catalog only
EVENT_TABLES = tuple(t.name for t in _EVENTS)
CATALOG_TABLES = (*TABLES, *EVENT_TABLES)
# not part of any run: OUT/outreach.sqlite, the log of outreach marks (osteo worklist mark; a SQLite database, one
# transaction a batch), read live by osteo sql and osteo worklist, never written into a run folder or osteo.duckdb
LIVE_TABLES = (_OUTREACH.name,)

QUARANTINE_SCHEMA = _QUARANTINE.dtypes()
FOUND_GAPS_SCHEMA = _dtypes(_FOUND_GAPS, "care_gaps")  # what a partition finds
LIFECYCLE_SCHEMA = _dtypes(_LIFECYCLE, "care_gaps")  # filled at publish, against the last published run
GAPS_SCHEMA = _CARE_GAPS.dtypes()
CLOSED_SCHEMA = _CLOSED.dtypes()
OUTREACH_SCHEMA = _OUTREACH.dtypes()
PATIENTS_SCHEMA = _PATIENTS.dtypes()
INTERVALS_SCHEMA = _INTERVALS.dtypes()
MEMBERS_SCHEMA = _MEMBERS.dtypes()
SUMMARY_SCHEMA = _SUMMARY.dtypes()
SCREENING_SCHEMA = _SCREENING.dtypes()
SCREENING_COLUMNS = tuple(SCREENING_SCHEMA)

TABLE_DESCRIPTIONS = {name: t.description for name, t in DECLARATIONS.items()}
# the typed tables: the published ones and the live outreach log
COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {t.name: t.descriptions() for t in (*_PUBLISHED, _OUTREACH)}
DTYPES: dict[str, dict[str, pl.DataType]] = {t.name: t.dtypes() for t in (*_PUBLISHED, _OUTREACH)}
EVENT_COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {t.name: t.descriptions() for t in _EVENTS}
# the worklist view's column right after patient_id (the care_gaps columns follow it)
WORKLIST_MRN_DESCRIPTIONS = {_WORKLIST_MRN.name: _WORKLIST_MRN.description}
WORKLIST_ROSTER_DESCRIPTIONS = {_WORKLIST_ROSTER.name: _WORKLIST_ROSTER.description}
_WORKLIST_OUTREACH_DESCRIPTIONS = {c.name: c.description for c in _WORKLIST_OUTREACH}
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

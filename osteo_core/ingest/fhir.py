"""FHIR R4 Bulk Data exports (a folder of NDJSON files, one resource type per file) → flat text rows.

``osteo screen --scans export/`` reads such a folder with the shipped ``fhir_bulk`` profile, a long profile:

- ``Observation`` files give measurement rows: patient, exam, date, the DXA code (a LOINC code of the
  shipped grid, or a code the profile lists), a text (the code's text and displays, the bodySite's text,
  codes and displays: what names femoral neck or total hip, and the side, where the code does not), the
  value as written and its unit. Observations are grouped into exams by the DiagnosticReport listing them
  (its id is the exam id), else by patient and effective date (``patient@date``). An Observation that is
  not a DXA result (another code, and not in a report with DXA results) is counted, not read; one whose
  status is not a final result is counted too.
- ``Patient`` files give each patient's sex and birth date (per-patient rows).
- ``MedicationRequest``/``MedicationDispense``/``MedicationAdministration`` files feed the medications
  input and ``Condition`` files (ICD-10-CM fracture codes) the fractures input, when ``--meds`` and
  ``--fractures`` are not given.

Every row keeps its file and line number. All reading is Polars (``scan_ndjson`` with the fields used),
never a Python loop over resources.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from osteo_core import reference
from osteo_core.errors import InputError
from osteo_core.resources import shipped_toml
from schemas.tables import SOURCE_ROW

SUFFIX = ".ndjson"
PROFILE = "fhir_bulk"
RESOURCES = {
    "scans": ("Observation", "Patient"),
    "meds": ("MedicationRequest", "MedicationDispense", "MedicationAdministration", "MedicationStatement"),
    "fractures": ("Condition",),
}
GROUPING = "DiagnosticReport"  # read to group Observations into exams, never as rows
MEDICATION = "Medication"  # read to resolve medicationReference, never as rows
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

_CODING = pl.List(pl.Struct({"system": pl.Utf8, "code": pl.Utf8, "display": pl.Utf8}))
_CONCEPT = pl.Struct({"coding": _CODING, "text": pl.Utf8})
_REFERENCE = pl.Struct({"reference": pl.Utf8})
_QUANTITY = pl.Struct({"value": pl.Utf8, "unit": pl.Utf8, "code": pl.Utf8})
SCHEMA = {
    "resourceType": pl.Utf8,
    "id": pl.Utf8,
    "status": pl.Utf8,
    "subject": _REFERENCE,
    "patient": _REFERENCE,
    "code": _CONCEPT,
    "effectiveDateTime": pl.Utf8,
    "effectivePeriod": pl.Struct({"start": pl.Utf8}),
    "valueQuantity": _QUANTITY,
    "valueBoolean": pl.Boolean,
    "valueString": pl.Utf8,
    "bodySite": _CONCEPT,
    "result": pl.List(_REFERENCE),
    "gender": pl.Utf8,
    "birthDate": pl.Utf8,
    "medicationCodeableConcept": _CONCEPT,
    "authoredOn": pl.Utf8,
    "whenHandedOver": pl.Utf8,
    "daysSupply": _QUANTITY,
    "dispenseRequest": pl.Struct({"expectedSupplyDuration": _QUANTITY}),
    "dosage": pl.Utf8,  # JSON text: an object in MedicationAdministration, a list in MedicationStatement
    "dosageInstruction": pl.List(pl.Struct({"doseAndRate": pl.List(pl.Struct({"doseQuantity": _QUANTITY}))})),
    "onsetDateTime": pl.Utf8,
    "onsetPeriod": pl.Struct({"start": pl.Utf8}),
    "verificationStatus": _CONCEPT,
    "intent": pl.Utf8,
    "encounter": _REFERENCE,
    "component": pl.List(pl.Struct({"code": _CONCEPT, "valueQuantity": _QUANTITY, "valueString": pl.Utf8})),
    "deceasedDateTime": pl.Utf8,
    "deceasedBoolean": pl.Boolean,
    "identifier": pl.List(pl.Struct({"system": pl.Utf8, "value": pl.Utf8, "type": _CONCEPT})),
    "medicationReference": _REFERENCE,
    "performedDateTime": pl.Utf8,
    "performedPeriod": pl.Struct({"start": pl.Utf8}),
    "contained": pl.List(pl.Utf8),  # each contained resource as JSON text (any type: read where used)
    "dateAsserted": pl.Utf8,
}


@dataclass
class FhirRows:
    """One NDJSON file as flat text rows (``source_row`` = the resource's line), and what was not read."""

    frame: pl.LazyFrame
    headers: list[str]
    resource_type: str
    not_read: dict[str, int] = field(default_factory=dict)  # reason -> resources counted, not read


def ndjson_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(SUFFIX))


def is_bulk_export(path: str | Path) -> bool:
    """A folder holding NDJSON files: a FHIR Bulk Data export."""
    folder = Path(path)
    return folder.is_dir() and bool(ndjson_files(folder))


def resource_type(path: Path) -> str | None:
    """The resource type of a Bulk Data file, from its first resource (one type per file)."""
    try:
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    found = json.loads(line).get("resourceType")
                    return found if isinstance(found, str) else None
    except (OSError, ValueError, AttributeError):
        raise InputError(str(path), "is not FHIR NDJSON (one JSON resource per line)") from None
    return None


def files_for(folder: Path, kind: str) -> tuple[list[Path], list[str]]:
    """(the folder's NDJSON files an input reads, what no input reads: other files and resource types)."""
    read = {t for types in RESOURCES.values() for t in types} | {GROUPING, MEDICATION}
    wanted, other = [], []
    for path in sorted(folder.iterdir()):
        found = resource_type(path) if path.is_file() and path.name.endswith(SUFFIX) else None
        if found in RESOURCES[kind]:
            wanted.append(path)
        elif found not in read and not (kind != "scans" and path.name.endswith(SUFFIX)):
            other.append(str(path))  # listed once, with the scans
    return wanted, other


def read_bulk_file(path: Path) -> FhirRows:
    """A Bulk Data file as flat text rows for the input its resource type feeds."""
    found = resource_type(path)
    resources = pl.scan_ndjson(path, schema=SCHEMA).with_row_index(SOURCE_ROW, offset=1)
    resources = resources.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
    types = resources.select(pl.col("resourceType").unique()).collect().to_series().drop_nulls().to_list()
    if len(types) > 1:
        raise InputError(str(path), f"holds several resource types ({', '.join(sorted(types))}); expected one per file")
    readers = {
        "Observation": _observations,
        "Patient": _patients,
        "Condition": _conditions,
        **dict.fromkeys(RESOURCES["meds"], _medications),
    }
    if found not in readers:
        raise InputError(str(path), f"resource type {found!r} is not read by the screen")
    frame, not_read = readers[found](resources, path)
    headers = [c for c in frame.collect_schema().names() if c != SOURCE_ROW]
    return FhirRows(frame, headers, found, not_read)


def _settings() -> dict:
    return shipped_toml("reference/dxa_loinc.toml")["fhir"]


def _local(reference_expr: pl.Expr, prefix: str) -> pl.Expr:
    """``Patient/123`` → ``123`` (a reference to another resource type is no patient: null)."""
    return pl.when(reference_expr.str.starts_with(prefix + "/")).then(reference_expr.str.strip_prefix(prefix + "/"))


def _date(expr: pl.Expr) -> pl.Expr:
    """The date part of a FHIR date or dateTime as written (``2024-03-01T10:00:00Z`` → ``2024-03-01``)."""
    return expr.str.slice(0, 10)


def _patient_of() -> pl.Expr:
    reference_expr = pl.coalesce(
        pl.col("subject").struct.field("reference"), pl.col("patient").struct.field("reference")
    )
    return _local(reference_expr, "Patient").alias("patient_id")


def _codes(concept: str) -> pl.Expr:
    return pl.col(concept).struct.field("coding")


def _codes_of_system(concept: str, system: str) -> pl.Expr:
    """The codes of one code system among a CodeableConcept's codings, in their order."""
    element = pl.element().struct.field
    return _codes(concept).list.eval(pl.when(element("system") == system).then(element("code"))).list.drop_nulls()


def _joined(texts: pl.Expr) -> pl.Expr:
    """A list of texts as one (``a | b``); null when empty."""
    return pl.when(texts.list.len() > 0).then(texts.list.join(" | "))


def _counted(frame: pl.LazyFrame, reasons: dict[str, pl.Expr]) -> dict[str, int]:
    if not reasons:
        return {}
    row = frame.select(**{name: expr.sum() for name, expr in reasons.items()}).collect().row(0, named=True)
    return {name: int(n or 0) for name, n in row.items() if n}


def _observations(resources: pl.LazyFrame, path: Path) -> tuple[pl.LazyFrame, dict[str, int]]:
    """DXA Observations as measurement rows; other Observations counted."""
    # the codes the fhir_bulk profile lists besides LOINC (read from its file: profiles import the readers)
    listed = shipped_toml(f"profiles/{PROFILE}.toml")["long"].get("measurements", {})
    known = [*reference.dxa_loinc().get_column("code").to_list(), *(k.strip().upper() for k in listed)]
    codings = _codes("code")
    loinc = _codes_of_system("code", LOINC)
    anywhere = codings.list.eval(pl.element().struct.field("code")).list.drop_nulls()
    dxa_code = pl.coalesce(
        loinc.list.eval(pl.element().filter(pl.element().is_in(known))).list.first(),
        anywhere.list.eval(pl.element().filter(pl.element().str.to_uppercase().is_in(known))).list.first(),
    )
    displays = codings.list.eval(pl.element().struct.field("display")).list.drop_nulls()
    site_codes = _codes("bodySite").list.eval(
        pl.element().struct.field("code") + " " + pl.element().struct.field("display").fill_null("")
    )
    text = pl.concat_str(
        pl.col("code").struct.field("text"),
        _joined(displays),
        pl.col("bodySite").struct.field("text"),
        _joined(site_codes.list.drop_nulls()),
        separator=" | ",
        ignore_nulls=True,
    )
    read_statuses = _settings()["observation_statuses"]
    reports = _report_of(path)
    observed = resources.filter(pl.col("resourceType") == "Observation").with_columns(
        _patient_of(),
        dxa_code.alias("_dxa_code"),
        pl.coalesce(codings.list.first().struct.field("code"), pl.col("code").struct.field("text")).alias("_any_code"),
    )
    observed = observed.join(reports, left_on="id", right_on="_observation", how="left")
    with_dxa = observed.filter(pl.col("_dxa_code").is_not_null() & pl.col("_report").is_not_null())
    dxa_reports = with_dxa.select(pl.col("_report").unique())
    observed = observed.join(dxa_reports.with_columns(pl.lit(True).alias("_dxa_report")), on="_report", how="left")
    in_exam = pl.col("_dxa_code").is_not_null() | pl.col("_dxa_report").fill_null(False)
    final = pl.col("status").is_in(read_statuses)
    not_read = _counted(observed, {"not a DXA result": ~in_exam, "status not final": in_exam & ~final})
    date = _date(pl.coalesce("effectiveDateTime", pl.col("effectivePeriod").struct.field("start")))
    rows = observed.filter(in_exam & final).select(
        pl.col(SOURCE_ROW),
        "patient_id",
        pl.coalesce("_report", pl.col("patient_id") + "@" + date).alias("exam_id"),
        date.alias("exam_date"),
        pl.coalesce("_dxa_code", "_any_code").alias("code"),
        pl.when(text != "").then(text).alias("text"),
        pl.coalesce(
            pl.col("valueQuantity").struct.field("value"),
            pl.col("valueBoolean").cast(pl.Utf8),
            pl.col("valueString"),
        ).alias("value"),
        pl.coalesce(pl.col("valueQuantity").struct.field("code"), pl.col("valueQuantity").struct.field("unit")).alias(
            "unit"
        ),
    )
    return rows, not_read


def _report_of(path: Path) -> pl.LazyFrame:
    """Observation id → the id of the DiagnosticReport listing it (``result``), from the folder's reports."""
    reports = [p for p in ndjson_files(path.parent) if resource_type(p) == GROUPING]
    empty = pl.LazyFrame(schema={"_observation": pl.Utf8, "_report": pl.Utf8})
    if not reports:
        return empty
    listed = (
        pl.scan_ndjson(reports, schema=SCHEMA)
        .filter(pl.col("resourceType") == GROUPING)
        .select(pl.col("id").alias("_report"), pl.col("result"))
        .explode("result")
        .select(_local(pl.col("result").struct.field("reference"), "Observation").alias("_observation"), "_report")
        .filter(pl.col("_observation").is_not_null())
    )
    return listed.unique("_observation", keep="first", maintain_order=True)


def _patients(resources: pl.LazyFrame, path: Path) -> tuple[pl.LazyFrame, dict[str, int]]:
    """Patients as patient rows: sex and birth date (for each of her exams), whether she died (``deceased``:
    ``deceasedBoolean``, or any ``deceasedDateTime``) and when (the date as written, the export's local date),
    and her medical record number (the ``identifier`` whose type is ``MR``, v2-0203)."""
    died_on = _date(pl.col("deceasedDateTime"))
    deceased = pl.col("deceasedBoolean").fill_null(False) | pl.col("deceasedDateTime").is_not_null()
    element = pl.element().struct.field
    record_type = element("type").struct.field("coding").list.eval(pl.element().struct.field("code"))
    mrn = pl.col("identifier").list.eval(
        pl.element().filter(record_type.list.contains(_settings()["record_number_type"])).struct.field("value")
    )
    rows = resources.filter(pl.col("resourceType") == "Patient").select(
        pl.col(SOURCE_ROW),
        pl.col("id").alias("patient_id"),
        pl.col("gender").alias("sex"),
        pl.col("birthDate").alias("birth_date"),
        pl.when(deceased).then(pl.lit("true")).otherwise(pl.lit("false")).alias("deceased"),
        died_on.alias("death_date"),
        mrn.list.drop_nulls().list.first().alias("mrn"),
    )
    return rows, {}


def _conditions(resources: pl.LazyFrame, path: Path) -> tuple[pl.LazyFrame, dict[str, int]]:
    """Conditions coded with an ICD-10-CM fracture code (the categories in ``fracture_codes.toml``'s
    ``[fhir]`` section) as fracture rows; others, and refuted or erroneous ones, counted."""
    settings = shipped_toml("reference/fracture_codes.toml")["fhir"]
    icd = _codes_of_system("code", ICD10CM).list.first()
    bare = icd.str.replace_all(".", "", literal=True).str.to_uppercase()
    fracture = pl.any_horizontal(bare.str.starts_with(p) for p in settings["fracture_prefixes"]).fill_null(False)
    status = _codes("verificationStatus").list.eval(pl.element().struct.field("code")).list.first()
    refuted = status.is_in(settings["verification_not_read"]).fill_null(False)
    conditions = resources.filter(pl.col("resourceType") == "Condition")
    not_read = _counted(
        conditions, {"not a fracture code": ~fracture, "refuted or entered in error": fracture & refuted}
    )
    rows = conditions.filter(fracture & ~refuted).select(
        pl.col(SOURCE_ROW),
        _patient_of(),
        _date(pl.coalesce("onsetDateTime", pl.col("onsetPeriod").struct.field("start"))).alias("fracture_date"),
        icd.alias("icd10"),
    )
    return rows, not_read


def _medications(resources: pl.LazyFrame, path: Path) -> tuple[pl.LazyFrame, dict[str, int]]:
    """Medication resources as medication rows: the drug as its ATC code, else the drug word (generic or
    brand name) its RxNorm name or text contains, else the text as written (unrecognised: counted)."""
    concept = "medicationCodeableConcept"
    atc = _codes_of_system(concept, ATC).list.first()
    displays = _codes(concept).list.eval(pl.element().struct.field("display")).list.drop_nulls()
    written = pl.concat_str(
        pl.col(concept).struct.field("text"), displays.list.join(" | "), separator=" | ", ignore_nulls=True
    )
    written = pl.when(written != "").then(written)
    lookup = reference.drug_lookup()
    meaning = {k: f"{g}|{o}" for k, g, o in lookup.select("key", "generic", "oncology_brand").iter_rows()}
    lowered = written.str.to_lowercase()
    found = pl.concat_list(
        [pl.when(lowered.str.contains(rf"\b{re.escape(w)}\b")).then(pl.lit(w)) for w in meaning]
    ).list.drop_nulls()
    meanings = found.list.eval(pl.element().replace_strict(meaning, return_dtype=pl.Utf8)).list.n_unique()
    # the word as written (a brand tells an oncology product apart), when every word found means one drug
    drug_word = pl.when((found.list.len() >= 1) & (meanings == 1)).then(found.list.first())
    erroneous = pl.col("status") == "entered-in-error"
    date = pl.coalesce(
        "whenHandedOver",
        "authoredOn",
        "effectiveDateTime",
        pl.col("effectivePeriod").struct.field("start"),
    )
    dose = pl.coalesce(
        pl.col("dosage").struct.field("dose"),
        pl.col("dosageInstruction").list.first().struct.field("doseAndRate").list.first().struct.field("doseQuantity"),
    )
    supply = pl.coalesce(
        pl.col("daysSupply"), pl.col("dispenseRequest").struct.field("expectedSupplyDuration")
    ).struct.field("value")
    meds = resources.filter(pl.col("resourceType").is_in(list(RESOURCES["meds"])))
    not_read = _counted(meds, {"entered in error": erroneous.fill_null(False)})
    rows = meds.filter(~erroneous.fill_null(False)).select(
        pl.col(SOURCE_ROW),
        _patient_of(),
        pl.coalesce(atc, drug_word, written, _codes(concept).list.first().struct.field("code")).alias("drug"),
        _date(date).alias("event_date"),
        supply.alias("days_supply"),
        pl.when(dose.struct.field("unit").str.to_lowercase() == "mg").then(dose.struct.field("value")).alias("dose_mg"),
    )
    return rows, not_read

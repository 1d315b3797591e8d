"""FHIR R4 Bulk Data exports (a folder of NDJSON files, one resource type per file) → flat text rows.

``osteo screen --scans export/`` reads such a folder with a FHIR profile (one with a ``[fhir]`` section: the
shipped ``fhir_bulk``, or ``fhir_bulk_unsited_t`` that also uses an unsited T-score), a long profile:

- ``Observation`` files give measurement rows: patient, exam, date, the DXA code (a LOINC code of the
  shipped grid, or a code the profile lists), a text (the code's text and displays, the bodySite's text,
  codes and displays: what names femoral neck or total hip, and the side, where the code does not), the
  value as written and its unit (a value in ``component`` is a row of its own). Only final results are read,
  and none a void DiagnosticReport lists. Observations are grouped into exams by the DiagnosticReport listing
  them (its id is the exam id), else their encounter, else patient and local date (``patient@date``, in the
  profile's time zone). An Observation that is not a DXA result is counted, not read.
- ``Patient`` files give each patient's sex and birth date (per-patient rows), her death
  (``deceased[x]``) and medical record number (identifier of type MR).
- ``MedicationRequest``/``MedicationDispense``/``MedicationAdministration``/``MedicationStatement`` files feed
  the medications input (RxNorm, ATC or the drug's name; statuses and intents read from
  ``data/reference/drugs.toml``), ``Condition`` files (SNOMED CT or ICD-10 fracture and osteoporosis codes,
  ``data/reference/fracture_codes.toml``) the fractures input, and ``Procedure`` files (DXA procedure codes,
  ``data/reference/dxa_procedures.toml``) the DXA procedures, when ``--meds`` and ``--fractures`` are not given.
  What is not read is counted by reason (the manifest's ``not_read``).

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
from osteo_core.literal_paths import escaped
from osteo_core.resources import shipped_toml
from schemas.tables import SOURCE_ROW

SUFFIX = ".ndjson"
PROFILE = "fhir_bulk"
RESOURCES = {
    "scans": ("Observation", "Patient"),
    "meds": ("MedicationRequest", "MedicationDispense", "MedicationAdministration", "MedicationStatement"),
    "fractures": ("Condition",),
    "dxa_procedures": ("Procedure",),
}
GROUPING = "DiagnosticReport"  # read to group Observations into exams, never as rows
MEDICATION = "Medication"  # read to resolve medicationReference, never as rows
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"

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
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    except (ValueError, AttributeError):
        raise InputError(str(path), _first_bad_line(path)) from None
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


def _first_bad_line(path: Path) -> str:
    """What is wrong with an NDJSON file Polars cannot read, naming the first line that is not one JSON object
    (its number, never its text)."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line.rstrip(b"\r\n"))
            except ValueError as exc:
                column = f", column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                return f"line {number}{column}: not valid JSON (NDJSON holds one FHIR resource per line)"
            if not isinstance(parsed, dict):
                return f"line {number}: not a JSON object (NDJSON holds one FHIR resource per line)"
    return "cannot be read as NDJSON (one FHIR resource per line)"


def read_bulk_file(path: Path, settings: FhirSettings | None = None) -> FhirRows:
    """A Bulk Data file as flat text rows for the input its resource type feeds, read with a FHIR profile's
    ``settings`` (by default the shipped ``fhir_bulk``'s)."""
    found = resource_type(path)
    resources = pl.scan_ndjson(escaped(path), schema=SCHEMA).with_row_index(SOURCE_ROW, offset=1)
    resources = resources.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
    try:  # reads every line once: a line that is not JSON is found here, before any row is read
        types = resources.select(pl.col("resourceType").unique()).collect().to_series().drop_nulls().to_list()
    except pl.exceptions.PolarsError:
        raise InputError(str(path), _first_bad_line(path)) from None
    if len(types) > 1:
        raise InputError(str(path), f"holds several resource types ({', '.join(sorted(types))}); expected one per file")
    readers = {
        "Observation": _observations,
        "Patient": _patients,
        "Condition": _conditions,
        "Procedure": _procedures,
        **dict.fromkeys(RESOURCES["meds"], _medications),
    }
    if found not in readers:
        raise InputError(str(path), f"resource type {found!r} is not read by the screen")
    # every dateTime with an offset is read as its date in the profile's time zone: an Observation, a death, a
    # fracture, a procedure and a medication event of one instant fall on one day
    frame, not_read = readers[found](resources, path, settings or default_settings())
    headers = [c for c in frame.collect_schema().names() if c != SOURCE_ROW]
    return FhirRows(frame, headers, found, not_read)


def _settings() -> dict:
    return shipped_toml("reference/dxa_loinc.toml")["fhir"]


def _local(reference_expr: pl.Expr, prefix: str) -> pl.Expr:
    """``Patient/123`` → ``123`` (a reference to another resource type is no patient: null)."""
    return pl.when(reference_expr.str.starts_with(prefix + "/")).then(reference_expr.str.strip_prefix(prefix + "/"))


@dataclass(frozen=True)
class FhirSettings:
    """What a FHIR profile (one with a ``[fhir]`` section) tells the reader: the export's time zone (an IANA
    name: a dateTime written with an offset is read as the date it was there, never as its UTC date) and the
    codes its ``[long.measurements]`` lists besides the DXA LOINC grid (FRAX, risk factors …)."""

    time_zone: str
    codes: tuple[str, ...] = ()


FHIR_SETTINGS = {"time_zone"}


def fhir_settings(raw: dict, where: str) -> FhirSettings:
    """The ``[fhir]`` section of a profile's parsed TOML (``raw``), checked (``InputError`` naming ``where``)."""
    import zoneinfo

    section = raw.get("fhir", {})
    unknown = set(section) - FHIR_SETTINGS
    if unknown:
        raise InputError(where, f"unknown [fhir] setting(s): {', '.join(sorted(unknown))} (known: time_zone)")
    name = section.get("time_zone")
    try:
        zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InputError(where, "[fhir] time_zone must be an IANA time zone name") from None
    listed = raw.get("long", {}).get("measurements", {})
    return FhirSettings(str(name), tuple(k.strip().upper() for k in listed))


def default_settings() -> FhirSettings:
    """The shipped ``fhir_bulk`` profile's settings: for NDJSON files read without a FHIR profile (``--meds
    requests.ndjson`` beside a CSV scans export)."""
    return fhir_settings(shipped_toml(f"profiles/{PROFILE}.toml"), f"profiles/{PROFILE}.toml")


def _local_date(expr: pl.Expr, time_zone: str) -> pl.Expr:
    """The date of a FHIR date or dateTime in the export's time zone: a dateTime with an offset
    (``2024-03-02T04:30:00Z``, ``2024-03-01T23:30:00-05:00``) is converted to it; a date, or a time without an
    offset, is read as written."""
    text = expr.str.strip_chars()
    instant = text.str.replace(r"Z$", "+00:00").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC")
    return (
        pl.when(instant.is_not_null())
        .then(instant.dt.convert_time_zone(time_zone).dt.strftime("%Y-%m-%d"))
        .otherwise(_date(text))
    )


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


def _observations(resources: pl.LazyFrame, path: Path, reading: FhirSettings) -> tuple[pl.LazyFrame, dict[str, int]]:
    """DXA Observations as measurement rows; other Observations counted."""
    known = [*reference.dxa_loinc().get_column("code").to_list(), *reading.codes]
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
        pl.col("_part_text"),
        pl.col("bodySite").struct.field("text"),
        _joined(site_codes.list.drop_nulls()),
        separator=" | ",
        ignore_nulls=True,
    )
    read_statuses = _settings()["observation_statuses"]
    reports = _report_of(path)
    observations = _with_components(resources.filter(pl.col("resourceType") == "Observation"), known)
    observed = observations.with_columns(
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
    void = pl.col("_report_void").fill_null(False)  # listed by a report entered in error or cancelled
    not_read = _counted(
        observed,
        {
            "not a DXA result": ~in_exam,
            "status not final": in_exam & ~final,
            "in a report entered in error or cancelled": in_exam & final & void,
        },
    )
    effective = pl.coalesce("effectiveDateTime", pl.col("effectivePeriod").struct.field("start"))
    date = _local_date(effective, reading.time_zone)
    visit = _local(pl.col("encounter").struct.field("reference"), "Encounter")
    # one visit, one exam: the report listing the Observation, else its encounter, else the patient's local day;
    # the exam's date is the local date of its first Observation
    exam = pl.coalesce("_report", visit, pl.col("patient_id") + "@" + date)
    rows = observed.filter(in_exam & final & ~void).with_columns(date.alias("_date"), exam.alias("_exam_id"))
    rows = rows.select(
        pl.col(SOURCE_ROW),
        "patient_id",
        pl.col("_exam_id").alias("exam_id"),
        pl.col("_date").min().over("patient_id", "_exam_id").alias("exam_date"),
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


def _with_components(observations: pl.LazyFrame, known: list[str]) -> pl.LazyFrame:
    """Each Observation, and each value in its ``component`` as an Observation of its own (the same resource,
    line, date and report): the component's code when it is a DXA code, else the Observation's, with the
    component's code text and displays added to the text (a site named there). An Observation with components
    and no value of its own gives its components only. ``_part_text``: that added text (null for a whole one)."""
    parts_given = pl.col("component").list.len().fill_null(0) > 0
    own_value = pl.any_horizontal(
        pl.col("valueQuantity").struct.field("value").is_not_null(),
        pl.col("valueBoolean").is_not_null(),
        pl.col("valueString").is_not_null(),
    )
    whole = observations.filter(~parts_given | own_value).with_columns(pl.lit(None, dtype=pl.Utf8).alias("_part_text"))
    part = pl.col("component")
    part_codes = part.struct.field("code").struct.field("coding")
    part_is_dxa = part_codes.list.eval(pl.element().struct.field("code").is_in(known)).list.any().fill_null(False)
    part_text = pl.concat_str(
        part.struct.field("code").struct.field("text"),
        _joined(part_codes.list.eval(pl.element().struct.field("display")).list.drop_nulls()),
        separator=" | ",
        ignore_nulls=True,
    )
    parts = (
        observations.filter(parts_given)
        .explode("component")
        .with_columns(
            pl.when(part_is_dxa).then(part.struct.field("code")).otherwise(pl.col("code")).alias("code"),
            part.struct.field("valueQuantity").alias("valueQuantity"),
            part.struct.field("valueString").alias("valueString"),
            pl.lit(None, dtype=pl.Boolean).alias("valueBoolean"),
            pl.when(part_text != "").then(part_text).alias("_part_text"),
        )
    )
    return pl.concat([whole.drop("component"), parts.drop("component")], how="vertical_relaxed")


def _report_of(path: Path) -> pl.LazyFrame:
    """Observation id → the id of the DiagnosticReport listing it (``result``), from the folder's reports, and
    ``_report_void``: that report is one whose results are not read (``[fhir] report_statuses_not_read``:
    entered in error, cancelled)."""
    reports = [p for p in ndjson_files(path.parent) if resource_type(p) == GROUPING]
    empty = pl.LazyFrame(schema={"_observation": pl.Utf8, "_report": pl.Utf8, "_report_void": pl.Boolean})
    if not reports:
        return empty
    void = pl.col("status").is_in(_settings()["report_statuses_not_read"]).fill_null(False)
    listed = (
        pl.scan_ndjson([escaped(p) for p in reports], schema=SCHEMA)
        .filter(pl.col("resourceType") == GROUPING)
        .select(pl.col("id").alias("_report"), pl.col("result"), void.alias("_report_void"))
        .explode("result")
        .select(
            _local(pl.col("result").struct.field("reference"), "Observation").alias("_observation"),
            "_report",
            "_report_void",
        )
        .filter(pl.col("_observation").is_not_null())
    )
    return listed.unique("_observation", keep="first", maintain_order=True)


def _patients(resources: pl.LazyFrame, path: Path, reading: FhirSettings) -> tuple[pl.LazyFrame, dict[str, int]]:
    """Patients as patient rows: sex and birth date (for each of her exams), whether she died (``deceased``:
    ``deceasedBoolean``, or any ``deceasedDateTime``) and when (the date as written, the export's local date),
    and her medical record number (the ``identifier`` whose type is ``MR``, v2-0203)."""
    died_on = _local_date(pl.col("deceasedDateTime"), reading.time_zone)
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


def _conditions(resources: pl.LazyFrame, path: Path, reading: FhirSettings) -> tuple[pl.LazyFrame, dict[str, int]]:
    """Conditions as fracture rows (``fracture_codes.toml`` ``[fhir]``): an ICD-10 code under either system URI
    that is a fracture or an osteoporosis diagnosis code, kept as written; else a SNOMED CT concept of
    ``[[fhir.snomed]]``, as its site and, for an osteoporosis diagnosis, its ICD-10-CM category. A Condition is
    read only when confirmed (or without a verificationStatus). Every Condition not read is counted by reason:
    its code (not a fracture or osteoporosis code; a fracture code not mapped; a fracture of a site that is not
    a fragility site) or, for one that would be read, its verification status."""
    codes = reference.fracture_codes()
    settings = codes["fhir"]
    diagnoses = shipped_toml("reference/measure_value_sets.toml")["osteoporosis_diagnosis"]["icd10_prefixes"]
    element = pl.element().struct.field
    # ICD-10: the first code of either system that is a fracture or diagnosis code (compared without the dot)
    listed = "^(?:" + "|".join(re.escape(p) for p in [*settings["fracture_prefixes"], *diagnoses]) + ")"
    icd_codes = _codes("code").list.eval(element("code").filter(element("system").is_in(settings["icd10_systems"])))
    bare = pl.element().str.replace_all(".", "", literal=True).str.strip_chars().str.to_uppercase()
    icd = icd_codes.list.eval(pl.element().filter(bare.str.contains(listed))).list.first()
    # SNOMED CT: the first concept listed, its site and ICD-10-CM category
    snomed = reference.snomed_conditions()
    snomed_codes = _codes("code").list.eval(element("code").filter(element("system") == settings["snomed_system"]))
    listed_concepts = snomed.get_column("code").to_list()
    concept = snomed_codes.list.eval(pl.element().filter(pl.element().is_in(listed_concepts))).list.first()
    concept = pl.when(icd.is_null()).then(concept)  # an ICD-10 code read wins
    site = concept.replace_strict(dict(snomed.select("code", "site").iter_rows()), default=None, return_dtype=pl.Utf8)
    category = concept.replace_strict(
        dict(snomed.select("code", "icd10").iter_rows()), default=None, return_dtype=pl.Utf8
    )
    fragile = [s for s, is_fragility in codes["sites"].items() if is_fragility]
    other_site = (concept.is_not_null() & site.is_not_null() & ~site.is_in(fragile)).fill_null(False)
    candidate = (icd.is_not_null() | concept.is_not_null()).fill_null(False) & ~other_site
    displays = _codes("code").list.eval(element("display")).list.drop_nulls().list.join(" ")
    written = pl.concat_str(pl.col("code").struct.field("text"), displays, separator=" ", ignore_nulls=True)
    words = "|".join(re.escape(w) for w in settings["fracture_words"])
    fracture_like = written.str.to_lowercase().str.contains(words).fill_null(False)
    verification = settings["verification"]
    status = _codes("verificationStatus").list.eval(element("code")).list.drop_nulls().list.first()
    confirmed = (status.is_null() | status.is_in(verification["read"])).fill_null(False)
    reasons = {
        "not a fracture or osteoporosis code": ~candidate & ~other_site & ~fracture_like,
        "fracture code not mapped": ~candidate & ~other_site & fracture_like,
        "fracture of fingers, toes, skull or face (not a fragility fracture site)": other_site,
    }
    for reason in dict.fromkeys(verification["not_read"].values()):
        statuses = [code for code, r in verification["not_read"].items() if r == reason]
        reasons[f"verification status {reason}"] = candidate & status.is_in(statuses).fill_null(False)
    known = [*verification["read"], *verification["not_read"]]
    reasons["verification status not recognised"] = candidate & ~confirmed & ~status.is_in(known).fill_null(False)
    conditions = resources.filter(pl.col("resourceType") == "Condition")
    not_read = _counted(conditions, reasons)
    onset = pl.coalesce("onsetDateTime", pl.col("onsetPeriod").struct.field("start"))
    rows = conditions.filter(candidate & confirmed).select(
        pl.col(SOURCE_ROW),
        _patient_of(),
        _local_date(onset, reading.time_zone).alias("fracture_date"),
        site.alias("site"),
        pl.coalesce(icd, category).alias("icd10"),
    )
    return rows, not_read


def _procedures(resources: pl.LazyFrame, path: Path, reading: FhirSettings) -> tuple[pl.LazyFrame, dict[str, int]]:
    """Procedures coded as a DXA bone density study (``dxa_procedures.toml``: CPT, SNOMED CT) and completed, as
    DXA procedure rows (patient, date performed, the code): a DXA done, with or without a result. Procedures
    of another code, and DXA procedures of another status, are counted, not read."""
    settings = shipped_toml("reference/dxa_procedures.toml")
    element = pl.element().struct.field
    listed = [f"{c['system']}|{c['code']}" for c in settings["code"]]
    keys = _codes("code").list.eval(element("system") + "|" + element("code"))
    found = keys.list.eval(pl.element().filter(pl.element().is_in(listed))).list.first()
    is_dxa = found.is_not_null().fill_null(False)
    completed = pl.col("status").is_in(settings["fhir"]["statuses_read"]).fill_null(False)
    procedures = resources.filter(pl.col("resourceType") == "Procedure")
    not_read = _counted(procedures, {"not a DXA procedure code": ~is_dxa, "status not completed": is_dxa & ~completed})
    performed = pl.coalesce("performedDateTime", pl.col("performedPeriod").struct.field("start"))
    rows = procedures.filter(is_dxa & completed).select(
        pl.col(SOURCE_ROW),
        _patient_of(),
        _local_date(performed, reading.time_zone).alias("procedure_date"),
        found.str.split("|").list.last().alias("code"),
    )
    return rows, not_read


def _medications(resources: pl.LazyFrame, path: Path, reading: FhirSettings) -> tuple[pl.LazyFrame, dict[str, int]]:
    """Medication resources as medication rows: only those whose status (and a request's intent) says the drug
    was ordered, handed over, given or taken (``drugs.toml`` ``[fhir]``); the others are counted by resource
    type and status or intent, never read.

    The medication is ``medicationCodeableConcept``, else the ``Medication`` that ``medicationReference`` names
    (contained in the resource, or in the export's ``Medication`` files). Its drug is the one its RxNorm code
    stands for (``drugs.toml`` ``[[rxnorm]]``), else its ATC code, else the drug word (generic or brand; an
    oncology brand first) its name or text contains, else the text as written (unrecognised: counted).
    ``dose_mg``, which tells oncology products apart, is the RxNorm code's strength, else the total strength of
    its RxNorm name (volume × concentration: "1.7 ML denosumab 70 MG/ML Injection" is 119 mg), else its
    ``doseQuantity`` in mg."""
    settings = reference.fhir_medication_settings()
    meds = _with_medication(resources.filter(pl.col("resourceType").is_in(list(RESOURCES["meds"]))), path)
    reason = _medication_not_read(settings)
    not_read = _counted_by(meds, reason)
    concept = "_medication"
    element = pl.element().struct.field
    rxnorm = _codes_of_system(concept, settings["rxnorm_system"])
    codes = reference.rxnorm_codes()
    known = codes.get_column("code").to_list()
    code = rxnorm.list.eval(pl.element().filter(pl.element().is_in(known))).list.first()
    code_drug = code.replace_strict(dict(codes.select("code", "drug").iter_rows()), default=None)
    code_mg = code.replace_strict(dict(codes.select("code", "strength_mg").iter_rows()), default=None)
    displays = _codes(concept).list.eval(element("display")).list.drop_nulls()
    text = pl.col(concept).struct.field("text")
    written = pl.concat_str(text, displays.list.join(" | "), separator=" | ", ignore_nulls=True)
    written = pl.when(written != "").then(written)
    rxnorm_name = _codes(concept).list.eval(
        pl.when(element("system") == settings["rxnorm_system"]).then(element("display"))
    )
    name = pl.coalesce(rxnorm_name.list.drop_nulls().list.first(), text, displays.list.first())
    date = pl.coalesce(
        "whenHandedOver",
        "authoredOn",
        "effectiveDateTime",
        pl.col("effectivePeriod").struct.field("start"),
        "dateAsserted",
    )
    supply = _supply_days(
        pl.coalesce(pl.col("daysSupply"), pl.col("dispenseRequest").struct.field("expectedSupplyDuration")),
        settings["supply_days_per_unit"],
    )
    dose_mg = pl.coalesce(code_mg.cast(pl.Utf8), _named_mg(name).cast(pl.Utf8), _dose_quantity_mg())
    rows = meds.filter(reason.is_null()).select(
        pl.col(SOURCE_ROW),
        _patient_of(),
        pl.coalesce(
            code_drug,
            _codes_of_system(concept, ATC).list.first(),
            _drug_word(written.str.to_lowercase()),
            written,
            _codes(concept).list.first().struct.field("code"),
        ).alias("drug"),
        _local_date(date, reading.time_zone).alias("event_date"),
        supply.alias("days_supply"),
        dose_mg.alias("dose_mg"),
    )
    return rows, not_read


def _supply_days(quantity: pl.Expr, per_unit: dict[str, float]) -> pl.Expr:
    """A supply's duration (a Quantity) as days, as text: its value when its UCUM code (else unit) is days or
    absent; a number in another listed unit times its days (``drugs.toml`` ``[fhir.supply_days_per_unit]``),
    rounded to whole days; else the value and unit as written, which validation quarantines (never misread)."""
    value = quantity.struct.field("value")
    unit = pl.coalesce(quantity.struct.field("code"), quantity.struct.field("unit")).str.strip_chars()
    unit = pl.when(unit != "").then(unit.str.to_lowercase())
    factor = unit.replace_strict({u: float(d) for u, d in per_unit.items()}, default=None, return_dtype=pl.Float64)
    number = value.str.strip_chars().cast(pl.Float64, strict=False)
    converted = (number * factor).round(0).cast(pl.Int64).cast(pl.Utf8)
    return (
        pl.when(unit.is_null() | (factor == 1) | (factor.is_not_null() & number.is_null()))
        .then(value)
        .when(factor.is_not_null())
        .then(converted)
        .otherwise(pl.concat_str(value, unit, separator=" "))
    )


_MG_DIGITS = 6  # volume × concentration is rounded to this many decimals (float noise, not a clinical number)


def _drug_word(lowered: pl.Expr) -> pl.Expr:
    """The drug word (generic, synonym, brand or ATC code of ``drugs.toml``) a lower-case text contains, when
    every word found means one drug; an oncology brand first ("… [Xgeva]" is Xgeva, not denosumab)."""
    lookup = reference.drug_lookup()
    generic_of = dict(lookup.select("key", "generic").iter_rows())
    oncology = lookup.filter(pl.col("oncology_brand")).get_column("key").to_list()
    found = pl.concat_list(
        [pl.when(lowered.str.contains(rf"\b{re.escape(w)}\b")).then(pl.lit(w)) for w in generic_of]
    ).list.drop_nulls()
    drugs = found.list.eval(pl.element().replace_strict(generic_of, return_dtype=pl.Utf8)).list.n_unique()
    first_oncology = found.list.eval(pl.element().filter(pl.element().is_in(oncology))).list.first()
    return pl.when(drugs == 1).then(pl.coalesce(first_oncology, found.list.first()))


def _named_mg(name: pl.Expr) -> pl.Expr:
    """The total strength in mg an RxNorm name gives its drug: ``alendronic acid 70 MG Oral Tablet`` 70,
    ``denosumab 120 MG`` 120, ``1.7 ML denosumab 70 MG/ML Injection`` 1.7 × 70; null for a concentration
    without a volume (``denosumab 60 MG/ML Injectable Solution``) or no strength after a drug word. A salt word or
    two may stand between the drug and its strength (``risedronate sodium 35 MG``)."""
    words = sorted(reference.drug_lookup().get_column("key").to_list(), key=len, reverse=True)
    number = r"(\d+(?:\.\d+)?)"
    pattern = (
        rf"^(?:{number}\s*ml\s+)?.*?\b(?:{'|'.join(re.escape(w) for w in words)})"
        rf"(?:\s+[a-z-]+){{0,2}}?\s+{number}\s*mg(/ml)?\b"
    )
    parts = name.str.to_lowercase().str.extract_groups(pattern)
    volume, amount = (parts.struct.field(g).cast(pl.Float64, strict=False) for g in ("1", "2"))
    return pl.when(parts.struct.field("3").is_null()).then(amount).otherwise((volume * amount).round(_MG_DIGITS))


def _dose_quantity_mg() -> pl.Expr:
    """``doseQuantity`` when written in mg: a MedicationAdministration's ``dosage.dose``, a MedicationStatement's
    first ``dosage``, a MedicationRequest's first ``dosageInstruction``."""

    def in_mg(value: pl.Expr, unit: pl.Expr, code: pl.Expr) -> pl.Expr:
        return pl.when(pl.coalesce(unit, code).str.to_lowercase() == "mg").then(value)

    dosage = pl.col("dosage").str.json_path_match
    instruction = (
        pl.col("dosageInstruction").list.first().struct.field("doseAndRate").list.first().struct.field("doseQuantity")
    )
    statement = "$[0].doseAndRate[0].doseQuantity"
    return pl.coalesce(
        in_mg(dosage("$.dose.value"), dosage("$.dose.unit"), dosage("$.dose.code")),
        in_mg(dosage(f"{statement}.value"), dosage(f"{statement}.unit"), dosage(f"{statement}.code")),
        in_mg(*(instruction.struct.field(f) for f in ("value", "unit", "code"))),
    )


def _medication_not_read(settings: dict) -> pl.Expr:
    """Why a medication resource is not read (null when it is): its status, or a request's intent, is not one
    that says the drug was taken (named only when it is a code of the FHIR R4 value set), or its
    ``medicationReference`` names no Medication of the export."""
    kind, status, intent = pl.col("resourceType"), pl.col("status"), pl.col("intent")
    types = reference.fhir_medication_types(settings)

    def listed(field: str) -> list[str]:
        return [f"{t}|{c}" for t, spec in types.items() for c in spec.get(field, [])]

    status_key = pl.concat_str(kind, pl.lit("|"), status)
    intent_key = pl.concat_str(kind, pl.lit("|"), intent)
    has_intent = kind.is_in([t for t, spec in types.items() if "intents" in spec])
    return (
        pl.when(status.is_null())
        .then(pl.format("{} without status", kind))
        .when(~status_key.is_in(listed("statuses")))
        .then(pl.format("{} status not in the FHIR R4 value set", kind))
        .when(~status_key.is_in(listed("read_statuses")))
        .then(pl.format("{} status {}", kind, status))
        .when(has_intent & intent.is_null())
        .then(pl.format("{} without intent", kind))
        .when(has_intent & ~intent_key.is_in(listed("intents")))
        .then(pl.format("{} intent not in the FHIR R4 value set", kind))
        .when(has_intent & ~intent_key.is_in(listed("read_intents")))
        .then(pl.format("{} intent {}", kind, intent))
        .when(pl.col("_unresolved"))
        .then(pl.format("{} medicationReference to no Medication in the export", kind))
    )


def _counted_by(frame: pl.LazyFrame, reason: pl.Expr) -> dict[str, int]:
    """reason → resources, for the resources with a reason."""
    counts = frame.select(reason.alias("_reason")).drop_nulls().group_by("_reason").len().sort("_reason")
    return {r: int(n) for r, n in counts.collect().iter_rows()}


def _with_medication(meds: pl.LazyFrame, path: Path) -> pl.LazyFrame:
    """+ ``_medication``: ``medicationCodeableConcept``, else the ``code`` of the Medication ``medicationReference``
    names: ``#id`` one contained in the resource, ``Medication/id`` (or a URL ending so) one of the export's
    ``Medication`` files; + ``_unresolved``: a reference that names none."""
    reference_expr = pl.col("medicationReference").struct.field("reference")
    contained_id = pl.when(reference_expr.str.starts_with("#")).then(reference_expr.str.strip_prefix("#"))
    folder_id = reference_expr.str.extract(rf"(?:^|/){MEDICATION}/([^/#?]+)$", 1)
    resource = pl.col("contained").str.json_path_match
    contained = (
        meds.select(SOURCE_ROW, "contained")
        .explode("contained")
        .filter(resource("$.resourceType") == MEDICATION)
        .select(
            SOURCE_ROW,
            resource("$.id").alias("_contained_id"),
            resource("$.code").str.json_decode(_CONCEPT).alias("_contained_code"),
        )
        .unique([SOURCE_ROW, "_contained_id"], keep="first", maintain_order=True)
    )
    joined = (
        meds.with_columns(contained_id.alias("_contained_id"), folder_id.alias("_folder_id"))
        .join(contained, on=[SOURCE_ROW, "_contained_id"], how="left", maintain_order="left")
        .join(_folder_medications(path), on="_folder_id", how="left", maintain_order="left")
    )
    medication = pl.coalesce("medicationCodeableConcept", "_contained_code", "_folder_code")
    return joined.with_columns(
        medication.alias("_medication"), (reference_expr.is_not_null() & medication.is_null()).alias("_unresolved")
    )


def _folder_medications(path: Path) -> pl.LazyFrame:
    """Medication id → its ``code``, from the export's ``Medication`` files (read as a lookup, never as rows)."""
    files = [p for p in ndjson_files(path.parent) if resource_type(p) == MEDICATION]
    empty = pl.LazyFrame(schema={"_folder_id": pl.Utf8, "_folder_code": _CONCEPT})
    if not files:
        return empty
    schema = {"resourceType": pl.Utf8, "id": pl.Utf8, "code": _CONCEPT}
    return (
        pl.scan_ndjson([escaped(p) for p in files], schema=schema)
        .filter(pl.col("resourceType") == MEDICATION)
        .select(pl.col("id").alias("_folder_id"), pl.col("code").alias("_folder_code"))
        .unique("_folder_id", keep="first", maintain_order=True)
    )

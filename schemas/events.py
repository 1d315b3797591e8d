"""The optional medications and fractures exports' fields, and the DXA procedures a FHIR export gives
(docs/inputs.md). Plain data: ``schemas.input_checks`` builds the Pandera schemas from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.fields import Field

if TYPE_CHECKING:  # the type alone: no engine is loaded for the fields (the command line's help reads them)
    from schemas.readers import Words

MEDS_FIELDS: tuple[Field, ...] = (
    Field("patient_id", "text", "Patient identifier", required=True),
    Field("drug", "text", "Generic name, brand name or ATC code", required=True),
    Field("event_date", "date", "Dispensing or administration date", required=True),
    Field("days_supply", "integer", "Days the dispensing covers (blank: the drug's default)", range_key="days_supply"),
    Field("dose_mg", "number", "Dose in mg (tells oncology products apart)"),
)
MEDS_REQUIRED_HEADERS = ("patient_id", "drug", "event_date")

FRACTURE_SITES = ("hip", "vertebral", "wrist", "humerus", "pelvis", "other")
FRACTURES_FIELDS: tuple[Field, ...] = (
    Field("patient_id", "text", "Patient identifier", required=True),
    Field("fracture_date", "date", "Date of the fracture", required=True),
    Field("site", "fracture_site", "hip / vertebral / wrist / humerus / pelvis / other"),
    Field("icd10", "icd10", "ICD-10(-CM) code, with or without the dot"),
    Field("birth_date", "date", "Date of birth (lets the age rule apply to patients with no scan)"),
)
FRACTURES_REQUIRED_HEADERS = ("patient_id", "fracture_date")
FRACTURE_SITE_SOURCES = ("site", "icd10")

# A DXA done without a result: read from a FHIR Bulk Data export's Procedure files (no CLI option)
DXA_PROCEDURES_FIELDS: tuple[Field, ...] = (
    Field("patient_id", "text", "Patient identifier", required=True),
    Field("procedure_date", "date", "Date the DXA was performed", required=True),
    Field("code", "text", "The procedure's DXA code as exported (CPT or SNOMED CT)"),
)
DXA_PROCEDURES_REQUIRED_HEADERS = ("patient_id", "procedure_date")
EVENT_WORDS: Words = {"fracture_site": {site: site for site in FRACTURE_SITES}}

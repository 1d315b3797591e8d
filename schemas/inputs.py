"""The kinds of input a screen reads (docs/inputs.md): one declaration each, from which the request, the
partitions, the command line (its options and the run summary) and the docs pages take the kind's name, option,
words, fields and required columns. Plain data, no engine: ``osteo --help`` reads it.

A kind's ``name`` is what the manifest (``inputs[].input``, ``inputs_given``, ``rows_by_input``) and the
``quarantine.input`` column say; with an option it is also the option's name (``--meds``) and the request's field.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import (
    DXA_PROCEDURES_FIELDS,
    DXA_PROCEDURES_REQUIRED_HEADERS,
    FRACTURE_SITE_SOURCES,
    FRACTURES_FIELDS,
    FRACTURES_REQUIRED_HEADERS,
    MEDS_FIELDS,
    MEDS_REQUIRED_HEADERS,
)
from schemas.fields import Field
from schemas.gaps import SCREENING_DUE
from schemas.population import POPULATION_FIELDS, POPULATION_REQUIRED_HEADERS
from schemas.scans import AGE_SOURCES, REQUIRED_HEADERS, SCANS_FIELDS


@dataclass(frozen=True)
class InputKind:
    name: str
    option: str | None  # the command line's option (``--meds``); None: no option of its own
    called: str  # what a message calls the export: "no medications export this time"
    row: str  # what one row is called in the run summary: "medication rows: 120 in = …"
    document: str  # what the user gives, in the option's help and the docs: "medications export"
    one_row_per: str  # docs/inputs.md: "one row per dispensing or administration"
    fields: tuple[Field, ...]
    required_headers: tuple[str, ...]  # every file of the kind has these columns
    one_of_headers: tuple[str, ...] = ()  # and at least one of these
    optional: bool = True  # a screen runs without it
    help: str = ""  # the option's help

    @property
    def heading(self) -> str:
        """docs/inputs.md's heading of the kind: ``Medications export (`--meds`, optional): one row per …``."""
        need = "optional" if self.optional else "required"
        return (
            f"{self.document[0].upper()}{self.document[1:]} (`{self.option}`, {need}): one row per {self.one_row_per}"
        )


SCANS = InputKind(
    "scans",
    "--scans",
    called="scans",
    row="scan",
    document="scans export",
    one_row_per="DXA exam",
    fields=SCANS_FIELDS,
    required_headers=REQUIRED_HEADERS,
    one_of_headers=AGE_SOURCES,
    optional=False,
    help="scans export file or folder; repeatable (or --omop)",
)
MEDS = InputKind(
    "meds",
    "--meds",
    called="medications",
    row="medication",
    document="medications export",
    one_row_per="dispensing or administration",
    fields=MEDS_FIELDS,
    required_headers=MEDS_REQUIRED_HEADERS,
    help="medications export (optional)",
)
FRACTURES = InputKind(
    "fractures",
    "--fractures",
    called="fractures",
    row="fracture",
    document="fractures export",
    one_row_per="fracture event",
    fields=FRACTURES_FIELDS,
    required_headers=FRACTURES_REQUIRED_HEADERS,
    one_of_headers=FRACTURE_SITE_SOURCES,
    help="fractures export (optional)",
)
POPULATION = InputKind(
    "population",
    "--population",
    called="population roster",
    row="population roster",
    document="population roster",
    one_row_per="patient and coverage span",
    fields=POPULATION_FIELDS,
    required_headers=POPULATION_REQUIRED_HEADERS,
    help="population roster (optional): everyone the health system is responsible for, one row per coverage span;"
    f" adds the {SCREENING_DUE.name} gap for those never scanned",
)
DXA_PROCEDURES = InputKind(  # no option: a FHIR Bulk Data export's Procedure files (the export given as --scans)
    "dxa_procedures",
    None,
    called="DXA procedures",
    row="DXA procedure",
    document="DXA procedures of a FHIR export",
    one_row_per="completed DXA procedure",
    fields=DXA_PROCEDURES_FIELDS,
    required_headers=DXA_PROCEDURES_REQUIRED_HEADERS,
)

INPUT_KINDS = (SCANS, MEDS, FRACTURES, POPULATION, DXA_PROCEDURES)  # in the manifest's order
INPUTS = tuple(kind.name for kind in INPUT_KINDS)
BY_NAME = {kind.name: kind for kind in INPUT_KINDS}
OPTIONS = tuple(kind for kind in INPUT_KINDS if kind.option)  # the kinds a user gives by an option of their own


def called(name: str) -> str:
    """What a message calls the input kind of that name (``meds``: medications); a name no kind has, itself."""
    return BY_NAME[name].called if name in BY_NAME else name


def called_together(names: list[str]) -> str:
    """``medications``, ``medications and fractures``, ``medications, fractures and population roster``."""
    words = [called(name) for name in names]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"

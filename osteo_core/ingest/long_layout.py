"""The ``[long]`` section of a profile: an export with one row per measurement (docs/inputs.md, "Long exports").

Each row names what it measures in one column (a code such as a LOINC code, or a region such as
``Left Neck``) and holds the value in one column, or one column per measure (``BMD``, ``T_score``,
``Z_score``). The profile says which rows belong to one exam (the exam key, with the patient id) and what
each measurement means: a canonical column (``spine_t``, ``frax_mof``), a column stem the value headers
complete (``left_femoral_neck`` + ``_bmd``), or ``-`` for a region the screen does not use (counted, kept
in the raw layer). ``osteo_core.ingest.assemble`` turns the rows into one canonical row per exam.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from osteo_core.errors import InputError
from osteo_core.ingest.readers import header_key
from schemas.scans import SCANS_FIELDS

# Canonical names of a long export's own columns (raw layer): never scans fields.
MEASUREMENT = "measurement"
MEASUREMENT_TEXT = "measurement_text"
MEASUREMENT_UNIT = "measurement_unit"
VALUE = "value"  # the one value column; value_t / value_z / value_bmd when the columns name the measure
EXAM_KEYS = ("exam_id", "exam_date")  # with patient_id, what may identify an exam
NOT_SCREENED = "-"
LONG_MEASURES = ("t", "z", "bmd")
# Fields a measurement row may carry: numbers, yes/no answers, the menopausal status (an observation in
# FHIR); never who or when (those are columns).
_MEASURABLE = {f.name for f in SCANS_FIELDS if f.kind in ("number", "boolean", "menopausal")} - {"age_years"}
_SETTINGS = {"exam_key", "measurement", "codes", "text", "unit", "values", "measurements"}


def value_column(measure: str) -> str:
    return f"{VALUE}_{measure}" if measure else VALUE


def measurement_key(text: str) -> str:
    """How a measurement is matched: trimmed, lower case, inner white space collapsed (the same as
    ``assemble.measurement_key_expr``)."""
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass(frozen=True)
class LongLayout:
    exam_key: tuple[str, ...]  # with patient_id, the columns that identify an exam
    headers: dict[str, str]  # header_key(export header) -> measurement / measurement_text / _unit / value[_m]
    measures: tuple[str, ...]  # the value columns' measures ("" alone: the measurement names the column)
    measurements: dict[str, str] = field(default_factory=dict)  # measurement_key -> column, stem or "-"
    loinc: bool = False  # also look measurements up in the shipped DXA LOINC grid

    def target(self, stem: str, measure: str) -> str:
        return f"{stem}_{measure}" if measure else stem


def long_layout(raw: dict[str, Any], source: str) -> LongLayout:
    """The ``[long]`` section checked: every name it uses must exist (``InputError`` naming the profile)."""

    def fail(message: str) -> InputError:
        return InputError(source, f"[long] {message}")

    unknown = set(raw) - _SETTINGS
    if unknown:
        raise fail(f"unknown setting(s): {', '.join(sorted(unknown))}")
    exam_key = raw.get("exam_key")
    if not isinstance(exam_key, list) or not exam_key or any(k not in EXAM_KEYS for k in exam_key):
        raise fail(f"exam_key must list one or both of {', '.join(EXAM_KEYS)} (the patient id is always part of it)")
    if "exam_date" not in exam_key and "exam_id" not in exam_key:
        raise fail("exam_key needs exam_id or exam_date")
    headers: dict[str, str] = {}

    def header(setting: str, canonical: str, required: bool) -> None:
        name = raw.get(setting)
        if name is None:
            if required:
                raise fail(f"'{setting}' (the header of the column naming what each row measures) is required")
            return
        if not isinstance(name, str) or not name.strip():
            raise fail(f"'{setting}' must be a header name")
        if header_key(name) in headers:
            raise fail(f"header '{name}' is used twice")
        headers[header_key(name)] = canonical

    header("measurement", MEASUREMENT, required=True)
    header("text", MEASUREMENT_TEXT, required=False)
    header("unit", MEASUREMENT_UNIT, required=False)
    values = raw.get("values")
    if not isinstance(values, dict) or not values:
        raise fail('[long.values] must map each value header to its measure (t, z, bmd, or "")')
    measures = []
    for name, measure in values.items():
        if measure not in (*LONG_MEASURES, ""):
            raise fail(f"[long.values] '{name}' = '{measure}': the measure must be t, z, bmd or \"\"")
        if measure not in measures:  # several headers may hold one measure (vendors name it differently)
            measures.append(measure)
        if header_key(name) in headers:
            raise fail(f"header '{name}' is used twice")
        headers[header_key(name)] = value_column(measure)
    if "" in measures and len(values) > 1:
        raise fail('[long.values] a value header with measure "" (named by the row) must be the only one')
    codes = raw.get("codes")
    if codes not in (None, "loinc"):
        raise fail(f"codes = '{codes}': the only shipped code list is 'loinc'")
    if codes == "loinc" and measures != [""]:
        raise fail('codes = "loinc" needs one value header with measure "" (the code names the measure)')
    measurements: dict[str, str] = {}
    for name, stem in (raw.get("measurements") or {}).items():
        if not isinstance(stem, str):
            raise fail(f"[long.measurements] '{name}' must map to a column name or \"-\"")
        if stem != NOT_SCREENED:
            for measure in measures:
                column = f"{stem}_{measure}" if measure else stem
                if column not in _MEASURABLE:
                    raise fail(
                        f"[long.measurements] '{name}' = '{stem}' gives '{column}', not a measurable scans column"
                    )
        key = measurement_key(name)
        if key in measurements:
            raise fail(f"[long.measurements] '{name}' is listed twice")
        measurements[key] = stem
    if not measurements and codes is None:
        raise fail('nothing says what a measurement means: list [long.measurements] or set codes = "loinc"')
    return LongLayout(tuple(exam_key), headers, tuple(measures), measurements, codes == "loinc")

"""The optional population roster's fields (docs/inputs.md, population): who the health system is responsible
for, whether or not they were ever scanned. One row per coverage span; a patient may have several.
Plain data: ``schemas.input_checks`` builds the Pandera schemas from it."""

from __future__ import annotations

from schemas.fields import Field

POPULATION_FIELDS: tuple[Field, ...] = (
    Field("patient_id", "text", "Patient identifier", required=True),
    Field("sex", "sex", "Sex (the profile's words: F/M, female/male, …)", required=True),
    Field("birth_date", "date", "Date of birth", required=True),
    Field("death_date", "date", "Date of death (blank: alive)"),
    Field("enrolled_from", "date", "First day of this coverage span (blank: from birth)"),
    Field("enrolled_to", "date", "Last day of this coverage span, included (blank: still enrolled)"),
)
POPULATION_REQUIRED_HEADERS = ("patient_id", "sex", "birth_date")
ROSTER_DERIVED = ("enrolled_since", "alive", "enrolled")  # the population table's own columns

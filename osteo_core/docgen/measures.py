"""docs/measures.md (``templates/measures.md``, a ``measure.md`` each): the quality measures step by step, every
number from its spec (``data/measures/*.toml``), and the value sets they name."""

from __future__ import annotations

from osteo_core import reference
from osteo_core.docgen.markdown import code_list, generated, render, section, table
from osteo_core.measures.specs import load_measures
from osteo_core.resources import shipped_toml

_MONTHS = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _day_words(day) -> str:
    year = {0: "the measurement year", -1: "the year before"}.get(day.year, f"measurement year {day.year:+d}")
    return f"{day.day} {_MONTHS[day.month]} of {year}"


def _measure_steps(spec) -> list[list[str]]:
    """A measure's steps in words, each number from its spec."""
    sets = shipped_toml("reference/measure_value_sets.toml")
    named = lambda names: " or ".join(f"{sets[n]['description']} (`{n}`)" for n in names)  # noqa: E731
    steps = [
        [
            "population",
            f"roster patients of sex `{spec.sex}` aged {spec.min_age_years} to {spec.max_age_years} (completed"
            " years) on 31 December of the measurement year",
        ]
    ]
    if spec.index_value_set:
        steps.append(
            [
                "index event",
                f"the first {named([spec.index_value_set])} from {_day_words(spec.index_from)} to"
                f" {_day_words(spec.index_to)}; patients without one are not listed",
            ]
        )
    enrolment = {
        "around_index": f"enrolled without a break from {spec.enrolment_months_before} calendar months before the"
        f" index event to {spec.enrolment_days_after} days after it (a death ends enrolment the day before)",
        "on_period_end": "alive and enrolled on 31 December of the measurement year (or on the as-of date, when"
        " that is earlier)",
        "none": "listed in the roster (no enrolment window)",
    }[spec.enrolment]
    steps.append(["denominator", enrolment])
    for rule in spec.exclusions:
        if rule.days_before_index is None:
            when = "on or before the end of the period"
        else:
            when = f"in the {rule.days_before_index} days before the index event"
            if rule.value_set == "osteoporosis_medication":
                when += " (dispensed then, or its supply covering a day of them)"
        if rule.yields_to_numerator:
            when += "; not for a patient who meets the numerator"
        steps.append([f"exclusion `{rule.reason}`", f"{named([rule.value_set])} {when}"])
    if spec.numerator_ever:
        window = "on or before the end of the period (or the as-of date, when that is earlier)"
    elif spec.numerator_days_after is not None:
        window = f"on the index date or in the {spec.numerator_days_after} days after it, ends included"
    else:
        window = f"from the index date to {spec.numerator_months_after} calendar months after it, ends included"
    steps.append(["numerator", f"{named(spec.numerator_value_sets)} {window}"])
    return steps


def _value_set_rows() -> list[list[str]]:
    sets = shipped_toml("reference/measure_value_sets.toml")
    codes = {
        "osteoporosis_medication": ", ".join(sets["osteoporosis_medication"]["generics"])
        + " (oncology products never)",
        "osteoporosis_diagnosis": "ICD-10-CM codes starting "
        + code_list(sets["osteoporosis_diagnosis"]["icd10_prefixes"]),
        "fracture": "a site word, or a code starting "
        + code_list(reference.fracture_codes()["fhir"]["fracture_prefixes"])
        + "; and the fragility and new-fracture flags of the fractures table (docs/inputs.md)",
        "bone_density_test": "any valid exam of the screening table, or a completed DXA procedure (the "
        "`dxa_procedures` table)",
    }
    return [[f"`{name}`", sets[name]["description"], codes[name]] for name in codes]


def measures_page() -> str:
    measures = [
        section(
            "measure",
            id=spec.id,
            name=spec.name,
            version=spec.version,
            path=str(spec.path),
            steward=spec.steward,
            source=spec.source,
            steps_table=table(["step", "rule"], _measure_steps(spec)),
        )
        for spec in load_measures()
    ]
    return render(
        "measures",
        generated=generated(__name__),
        measures="\n\n".join(measures),
        value_sets_table=table(["value set", "what counts", "codes"], _value_set_rows()),
    )

"""docs/inputs.md (``templates/inputs.md``): the input exports, their columns, rules and code lists, with the
sections on long exports, FHIR Bulk Data and an OMOP CDM (``templates/inputs_*.md``), every value from the
field registry (``schemas.inputs``) and the shipped data files."""

from __future__ import annotations

from typing import Any

import polars as pl

from osteo_core import reference
from osteo_core.docgen.markdown import bounds, code_list, generated, render, section, table
from osteo_core.ingest import fhir
from osteo_core.ingest.assemble import CHECKS
from osteo_core.ingest.omop import LATER_DEATH, NOT_USED, UNKNOWN_PERSON
from osteo_core.ingest.profiles import fhir_profiles, load_profile, shipped_profiles
from osteo_core.resources import shipped_toml
from schemas import readers
from schemas.fields import Field
from schemas.gaps import SCREENING_DUE
from schemas.inputs import FRACTURES, MEDS, POPULATION, SCANS
from schemas.parsing import FALSE_WORDS, TRUE_WORDS
from schemas.scans import MENOPAUSAL_WORDS, SEX_WORDS

_KIND_WORDS = {
    "text": "text",
    "date": "date",
    "sex": "`F` / `M`",
    "number": "number",
    "integer": "whole number",
    "boolean": "yes / no",
    "menopausal": "`pre` / `peri` / `post`",
    "spine_levels": "vertebrae, e.g. `L1-L4`",
    "fracture_site": "site word",
    "icd10": "ICD-10(-CM) code",
}


def _fields_table(fields: tuple[Field, ...], ranges: dict[str, list[float]]) -> list[str]:
    rows = []
    for f in fields:
        rule = "required" if f.required else ""
        if f.range_key:
            rule = "; ".join(r for r in (rule, bounds(*ranges[f.range_key])) if r)
        rows.append([f"`{f.name}`", _KIND_WORDS.get(f.kind, f.kind), rule, f.description])
    return table(["column", "type", "rule", "what it holds"], rows)


def _parquet_types() -> str:
    """What a typed Parquet column becomes, from the readers' own table (``schemas.readers.NATIVE_TYPES``)."""

    def label(dtype: pl.DataType) -> str:
        return "double" if dtype == pl.Float64 else "integer" if dtype.is_integer() else str(dtype).lower()

    return "; ".join(
        f"{kind} fields: {' or '.join(dict.fromkeys(label(t) for t in types))}"
        for kind, types in readers.NATIVE_TYPES.items()
    )


def _long_section() -> str:
    """The "Long exports" section: the ``[long]`` profile section's checks, the LOINC grid, the site words and units."""
    grid = reference.dxa_loinc()
    words, units = reference.dxa_words(), reference.dxa_units()
    loinc = [
        [
            f"`{r['code']}`",
            r["name"] + (" (misused: site from the text)" if r["misused"] else ""),
            r["site"] or "from the text",
            r["side"] or "from the text, else none",
            r["measure"],
        ]
        for r in grid.iter_rows(named=True)
    ]
    site_words = [
        [kind.replace("_", " "), value, code_list(ws)] for kind, values in words.items() for value, ws in values.items()
    ]
    return section(
        "inputs_long",
        checks_table=table(["check", "quarantines the exam when"], [[f"`{c}`", d] for c, d in CHECKS.items()]),
        loinc_table=table(["code", "LOINC name", "site", "side", "measure"], loinc),
        words_table=table(["for", "value", "words"], site_words),
        units="; ".join(f"{m}: " + code_list(us) for m, us in units.items()),
    )


def _fhir_observations_section() -> str:
    """How a FHIR Bulk Data export feeds the scans (``dxa_loinc.toml`` ``[fhir]``, the FHIR profiles)."""
    settings = shipped_toml("reference/dxa_loinc.toml")["fhir"]
    return section(
        "inputs_fhir_observations",
        fhir_profiles=code_list(fhir_profiles()),
        record_number_type=settings["record_number_type"],
        observation_statuses=code_list(settings["observation_statuses"]),
        report_statuses_not_read=code_list(settings["report_statuses_not_read"]),
        time_zone=fhir.default_settings().time_zone,
    )


def _omop_section() -> str:
    """An OMOP CDM as the input (``omop.toml``; ``ingest.omop``)."""
    omop = shipped_toml("reference/omop.toml")
    vocab, birth = omop["vocabularies"], omop["birth"]
    tables = [
        [f"`{t}`", kind, code_list(columns)]
        for kind in ("required", "optional")
        for t, columns in omop["tables"][kind].items()
    ]
    return section(
        "inputs_omop",
        tables_table=table(["table", "", "columns read"], tables),
        loinc=vocab["loinc"],
        genders=", ".join(f"{', '.join(map(str, ids))} = {sex}" for sex, ids in omop["gender"].items()),
        birth_month=str(birth["month_when_unknown"]),
        birth_day=str(birth["day_when_unknown"]),
        birth_day_when_only_month=str(birth["day_when_only_month_known"]),
        rxnorm=" or ".join(vocab["rxnorm"]),
        snomed=vocab["snomed"],
        procedure_systems=", ".join(f"`{system}` as {v}" for system, v in vocab["procedure_systems"].items()),
        not_used=[
            f"  - `{reason}`: a `{name}` row whose concept (or source value) no code table above names"
            for name, reason in NOT_USED.items()
        ],
        unknown_person=UNKNOWN_PERSON,
        later_death=LATER_DEATH,
    )


def _drug_rows(drugs: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            d["generic"],
            d["class"],
            ", ".join(d.get("synonyms", []) + d.get("brands", [])),
            ", ".join(d.get("atc", [])),
            d["coverage_days"]
            if "iv_dose_mg" not in d
            else f"{d['coverage_days']}; {d['iv_coverage_days']} when `dose_mg` is {d['iv_dose_mg']:g} (IV)",
        ]
        for d in drugs["drugs"]
    ]


def _oncology_doses(drugs: dict[str, Any]) -> str:
    strengths = {
        d["generic"]: [d["oncology_dose_mg"], *d.get("oncology_strengths_mg", [])]
        for d in drugs["drugs"]
        if "oncology_dose_mg" in d
    }
    return ", ".join(f"{generic} {' or '.join(f'{mg:g}' for mg in mgs)} mg" for generic, mgs in strengths.items())


def _fhir_medications_section(drugs: dict[str, Any]) -> str:
    """How a FHIR export's medication resources become medication rows (``drugs.toml`` ``[fhir]`` and
    ``[[rxnorm]]``)."""
    types = reference.fhir_medication_types(drugs["fhir"])
    statuses = [
        [f"`{t}`", code_list(spec["read_statuses"]), code_list(spec["read_intents"]) if "read_intents" in spec else ""]
        for t, spec in types.items()
    ]
    rxnorm = [
        [
            f"`{r['code']}`",
            r["tty"],
            r["name"],
            r["drug"],
            f"{r['strength_mg']:g}" if "strength_mg" in r else "",
            "yes" if r["oncology"] else "",
            r["checked"],
        ]
        for r in drugs.get("rxnorm", [])
    ]
    return section(
        "inputs_fhir_medications",
        resource_types=code_list(types),
        statuses_table=table(["resource", "statuses read", "intents read"], statuses),
        units=", ".join(f"`{u}` × {d:g}" for u, d in drugs["fhir"]["supply_days_per_unit"].items()),
        rxnorm_system=drugs["fhir"]["rxnorm_system"],
        rxnorm_table=table(["code", "type", "RxNorm name", "drug", "mg", "oncology", "checked against"], rxnorm),
    )


def _fhir_conditions_section(codes: dict[str, Any]) -> str:
    """How a FHIR export's Conditions feed the fractures input and its Procedures the DXA procedures, from
    ``fracture_codes.toml`` ``[fhir]`` and ``dxa_procedures.toml``."""
    fhir_codes = codes["fhir"]
    verification = fhir_codes["verification"]
    procedures = shipped_toml("reference/dxa_procedures.toml")
    snomed = [
        [f"`{r['code']}`", r["name"], r.get("site", ""), r.get("icd10", ""), r["source"]] for r in fhir_codes["snomed"]
    ]
    return section(
        "inputs_fhir_conditions",
        statuses_read=code_list(verification["read"]),
        statuses_not_read=code_list(verification["not_read"]),
        icd10_systems=code_list(fhir_codes["icd10_systems"], " or "),
        fracture_prefixes=code_list(fhir_codes["fracture_prefixes"]),
        snomed_system=fhir_codes["snomed_system"],
        fracture_words=code_list(fhir_codes["fracture_words"], " or "),
        snomed_table=table(["SNOMED CT", "name", "site", "ICD-10-CM category", "source"], snomed),
        sources="; ".join(f"`{key}`: {text}" for key, text in fhir_codes["sources"].items()),
        procedure_statuses=code_list(procedures["fhir"]["statuses_read"]),
        screening_due=SCREENING_DUE.name,
        procedures_table=table(
            ["system", "code", "name", "source"],
            [[f"`{c['system']}`", f"`{c['code']}`", c["name"], c["source"]] for c in procedures["code"]],
        ),
    )


def inputs_page() -> str:
    scans_bounds = shipped_toml("validation/scans.toml")
    meds_bounds = shipped_toml("validation/medications.toml")
    drugs = shipped_toml("reference/drugs.toml")
    codes = shipped_toml("reference/fracture_codes.toml")
    return render(
        "inputs",
        generated=generated(__name__),
        parquet_types=_parquet_types(),
        scans_heading=SCANS.heading,
        scans_table=_fields_table(SCANS.fields, scans_bounds["ranges"]),
        earliest_exam_date=str(scans_bounds["earliest_exam_date"]),
        age_bounds=bounds(*scans_bounds["ranges"]["age_years"]),
        sex_words=code_list(SEX_WORDS),
        menopausal_words=code_list(MENOPAUSAL_WORDS),
        yes_no_words=", ".join(f"`{t}`/`{f}`" for t, f in zip(TRUE_WORDS, FALSE_WORDS, strict=True)),
        long_section=_long_section(),
        fhir_observations_section=_fhir_observations_section(),
        omop_section=_omop_section(),
        meds_heading=MEDS.heading,
        meds_table=_fields_table(MEDS.fields, meds_bounds["ranges"]),
        drugs_table=table(["drug", "class", "also written as", "ATC", "coverage (days)"], _drug_rows(drugs)),
        oncology_brands=", ".join(b for d in drugs["drugs"] for b in d.get("oncology_brands", [])),
        oncology_doses=_oncology_doses(drugs),
        fhir_medications_section=_fhir_medications_section(drugs),
        fractures_heading=FRACTURES.heading,
        fractures_table=_fields_table(FRACTURES.fields, {}),
        later_7th_characters=", ".join(codes["encounters"]["later_7th_characters"]),
        codes_table=table(
            ["code prefix", "site", "fragility fracture"],
            [[f"`{p}`", s, "yes" if codes["sites"].get(s, False) else "no"] for p, s in codes["prefixes"].items()],
        ),
        fhir_conditions_section=_fhir_conditions_section(codes),
        population_heading=POPULATION.heading,
        population_table=_fields_table(POPULATION.fields, {}),
        screening_due=SCREENING_DUE.name,
        profiles_table=table(
            ["profile", "what it reads"], [[f"`{name}`", load_profile(name).description] for name in shipped_profiles()]
        ),
    )

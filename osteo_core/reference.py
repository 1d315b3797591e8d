"""Reference data under ``data/reference/``: drugs, fracture codes, DXA codes and care-gap parameters."""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl

from osteo_core.resources import OUTREACH, shipped_toml
from schemas.gaps import GAP_NAMES, GAPS
from schemas.inputs import INPUTS

DRUGS = "reference/drugs.toml"
FRACTURE_CODES = "reference/fracture_codes.toml"
CARE_GAPS = "reference/care_gaps.toml"
DXA_LOINC = "reference/dxa_loinc.toml"
DXA_PROCEDURES = "reference/dxa_procedures.toml"
OMOP = "reference/omop.toml"


def versions() -> dict[str, str]:
    """name → version of every reference file, for the manifest."""
    return {
        shipped_toml(path)["reference"]["name"]: shipped_toml(path)["reference"]["version"]
        for path in (DRUGS, FRACTURE_CODES, CARE_GAPS, DXA_LOINC, DXA_PROCEDURES, OUTREACH, OMOP)
    }


def drug_key(expr: pl.Expr) -> pl.Expr:
    """How a drug cell is matched: trimmed, lower case, inner whitespace collapsed."""
    return expr.str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")


@cache
def drug_lookup() -> pl.DataFrame:
    """One row per recognised word (generic, synonym, brand, oncology brand, ATC code)."""
    rows: list[dict[str, Any]] = []
    for drug in shipped_toml(DRUGS)["drugs"]:
        common = {
            "generic": drug["generic"],
            "drug_class": drug["class"],
            "route": drug["route"],
            "coverage_days": drug["coverage_days"],
            "iv_dose_mg": float(drug["iv_dose_mg"]) if "iv_dose_mg" in drug else None,
            "iv_coverage_days": drug.get("iv_coverage_days"),
            "oncology_dose_mg": float(drug["oncology_dose_mg"]) if "oncology_dose_mg" in drug else None,
            "oncology_doses_mg": _oncology_doses(drug),
        }
        words = [drug["generic"], *drug["synonyms"], *drug["brands"], *drug["atc"]]
        rows += [{"key": w.lower(), "oncology_brand": False, **common} for w in words]
        rows += [{"key": w.lower(), "oncology_brand": True, **common} for w in drug.get("oncology_brands", [])]
    frame = pl.DataFrame(rows, schema_overrides={"oncology_doses_mg": pl.List(pl.Float64)})
    duplicated = frame.filter(pl.col("key").is_duplicated()).get_column("key").to_list()
    if duplicated:
        raise ValueError(f"{DRUGS}: words listed for two drugs: {duplicated}")
    return frame


def _oncology_doses(drug: dict[str, Any]) -> list[float]:
    """The doses that make a row of this drug an oncology product: the contract's ``oncology_dose_mg`` and the
    same product's strength as RxNorm's name computes it (``oncology_strengths_mg``)."""
    doses = [drug["oncology_dose_mg"]] if "oncology_dose_mg" in drug else []
    return [float(d) for d in doses + drug.get("oncology_strengths_mg", [])]


RXNORM_TTYS = ("IN", "BN", "SCD", "SBD")


@cache
def rxnorm_codes() -> pl.DataFrame:
    """The RxNorm concepts of the drugs (``drugs.toml`` ``[[rxnorm]]``): code → the drug word it stands for,
    its generic, its strength in mg (null for an ingredient or brand name) and whether it is an oncology
    product. Checked when loaded: a known word, a known term type, no code twice, and an ``oncology`` flag that
    agrees with the word (an oncology brand) or the strength (an oncology dose of its drug)."""
    lookup = drug_lookup()
    words = {r["key"]: r for r in lookup.iter_rows(named=True)}
    rows, problems = [], []
    for row in shipped_toml(DRUGS).get("rxnorm", []):
        word = words.get(row["drug"].lower())
        strength = float(row["strength_mg"]) if "strength_mg" in row else None
        oncology = bool(word) and (word["oncology_brand"] or strength in (word["oncology_doses_mg"] or []))
        if word is None or row["tty"] not in RXNORM_TTYS or oncology != row["oncology"]:
            problems.append(row["code"])
            continue
        rows.append(
            {
                "code": str(row["code"]),
                "tty": row["tty"],
                "name": row["name"],
                "drug": row["drug"],
                "generic": word["generic"],
                "strength_mg": strength,
                "oncology": row["oncology"],
                "checked": row["checked"],
            }
        )
    schema = {
        "code": pl.Utf8,
        "tty": pl.Utf8,
        "name": pl.Utf8,
        "drug": pl.Utf8,
        "generic": pl.Utf8,
        "strength_mg": pl.Float64,
        "oncology": pl.Boolean,
        "checked": pl.Utf8,
    }
    frame = pl.DataFrame(rows, schema=schema)
    problems += frame.filter(pl.col("code").is_duplicated()).get_column("code").unique().to_list()
    if problems:
        raise ValueError(f"{DRUGS}: bad [[rxnorm]] rows for codes {sorted(problems)}")
    return frame


@cache
def fhir_medication_settings() -> dict[str, Any]:
    """``drugs.toml`` ``[fhir]``: the RxNorm system and, per medication resource type, its FHIR R4 status (and
    intent) value set and the codes read. A code read must be one of the value set's."""
    settings = shipped_toml(DRUGS)["fhir"]
    for kind, spec in fhir_medication_types(settings).items():
        for known, read in (("statuses", "read_statuses"), ("intents", "read_intents")):
            if not set(spec.get(read, [])) <= set(spec.get(known, [])):
                raise ValueError(f"{DRUGS}: [fhir.{kind}] {read} not all in {known}")
    return settings


def fhir_medication_types(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The medication resource types of ``drugs.toml`` ``[fhir]`` (a section with its ``statuses``), each with its
    status and intent value sets: not the other sections of ``[fhir]`` (``supply_days_per_unit``)."""
    return {kind: spec for kind, spec in settings.items() if isinstance(spec, dict) and "statuses" in spec}


@cache
def fracture_codes() -> dict[str, Any]:
    return shipped_toml(FRACTURE_CODES)


@cache
def care_gap_parameters() -> dict[str, Any]:
    """``care_gaps.toml``, checked against the gaps' declarations (``check_care_gaps``)."""
    params = shipped_toml(CARE_GAPS)
    check_care_gaps(params)
    return params


def check_care_gaps(params: dict[str, Any]) -> None:
    """``ValueError`` unless ``care_gaps.toml`` (``params``) agrees with the gaps' declarations (``schemas.gaps``):
    a priority, an input that shows it (``[lifecycle] needs_input``) and a section when it has windows, for each
    declared gap and no other; the keys a declaration names in its section; closing lists of declared gaps only."""
    lifecycle = params["lifecycle"]
    declared = set(GAP_NAMES)
    problems = [
        f"{where} differs from the declared gaps in {sorted(set(names) ^ declared)}"
        for where, names in (("[priority]", params["priority"]), ("[lifecycle] needs_input", lifecycle["needs_input"]))
        if set(names) != declared
    ]
    problems += [f"[lifecycle] needs_input: '{kind}' is no input kind"
                 for kind in lifecycle["needs_input"].values() if kind not in INPUTS]  # fmt: skip
    problems += [f"[lifecycle] {key} names an undeclared gap" for key in ("treatment_closes", "dxa_closes")
                 if not set(lifecycle[key]) <= declared]  # fmt: skip
    problems += [f"[{gap.name}] missing" for gap in GAPS if gap.parameters and gap.name not in params]
    problems += [f"[{gap.name}] given for a gap declared without windows" for gap in GAPS
                 if not gap.parameters and gap.name in params]  # fmt: skip
    problems += [
        f"[{gap.name}] {key} missing"
        for gap in GAPS
        for key in (gap.treatment_from, gap.window)
        if key and key not in params.get(gap.name, {})
    ]
    if len(set(params["priority"].values())) != len(params["priority"]):
        problems.append("[priority] gives two gaps one priority")
    if problems:
        raise ValueError(f"{CARE_GAPS}: {'; '.join(problems)}")


def gaps_by_priority() -> tuple[str, ...]:
    """The gap names, most urgent first (``care_gaps.toml`` ``[priority]``)."""
    priority = care_gap_parameters()["priority"]
    return tuple(sorted(GAP_NAMES, key=lambda name: priority[name]))


LOINC_MEASURES = ("t", "z", "bmd")


@cache
def dxa_loinc() -> pl.DataFrame:
    """The LOINC codes of DXA results: code → system, site (null when the code does not say femoral neck
    or total hip), side (null when unsided), measure (t/z/bmd), name, and whether public data misuses it.

    For the long and FHIR exports (issue 13): a code outside this table is not a DXA result we read.
    """
    from schemas.sites import SIDES, SITES

    rows = shipped_toml(DXA_LOINC)["code"]
    frame = pl.DataFrame(
        [
            {
                "code": r["code"],
                "system": r["system"],
                "site": r["site"] or None,
                "side": r["side"] or None,
                "measure": r["measure"],
                "name": r["name"],
                "misused": bool(r.get("misused", False)),
            }
            for r in rows
        ],
        schema={
            "code": pl.Utf8,
            "system": pl.Utf8,
            "site": pl.Utf8,
            "side": pl.Utf8,
            "measure": pl.Utf8,
            "name": pl.Utf8,
            "misused": pl.Boolean,
        },
    )
    problems = frame.filter(
        pl.col("code").is_duplicated()
        | ~pl.col("measure").is_in(LOINC_MEASURES)
        | ~(pl.col("site").is_null() | pl.col("site").is_in(SITES))
        | ~(pl.col("side").is_null() | pl.col("side").is_in(SIDES))
    )
    if not problems.is_empty():
        raise ValueError(f"{DXA_LOINC}: bad rows for codes {problems.get_column('code').to_list()}")
    return frame


@cache
def dxa_words() -> dict[str, dict[str, tuple[str, ...]]]:
    """``site``, ``hip_site``, ``side`` and ``not_unsited`` → value → the lower-case words in a text that name it."""
    words = shipped_toml(DXA_LOINC)["words"]
    return {kind: {value: tuple(w.lower() for w in ws) for value, ws in table.items()} for kind, table in words.items()}


@cache
def dxa_units() -> dict[str, tuple[str, ...]]:
    """measure (t, z, bmd) → the units accepted for it, lower case."""
    return {measure: tuple(u.lower() for u in units) for measure, units in shipped_toml(DXA_LOINC)["units"].items()}


@cache
def snomed_conditions() -> pl.DataFrame:
    """The SNOMED CT concepts a FHIR Condition is read by (``fracture_codes.toml`` ``[[fhir.snomed]]``): code →
    ``site`` (a fracture's site; blank for a diagnosis alone) and ``icd10`` (the ICD-10-CM category of an
    osteoporosis diagnosis; blank for a fracture alone). Every row names a site of ``[sites]`` or a category, and
    cites sources listed in ``[fhir.sources]``."""
    codes = fracture_codes()
    fhir = codes["fhir"]
    schema = {"code": pl.Utf8, "site": pl.Utf8, "icd10": pl.Utf8, "source": pl.Utf8}
    frame = pl.DataFrame(
        [
            {"code": r["code"], "site": r.get("site"), "icd10": r.get("icd10"), "source": r["source"]}
            for r in fhir["snomed"]
        ],
        schema=schema,
    )
    cited = pl.col("source").str.split(" ").list.eval(pl.element().is_in(list(fhir["sources"]))).list.all()
    problems = frame.filter(
        pl.col("code").is_duplicated()
        | (pl.col("site").is_null() & pl.col("icd10").is_null())
        | ~(pl.col("site").is_null() | pl.col("site").is_in(list(codes["sites"])))
        | ~cited
    )
    if not problems.is_empty():
        raise ValueError(
            f"{FRACTURE_CODES}: bad [[fhir.snomed]] rows for codes {problems.get_column('code').to_list()}"
        )
    return frame.drop("source")

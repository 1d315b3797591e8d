"""Canonical one-row-per-exam text → the long shapes the shipped long profiles read (synthetic data only).

Used to write the long samples (``python -m osteo_core.demo.long_shapes``) and by the tests that check
a long export screens exactly as its wide equivalent. Every cell is copied as text, never re-formatted.

- ``ehr_long``: an EHR result extract (profile ``ehr_loinc_long``): one row per result with its LOINC
  code, the component name (which says femoral neck or total hip, as LOINC's Hip and Femur codes do not),
  value and unit; the patient's sex and birth date repeated on each row; FRAX and risk factors as
  results with local codes.
- ``region_tables``: per-region vendor tables (profile ``dxa2_single_type``): ``hip`` and ``spine`` tables
  with one row per region (``Region``, ``BMD_g/cm2``, T and Z columns), and a ``visits`` table with
  everything else, one row per exam.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import polars as pl

from osteo_core import reference
from schemas.scans import MEASURES, SCANS_COLUMNS, sided
from schemas.sites import HIP_SITES, SIDES, SITES

MEASURE_NAMES = {"t": "T-score", "z": "Z-score", "bmd": "BMD"}
UNITS = {"t": "{T-score}", "z": "{Z-score}", "bmd": "g/cm2"}
SITE_NAMES = {
    "spine": "Lumbar Spine L1-L4",
    "total_hip": "Total Hip",
    "femoral_neck": "Femoral Neck",
    "radius33": "1/3 Radius",
}
LOINC_SYSTEM = {"spine": "lumbar_spine", "total_hip": "hip", "femoral_neck": "femur", "radius33": "radius_ulna"}
# the rest of an exam, on each of its rows (EHR) or in the visits table (regions)
EXAM_COLUMNS = ("patient_id", "exam_id", "exam_date", "sex", "birth_date", "age_years", "menopausal_status")
EXAM_COLUMNS += ("device_id", "spine_levels")
EHR_HEADERS = {
    "patient_id": "PAT_MRN_ID",
    "exam_id": "ACCESSION_NUM",
    "exam_date": "RESULT_DATE",
    "sex": "SEX",
    "birth_date": "BIRTH_DATE",
    "age_years": "AGE_AT_EXAM",
    "menopausal_status": "MENOPAUSAL_STATUS",
    "device_id": "PERFORMING_DEVICE",
    "spine_levels": "SPINE_LEVELS",
}
REGIONS = {"spine": "L1-L4", "total_hip": "Total", "femoral_neck": "Neck", "radius33": "Radius 33%"}


def measurement_columns() -> list[tuple[str, str, str | None, str]]:
    """(canonical column, site, side, measure) of every BMD, T and Z column."""
    unsided = [(f"{site}_{m}", site, None, m) for site in SITES for m, _, _ in MEASURES]
    both = [(sided(side, site, m), site, side, m) for site in HIP_SITES for m, _, _ in MEASURES for side in SIDES]
    return unsided + both


def local_code(column: str) -> str:
    """The extract's own code for a result that has no LOINC (FRAX, risk factors): ``OSTEO-FRAX-MOF``."""
    return "OSTEO-" + column.upper().replace("_", "-")


def other_results(columns: list[str]) -> list[str]:
    measured = {c for c, *_ in measurement_columns()}
    return [c for c in columns if c in SCANS_COLUMNS and c not in measured and c not in EXAM_COLUMNS]


def _loinc(site: str, side: str | None, measure: str) -> str:
    grid = reference.dxa_loinc().filter(
        (pl.col("system") == LOINC_SYSTEM[site])
        & (pl.col("side").is_null() if side is None or site == "spine" else pl.col("side") == side)
        & (pl.col("measure") == measure)
    )
    # the radius T-score's only unsided code is the misused 38265-5: read because the text names the site
    return grid.sort("misused").get_column("code").first()


def ehr_long(wide: pl.DataFrame) -> pl.DataFrame:
    """An EHR result extract of ``wide`` (canonical text columns, one row per exam)."""
    identity = [c for c in EXAM_COLUMNS if c in wide.columns]
    parts = []
    for column, site, side, measure in measurement_columns():
        if column not in wide.columns:
            continue
        name = " ".join(p for p in ("DXA", (side or "").capitalize(), SITE_NAMES[site], MEASURE_NAMES[measure]) if p)
        parts.append(
            wide.select(
                *identity,
                pl.lit(name).alias("COMPONENT_NAME"),
                pl.lit(_loinc(site, side, measure)).alias("LOINC_CODE"),
                pl.col(column).alias("ORD_VALUE"),
                pl.lit(UNITS[measure]).alias("REFERENCE_UNIT"),
            )
        )
    for column in other_results(wide.columns):
        parts.append(
            wide.select(
                *identity,
                pl.lit(column.replace("_", " ").upper()).alias("COMPONENT_NAME"),
                pl.lit(local_code(column)).alias("LOINC_CODE"),
                pl.col(column).alias("ORD_VALUE"),
                pl.lit(None, pl.Utf8).alias("REFERENCE_UNIT"),
            )
        )
    rows = pl.concat(parts).with_row_index("_order")
    rows = rows.filter(pl.col("ORD_VALUE").is_not_null() & (pl.col("ORD_VALUE").str.strip_chars() != ""))
    ordered = rows.sort("patient_id", "exam_date", "exam_id", "_order", nulls_last=True).drop("_order")
    return ordered.rename({c: EHR_HEADERS[c] for c in identity})


def region_tables(wide: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """``hip``, ``spine`` (and ``radius`` when given) per-region tables and the ``visits`` table."""
    key = [pl.col("patient_id").alias("Patients_ID"), pl.col("exam_date").alias("ScanDate")]
    tables: dict[str, list[pl.DataFrame]] = {}
    for site in SITES:
        sides = [None, *SIDES] if site in HIP_SITES else [None]
        for side in sides:
            columns = {m: (sided(side, site, m) if side else f"{site}_{m}") for m in ("bmd", "t", "z")}
            if not any(c in wide.columns for c in columns.values()):
                continue
            region = f"{side.capitalize()} {REGIONS[site]}" if side else REGIONS[site]
            value = {m: pl.col(c) if c in wide.columns else pl.lit(None, pl.Utf8) for m, c in columns.items()}
            table = "hip" if site in HIP_SITES else {"spine": "spine", "radius33": "radius"}[site]
            tables.setdefault(table, []).append(
                wide.with_row_index("_order").select(
                    "_order",
                    *key,
                    pl.lit(region).alias("Region"),
                    value["bmd"].alias("BMD_g/cm2"),
                    value["t"].alias("YA_T_score"),
                    value["z"].alias("AM_Z_score"),
                )
            )
    out = {}
    for name, parts in tables.items():
        rows = pl.concat(parts).filter(
            pl.any_horizontal(
                pl.col(c).is_not_null() & (pl.col(c).str.strip_chars() != "")
                for c in ("BMD_g/cm2", "YA_T_score", "AM_Z_score")
            )
        )
        out[name] = rows.sort("_order", maintain_order=True).drop("_order")
    measured = {c for c, *_ in measurement_columns()}
    rest = [
        c for c in wide.columns if c in SCANS_COLUMNS and c not in measured and c not in ("patient_id", "exam_date")
    ]
    out["visits"] = wide.select(*key, *rest)
    return out


LOCAL_SYSTEM = "urn:osteo-screen:local"  # the code system of the local codes (FRAX, risk factors)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_GENDER = {"F": "female", "M": "male"}
_BODY_SITE = {"total_hip": "total hip", "femoral_neck": "femoral neck (SNOMED 29627003)"}


def _json_line(resource: dict) -> str:
    """One NDJSON line; a value that is a plain decimal is written as a JSON number, exactly as it reads."""
    line = json.dumps(resource, ensure_ascii=False)
    value = (resource.get("valueQuantity") or {}).get("value")
    if isinstance(value, str) and _NUMBER.match(value):
        line = line.replace(f'"value": "{value}"', f'"value": {value}', 1)
    return line


def fhir_resources(wide: pl.DataFrame, meds: pl.DataFrame | None = None, fractures: pl.DataFrame | None = None):
    """A FHIR Bulk Data export of ``wide`` (canonical text, one row per exam; the menopausal status as an
    Observation with a local code; device and spine levels have no FHIR element here, not written) and of
    canonical medications (drug as ATC code or name) and fractures (ICD-10-CM code): type → resources."""
    out: dict[str, list[dict]] = {"Patient": [], "Observation": [], "DiagnosticReport": []}
    people = wide.select("patient_id", "sex", "birth_date").unique("patient_id", keep="first", maintain_order=True)
    for person in people.iter_rows(named=True):
        patient = {"resourceType": "Patient", "id": person["patient_id"]}
        if person["sex"]:
            patient["gender"] = _GENDER.get(person["sex"].strip().upper()[:1], person["sex"])
        if person["birth_date"]:
            patient["birthDate"] = person["birth_date"]
        out["Patient"].append(patient)
    measured = [m for m in measurement_columns() if m[0] in wide.columns]
    others = other_results(wide.columns) + [c for c in ("menopausal_status",) if c in wide.columns]
    for exam in wide.iter_rows(named=True):
        subject = {"reference": f"Patient/{exam['patient_id']}"}
        results = []
        for column, site, side, measure in measured:
            value = exam[column]
            if value is None or not value.strip():
                continue
            observation = {
                "resourceType": "Observation",
                "id": f"{exam['exam_id']}-{column}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": _loinc(site, side, measure)}]},
                "subject": subject,
                "effectiveDateTime": exam["exam_date"],
                "valueQuantity": {
                    "value": value,
                    "unit": UNITS[measure].strip("{}"),
                    "code": "g/cm2" if measure == "bmd" else "1",
                },
            }
            if site == "radius33":  # its one unsided T-score code is the misused 38265-5: the site is stated
                observation["bodySite"] = {"text": "1/3 radius"}
            if site in HIP_SITES:
                observation["bodySite"] = {
                    "text": " ".join(p for p in ((side or "").capitalize(), _BODY_SITE[site]) if p)
                }
            out["Observation"].append(observation)
            results.append(observation["id"])
        for column in others:
            value = exam[column]
            if value is None or not value.strip():
                continue
            field = column
            observation = {
                "resourceType": "Observation",
                "id": f"{exam['exam_id']}-{field}",
                "status": "final",
                "code": {"coding": [{"system": LOCAL_SYSTEM, "code": local_code(field)}]},
                "subject": subject,
                "effectiveDateTime": exam["exam_date"],
            }
            if column == "menopausal_status":
                observation["valueString"] = value
            elif value.strip().lower() in ("true", "false"):
                observation["valueBoolean"] = value.strip().lower() == "true"
            else:
                observation["valueQuantity"] = {"value": value}
            out["Observation"].append(observation)
            results.append(observation["id"])
        out["DiagnosticReport"].append(
            {
                "resourceType": "DiagnosticReport",
                "id": exam["exam_id"],
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "83311-1"}]},
                "subject": subject,
                "effectiveDateTime": exam["exam_date"],
                "result": [{"reference": f"Observation/{r}"} for r in results],
            }
        )
    if meds is not None:
        out["MedicationDispense"] = [
            {
                "resourceType": "MedicationDispense",
                "id": f"md{n}",
                "status": "completed",
                "subject": {"reference": f"Patient/{m['patient_id']}"},
                "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": m["drug"]}]}
                if re.match(r"^[A-Z]\d\d[A-Z]{2}\d\d$", m["drug"])
                else {"text": m["drug"]},
                "whenHandedOver": m["event_date"],
                **({"daysSupply": {"value": m["days_supply"]}} if m.get("days_supply") else {}),
            }
            for n, m in enumerate(meds.iter_rows(named=True))
        ]
    if fractures is not None:
        out["Condition"] = [
            {
                "resourceType": "Condition",
                "id": f"c{n}",
                "subject": {"reference": f"Patient/{f['patient_id']}"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": f["icd10"]}]},
                "onsetDateTime": f["fracture_date"],
            }
            for n, f in enumerate(fractures.iter_rows(named=True))
        ]
    return out


def write_fhir(resources: dict[str, list[dict]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, items in resources.items():
        (folder / f"{kind}.ndjson").write_text("".join(_json_line(r) + "\n" for r in items), encoding="utf-8")


def sample_events() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The medications and fractures of the FHIR sample, as canonical exports (for its wide equivalent)."""
    meds = pl.DataFrame(
        {
            "patient_id": ["P0000000", "P0000000", "P0000003"],
            "drug": ["alendronate", "M05BA04", "M05BX04"],
            "event_date": ["2022-01-10", "2022-04-10", "2024-05-02"],
            "days_supply": ["90", "90", None],
        }
    )
    fractures = pl.DataFrame(
        {
            "patient_id": ["P0000001", "P0000004"],
            "fracture_date": ["2023-02-01", "2025-07-15"],
            "icd10": ["S72.001A", "S52.501A"],
        }
    )
    return meds, fractures


def write_samples(wide_csv: Path, profile: str, target: Path) -> None:
    """The shipped long samples from a wide sample (run once; the samples are committed).

    The wide sample's two bad exams stay bad, and each shape's own faults are added to them, so the
    samples' valid exams are exactly the wide sample's: in the EHR extract a repeated result with another
    value, a Hip code whose component name does not say neck or total hip, a code that is not a DXA result;
    in the region tables a region given twice with another BMD and a region the profile does not list.
    Single vertebrae and the trochanter of the first exams are added as regions not screened.
    """
    from osteo_core.ingest.profiles import load_profile

    text = pl.read_csv(wide_csv, infer_schema=False, glob=False)
    named = load_profile(profile)
    mapped = {h: named.canonical_name(h) for h in text.columns if named.canonical_name(h)}
    wide = text.select(pl.col(h).alias(c) for h, c in mapped.items())
    bad = wide.filter(pl.col("exam_id").is_in(["X000000016", "X000000041"]))
    first_bad, second_bad = bad.row(0, named=True), bad.row(1, named=True)

    ehr = ehr_long(wide)
    like = {"first": ehr.filter(pl.col("ACCESSION_NUM") == first_bad["exam_id"]).head(1)}
    like["second"] = ehr.filter(pl.col("ACCESSION_NUM") == second_bad["exam_id"]).head(1)
    extra = [
        like["first"].with_columns(pl.lit("-1.1").alias("ORD_VALUE")),  # spine T again, another value
        like["first"].with_columns(
            pl.lit("DXA Hip T-score").alias("COMPONENT_NAME"), pl.lit("38264-8").alias("LOINC_CODE")
        ),
        like["second"].with_columns(
            pl.lit("Creatinine").alias("COMPONENT_NAME"),
            pl.lit("2160-0").alias("LOINC_CODE"),
            pl.lit("0.9").alias("ORD_VALUE"),
            pl.lit("mg/dL").alias("REFERENCE_UNIT"),
        ),
    ]
    pl.concat([ehr, *extra]).write_csv(target / "ehr_loinc_long_sample.csv")

    folder = target / "dxa2_single_type_sample"
    folder.mkdir(exist_ok=True)
    headers = {c: h for h, c in mapped.items()}  # the visits table keeps the wide export's own headers
    tables = region_tables(wide)
    hip, spine = tables["hip"], tables["spine"]
    first_hip = hip.filter(pl.col("ScanDate") == first_bad["exam_date"]).head(1)
    second_hip = hip.filter(pl.col("ScanDate") == second_bad["exam_date"]).head(1)
    not_screened = spine.head(3).join(pl.DataFrame({"level": ["L1", "L2", "L3", "L4"]}), how="cross")
    tables["spine"] = pl.concat([spine, not_screened.with_columns(pl.col("level").alias("Region")).drop("level")]).sort(
        "Patients_ID", "ScanDate", maintain_order=True
    )
    tables["hip"] = pl.concat(
        [
            hip,
            hip.head(2).with_columns(pl.lit("Left Troch").alias("Region")),
            first_hip.with_columns(pl.lit("0.512").alias("BMD_g/cm2")),
            second_hip.with_columns(pl.lit("Left Shaft").alias("Region")),
        ]
    )
    for name, table in tables.items():
        if name == "visits":
            table = table.rename({c: headers[c] for c in table.columns if c in headers})
        table.write_csv(folder / f"{name}.csv")

    meds, fractures = sample_events()
    resources = fhir_resources(wide, meds, fractures)
    report = {r["id"]: r for r in resources["DiagnosticReport"]}
    subject = {"reference": f"Patient/{first_bad['patient_id']}"}
    faults = [  # in the two bad exams' reports: a repeated result with another value, a creatinine, a
        # misused 38265-5 whose text names no site
        ("X000000016", "38267-1", {"value": "-1.1", "unit": "T-Score", "code": "1"}, None),
        ("X000000016", "2160-0", {"value": "0.9", "unit": "mg/dL", "code": "mg/dL"}, None),
        ("X000000041", "38265-5", {"value": "-2.0", "unit": "{T-score}"}, "DXA T-score"),
    ]
    for number, (exam_id, code, quantity, text) in enumerate(faults):
        observation = {
            "resourceType": "Observation",
            "id": f"fault-{number}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}], **({"text": text} if text else {})},
            "subject": {"reference": f"Patient/{report[exam_id]['subject']['reference'].split('/')[1]}"},
            "effectiveDateTime": report[exam_id]["effectiveDateTime"],
            "valueQuantity": quantity,
        }
        resources["Observation"].append(observation)
        report[exam_id]["result"].append({"reference": f"Observation/{observation['id']}"})
    resources["Observation"] += [  # counted, not read: another result, an erroneous DXA result
        {
            "resourceType": "Observation",
            "id": "weight-1",
            "status": "final",
            "subject": subject,
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
            "effectiveDateTime": "2024-01-01",
            "valueQuantity": {"value": "61", "unit": "kg"},
        },
        {
            "resourceType": "Observation",
            "id": "error-1",
            "status": "entered-in-error",
            "subject": subject,
            "code": {"coding": [{"system": "http://loinc.org", "code": "38267-1"}]},
            "effectiveDateTime": "2024-01-01",
            "valueQuantity": {"value": "-3.9", "code": "1"},
        },
    ]
    resources["Condition"].append(
        {
            "resourceType": "Condition",
            "id": "c-htn",
            "subject": subject,
            "onsetDateTime": "2020-01-01",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]},
        }
    )
    write_fhir(resources, target / "fhir_bulk_sample")


if __name__ == "__main__":  # pragma: no cover - writes the committed samples
    write_samples(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))

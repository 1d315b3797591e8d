"""Patient partitions: after ingest every row lives in the partition of a stable hash of its patient id,
so every later step (validation, classification, eligibility, coverage, gaps) runs on one partition with
no data from another. ``screen_partition`` is that whole per-partition step, without I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core import reference
from osteo_core.decide.events import classify_fractures, classify_meds, is_fracture, unrecognised_drugs
from osteo_core.decide.rules import RuleSet
from osteo_core.decide.screening import screen
from osteo_core.gaps.care_gaps import EXAM_ORDER, care_gaps, patients
from osteo_core.gaps.coverage import treatment_intervals
from osteo_core.gaps.population import (
    DEATHS_SCHEMA,
    SEVERAL_MRNS,
    enrolment_stretches,
    recorded_deaths,
    recorded_mrns,
    roster_patients,
    with_recorded_deaths,
)
from osteo_core.ingest.assemble import assemble
from osteo_core.ingest.profiles import Profile
from osteo_core.ingest.readers import concat_text
from osteo_core.measures.members import all_members, no_members, split
from osteo_core.resources import shipped_toml
from osteo_core.validate.events import validate_dxa_procedures, validate_fractures, validate_meds
from osteo_core.validate.population import validate_population
from osteo_core.validate.scans import validate_scans
from schemas import parsing
from schemas.inputs import DXA_PROCEDURES, INPUTS, POPULATION
from schemas.scans import SIDED_COLUMNS
from schemas.tables import SOURCE_FILE, SOURCE_ROW

PARTITION = "_partition"
_HASH_SEED = 20261124  # fixed: the same patient id lands in the same partition in every run


def partition_key(partitions: int) -> pl.Expr:
    """Partition number of a row: hash of the trimmed patient id modulo the partition count."""
    patient = pl.col("patient_id").cast(pl.Utf8).str.strip_chars()
    return (patient.hash(_HASH_SEED) % partitions).fill_null(0).cast(pl.Int64).alias(PARTITION)


# A split's writer holds one row group per output in memory until it is full: with Polars' default size, 30M roster
# rows split 200 ways held 4.4 GiB (bench/split_memory.py). The rows held in all its groups at once stay about
# ROWS_IN_FLIGHT, whatever the file's length or the number of ways; not below a group's useful size.
ROWS_IN_FLIGHT = 2_000_000
SMALLEST_ROW_GROUP = 4_096


def split_row_group(ways: int) -> int:
    """The row-group size of each output of a split ``ways`` ways: memory bounded by ``ROWS_IN_FLIGHT`` rows."""
    return max(SMALLEST_ROW_GROUP, ROWS_IN_FLIGHT // max(ways, 1))


def sink_split(frame: pl.LazyFrame, folder: Path, key: str, ways: int) -> pl.LazyFrame:
    """``frame`` written into ``folder/<key>=K/*.parquet`` by its column ``key`` (``ways`` values), the key left
    out, in one streaming pass whose memory does not grow with the frame (``split_row_group``); lazy: collect it
    (with ``pl.collect_all``) to run it."""
    return frame.sink_parquet(
        pl.PartitionBy(folder, key=key, include_key=False),
        mkdir=True,
        lazy=True,
        row_group_size=split_row_group(ways),
    )


@dataclass(frozen=True)
class PartitionResult:
    tables: dict[str, pl.DataFrame]  # exams, medications, fractures, quarantine, screening, patients, ...
    counts: dict[str, Any]


def _counts(result) -> dict[str, int]:
    return {
        "rows_in": result.rows_in,
        "valid": result.valid.height,
        "quarantined": result.quarantined_rows,
        "duplicate": result.duplicates,
    }


def screen_partition(
    scans: pl.LazyFrame | list[pl.LazyFrame],
    meds: pl.LazyFrame,
    fractures: pl.LazyFrame,
    *,
    profile: Profile,
    rules: RuleSet,
    as_of: dt.date,
    conflicting_exam_ids: pl.Series,
    device_lsc: pl.LazyFrame | None = None,
    population: pl.LazyFrame | None = None,
    measurement_year: int | None = None,
    routing: tuple[str, ...] | None = None,
    dxa_procedures: pl.LazyFrame | None = None,
) -> PartitionResult:
    """Validate, classify, decide and find gaps for the rows of one patient partition (text inputs).

        ``scans`` is one frame, or for a long profile the frames of each file in the order given (their rows
        are assembled into exams first, ``ingest.assemble``). ``population``: the roster's rows, when one was
        given (its patients, the ``screening_due`` gap, the quality measures of ``measurement_year``, by default the
    as-of year, and the count of patients it does not list). ``dxa_procedures``: completed DXA procedures (a FHIR
    export's Procedures), a DXA done for ``screening_due`` and the measures even without a result."""
    assembled = None
    # the deaths a long export's patient rows record (a FHIR Patient's deceased[x]), with or without a roster; a
    # wide export's columns of those names are unmapped, never read
    files = (scans if isinstance(scans, list) else [scans]) if profile.long is not None else []
    deaths = recorded_deaths(files, profile.date_formats).collect()
    mrns = recorded_mrns(files).collect()  # and the medical record numbers they give (the patients table's mrn)
    if profile.long is not None:
        assembled = assemble(scans if isinstance(scans, list) else [scans], profile)
        scans = assembled.exams.lazy()
    elif isinstance(scans, list):
        scans = concat_text(scans)
    scan_bounds = shipped_toml("validation/scans.toml")
    scan_result = validate_scans(scans, profile, as_of, scan_bounds, conflicting_exam_ids, assembled)
    bounds = shipped_toml("validation/medications.toml")
    med_result = validate_meds(meds, profile.date_formats, as_of, bounds, profile.decimal)
    fracture_result = validate_fractures(fractures, profile.date_formats, as_of, profile.decimal)
    no_procedures = {f.name: pl.Utf8 for f in DXA_PROCEDURES.fields} | {SOURCE_FILE: pl.Utf8, SOURCE_ROW: pl.Int64}
    procedure_rows = dxa_procedures if dxa_procedures is not None else pl.LazyFrame(schema=no_procedures)
    procedure_result = validate_dxa_procedures(procedure_rows, profile.date_formats, as_of, profile.decimal)
    procedures = procedure_result.valid
    no_roster = {f.name: pl.Utf8 for f in POPULATION.fields} | {SOURCE_FILE: pl.Utf8, SOURCE_ROW: pl.Int64}
    roster = population if population is not None else pl.LazyFrame(schema=no_roster)
    # the roster's routing columns (``profiles.roster_routing``, over the whole roster): the profile's, else its
    # columns that are no field; each partition has all of them, blank where its rows have none
    routing = routing if routing is not None else (profile.routing or ())
    names = roster.collect_schema().names()
    roster = roster.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c) for c in routing if c not in names)
    population_result = validate_population(roster, profile, as_of, routing)
    if population is not None:  # a roster patient held back in quarantine whose death date reads has died all the same
        deaths = pl.concat([deaths, quarantined_roster_deaths(roster, population_result.quarantine, profile)])
        deaths = deaths.group_by("patient_id").agg(pl.col("death_date").min()).sort("patient_id")
    exams = scan_result.valid.sort(EXAM_ORDER)  # the order every later step reads them in
    medications = classify_meds(med_result.valid.lazy()).collect()
    fracture_events = classify_fractures(fracture_result.valid.lazy()).collect()
    # collected once, then read by the gaps and patients (one plan over all of them recomputed it)
    screened = screen(exams.lazy(), rules, fracture_events.lazy()).collect()
    screening = screened.lazy()
    # hip columns no exam of this partition gives are left out of the gaps' plan (a one-hip registry's is
    # then the plan it always was); the exams table keeps them all
    unused_hips = [c for c in SIDED_COLUMNS if c in exams.columns and exams.get_column(c).null_count() == exams.height]
    # the roster's unbroken enrolments, once: the patients' enrolled_since and each measure's enrolment read them
    stretches = enrolment_stretches(population_result.valid.lazy()).collect().lazy()
    roster_people = roster_patients(population_result.valid.lazy(), as_of, routing, stretches)
    roster_people = with_recorded_deaths(roster_people, deaths.lazy(), as_of).collect()
    gaps = care_gaps(
        screening,
        exams.drop(unused_hips).lazy(),
        medications.lazy(),
        fracture_events.lazy(),
        as_of,
        reference.care_gap_parameters(),
        device_lsc,
        roster_people.lazy() if population is not None else None,
        deaths.lazy(),
        dxa_procedures=procedures.lazy(),
    )
    members = (
        all_members(
            roster_people.lazy(),
            stretches,
            exams.lazy(),
            medications.lazy(),
            fracture_events.lazy(),
            measurement_year or as_of.year,
            as_of,
            dxa_procedures=procedures.lazy(),
        )
        if population is not None
        else no_members().lazy()
    )
    gap_rows, people, intervals, member_rows = pl.collect_all(
        [
            gaps,
            patients(screening, medications.lazy(), fracture_events.lazy(), as_of, mrns.lazy()),
            treatment_intervals(medications.lazy(), as_of),
            members,
        ]
    )
    measure_rows, open_windows = split(member_rows)
    quarantine = pl.concat(
        [
            scan_result.quarantine,
            med_result.quarantine,
            fracture_result.quarantine,
            population_result.quarantine,
            procedure_result.quarantine,
        ]
    ).sort("input", "source_file", "source_row", "column", "check", nulls_last=True)
    tables = {
        "exams": exams,
        "medications": medications,
        "fractures": fracture_events,
        "quarantine": quarantine,
        "screening": screened,
        "patients": people,
        "care_gaps": gap_rows,
        "treatment_intervals": intervals,
        "population": roster_people,
        "deaths": deaths,  # not published: the gap lifecycle reads it (died, for closed_gaps)
        "measure_members": measure_rows,
        "dxa_procedures": procedures,
    }
    counts = {
        "scans": _counts(scan_result)
        | (assembled.counts if assembled is not None else {})
        | ({"patients_with_several_mrns": int(mrns.get_column(SEVERAL_MRNS).sum())} if mrns.height else {}),
        "meds": _counts(med_result),
        "fractures": _counts(fracture_result) | {"fracture_events": fracture_events.filter(is_fracture()).height},
        "dxa_procedures": _counts(procedure_result),
        "population": _counts(population_result)
        | {
            "not_in_population": not_in([exams, medications, fracture_events], roster_people)
            if population is not None
            else 0
        },
        "unrecognised_drugs": unrecognised_drugs(medications),
        "who_categories": {
            str(r["who_category"]): r["len"] for r in screened.group_by("who_category").len().iter_rows(named=True)
        },
        "eligibility": {
            str(r["eligibility"]): r["len"] for r in screened.group_by("eligibility").len().iter_rows(named=True)
        },
        "care_gaps": {r["gap"]: r["len"] for r in gap_rows.group_by("gap").len().iter_rows(named=True)},
        "measure_open_windows": open_windows,
    }
    return PartitionResult(tables, counts)


def quarantined_roster_deaths(roster: pl.LazyFrame, quarantine: pl.DataFrame, profile: Profile) -> pl.DataFrame:
    """The death dates (as they read) on the roster rows of patients held back in quarantine: a patient is
    never called because her row was unreadable elsewhere (a bad sex, a span out of order)."""
    held = quarantine.filter(pl.col("input") == "population").select("patient_id").drop_nulls().unique()
    if held.is_empty() or "death_date" not in roster.collect_schema().names():  # the column is optional
        return pl.DataFrame(schema=DEATHS_SCHEMA)
    return (
        roster.select(
            pl.col("patient_id").cast(pl.Utf8).str.strip_chars(),
            parsing.date(pl.col("death_date").cast(pl.Utf8), profile.date_formats).alias("death_date"),
        )
        .join(held.lazy(), on="patient_id", how="semi")
        .filter(pl.col("death_date").is_not_null())
        .collect()
        .cast(DEATHS_SCHEMA)
    )


def not_in(inputs: list[pl.DataFrame], roster: pl.DataFrame) -> int:
    """Patients with a valid row in the scans, medications or fractures whom the roster does not list
    (they are screened all the same)."""
    seen = pl.concat([frame.select("patient_id") for frame in inputs]).unique()
    return seen.join(roster.select("patient_id"), on="patient_id", how="anti").height


def merge_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the counts of all partitions (drug names: summed per name, the 10 most common kept)."""
    merged: dict[str, Any] = {}
    for kind in INPUTS:
        keys = dict.fromkeys(k for p in parts for k in p.get(kind, {}))  # rows_in, valid, …; a long export's too
        merged[kind] = {k: sum(p.get(kind, {}).get(k, 0) for p in parts) for k in keys}
    for key in ("who_categories", "eligibility", "care_gaps", "measure_open_windows"):
        totals: dict[str, int] = {}
        for p in parts:
            for name, n in p.get(key, {}).items():
                totals[name] = totals.get(name, 0) + n
        merged[key] = dict(sorted(totals.items(), key=lambda kv: (kv[0] == "None", kv[0])))
    names: dict[str, int] = {}
    rows = 0
    for p in parts:
        rows += p["unrecognised_drugs"]["rows"]
        for name, n in p["unrecognised_drugs"]["counts"].items():
            names[name] = names.get(name, 0) + n
    top = sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))
    merged["unrecognised_drugs"] = {"rows": rows, "distinct": len(names), "most_common": dict(top[:10])}
    return merged

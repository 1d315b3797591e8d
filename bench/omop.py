"""An OMOP CDM as the screen's input at scale (issue 31): `.venv/bin/python bench/omop.py [--persons N] [--repeats R] [--write]`.

1. Writes a synthetic OMOP CDM 5.4 of N persons (default 1,000,000; fixed seed, vectorised) as a folder of Parquet
   files named after the tables, under bench/out/omop-N/cdm (kept for later runs): mostly women aged 50-90; about 1-3
   DXA exams per screened person, each a visit with femoral neck, total hip and lumbar spine T-scores and BMDs under
   the LOINC codes of data/reference/dxa_loinc.toml (the site in measurement_source_value where the code does not
   say it); about 7 lab rows (other LOINC concepts) per DXA row, so that reading only the DXA rows matters;
   osteoporosis drugs by the RxNorm codes of drugs.toml among many other drugs; fractures by the SNOMED codes of
   fracture_codes.toml among many other conditions; DXA and other procedures; ~5 % deaths; observation periods;
   cdm_source (the release date: the screen's as-of date); and a concept table of the concepts used. The lab, drug,
   condition and procedure concepts that the screen does not read are real Athena concepts, taken from the shipped
   Eunomia sample (data/samples/omop_sample/concept.parquet; lab values drawn around that sample's means); the
   recognised codes missing from it get concept ids above 2,000,000,000. As in Eunomia, some value_as_number are
   NULL with the value only in value_source_value.
2. Loads it into a PostgreSQL server of its own (Debian's binaries, started as tests/postgres_server.py starts
   one: initdb as an unprivileged account, a free loopback port; `make postgres` installs them), schema `cdm` of
   database `warehouse`, with COPY, then the primary keys and the OHDSI DDL's indexes (INDEXES below) and ANALYZE.
   The loaded cluster is kept under bench/out/omop-N/pg and reused while the CDM is unchanged.
3. Times `.venv/bin/osteo screen --omop FOLDER --out OUT` and `.venv/bin/osteo screen --omop postgresql://127.0.0.1:
   PORT/warehouse --omop-schema cdm --out OUT` (the user and password in PGUSER/PGPASSWORD), alternately, each into
   a fresh OUT, R times: wall time, the peak RSS of the process tree (osteo and the Prefect server it starts,
   sampled every 0.1 s) and of its largest process (GNU time's %M), when the CDM had been extracted (the mtime of
   the run's omop/extraction.json), the server's time on the screen's statements (pg_stat_statements) and the plans
   of those over 1 s (auto_explain). Then, each in a fresh process: the extraction alone (ingest.omop open_cdm +
   extract), R times; and one screen without Prefect, stage by stage (bench/stage_times.py's wrappers, plus the
   probe before the run and the extraction). The machine is shared: each timed run first waits (--quiet-load,
   --patience) for a quiet machine, and the CPU the rest of the machine used during it is reported.
4. Prints a Markdown section (kept as bench/out/omop-N/results.json: --report-only prints it again); --write
   appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
OSTEO = ROOT / ".venv" / "bin" / "osteo"
SAMPLE = ROOT / "data" / "samples" / "omop_sample"
GENERATOR = "omop-bench-3"  # bump when the generator changes: a kept CDM of another version is written again
SEED = 31
CHUNK = 250_000  # persons generated at a time
START = dt.date(2010, 1, 1)  # the warehouse's first events
RELEASE = dt.date(2025, 1, 1)  # cdm_source.source_release_date: the screen's as-of date
LOCAL_CONCEPTS = 2_000_000_001  # ids of the recognised codes the sample's concept table lacks (OMOP: > 2e9 local)
LAB_RATIO = 7  # lab rows per DXA row
DATABASE, SCHEMA, SUPERUSER = "warehouse", "cdm", "osteo_bench"
QUIET = [1.0, 300.0]  # wait before each timed run for a 1-minute load average below [0], at most [1] seconds
TABLES = (
    "person",
    "death",
    "observation_period",
    "measurement",
    "drug_exposure",
    "condition_occurrence",
    "procedure_occurrence",
    "concept",
    "cdm_source",
)
# The OHDSI CDM 5.4 DDL's primary keys and indices (OMOPCDM_postgresql_5.4_{primary_keys,indices}.sql) of the tables
# the screen reads; the DDL's CLUSTER is left out (the rows are loaded in person order already).
INDEXES = {
    "person": ["PRIMARY KEY (person_id)"],
    "observation_period": ["PRIMARY KEY (observation_period_id)", "person_id"],
    "death": ["person_id"],
    "measurement": ["PRIMARY KEY (measurement_id)", "person_id", "measurement_concept_id", "visit_occurrence_id"],
    "drug_exposure": ["PRIMARY KEY (drug_exposure_id)", "person_id", "drug_concept_id", "visit_occurrence_id"],
    "condition_occurrence": [
        "PRIMARY KEY (condition_occurrence_id)",
        "person_id",
        "condition_concept_id",
        "visit_occurrence_id",
    ],
    "procedure_occurrence": [
        "PRIMARY KEY (procedure_occurrence_id)",
        "person_id",
        "procedure_concept_id",
        "visit_occurrence_id",
    ],
    "concept": ["PRIMARY KEY (concept_id)", "concept_code", "vocabulary_id", "domain_id", "concept_class_id"],
}
SERVER_SETTINGS = (  # a warehouse's server on this 24 GiB machine, shared with the screen; durability off for the load
    "shared_buffers = '2GB'\neffective_cache_size = '12GB'\nwork_mem = '64MB'\nmaintenance_work_mem = '1GB'\n"
    "max_wal_size = '8GB'\ncheckpoint_timeout = '30min'\nfsync = off\nsynchronous_commit = off\n"
    "full_page_writes = off\nshared_preload_libraries = 'pg_stat_statements, auto_explain'\n"
    "pg_stat_statements.track_utility = on\nauto_explain.log_min_duration = '1s'\n"
)


# ----------------------------------------------------------------------------------------------------------------
# 1. The synthetic CDM
# ----------------------------------------------------------------------------------------------------------------


def _day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def vocabulary() -> dict[str, Any]:
    """The concepts the CDM uses: the recognised ones (the shared code tables, by osteo_core.reference) and real
    Athena concepts of labs, drugs, conditions and procedures the screen does not read (the shipped sample's)."""
    import polars as pl

    from osteo_core import reference
    from osteo_core.ingest import omop
    from osteo_core.resources import shipped_toml

    vocab = omop.settings()["vocabularies"]
    rxnorm_vocabulary = vocab["rxnorm"][0]
    sample = pl.read_parquet(SAMPLE / "concept.parquet")
    next_id = LOCAL_CONCEPTS
    added: list[dict[str, Any]] = []

    def concept(vocabulary_id: str, code: str, name: str, domain: str) -> int:
        nonlocal next_id
        found = sample.filter(pl.col("vocabulary_id") == vocabulary_id, pl.col("concept_code") == code)
        if found.height:
            return int(found.get_column("concept_id")[0])
        for row in added:
            if (row["vocabulary_id"], row["concept_code"]) == (vocabulary_id, code):
                return row["concept_id"]
        added.append(
            {"concept_id": next_id, "concept_name": name, "domain_id": domain, "vocabulary_id": vocabulary_id,
             "concept_class_id": "Synthetic", "standard_concept": "S", "concept_code": code}
        )  # fmt: skip
        next_id += 1
        return next_id - 1

    # DXA: T-scores and BMDs of the hip (femoral neck, total hip: a Hip code, the site in the text) and lumbar spine
    grid = reference.dxa_loinc()
    sides = pl.col("side").is_null()

    def dxa(system: str, measure: str) -> dict[str, Any]:
        row = grid.filter(pl.col("system") == system, pl.col("measure") == measure, sides).row(0, named=True)
        return {"code": row["code"], "concept_id": concept(vocab["loinc"], row["code"], row["name"], "Measurement")}

    units = {"t": "{T-score}", "bmd": "g/cm2"}
    dxa_rows = []
    for measure in ("t", "bmd"):
        label = "T-score" if measure == "t" else "BMD"
        for site, system, text in (
            ("neck", "hip", f"DXA femoral neck {label}"),
            ("total_hip", "hip", f"DXA total hip {label}"),
            ("spine", "lumbar_spine", f"DXA lumbar spine L1-L4 {label}"),
        ):
            dxa_rows.append(
                {"site": site, "measure": measure, "text": text, "unit": units[measure]} | dxa(system, measure)
            )

    # labs: the sample's numeric LOINC measurements other than the DXA grid, with their units, means and spreads
    measured = pl.read_parquet(SAMPLE / "measurement.parquet").with_columns(
        value=pl.col("value_as_number").cast(pl.Float64)
    )
    labs = (
        measured.group_by("measurement_concept_id")
        .agg(
            n=pl.len(),
            unit=pl.col("unit_source_value").drop_nulls().first(),
            mean=pl.col("value").mean(),
            std=pl.col("value").std(),
            valued=pl.col("value").is_not_null().sum(),
        )
        .join(sample, left_on="measurement_concept_id", right_on="concept_id")
        .filter(
            pl.col("vocabulary_id") == vocab["loinc"],
            ~pl.col("concept_code").is_in(grid.get_column("code").to_list()),
            pl.col("valued") >= 20,
            pl.col("std") > 0,
        )
        .select(pl.col("measurement_concept_id").alias("concept_id"), "concept_code", "unit", "mean", "std", "n")
        .sort("concept_id")
    )

    # osteoporosis drugs: the RxNorm codes of drugs.toml that are no oncology product, with a days' supply each
    words = reference.drug_lookup()
    drugs = (
        reference.rxnorm_codes()
        .filter(~pl.col("oncology"))
        .join(
            words.unique("generic").select("generic", "route", "coverage_days", "iv_dose_mg", "iv_coverage_days"),
            on="generic",
        )  # fmt: skip
        .with_columns(
            oral=pl.col("name").str.contains("Oral"),
            supply=pl.when(pl.col("strength_mg") == pl.col("iv_dose_mg"))
            .then(pl.col("iv_coverage_days"))
            .otherwise(pl.col("coverage_days")),
        )
        .sort("code")
    )
    drugs = drugs.with_columns(
        concept_id=pl.Series(
            [concept(rxnorm_vocabulary, c, n, "Drug") for c, n in drugs.select("code", "name").iter_rows()],
            dtype=pl.Int64,
        )
    )
    pattern = "|".join(words.get_column("key").to_list())
    other_drugs = sample.filter(
        pl.col("vocabulary_id").is_in(vocab["rxnorm"]),
        pl.col("domain_id") == "Drug",
        ~pl.col("concept_code").is_in(reference.rxnorm_codes().get_column("code").to_list()),
        ~pl.col("concept_name").str.to_lowercase().str.contains(pattern),
    ).select("concept_id", "concept_code")

    # fractures and an osteoporosis diagnosis: the SNOMED codes of fracture_codes.toml
    snomed = reference.snomed_conditions()
    fractures = snomed.filter(pl.col("site").is_not_null()).sort("code")
    fractures = fractures.with_columns(
        concept_id=pl.Series([concept(vocab["snomed"], c, f"Fracture ({s})", "Condition")
                              for c, s in fractures.select("code", "site").iter_rows()], dtype=pl.Int64),
        weight=pl.when(pl.col("site").is_in(["hip", "wrist", "vertebral", "humerus", "pelvis"])).then(4.0).otherwise(1.0),
    )  # fmt: skip
    diagnosis = snomed.filter(pl.col("site").is_null()).row(0, named=True)
    osteoporosis = concept(vocab["snomed"], diagnosis["code"], "Osteoporosis", "Condition")
    other_conditions = sample.filter(
        pl.col("vocabulary_id") == vocab["snomed"],
        pl.col("domain_id") == "Condition",
        ~pl.col("concept_code").is_in(snomed.get_column("code").to_list()),
        ~pl.col("concept_name").str.to_lowercase().str.contains("fracture|osteopor"),
    ).select("concept_id", "concept_code")

    # procedures: a DXA procedure of dxa_procedures.toml (the first whose vocabulary the CDM has), and others
    systems = vocab["procedure_systems"]
    codes = [(systems[c["system"]], str(c["code"])) for c in shipped_toml(reference.DXA_PROCEDURES)["code"]]
    known = [
        (v, c) for v, c in codes if sample.filter(pl.col("vocabulary_id") == v, pl.col("concept_code") == c).height
    ]
    dxa_vocabulary, dxa_code = (known or codes)[0]
    dxa_procedure = concept(dxa_vocabulary, dxa_code, "Bone density scan", "Procedure")
    other_procedures = sample.filter(
        pl.col("domain_id") == "Procedure",
        ~pl.concat_str("vocabulary_id", "concept_code", separator="|").is_in([f"{v}|{c}" for v, c in codes]),
    ).select("concept_id", "concept_code")

    no_match = {"concept_id": 0, "concept_name": "No matching concept", "domain_id": "Metadata",
                "vocabulary_id": "None", "concept_class_id": "Undefined", "standard_concept": None, "concept_code": "No matching concept"}  # fmt: skip
    extra = pl.DataFrame([no_match, *added], schema={c: sample.schema[c] for c in no_match} | {"concept_id": pl.Int32})
    concepts = pl.concat(
        [
            sample,
            extra.with_columns(
                valid_start_date=pl.lit(dt.date(1970, 1, 1)), valid_end_date=pl.lit(dt.date(2099, 12, 31)),
                invalid_reason=pl.lit(None, pl.Utf8),
            ),
        ],
        how="diagonal_relaxed",
    ).unique("concept_id", keep="first").sort("concept_id")  # fmt: skip
    gender = omop.settings()["gender"]
    return {
        "concepts": concepts,
        "dxa": pl.DataFrame(dxa_rows),
        "labs": labs,
        "drugs": drugs,
        "other_drugs": other_drugs,
        "fractures": fractures,
        "osteoporosis": osteoporosis,
        "other_conditions": other_conditions,
        "dxa_procedure": dxa_procedure,
        "other_procedures": other_procedures,
        "female": gender["F"][0],
        "male": gender["M"][0],
    }


def _dates(days) -> Any:
    import polars as pl

    return pl.Series(days, dtype=pl.Int32).cast(pl.Date)


def _spread(rng, counts, low, high):
    """For each person i, ``counts[i]`` rows: (person index, a day uniform in [low[i], high[i]])."""
    import numpy as np

    index = np.repeat(np.arange(len(counts)), counts)
    lo, hi = low[index], np.maximum(high[index], low[index])
    return index, (lo + rng.random(len(index)) * (hi - lo + 1)).astype(np.int64).clip(lo, hi)


def chunk(voc: dict[str, Any], part: int, first: int, n: int, ids: dict[str, int]) -> dict[str, Any]:
    """The CDM rows of persons ``first`` … ``first + n - 1`` (``ids``: the next id of each table's key, advanced)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng([SEED, part])
    start, release = _day(START), _day(RELEASE)
    person_id = np.arange(first, first + n)

    # persons: 72 % women, 85 % aged 50-90 at the release date, the rest 25-50
    female = rng.random(n) < 0.72
    old = rng.random(n) < 0.85
    age = np.where(old, 50 + 40 * rng.beta(1.3, 1.8, n), 25 + 25 * rng.random(n))
    birth = release - (age * 365.25).astype(np.int64)
    birth_date = _dates(birth)
    month_known = rng.random(n) >= 0.02  # 2 % without month (and day), 1 % more without the day
    day_known = month_known & (rng.random(n) >= 0.01)
    person = (
        pl.DataFrame(
            {
                "person_id": person_id.astype(np.int32),
                "gender_concept_id": np.where(female, voc["female"], voc["male"]).astype(np.int32),
                "year_of_birth": birth_date.dt.year().cast(pl.Int32),
                "month_of_birth": birth_date.dt.month().cast(pl.Int32),
                "day_of_birth": birth_date.dt.day().cast(pl.Int32),
                "month_known": month_known,
                "day_known": day_known,
                "birth_datetime": birth_date.cast(pl.Datetime("us")),
                "race_concept_id": np.zeros(n, np.int32),
                "ethnicity_concept_id": np.zeros(n, np.int32),
            }
        )
        .with_columns(
            month_of_birth=pl.when("month_known").then("month_of_birth"),
            day_of_birth=pl.when("day_known").then("day_of_birth"),
        )
        .drop("month_known", "day_known")
        .with_columns(
            location_id=pl.lit(None, pl.Int32),
            provider_id=pl.lit(None, pl.Int32),
            care_site_id=pl.lit(None, pl.Int32),
            person_source_value=pl.format("MRN{}", pl.col("person_id").cast(pl.Utf8).str.zfill(9)),
            gender_source_value=pl.Series(np.where(female, "F", "M")),
            gender_source_concept_id=pl.lit(0, pl.Int32),
            race_source_value=pl.lit(None, pl.Utf8),
            race_source_concept_id=pl.lit(0, pl.Int32),
            ethnicity_source_value=pl.lit(None, pl.Utf8),
            ethnicity_source_concept_id=pl.lit(0, pl.Int32),
        )
    )

    # DXA exams: screened 60 % of women 50+, 20 % of men 50+, 5 % of the younger; 1-3 exams 1.5-3 years apart
    screened = rng.random(n) < np.where(old & female, 0.6, np.where(old, 0.2, 0.05))
    exams = np.where(screened, 1 + rng.binomial(2, 0.4, n), 0)
    earliest = np.maximum(start, birth + np.where(old, 45, 20) * 365)
    first_exam = earliest + (rng.random(n) ** 1.5 * (release - 30 - earliest)).astype(np.int64)
    e_person = np.repeat(np.arange(n), exams)
    starts = np.repeat(np.cumsum(exams) - exams, exams)
    sequence = np.arange(len(e_person)) - starts
    gaps = np.where(sequence == 0, 0, 540 + rng.integers(0, 560, len(e_person)))
    cumulative = np.cumsum(gaps)
    e_date = first_exam[e_person] + cumulative - cumulative[starts]
    kept = e_date < release
    e_person, e_date, sequence = e_person[kept], e_date[kept], sequence[kept]
    exams_kept = len(e_person)
    visit = ids["visit"] + np.arange(exams_kept)
    ids["visit"] += exams_kept

    # T-scores: a person's level (lower with age, lower for women), lost slowly over the years
    level = rng.normal(-0.3 - 0.025 * np.maximum(age - 50, 0) - 0.4 * female, 1.0)
    years = (e_date - first_exam[e_person]) / 365.25
    decline = -0.05 * years + level[e_person]
    neck = (decline + rng.normal(0, 0.3, exams_kept)).clip(-5.5, 4.0)
    scores = {
        "neck": neck,
        "total_hip": (neck + 0.3 + rng.normal(0, 0.25, exams_kept)).clip(-5.5, 4.0),
        "spine": (decline + 0.2 + rng.normal(0, 0.6, exams_kept)).clip(-5.5, 4.0),
    }
    bmd = {"neck": (0.858, 0.12), "total_hip": (0.94, 0.122), "spine": (1.047, 0.11)}
    lowest = np.full(n, np.inf)
    np.minimum.at(lowest, e_person, np.minimum.reduce([np.round(s, 1) for s in scores.values()]))
    no_spine = rng.random(exams_kept) < 0.1  # 10 % of exams without a spine (hardware, degenerative change)
    frames = []
    for spec in voc["dxa"].iter_rows(named=True):
        t = scores[spec["site"]]
        if spec["measure"] == "t":
            value = np.round(t, 1)
        else:
            mean, sd = bmd[spec["site"]]
            value = np.round(np.maximum(mean + sd * t, 0.2), 3)
        take = ~no_spine if spec["site"] == "spine" else np.ones(exams_kept, bool)
        frames.append(
            pl.DataFrame(
                {
                    "person_id": person_id[e_person[take]].astype(np.int32),
                    "measurement_concept_id": np.full(take.sum(), spec["concept_id"], np.int32),
                    "measurement_date": _dates(e_date[take]),
                    "value": value[take],
                    "visit_occurrence_id": visit[take].astype(np.int32),
                    "measurement_source_value": np.full(take.sum(), spec["text"], object),
                    "unit_source_value": np.full(take.sum(), spec["unit"], object),
                    "value_null": rng.random(take.sum()) < 0.1,
                }
            )
        )
    dxa = pl.concat(frames)

    # deaths: 5 %, after the person's last exam; every other event before the death or the release date
    last_exam = np.full(n, start + 365)
    np.maximum.at(last_exam, e_person, e_date + 1)
    dies = rng.random(n) < 0.05
    death = np.minimum(last_exam + (rng.random(n) * (release - last_exam)).astype(np.int64), release - 1)
    end = np.where(dies, death, release - 1)
    begin = np.maximum(start, birth + 18 * 365)

    # labs: about LAB_RATIO rows per DXA row, spread over everyone
    labs = voc["labs"]
    l_person, l_date = _spread(rng, rng.poisson(LAB_RATIO * dxa.height / max(n, 1), n), begin, end)
    weights = labs.get_column("n").to_numpy().astype(float)
    pick = rng.choice(labs.height, len(l_person), p=weights / weights.sum())
    mean, sd = labs.get_column("mean").to_numpy(), labs.get_column("std").to_numpy()
    lab = pl.DataFrame(
        {
            "person_id": person_id[l_person].astype(np.int32),
            "measurement_concept_id": labs.get_column("concept_id").to_numpy()[pick].astype(np.int32),
            "measurement_date": _dates(l_date),
            "value": np.round(np.abs(mean[pick] + sd[pick] * rng.normal(0, 1, len(pick))), 2),
            "visit_occurrence_id": (1_000_000_000 + ids["lab_visit"] + np.arange(len(pick))).astype(np.int32),
            "measurement_source_value": labs.get_column("concept_code").to_numpy()[pick],
            "unit_source_value": labs.get_column("unit").to_numpy()[pick],
            "value_null": rng.random(len(pick)) < 0.09,
        }
    )
    ids["lab_visit"] += len(pick)
    measurement = (
        pl.concat([dxa, lab])
        .sort("person_id", "measurement_date", "measurement_concept_id", maintain_order=True)
        .select(
            pl.int_range(ids["measurement"], ids["measurement"] + pl.len(), dtype=pl.Int32).alias("measurement_id"),
            "person_id",
            "measurement_concept_id",
            "measurement_date",
            pl.col("measurement_date").cast(pl.Datetime("us")).alias("measurement_datetime"),
            pl.lit(None, pl.Utf8).alias("measurement_time"),
            pl.lit(32817, pl.Int32).alias("measurement_type_concept_id"),  # EHR
            pl.lit(None, pl.Int32).alias("operator_concept_id"),
            pl.when(~pl.col("value_null")).then(pl.col("value")).alias("value_as_number"),
            pl.lit(None, pl.Int32).alias("value_as_concept_id"),
            pl.lit(None, pl.Int32).alias("unit_concept_id"),
            pl.lit(None, pl.Float64).alias("range_low"),
            pl.lit(None, pl.Float64).alias("range_high"),
            pl.lit(None, pl.Int32).alias("provider_id"),
            "visit_occurrence_id",
            pl.lit(None, pl.Int32).alias("visit_detail_id"),
            "measurement_source_value",
            pl.lit(0, pl.Int32).alias("measurement_source_concept_id"),
            "unit_source_value",
            pl.lit(None, pl.Int32).alias("unit_source_concept_id"),
            pl.col("value").cast(pl.Utf8).alias("value_source_value"),
            pl.lit(None, pl.Int32).alias("measurement_event_id"),
            pl.lit(None, pl.Int32).alias("meas_event_field_concept_id"),
        )
    )
    ids["measurement"] += measurement.height

    # osteoporosis drugs: 45 % of persons with a T-score <= -2.5, 6 % of the other screened, 1 % of the rest;
    # 1-12 fills from about the first exam; 5 % with days_supply 0, 3 % unmapped (concept 0, the code as source value)
    drugs = voc["drugs"]
    treated = rng.random(n) < np.where(lowest <= -2.5, 0.45, np.where(screened, 0.06, 0.01))
    therapy_start = np.where(screened, first_exam + rng.integers(0, 120, n), begin + rng.random(n) * (end - begin))
    product = rng.integers(0, drugs.height, n)
    fills = np.where(treated, rng.integers(1, 13, n), 0)
    f_person = np.repeat(np.arange(n), fills)
    f_product = product[f_person]
    f_start_index = np.repeat(np.cumsum(fills) - fills, fills)
    oral = drugs.get_column("oral").to_numpy()[f_product]
    supply = np.where(
        oral, rng.choice([30, 90], len(f_person), p=[0.7, 0.3]), drugs.get_column("supply").to_numpy()[f_product]
    )
    interval = supply + rng.integers(0, 15, len(f_person))  # the next fill after this one's supply and a few days
    before = np.cumsum(interval) - interval
    offset = before - before[f_start_index]
    f_date = (therapy_start[f_person] + offset).astype(np.int64)
    keep = f_date <= end[f_person]
    f_person, f_product, supply, f_date = f_person[keep], f_product[keep], supply[keep], f_date[keep]
    unmapped = rng.random(len(f_person)) < 0.03
    codes = drugs.get_column("code").to_numpy()[f_product]
    osteo = pl.DataFrame(
        {
            "person_id": person_id[f_person].astype(np.int32),
            "drug_concept_id": np.where(unmapped, 0, drugs.get_column("concept_id").to_numpy()[f_product]).astype(
                np.int32
            ),
            "start": f_date,
            "days": supply,
            "zero_supply": rng.random(len(f_person)) < 0.05,
            "drug_source_value": np.where(unmapped, np.char.add(codes.astype(str), ".0"), codes).astype(object),
        }
    )
    other = voc["other_drugs"]
    o_person, o_date = _spread(rng, rng.poisson(7, n), begin, end)
    o_pick = rng.integers(0, other.height, len(o_person))
    others = pl.DataFrame(
        {
            "person_id": person_id[o_person].astype(np.int32),
            "drug_concept_id": other.get_column("concept_id").to_numpy()[o_pick].astype(np.int32),
            "start": o_date,
            "days": rng.choice([7, 10, 14, 30, 90], len(o_person)),
            "zero_supply": np.zeros(len(o_person), bool),
            "drug_source_value": other.get_column("concept_code").to_numpy()[o_pick],
        }
    )
    drug_exposure = (
        pl.concat([osteo, others])
        .with_columns(start=pl.col("start").cast(pl.Int32).cast(pl.Date))
        .sort("person_id", "start", maintain_order=True)
        .select(
            pl.int_range(ids["drug"], ids["drug"] + pl.len(), dtype=pl.Int32).alias("drug_exposure_id"),
            "person_id",
            "drug_concept_id",
            pl.col("start").alias("drug_exposure_start_date"),
            pl.col("start").cast(pl.Datetime("us")).alias("drug_exposure_start_datetime"),
            (pl.col("start") + pl.duration(days=pl.col("days") - 1)).alias("drug_exposure_end_date"),
            (pl.col("start") + pl.duration(days=pl.col("days") - 1))
            .cast(pl.Datetime("us"))
            .alias("drug_exposure_end_datetime"),
            pl.lit(None, pl.Date).alias("verbatim_end_date"),
            pl.lit(38000177, pl.Int32).alias("drug_type_concept_id"),  # prescription written
            pl.lit(None, pl.Utf8).alias("stop_reason"),
            pl.lit(0, pl.Int32).alias("refills"),
            pl.lit(None, pl.Float64).alias("quantity"),
            pl.when(pl.col("zero_supply")).then(0).otherwise(pl.col("days")).cast(pl.Int32).alias("days_supply"),
            pl.lit(None, pl.Utf8).alias("sig"),
            pl.lit(None, pl.Int32).alias("route_concept_id"),
            pl.lit(None, pl.Utf8).alias("lot_number"),
            pl.lit(None, pl.Int32).alias("provider_id"),
            pl.lit(None, pl.Int32).alias("visit_occurrence_id"),
            pl.lit(None, pl.Int32).alias("visit_detail_id"),
            "drug_source_value",
            pl.lit(0, pl.Int32).alias("drug_source_concept_id"),
            pl.lit(None, pl.Utf8).alias("route_source_value"),
            pl.lit(None, pl.Utf8).alias("dose_unit_source_value"),
        )
    )
    ids["drug"] += drug_exposure.height

    # conditions: ~4 others a person; fractures (12 % of persons with a T-score <= -2.5, 5 % of the other screened,
    # 2 % of the rest); an osteoporosis diagnosis for 40 % of those <= -2.5, after their first exam
    fractures = voc["fractures"]
    broke = rng.random(n) < np.where(lowest <= -2.5, 0.12, np.where(screened, 0.05, 0.02))
    b_person, b_date = _spread(rng, broke.astype(np.int64), begin, end)
    fw = fractures.get_column("weight").to_numpy()
    b_pick = rng.choice(fractures.height, len(b_person), p=fw / fw.sum())
    diagnosed = np.flatnonzero((lowest <= -2.5) & (rng.random(n) < 0.4))
    d_date = np.minimum(first_exam[diagnosed] + rng.integers(0, 60, len(diagnosed)), end[diagnosed])
    other = voc["other_conditions"]
    c_person, c_date = _spread(rng, rng.poisson(4, n), begin, end)
    c_pick = rng.integers(0, other.height, len(c_person))
    conditions = pl.concat(
        [
            pl.DataFrame({"person_id": person_id[c_person], "concept": other.get_column("concept_id").to_numpy()[c_pick],
                          "day": c_date, "source": other.get_column("concept_code").to_numpy()[c_pick]}),
            pl.DataFrame({"person_id": person_id[b_person], "concept": fractures.get_column("concept_id").to_numpy()[b_pick],
                          "day": b_date, "source": fractures.get_column("code").to_numpy()[b_pick]}),
            pl.DataFrame({"person_id": person_id[diagnosed], "concept": np.full(len(diagnosed), voc["osteoporosis"]),
                          "day": d_date, "source": np.full(len(diagnosed), "", object)}),
        ],
        how="vertical_relaxed",
    )  # fmt: skip
    condition_occurrence = (
        conditions.with_columns(
            pl.col("person_id").cast(pl.Int32),
            pl.col("concept").cast(pl.Int32),
            pl.col("day").cast(pl.Int32).cast(pl.Date),
            pl.col("source").replace("", None),
        )
        .sort("person_id", "day", maintain_order=True)
        .select(
            pl.int_range(ids["condition"], ids["condition"] + pl.len(), dtype=pl.Int32).alias(
                "condition_occurrence_id"
            ),
            "person_id",
            pl.col("concept").alias("condition_concept_id"),
            pl.col("day").alias("condition_start_date"),
            pl.col("day").cast(pl.Datetime("us")).alias("condition_start_datetime"),
            pl.lit(None, pl.Date).alias("condition_end_date"),
            pl.lit(None, pl.Datetime("us")).alias("condition_end_datetime"),
            pl.lit(32817, pl.Int32).alias("condition_type_concept_id"),
            pl.lit(0, pl.Int32).alias("condition_status_concept_id"),
            pl.lit(None, pl.Utf8).alias("stop_reason"),
            pl.lit(None, pl.Int32).alias("provider_id"),
            pl.lit(None, pl.Int32).alias("visit_occurrence_id"),
            pl.lit(None, pl.Int32).alias("visit_detail_id"),
            pl.col("source").alias("condition_source_value"),
            pl.lit(0, pl.Int32).alias("condition_source_concept_id"),
            pl.lit(None, pl.Utf8).alias("condition_status_source_value"),
        )
    )
    ids["condition"] += condition_occurrence.height

    # procedures: a DXA procedure on 60 % of the exams (its visit), ~2 others a person
    with_procedure = rng.random(exams_kept) < 0.6
    other = voc["other_procedures"]
    p_person, p_date = _spread(rng, rng.poisson(2, n), begin, end)
    p_pick = rng.integers(0, other.height, len(p_person))
    procedures = pl.concat(
        [
            pl.DataFrame({"person_id": person_id[e_person[with_procedure]], "concept": np.full(with_procedure.sum(), voc["dxa_procedure"]),
                          "day": e_date[with_procedure], "visit": visit[with_procedure]}),
            pl.DataFrame({"person_id": person_id[p_person], "concept": other.get_column("concept_id").to_numpy()[p_pick],
                          "day": p_date, "visit": np.full(len(p_person), -1)}),
        ],
        how="vertical_relaxed",
    )  # fmt: skip
    procedure_occurrence = (
        procedures.with_columns(
            pl.col("person_id").cast(pl.Int32),
            pl.col("concept").cast(pl.Int32),
            pl.col("day").cast(pl.Int32).cast(pl.Date),
            pl.when(pl.col("visit") >= 0).then(pl.col("visit")).cast(pl.Int32),
        )
        .sort("person_id", "day", maintain_order=True)
        .select(
            pl.int_range(ids["procedure"], ids["procedure"] + pl.len(), dtype=pl.Int32).alias(
                "procedure_occurrence_id"
            ),
            "person_id",
            pl.col("concept").alias("procedure_concept_id"),
            pl.col("day").alias("procedure_date"),
            pl.col("day").cast(pl.Datetime("us")).alias("procedure_datetime"),
            pl.lit(None, pl.Date).alias("procedure_end_date"),
            pl.lit(None, pl.Datetime("us")).alias("procedure_end_datetime"),
            pl.lit(32817, pl.Int32).alias("procedure_type_concept_id"),
            pl.lit(0, pl.Int32).alias("modifier_concept_id"),
            pl.lit(None, pl.Int32).alias("quantity"),
            pl.lit(None, pl.Int32).alias("provider_id"),
            pl.col("visit").alias("visit_occurrence_id"),
            pl.lit(None, pl.Int32).alias("visit_detail_id"),
            pl.lit(None, pl.Utf8).alias("procedure_source_value"),
            pl.lit(0, pl.Int32).alias("procedure_source_concept_id"),
            pl.lit(None, pl.Utf8).alias("modifier_source_value"),
        )
    )
    ids["procedure"] += procedure_occurrence.height

    dead = np.flatnonzero(dies)
    death_frame = pl.DataFrame(
        {"person_id": person_id[dead].astype(np.int32), "death_date": _dates(death[dead])}
    ).with_columns(
        death_datetime=pl.col("death_date").cast(pl.Datetime("us")),
        death_type_concept_id=pl.lit(32817, pl.Int32),
        cause_concept_id=pl.lit(None, pl.Int32),
        cause_source_value=pl.lit(None, pl.Utf8),
        cause_source_concept_id=pl.lit(None, pl.Int32),
    )
    observation_period = pl.DataFrame(
        {
            "observation_period_id": person_id.astype(np.int32),
            "person_id": person_id.astype(np.int32),
            "observation_period_start_date": _dates(np.maximum(birth, start - rng.integers(0, 3650, n))),
            "observation_period_end_date": _dates(end),
            "period_type_concept_id": np.full(n, 32817, np.int32),
        }
    )
    return {
        "person": person,
        "death": death_frame,
        "observation_period": observation_period,
        "measurement": measurement,
        "drug_exposure": drug_exposure,
        "condition_occurrence": condition_occurrence,
        "procedure_occurrence": procedure_occurrence,
        "_counts": {
            "exams": exams_kept,
            "dxa_rows": dxa.height,
            "lab_rows": lab.height,
            "osteoporosis_drug_rows": osteo.height,
            "fracture_rows": len(b_person),
            "screened_persons": int(len(np.unique(e_person))),
            "persons_t_at_most_-2.5": int((lowest <= -2.5).sum()),
        },
    }


def generate(persons: int) -> Path:
    """The CDM of ``persons`` persons under bench/out/omop-N/cdm, written once (kept while GENERATOR holds)."""
    import polars as pl

    folder = OUT / f"omop-{persons}" / "cdm"
    done = folder / "DONE"
    if done.exists() and json.loads(done.read_text()).get("generator") == GENERATOR:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    parts = folder / "_parts"
    started = time.perf_counter()
    voc = vocabulary()
    ids = {"visit": 1, "lab_visit": 0, "measurement": 1, "drug": 1, "condition": 1, "procedure": 1}
    counts: dict[str, int] = {}
    for part, first in enumerate(range(1, persons + 1, CHUNK)):
        tables = chunk(voc, part, first, min(CHUNK, persons + 1 - first), ids)
        for key, value in tables.pop("_counts").items():
            counts[key] = counts.get(key, 0) + value
        for table, frame in tables.items():
            (parts / table).mkdir(parents=True, exist_ok=True)
            frame.write_parquet(parts / table / f"{part:04d}.parquet")
        print(
            f"  generated persons {first:,}-{first + CHUNK - 1:,} ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
        )
    for table in TABLES:
        if (parts / table).is_dir():
            pl.scan_parquet(sorted((parts / table).glob("*.parquet"))).sink_parquet(folder / f"{table}.parquet")
    shutil.rmtree(parts)
    voc["concepts"].write_parquet(folder / "concept.parquet")
    cdm_source = pl.read_parquet(SAMPLE / "cdm_source.parquet").with_columns(
        cdm_source_name=pl.lit("osteo-screen synthetic CDM (bench/omop.py)"),
        cdm_source_abbreviation=pl.lit("OSTEO-BENCH"),
        cdm_holder=pl.lit("osteo-screen"),
        source_description=pl.lit(f"{persons:,} synthetic persons, seed {SEED} ({GENERATOR})"),
        source_release_date=pl.lit(RELEASE),
        cdm_release_date=pl.lit(RELEASE),
    )
    cdm_source.write_parquet(folder / "cdm_source.parquet")
    counts |= {t: pl.scan_parquet(folder / f"{t}.parquet").select(pl.len()).collect().item() for t in TABLES}
    counts["seconds"] = round(time.perf_counter() - started, 1)
    done.write_text(json.dumps({"generator": GENERATOR, "seed": SEED, "counts": counts}, indent=1))
    return folder


# ----------------------------------------------------------------------------------------------------------------
# 2. PostgreSQL
# ----------------------------------------------------------------------------------------------------------------


def _server_helpers():
    """tests/postgres_server.py's helpers: Debian's binaries, the account the server runs as, a free port."""
    sys.path.insert(0, str(ROOT / "tests"))
    import postgres_server

    return postgres_server


class Server:
    """A PostgreSQL server on the kept cluster bench/out/omop-N/pg (made and loaded when missing or stale)."""

    def __init__(self, persons: int, cdm: Path):
        self.helpers = _server_helpers()
        self.home = OUT / f"omop-{persons}" / "pg"
        self.data = self.home / "data"
        self.cdm = cdm
        self.account = self.helpers._account()
        self.port = self.helpers._free_port()
        self.user = SUPERUSER
        self.running = False
        self.load: dict[str, Any] = {}

    def _binary(self, name: str) -> str:
        found = self.helpers._binary(name)
        if not found:
            raise SystemExit("bench/omop.py needs a PostgreSQL server: run `make postgres`")
        return found

    def _as(self, command: list[str]) -> subprocess.CompletedProcess:
        return self.helpers._as(self.account, command)

    @property
    def password(self) -> str:
        return (self.home.parent / "pg_password").read_text().strip()

    def environment(self) -> dict[str, str]:
        return {"PGUSER": self.user, "PGPASSWORD": self.password}

    def url(self) -> str:
        return f"postgresql://127.0.0.1:{self.port}/{DATABASE}"

    def connect(self, database: str = DATABASE):
        import psycopg

        return psycopg.connect(
            f"postgresql://127.0.0.1:{self.port}/{database}", user=self.user, password=self.password, autocommit=True
        )

    def start(self) -> None:
        marker = self.home / "LOADED"
        wanted = (self.cdm / "DONE").read_text()
        fresh = not (marker.exists() and json.loads(marker.read_text()).get("cdm") == wanted)
        if fresh:
            self._init()
        log = self.home / "server.log"
        run = self._as([self._binary("pg_ctl"), "-D", str(self.data), "-l", str(log), "-o", f"-p {self.port}", "-w", "-t", "120", "start"])  # fmt: skip
        if run.returncode != 0:
            raise SystemExit(
                f"PostgreSQL did not start: {run.stderr[-2000:]}{log.read_text()[-2000:] if log.exists() else ''}"
            )
        self.running = True
        if fresh:
            self.load = self._load()
            marker.write_text(json.dumps({"cdm": wanted, "load": self.load}))
        else:
            self.load = json.loads(marker.read_text())["load"]

    def _init(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        password = secrets.token_urlsafe(18)
        keep = self.home.parent / "pg_password"
        keep.write_text(password + "\n")
        keep.chmod(0o600)
        pwfile = self.home / "pwfile"
        pwfile.write_text(password + "\n")
        if self.account is not None:
            os.chown(self.home, self.account.pw_uid, self.account.pw_gid)
            os.chown(pwfile, self.account.pw_uid, self.account.pw_gid)
        made = self._as(
            [self._binary("initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "--auth-local=trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"]
        )  # fmt: skip
        pwfile.unlink()
        if made.returncode != 0:
            raise SystemExit(f"initdb failed: {made.stderr[-2000:]}")
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{self.data}'\n{SERVER_SETTINGS}")

    def _load(self) -> dict[str, Any]:
        """Every table of the CDM by COPY (CSV), then the primary keys and indexes, then ANALYZE."""
        import polars as pl
        import pyarrow.parquet as pq
        from psycopg import sql

        timings: dict[str, Any] = {"copy": {}, "index": {}}
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        with self.connect() as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
            for table in TABLES:
                started = time.perf_counter()
                path = self.cdm / f"{table}.parquet"
                schema = pl.read_parquet_schema(path)
                columns = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_pg_type(name, dtype)))
                    for name, dtype in schema.items()
                )
                target = sql.Identifier(SCHEMA, table)
                conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, columns))
                with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(target)) as copy:
                    for batch in pq.ParquetFile(path).iter_batches(batch_size=500_000):
                        copy.write(
                            pl.from_arrow(batch).write_csv(
                                include_header=False, datetime_format="%Y-%m-%d %H:%M:%S", date_format="%Y-%m-%d"
                            )
                        )
                timings["copy"][table] = round(time.perf_counter() - started, 1)
                print(f"  loaded {table} ({timings['copy'][table]} s)", file=sys.stderr)
            for table, indexes in INDEXES.items():
                started = time.perf_counter()
                for index in indexes:
                    if index.startswith("PRIMARY KEY"):
                        conn.execute(sql.SQL("ALTER TABLE {} ADD " + index).format(sql.Identifier(SCHEMA, table)))
                    else:
                        conn.execute(
                            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                                sql.Identifier(f"idx_{table}_{index}"),
                                sql.Identifier(SCHEMA, table),
                                sql.Identifier(index),
                            )
                        )
                timings["index"][table] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            conn.execute("ANALYZE")
            timings["analyze"] = round(time.perf_counter() - started, 1)
            timings["sizes"] = {
                table: conn.execute(
                    "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", [f"{SCHEMA}.{table}"] * 2
                ).fetchone()
                for table in TABLES
            }
            timings["database_bytes"] = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        return timings

    def version(self) -> str:
        with self.connect() as conn:
            return conn.execute("SHOW server_version").fetchone()[0].split()[0]

    def reset_statements(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_stat_statements_reset()")

    def statements(self) -> list[dict[str, Any]]:
        """The statements the screen sent since the reset (application_name is not recorded there: all but ours)."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT query, calls, total_exec_time, rows FROM pg_stat_statements"
                " WHERE query NOT ILIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC"
            ).fetchall()
        return [{"query": q, "calls": c, "ms": t, "rows": r} for q, c, t, r in rows]

    def log_size(self) -> int:
        log = self.home / "server.log"
        return log.stat().st_size if log.exists() else 0

    def plans(self, since: int) -> list[dict[str, Any]]:
        """The plans auto_explain logged (statements over 1 s) since the log was ``since`` bytes long: the table
        read, the plan's scan nodes, the duration."""
        with (self.home / "server.log").open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        found = []
        for entry in re.split(r"\n(?=\S)", text):
            head = re.search(r"duration: ([0-9.]+) ms\s+plan:", entry)
            table = re.search(r'FROM "[^"]+"\."([^"]+)"', entry)
            if not (head and table):
                continue
            scans = re.findall(
                r"((?:Parallel )?(?:Seq|Index Only|Index|Bitmap Heap|Bitmap Index) Scan(?: using \S+)?(?: on \S+)?)",
                entry,
            )
            kind = "count(*)" if "count(*)" in entry.split("\n", 2)[1] else "pull"
            found.append(
                {"table": table.group(1), "kind": kind, "ms": float(head.group(1)), "scans": list(dict.fromkeys(scans))}
            )
        return found

    def stop(self) -> None:
        if self.running:
            self._as([self._binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
            self.running = False


def _pg_type(name: str, dtype) -> str:
    """The OHDSI DDL's types: integer ids, date, timestamp, NUMERIC values, varchar texts."""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Int64:
        return "bigint"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "numeric"
    if name in ("concept_name", "cdm_source_name", "cdm_holder", "cdm_etl_reference", "source_documentation_reference"):
        return "varchar(255)"
    if name == "source_description":
        return "text"
    return "varchar(50)"


# ----------------------------------------------------------------------------------------------------------------
# 3. Timing
# ----------------------------------------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                stack += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                pass
    return found


def _rss(pids: list[int]) -> int:
    page, total = os.sysconf("SC_PAGE_SIZE"), 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_for_quiet(limit: float, patience: float) -> float:
    """Wait (at most ``patience`` seconds) until the 1-minute load average is below ``limit``: this machine is
    shared, and a test suite running beside the bench would slow it. Returns the seconds waited."""
    started = time.perf_counter()
    while _load() >= limit and time.perf_counter() - started < patience:
        time.sleep(10)
    return time.perf_counter() - started


TIME = "/usr/bin/time"  # GNU time: the largest process's peak RSS, measured from a small parent


def measure(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``: wall seconds, the peak RSS of its process tree (sampled every 0.1 s) and of its largest
    process, its exit code and output. The largest process's peak is GNU time's (``%M``: wait4's ru_maxrss), not
    this process's own wait4: Linux counts in a child's ru_maxrss the RSS of the process it was forked from, and
    this one holds the generator's memory."""
    log = tempfile.TemporaryFile()
    peaks = Path(tempfile.mkstemp(prefix="omop-bench-rss-")[1])
    wrapped = [TIME, "-f", "%M", "-o", str(peaks), *command] if Path(TIME).exists() else command
    busy, load = _busy_seconds(), _load()
    started_at = time.time()
    started = time.perf_counter()
    proc = subprocess.Popen(wrapped, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss(_tree(proc.pid)))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    log.seek(0)
    cpu = usage.ru_utime + usage.ru_stime
    written = peaks.read_text().split() if wrapped is not command else []
    peaks.unlink(missing_ok=True)
    largest = int(written[-1]) / 1024 if written and written[-1].isdigit() else usage.ru_maxrss / 1024
    output = log.read().decode(errors="replace")
    return {
        "seconds": seconds,
        "load_before": load,
        "other_cpu_seconds": max(_busy_seconds() - busy - cpu, 0.0),
        "started_at": started_at,
        "tree_mib": peak[0] / 2**20,
        "largest_mib": largest,
        "cpu_seconds": cpu,
        "rc": proc.returncode,
        "output": output,
    }


def published(out: Path, started_at: float) -> dict[str, Any]:
    """What a screen into ``out`` published: the manifest's counts, the tables' rows, when the CDM was extracted."""
    import polars as pl

    manifest = json.loads((out / "manifest.json").read_text())
    run = out / "runs" / manifest["run_id"]
    extraction = run / "omop" / "extraction.json"
    if not extraction.exists():
        extraction = out / "current" / "omop" / "extraction.json"
    return {
        "rows": manifest["rows"],
        "rows_by_input": manifest.get("rows_by_input"),
        "omop": manifest.get("omop"),
        "care_gaps": manifest.get("care_gaps"),
        "who": manifest.get("who_categories"),
        "partitions": manifest.get("partitions"),
        "reject_rate": manifest.get("reject_rate"),
        "screening": pl.scan_parquet(out / "screening.parquet").select(pl.len()).collect().item(),
        "care_gap_rows": pl.scan_parquet(out / "care_gaps.parquet").select(pl.len()).collect().item(),
        "patients": pl.scan_parquet(out / "patients.parquet").select(pl.len()).collect().item(),
        "extracted_after": extraction.stat().st_mtime - started_at if extraction.exists() else None,
    }


def screens(
    cdm: Path, server: Server, repeats: int, work: Path, quiet: tuple[float, float]
) -> dict[str, list[dict[str, Any]]]:
    """The installed command on each source, alternately, each into a fresh --out."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    sources = {
        "parquet": ([str(OSTEO), "screen", "--omop", str(cdm)], base),
        "postgresql": (
            [str(OSTEO), "screen", "--omop", server.url(), "--omop-schema", SCHEMA],
            base | server.environment(),
        ),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    for i in range(repeats):
        for name, (command, env) in sources.items():
            out = work / f"{name}-{i}"
            shutil.rmtree(out, ignore_errors=True)
            if name == "postgresql":
                server.reset_statements()
            waited = wait_for_quiet(*quiet)
            mark = server.log_size()
            run = measure([*command, "--out", str(out)], env) | {"waited": waited}
            if run["rc"] != 0:
                raise SystemExit(f"osteo screen ({name}) exited {run['rc']}:\n{run['output'][-4000:]}")
            run |= published(out, run["started_at"])
            if name == "postgresql":
                run["statements"] = server.statements()
                run["plans"] = server.plans(mark)
            results[name].append(run)
            print(
                f"  {name} #{i + 1}: {run['seconds']:.1f} s, tree peak {run['tree_mib']:.0f} MiB, largest process"
                f" {run['largest_mib']:.0f} MiB, CDM extracted after {run['extracted_after'] or 0:.1f} s; load before"
                f" {run['load_before']:.1f} (waited {waited:.0f} s), other processes' CPU {run['other_cpu_seconds']:.0f} s",
                file=sys.stderr,
            )
            if i < repeats - 1:
                shutil.rmtree(out, ignore_errors=True)
    return results


def _in_process(
    mode: str, source: str, schema: str, work: Path, env: dict[str, str], quiet: tuple[float, float]
) -> dict[str, Any]:
    wait_for_quiet(*quiet)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--{mode}",
        source,
        "--schema",
        schema,
        "--work",
        str(work),
    ]
    run = measure(command, env | {"PYTHONPATH": str(ROOT)})
    if run["rc"] != 0:
        raise SystemExit(f"{mode} ({source}) failed:\n{run['output'][-4000:]}")
    return json.loads(run["output"].strip().splitlines()[-1]) | {
        k: run[k] for k in ("largest_mib", "load_before", "other_cpu_seconds")
    }


def extract_only(source: str, schema: str, work: Path) -> dict[str, Any]:
    """In this process: the CDM opened and extracted as a screen does (ingest.omop), timed."""
    import polars as pl

    from osteo_core.ingest import omop

    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    con = omop.open_cdm(source, schema or None)
    opened = time.perf_counter()
    try:
        extracted = omop.extract(con, work)
        omop.release_date(con)
    finally:
        con.close()
    ended = time.perf_counter()
    rows = {
        f"{kind}/{f.stem}": pl.scan_parquet(f).select(pl.len()).collect().item()
        for kind, files in extracted.files.items()
        for f in files
    }
    return {
        "open": round(opened - started, 2),
        "extract": round(ended - opened, 2),
        "total": round(ended - started, 2),
        "rows": rows,
    }


def stage_breakdown(source: str, schema: str, work: Path) -> dict[str, Any]:
    """In this process, without Prefect: one screen, timed stage by stage (bench/stage_times.py's wrappers around
    the pipeline's functions, plus the probe before the run and the CDM's extraction)."""
    from bench import stage_times
    from osteo_core.ingest import omop
    from osteo_core.pipeline import lifecycle
    from osteo_core.pipeline.request import ScreenRequest

    stages, partitions = stage_times._modules()
    for name in ("validate_scans", "validate_meds", "validate_fractures"):
        setattr(partitions, name, stage_times._timed("validation", getattr(partitions, name)))
    stages.screen_partition = stage_times._timed("_screen_partition", partitions.screen_partition)
    for name, stage in (("ingest", "ingest"), ("find_exam_conflicts", "conflicts"), ("publish_run", "publish")):
        setattr(stages, name, stage_times._timed(stage, getattr(stages, name)))
    stages.process_partition = stage_times._timed(
        "partitions", stage_times._timed("_process_partition", stages.process_partition)
    )
    lifecycle.extract_omop = stage_times._timed("extract", lifecycle.extract_omop)
    omop.probe = stage_times._timed("probe", omop.probe)
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    request = ScreenRequest(scans=[], omop=source, omop_schema=schema or None, out=str(work), as_of=None, keep_runs=1)
    stages.run_screen(request)  # resolved there: the as-of date is the CDM's release date
    total = time.perf_counter() - started
    times = stage_times.TIMES
    by_stage = {"probe": times.get("probe", 0.0), "extract": times.get("extract", 0.0)} | stage_times._by_stage(times)
    by_stage["other"] = total - sum(by_stage.values())
    by_stage["total"] = total
    return {
        "seconds": {k: round(v, 2) for k, v in by_stage.items()},
        "peak_mib": {k: round(v) for k, v in stage_times.PEAKS.items() if not k.startswith("_")},
    }


# ----------------------------------------------------------------------------------------------------------------
# 4. The report
# ----------------------------------------------------------------------------------------------------------------


def machine() -> str:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")) / 2**20
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} vCPU ({cpu}), {total:.0f} GiB RAM, Python {platform.python_version()}"


def _versions() -> str:
    import duckdb
    import polars as pl
    import psycopg

    return f"polars {pl.__version__}, DuckDB {duckdb.__version__}, psycopg {psycopg.__version__}"


def _commit() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "osteo_core", "flows"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"`{head}`" + (" with uncommitted changes under osteo_core/ or flows/" if dirty else "")


def _mib(n: float) -> str:
    return f"{n / 1024:.2f} GiB" if n >= 1024 else f"{n:.0f} MiB"


def _bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def report(
    when: str,
    persons: int,
    repeats: int,
    cdm: Path,
    server: Server,
    pg_version: str,
    runs: dict,
    extracts: dict,
    stages: dict,
) -> str:
    counts = json.loads((cdm / "DONE").read_text())["counts"]
    load = server.load
    first = runs["parquet"][-1]
    lines = [
        f"## OMOP CDM input (issue 31) — `bench/omop.py --persons {persons} --repeats {repeats}`",
        "",
        f"{when}. Machine: {machine()}; {_versions()}; PostgreSQL {pg_version}"
        " (Debian's, on the same machine, started by the bench: shared_buffers 2 GB, work_mem 64 MB, fsync off).",
        "",
        f"A synthetic OMOP CDM 5.4 (seed {SEED}, `{GENERATOR}`, written in {counts['seconds']:.0f} s), release date"
        f" {RELEASE.isoformat()} (the as-of date): {counts['person']:,} persons ({counts['screened_persons']:,} with a"
        f" DXA exam, {counts['persons_t_at_most_-2.5']:,} with a T-score ≤ −2.5), {counts['exams']:,} DXA exams"
        f" ({counts['dxa_rows']:,} DXA measurement rows: femoral neck, total hip and L1–L4 T-score and BMD; 10 % of"
        f" values only in `value_source_value`) among {counts['lab_rows']:,} lab rows (the Eunomia sample's LOINC"
        f" labs), {counts['osteoporosis_drug_rows']:,} osteoporosis drug exposures among {counts['drug_exposure']:,},"
        f" {counts['fracture_rows']:,} fractures among {counts['condition_occurrence']:,} conditions.",
        "",
        "| table | rows | Parquet | PostgreSQL table + indexes | COPY |",
        "|---|---|---|---|---|",
    ]
    for table in TABLES:
        size = (cdm / f"{table}.parquet").stat().st_size
        heap, index = load["sizes"][table]
        lines.append(
            f"| {table} | {counts[table]:,} | {_bytes(size)} | {_bytes(heap)} + {_bytes(index)} | {load['copy'][table]:.0f} s |"
        )
    indexed = "; ".join(
        f"{table} ({', '.join('primary key' if i.startswith('PRIMARY') else i for i in indexes)})"
        for table, indexes in INDEXES.items()
    )
    lines += [
        "",
        f"Loaded by COPY (CSV) into schema `cdm` in {sum(load['copy'].values()):.0f} s; then the OHDSI CDM 5.4 DDL's"
        f" primary keys and indexes in {sum(load['index'].values()):.0f} s — {indexed} — and ANALYZE"
        f" ({load['analyze']:.0f} s); database {_bytes(load['database_bytes'])}.",
        "",
        f"### `osteo screen --omop …`, {repeats} runs each (alternating), each into a fresh `--out`",
        "",
        "| source | median wall | min | max | least disturbed run | CDM extracted after (median) | peak RSS, process tree | largest process | CPU s (median) | others' CPU s (max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        secs = [r["seconds"] for r in rs]
        calm = min(rs, key=lambda r: r["other_cpu_seconds"])
        label = (
            "Parquet folder"
            if name == "parquet"
            else "PostgreSQL (`postgresql://127.0.0.1:PORT/warehouse --omop-schema cdm`)"
        )
        lines.append(
            f"| {label} | **{statistics.median(secs):.1f} s** | {min(secs):.1f} s | {max(secs):.1f} s | {calm['seconds']:.1f} s"
            f" (others {calm['other_cpu_seconds']:.0f} CPU s) | "
            f"{statistics.median(r['extracted_after'] or 0 for r in rs):.1f} s | {_mib(max(r['tree_mib'] for r in rs))} | "
            f"{_mib(max(r['largest_mib'] for r in rs))} | {statistics.median(r['cpu_seconds'] for r in rs):.0f} |"
            f" {max(r['other_cpu_seconds'] for r in rs):.0f} |"
        )
    pg_runs = runs["postgresql"]
    server_ms = [sum(s["ms"] for s in r["statements"]) for r in pg_runs]
    top = pg_runs[-1]["statements"][:1]
    lines += [
        "",
        "Peak RSS of the process tree: `osteo` and the Prefect API server it starts, summed, sampled every 0.1 s; largest"
        " process: the kernel's high-water mark of the largest single one. The PostgreSQL server's own memory is in"
        " neither. \"CDM extracted after\": from the command's start to the run's `omop/extraction.json` (arguments"
        " checked, the CDM probed, the Prefect server started, the CDM extracted). Others' CPU: what the rest of the"
        " machine used during the run (/proc/stat less the screen's own; for PostgreSQL it includes the server's"
        " work): this machine is shared, and each run waited for a 1-minute load average below"
        f" {QUIET[0]:.1f} (at most {QUIET[1]:.0f} s; load before the runs: "
        + ", ".join(f"{r['load_before']:.1f}" for rs in runs.values() for r in rs)
        + ").",
        "",
        "Time PostgreSQL spent on the screen's statements (pg_stat_statements, median of the runs):"
        f" {statistics.median(server_ms) / 1000:.1f} s"
        + (
            f"; the largest, {top[0]['rows']:,} rows in {top[0]['ms'] / 1000:.1f} s: `{' '.join(top[0]['query'].split())[:200]}…`"
            if top
            else ""
        )
        + ".",
        "",
        "Plans PostgreSQL chose for the screen's statements over 1 s (auto_explain, last run): "
        + (
            "; ".join(
                f"{p['table']} {p['kind']} {p['ms'] / 1000:.1f} s ({', '.join(p['scans']) or 'no scan node'})"
                for p in pg_runs[-1].get("plans", [])
            )
            or "none"
        )
        + ".",
        "",
        "### The extraction alone (`ingest.omop.open_cdm` + `extract`, in a fresh process)",
        "",
        "| source | open (checks; PostgreSQL: the pulls) | extract (DuckDB queries, Parquet written) | total (median) | runs | largest process |",
        "|---|---|---|---|---|---|",
    ]
    for name, rs in extracts.items():
        totals = [r["total"] for r in rs]
        lines.append(
            f"| {name} | {statistics.median(r['open'] for r in rs):.1f} s | {statistics.median(r['extract'] for r in rs):.1f} s |"
            f" **{statistics.median(totals):.1f} s** | {', '.join(f'{t:.1f}' for t in totals)} | {_mib(max(r['largest_mib'] for r in rs))} |"
        )
    rows = extracts["parquet"][-1]["rows"]
    lines += [
        "",
        "Rows extracted (the run's `omop/` files): " + ", ".join(f"{kind} {n:,}" for kind, n in rows.items()) + ".",
        "",
        "### Where the time goes: one screen in-process, without Prefect (bench/stage_times.py's wrappers)",
        "",
        "| stage | Parquet | PostgreSQL |",
        "|---|---|---|",
    ]
    for stage in stages["parquet"]["seconds"]:
        p, q = stages["parquet"]["seconds"][stage], stages["postgresql"]["seconds"].get(stage, 0.0)
        lines.append(f"| {stage} | {p:.1f} s | {q:.1f} s |")
    peaks = {name: max(s["peak_mib"].values()) for name, s in stages.items()}
    lines.append(f"| peak RSS | {_mib(peaks['parquet'])} | {_mib(peaks['postgresql'])} |")
    lines += [
        "",
        "probe: the CDM opened without its events before the run (as-of date, patient-id column; PostgreSQL: the"
        " persons pulled); extract: opened again and extracted into the run's folder; ingest … publish: as in"
        " bench/stage_times.py; other: the arguments' checks, the lock and what the wrappers do not cover.",
        "",
        "### What was screened"
        + (" (the same from both sources)" if _same(runs) else " (the two sources DIFFER: see below)"),
        "",
    ]
    tables = (first["omop"] or {}).get("tables") or {}
    if tables:
        lines += ["| CDM table | rows | read by the screen | quarantined |", "|---|---|---|---|"]
        for table, entry in tables.items():
            lines.append(
                f"| {table} | {entry.get('rows', 0):,} | {entry.get('read', 0):,} | {entry.get('quarantined', 0):,} |"
            )
        lines.append("")
    scans = first["rows"]
    care = first["care_gaps"] or {}
    by_input = first["rows_by_input"] or {}
    lines += [
        f"{counts['person']:,} persons, {counts['measurement']:,} measurement rows of which {scans.get('measurement_rows', 0):,}"
        f" DXA rows → {scans.get('exams_assembled', scans['rows_in']):,} exams ({scans['quarantined']:,} quarantined),"
        f" **{first['screening']:,} exams screened**; {counts['drug_exposure']:,} drug rows"
        f" ({by_input.get('meds', {}).get('valid', 0):,} osteoporosis drug rows read); {counts['condition_occurrence']:,}"
        f" condition rows ({by_input.get('fractures', {}).get('valid', 0):,} fracture and osteoporosis rows read,"
        f" {by_input.get('fractures', {}).get('quarantined', 0):,} quarantined); **{first['care_gap_rows']:,} open care "
        "gaps** (" + ", ".join(f"{k} {v:,}" for k, v in care.items()) + f"); {first['partitions']} partitions.",
        "",
        "Manifest `omop`: "
        + ", ".join(f"{k} {v:,}" for k, v in (first["omop"] or {}).items() if isinstance(v, int))
        + ".",
        "",
        _where(runs, extracts, stages),
        "",
    ]
    if not _same(runs):
        a, b = runs["parquet"][-1], runs["postgresql"][-1]
        lines += [
            f"Parquet vs PostgreSQL: rows {a['rows']} vs {b['rows']}; care gaps {a['care_gaps']} vs {b['care_gaps']}.",
            "",
        ]
    return "\n".join(lines)


def _same(runs: dict) -> bool:
    keys = ("rows", "screening", "care_gap_rows", "care_gaps", "patients")
    a, b = runs["parquet"][-1], runs["postgresql"][-1]
    return all(a[k] == b[k] for k in keys)


def _where(runs: dict, extracts: dict, stages: dict) -> str:
    wall = {n: statistics.median(r["seconds"] for r in rs) for n, rs in runs.items()}
    calm = min(runs["parquet"], key=lambda r: r["other_cpu_seconds"])["seconds"]
    extract = {n: statistics.median(r["total"] for r in rs) for n, rs in extracts.items()}
    cdm = {n: s["seconds"]["probe"] + s["seconds"]["extract"] for n, s in stages.items()}
    seconds = stages["parquet"]["seconds"]
    rest = {k: v for k, v in seconds.items() if k not in ("total", "probe", "extract", "other")}
    biggest = sorted(rest, key=rest.get, reverse=True)[:2]
    return (
        f"Where the time goes: the extraction alone takes {extract['parquet']:.1f} s from Parquet and"
        f" {extract['postgresql']:.1f} s from PostgreSQL, {extract['parquet'] / wall['parquet']:.0%} and"
        f" {extract['postgresql'] / wall['postgresql']:.0%} of the command's median wall time"
        f" ({wall['parquet']:.1f} s and {wall['postgresql']:.1f} s: PostgreSQL − Parquet ="
        f" {wall['postgresql'] - wall['parquet']:+.1f} s). In-process, the CDM (the probe before the run and the"
        f" extraction) costs {cdm['parquet']:.1f} s of {seconds['total']:.1f} s from Parquet and {cdm['postgresql']:.1f} s"
        f" of {stages['postgresql']['seconds']['total']:.1f} s from PostgreSQL; the rest is the screen as for any input,"
        f" chiefly {biggest[0]} ({seconds[biggest[0]]:.1f} s) and {biggest[1]} ({seconds[biggest[1]]:.1f} s)."
        + (
            f" The command's least disturbed run ({calm:.1f} s) against the in-process screen: Prefect's server and"
            f" engine and the imports cost about {calm - seconds['total']:.0f} s."
            if calm > seconds["total"]
            else " The command's least disturbed run was no slower than the in-process screen: the noise of this"
            " shared machine is larger than Prefect's fixed cost here."
        )
        + "".join(
            f" Memory {name}: the in-process peak is the {max(peaks, key=peaks.get)} stage's ({_mib(max(peaks.values()))});"
            f" the screen after it peaks at {_mib(max(v for k, v in peaks.items() if k not in ('probe', 'extract')))}."
            for name, peaks in ((n, stages[n]["peak_mib"]) for n in ("parquet", "postgresql"))
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="append the section to bench/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the last screen of each source under bench/out")
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=1.0,
        help="before each timed run, wait for a 1-minute load average below this (default 1.0)",
    )
    parser.add_argument("--patience", type=float, default=300, help="… for at most this many seconds (default 300)")
    parser.add_argument("--report-only", action="store_true", help="print the section again from the last results")
    parser.add_argument("--extract", metavar="SOURCE", help=argparse.SUPPRESS)  # a step in its own process
    parser.add_argument("--stages", metavar="SOURCE", help=argparse.SUPPRESS)
    parser.add_argument("--schema", default="", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.extract:
        print(json.dumps(extract_only(args.extract, args.schema, args.work)))
        return
    if args.stages:
        print(json.dumps(stage_breakdown(args.stages, args.schema, args.work)))
        return

    saved = OUT / f"omop-{args.persons}" / "results.json"
    if args.report_only:
        kept = json.loads(saved.read_text())
        QUIET[:] = kept["quiet"]
        server = Server(args.persons, OUT / f"omop-{args.persons}" / "cdm")
        server.load = json.loads((server.home / "LOADED").read_text())["load"]
        text = report(
            kept.get("when", ""),
            args.persons,
            kept["repeats"],
            server.cdm,
            server,
            kept["pg_version"],
            kept["runs"],
            kept["extracts"],
            kept["stages"],
        )
        print(text)
        if args.write:
            with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
                fh.write("\n" + text + "\n")
        return
    when = f"{dt.date.today().isoformat()}, commit {_commit()}"
    started = time.perf_counter()
    cdm = generate(args.persons)
    print(f"CDM: {cdm} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    work = OUT / f"omop-{args.persons}" / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    server = Server(args.persons, cdm)
    try:
        server.start()
        pg_version = server.version()
        print(f"PostgreSQL {pg_version} on port {server.port} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        quiet = (args.quiet_load, args.patience)
        QUIET[:] = quiet
        runs = screens(cdm, server, args.repeats, work, quiet)
        base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        sources = {
            "parquet": (str(cdm), "", base),
            "postgresql": (server.url(), SCHEMA, base | server.environment()),
        }
        extracts: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
        for i in range(args.repeats):
            for name, (source, schema, env) in sources.items():
                extracts[name].append(_in_process("extract", source, schema, work / f"extract-{name}", env, quiet))
                print(f"  extract {name} #{i + 1}: {extracts[name][-1]}", file=sys.stderr)
        stages = {}
        for name, (source, schema, env) in sources.items():
            stages[name] = _in_process("stages", source, schema, work / f"stages-{name}", env, quiet)
            print(f"  stages {name}: {stages[name]}", file=sys.stderr)
    finally:
        server.stop()
    for rs in runs.values():
        for r in rs:
            r["output"] = r["output"][-2000:]
    kept = {
        "when": when,
        "repeats": args.repeats,
        "quiet": QUIET,
        "pg_version": pg_version,
        "runs": runs,
        "extracts": extracts,
        "stages": stages,
    }
    saved.write_text(json.dumps(kept, indent=1, default=str))
    text = report(when, args.persons, args.repeats, cdm, server, pg_version, runs, extracts, stages)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    if args.write:
        with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()

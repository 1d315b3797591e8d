"""Care gaps across published runs: when each open gap was first seen, whether it is new, and why a gap open
in the last published run (the *base*) is not open now. Pure frames; ``pipeline.gap_history`` finds the base.

Closing reasons are read from this run's data, in this order (``data/reference/care_gaps.toml``,
``[lifecycle]``):

    input_missing       the input that shows the gap was given to the base run and not to this one, or the
                        patient of an exam-based gap has no valid exam now
    left_population     a roster is given and lists the patient, who is dead or not enrolled on the as-of date,
                        or an export records the patient's death (``closed_detail``: died / disenrolled), or a
                        screening_due gap of a patient the roster no longer lists (left_roster); otherwise a
                        patient the roster does not list keeps their gaps
    treatment_started   an osteoporosis-drug event the gap's own rule counts (on or after its since, or its
                        look-back before the exam or the fracture)
    dxa_done            an exam or a DXA procedure after the base run's as-of date (DXA gaps; a procedure: a
                        completed DXA of a FHIR export, with or without a result, ``dxa_procedures``)
    window_passed       a post-fracture gap whose fracture is now older than the look-back
    no_longer_eligible  anything else: the decision changed (a new exam, the rules, an age)
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from typing import Any

import polars as pl

from osteo_core.gaps.population import LEFT_ROSTER, off_the_list
from schemas.gaps import GAPS
from schemas.inputs import POPULATION, SCANS
from schemas.tables import CLOSED_SCHEMA, GAPS_SCHEMA

NEW, PERSISTING = "new", "persisting"
BASE_COLUMNS = {"patient_id": pl.Utf8, "gap": pl.Utf8, "since": pl.Date, "first_seen": pl.Date}


def with_lifecycle(gaps: pl.LazyFrame, base: pl.LazyFrame | None, as_of: dt.date) -> pl.LazyFrame:
    """This run's gaps with ``first_seen`` (carried from the base when the gap was open there, else the as-of
    date) and ``status`` (``persisting`` or ``new``)."""
    found = gaps.drop("first_seen", "status")
    if base is None:
        carried = found.with_columns(pl.lit(None, dtype=pl.Date).alias("_base_seen"))
    else:
        # one row per patient and gap (the earliest first_seen), so the join can never repeat a gap
        seen = base.group_by("patient_id", "gap").agg(pl.col("first_seen").min().alias("_base_seen"))
        carried = found.join(seen, on=["patient_id", "gap"], how="left", maintain_order="left")
    return carried.with_columns(
        pl.coalesce("_base_seen", pl.lit(as_of)).alias("first_seen"),
        pl.when(pl.col("_base_seen").is_not_null()).then(pl.lit(PERSISTING)).otherwise(pl.lit(NEW)).alias("status"),
    ).select(list(GAPS_SCHEMA))


def closed_gaps(
    base: pl.LazyFrame,
    gaps: pl.LazyFrame,
    patients: pl.LazyFrame,
    population: pl.LazyFrame | None,
    deaths: pl.LazyFrame | None = None,
    dxa_procedures: pl.LazyFrame | None = None,
    *,
    as_of: dt.date,
    base_as_of: dt.date,
    inputs_given: list[str],
    base_inputs_given: list[str],
    params: dict[str, Any],
) -> pl.LazyFrame:
    """The base's gaps not open now (``CLOSED_SCHEMA``), each with the first reason that applies.
    ``dxa_procedures``: this run's completed DXA procedures (``patient_id``, ``procedure_date``), a DXA done as
    an exam is."""
    rules = params["lifecycle"]
    missing_inputs = [kind for kind in base_inputs_given if kind not in inputs_given]
    gone_gaps = [gap for gap, kind in rules["needs_input"].items() if kind in missing_inputs]
    exam_gaps = [gap for gap, kind in rules["needs_input"].items() if kind == SCANS.name]
    closed = base.join(gaps.select("patient_id", "gap"), on=["patient_id", "gap"], how="anti")
    people = patients.select("patient_id", "latest_exam_date", "last_treatment_date")
    closed = closed.join(people, on="patient_id", how="left", maintain_order="left")
    # the latest DXA done: an exam, or a completed DXA procedure (one row per patient, so no gap repeats)
    latest_dxa = pl.col("latest_exam_date")
    if dxa_procedures is not None:
        done = dxa_procedures.group_by("patient_id").agg(pl.col("procedure_date").max().alias("_latest_procedure"))
        closed = closed.join(done, on="patient_id", how="left", maintain_order="left")
        latest_dxa = pl.max_horizontal(latest_dxa, "_latest_procedure")
    # a roster patient dead or not enrolled on the as-of date (died / disenrolled); one the roster does not list
    # keeps the gaps it has, so a gap of theirs closes for another reason
    closed = closed.join(off_the_list(population, deaths, as_of), on="patient_id", how="left", maintain_order="left")
    roster_gaps = [gap for gap, kind in rules["needs_input"].items() if kind == POPULATION.name]
    if population is not None:  # a gap only the roster opens (screening_due) of a patient it no longer lists
        listed = population.select("patient_id", pl.lit(True).alias("_listed"))
        closed = closed.join(listed, on="patient_id", how="left", maintain_order="left").with_columns(
            pl.when(pl.col("gap").is_in(roster_gaps) & pl.col("_listed").is_null() & pl.col("left_because").is_null())
            .then(pl.lit(LEFT_ROSTER))
            .otherwise(pl.col("left_because"))
            .alias("left_because")
        )
    left = pl.col("left_because").is_not_null()
    gap = pl.col("gap")
    # treatment the gap's own rule counts: from its look-back before the exam (untreated) or the fracture
    before = {g.name: params[g.name][g.treatment_from] for g in GAPS if g.treatment_from}
    days_before = gap.replace_strict(before, default=0, return_dtype=pl.Int64)
    # a gap whose since is now older than its look-back (a post-fracture gap's fracture)
    window_passed = functools.reduce(
        operator.or_,
        [
            (gap == g.name) & (pl.col("since") < pl.lit(as_of).dt.offset_by(f"-{params[g.name][g.window]}y"))
            for g in GAPS
            if g.window
        ],
        pl.lit(False),
    )
    counts_from = pl.col("since") - pl.duration(days=days_before)
    reason = (
        pl.when(gap.is_in(gone_gaps) | (gap.is_in(exam_gaps) & pl.col("latest_exam_date").is_null()))
        .then(pl.lit("input_missing"))
        .when(left)
        .then(pl.lit("left_population"))
        .when(gap.is_in(rules["treatment_closes"]) & (pl.col("last_treatment_date") >= counts_from).fill_null(False))
        .then(pl.lit("treatment_started"))
        .when(gap.is_in(rules["dxa_closes"]) & (latest_dxa > base_as_of).fill_null(False))
        .then(pl.lit("dxa_done"))
        .when(window_passed)
        .then(pl.lit("window_passed"))
        .otherwise(pl.lit("no_longer_eligible"))
    )
    return (
        closed.with_columns(reason.alias("closed_because"))
        .with_columns(
            pl.lit(as_of).alias("closed_on"),
            pl.when(pl.col("closed_because") == "left_population").then("left_because").alias("closed_detail"),
        )
        .select(list(CLOSED_SCHEMA))
        .cast(CLOSED_SCHEMA)
        .sort("patient_id", "gap")
    )

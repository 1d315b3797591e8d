"""The population roster's view of each patient, and the ``screening_due`` gap: who should have had a DXA
and never had one. Ages, sex and the men's rule come from ``data/reference/care_gaps.toml``
(``[screening_due]``), never from literals here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from schemas import parsing

_DAY = pl.duration(days=1)


def roster_patients(roster: pl.LazyFrame, as_of: dt.date, routing: tuple[str, ...]) -> pl.LazyFrame:
    """One row per roster patient: sex, birth date, ``alive`` and ``enrolled`` on the as-of date, the first
    day of the unbroken enrolment that covers it (``enrolled_since``: spans that overlap or follow each other
    day after day are one), and the routing columns of the span covering the as-of date (else the latest).

    A blank ``enrolled_from`` is enrolment from birth; a blank ``enrolled_to`` is still enrolled. The roster's
    rows agree on sex, birth and death date (``validate.population`` quarantines a patient whose rows do not).
    """
    spans = roster.with_columns(
        pl.coalesce("enrolled_from", "birth_date").alias("_from"),
        pl.col("enrolled_to").alias("_to"),
    )
    covers = (pl.col("_from") <= as_of) & (pl.col("_to").is_null() | (pl.col("_to") >= as_of))
    ordered = spans.sort("patient_id", "_from", "_to", nulls_last=True)
    # a span starts a new stretch unless it begins by the day after the furthest end so far of that patient
    reach = pl.col("_to").cum_max().shift(1).over("patient_id")
    open_before = pl.col("_to").is_null().cast(pl.Int32).cum_max().shift(1).over("patient_id").fill_null(0) == 1
    first = pl.col("patient_id").is_first_distinct()
    starts = first | ~(open_before | (reach.is_not_null() & (pl.col("_from") <= reach + _DAY)))
    stretches = ordered.with_columns(starts.cast(pl.Int64).cum_sum().alias("_stretch"))
    stretch_start = pl.col("_from").first().over("_stretch")
    per_span = stretches.with_columns(
        stretch_start.alias("_stretch_start"),
        covers.alias("_covers"),
    )
    covering = (
        per_span.filter(pl.col("_covers"))
        .group_by("patient_id")
        .agg(pl.col("_stretch_start").min().alias("enrolled_since"))
    )
    # routing from the span covering the as-of date, else the latest: each patient's last row in this order
    route_rows = per_span.sort("patient_id", "_covers", "_from").filter(pl.col("patient_id").is_last_distinct())
    details = per_span.group_by("patient_id").agg(
        pl.col("sex").drop_nulls().first(),
        pl.col("birth_date").drop_nulls().first(),
        pl.col("death_date").drop_nulls().first(),
    )
    return (
        details.join(covering, on="patient_id", how="left")
        .join(route_rows.select("patient_id", *routing), on="patient_id", how="left")
        .with_columns(
            (pl.col("death_date").is_null() | (pl.col("death_date") > as_of)).alias("alive"),
            pl.col("enrolled_since").is_not_null().alias("enrolled"),
        )
        .sort("patient_id")
    )


def birthday(birth: pl.Expr, years: int) -> pl.Expr:
    """The day a person born on ``birth`` turns ``years`` old (29 Feb: 1 Mar in a common year), as
    ``parsing.completed_years`` counts it."""
    shifted = birth.dt.offset_by(f"{years}y")
    return pl.when(shifted.dt.day() != birth.dt.day()).then(shifted + _DAY).otherwise(shifted)


def screening_due(patients: pl.LazyFrame, exams: pl.LazyFrame, as_of: dt.date, params: dict[str, Any]) -> pl.LazyFrame:
    """Roster patients alive and enrolled on the as-of date, of the screened sex and at least the screening
    age on it (and men from their own age, when ``include_men``), with no valid exam on record. ``since`` is
    the later of the birthday of that age and the start of the enrolment covering the as-of date."""
    p = params["screening_due"]
    women = pl.col("sex") == p["sex"]
    age_for = pl.when(women).then(pl.lit(p["min_age_years"]))
    if p["include_men"]:
        age_for = age_for.when(pl.col("sex") == "M").then(pl.lit(p["men_min_age_years"]))
    age_for = age_for.otherwise(None)
    due_from = pl.max_horizontal(
        _birthday_of(pl.col("birth_date"), age_for, (p["min_age_years"], p["men_min_age_years"])),
        pl.col("enrolled_since"),
    )
    scanned = exams.filter(pl.col("exam_date") <= as_of).select("patient_id").unique()
    age = parsing.completed_years(pl.col("birth_date"), pl.lit(as_of))
    return (
        patients.filter(pl.col("alive") & pl.col("enrolled") & age_for.is_not_null() & (age >= age_for))
        .join(scanned, on="patient_id", how="anti")
        .with_columns(
            due_from.alias("since"),
            pl.lit(None, dtype=pl.Utf8).alias("exam_id"),
            pl.format("no valid DXA on record; {} aged {} on {}", pl.col("sex"), age, pl.lit(as_of.isoformat())).alias(
                "detail"
            ),
        )
    )


def _birthday_of(birth: pl.Expr, years: pl.Expr, choices: tuple[int, ...]) -> pl.Expr:
    """``birthday(birth, years)`` where ``years`` is one of a few known ages per row."""
    result = pl.lit(None, dtype=pl.Date)
    for n in sorted(set(choices)):
        result = pl.when(years == n).then(birthday(birth, n)).otherwise(result)
    return result

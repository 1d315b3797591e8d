"""Treatment coverage from medication events: merged intervals and each patient's status on the as-of date.

An event covers ``event_date`` up to (not including) ``coverage_end``. Only osteoporosis treatment counts:
recognised drugs that are not oncology products, dated on or before the as-of date.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from schemas.tables import INTERVALS_SCHEMA

_PATIENT_SCALE = 1 << 32  # above any span of days between two dates


def treatment_events(meds: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    return meds.filter(pl.col("osteoporosis_treatment") & (pl.col("event_date") <= as_of))


def treatment_intervals(meds: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Overlapping or touching coverage merged into one interval per stretch of treatment.

    ``interval_end`` is exclusive; ``days_covered`` counts days up to and including the as-of date.

    One sort and no window: on rows sorted by patient, ``patient number × 2³² + days`` orders every
    patient's days above all earlier patients', so one running maximum over the whole frame is each
    patient's own furthest coverage so far (a window per patient cost three times as much).
    """
    events = treatment_events(meds, as_of).sort("patient_id", "event_date", "coverage_end")
    first_of_patient = (pl.col("patient_id") != pl.col("patient_id").shift(1)).fill_null(True)
    patient_number = first_of_patient.cast(pl.Int64).cum_sum()
    origin = pl.col("event_date").min()  # days from here fit in 32 bits for any registry's dates

    def on_patient_scale(date: str) -> pl.Expr:
        return patient_number * _PATIENT_SCALE + (pl.col(date) - origin).dt.total_days()

    reach = on_patient_scale("coverage_end").cum_max().shift(1)  # furthest coverage of the earlier rows
    starts_new = first_of_patient | reach.is_null() | (on_patient_scale("event_date") > reach)
    return (
        events.with_columns(starts_new.cast(pl.Int64).cum_sum().alias("_interval"))
        .group_by("_interval")
        .agg(
            pl.col("patient_id").first(),
            pl.col("event_date").min().alias("interval_start"),
            pl.col("coverage_end").max().alias("interval_end"),
            pl.col("generic").unique().sort().alias("drugs"),
        )
        .with_columns(
            (pl.min_horizontal(pl.col("interval_end"), pl.lit(as_of + dt.timedelta(days=1))) - pl.col("interval_start"))
            .dt.total_days()
            .alias("days_covered")
        )
        .select(list(INTERVALS_SCHEMA))
        .sort("patient_id", "interval_start")
    )


def patient_treatment(meds: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Per patient: ``on_treatment`` on the as-of date, ``last_treatment_date``, ``last_treatment_drug``."""
    events = treatment_events(meds, as_of)
    return (
        events.sort("patient_id", "event_date", "generic")
        .group_by("patient_id")
        .agg(
            ((pl.col("event_date") <= as_of) & (pl.col("coverage_end") > as_of)).any().alias("on_treatment"),
            pl.col("event_date").last().alias("last_treatment_date"),
            pl.col("generic").last().alias("last_treatment_drug"),
        )
    )

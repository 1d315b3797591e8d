"""Who each quality measure counts, and why: one row per measure and roster patient of the measure's sex and
age band (and, for a fracture measure, with a fracture in the intake period). The steps are the same for
every measure; their numbers come from the spec (``osteo_core.measures.specs``):

    population   roster patients of the sex, aged min…max in completed years on the period's last day
    index event  the first event of the index value set in [from, to] (fracture measures)
    denominator  the enrolment the spec requires (continuous around the index, or on the period's end)
    exclusions   the first exclusion, in spec order, that an event before the index (or the period's end) meets
    numerator    an event of the numerator value sets in [index, index + window] (or ever, up to the period's
                 end), among those in the denominator and not excluded

Windows never reach past the as-of date: a window still open then is reported as open, not as missed.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from osteo_core.decide.events import is_fracture
from osteo_core.measures.specs import MeasureSpec, load_measures, value_sets
from schemas import parsing
from schemas.tables import MEMBERS_SCHEMA, SUMMARY_SCHEMA

_DAY = pl.duration(days=1)


def _text(*parts: str | pl.Expr) -> pl.Expr:
    """Words and values joined into one text. Not ``pl.format``: on a filtered, multi-chunk string column
    Polars 2.1's streaming engine panics in it (``binview: i < self.len()``, seen on the fractures' codes)."""
    exprs = [pl.lit(part) if isinstance(part, str) else part.cast(pl.Utf8) for part in parts]
    joined = exprs[0]
    for expr in exprs[1:]:
        joined = joined + expr
    return joined


OPEN = "_window_open"  # in the denominator, not excluded, not met, and the window still open on the as-of date
_EVENTS = {"patient_id": pl.Utf8, "date": pl.Date, "until": pl.Date, "label": pl.Utf8}


def events(
    exams: pl.LazyFrame, meds: pl.LazyFrame, fractures: pl.LazyFrame, dxa_procedures: pl.LazyFrame | None = None
) -> dict[str, pl.LazyFrame]:
    """Each value set's rows as (patient_id, date, until, label): ``until`` is the first day after the event
    (for a medication, the first day its supply no longer covers), ``label`` what to show as evidence. A bone
    density test is a valid exam, or a completed DXA procedure (``dxa_procedures``: a DXA done, with or
    without a result)."""
    sets = value_sets()
    day_after = pl.col("date") + _DAY
    tests = exams.select("patient_id", pl.col("exam_date").alias("date"), pl.lit("DXA exam").alias("label"))
    if dxa_procedures is not None:
        done = dxa_procedures.select(
            "patient_id", pl.col("procedure_date").alias("date"), pl.lit("DXA procedure").alias("label")
        )
        tests = pl.concat([tests, done])
    tests = tests.with_columns(day_after.alias("until"))
    drugs = meds.filter(
        pl.col("osteoporosis_treatment") & pl.col("generic").is_in(sets["osteoporosis_medication"]["generics"])
    ).select(
        "patient_id",
        pl.col("event_date").alias("date"),
        pl.max_horizontal(pl.col("coverage_end"), pl.col("event_date") + _DAY).alias("until"),
        _text("osteoporosis drug: ", pl.col("generic")).alias("label"),
    )
    code = pl.col("icd10")
    prefixes = sets["osteoporosis_diagnosis"]["icd10_prefixes"]
    diagnosed = fractures.filter(pl.any_horizontal([code.str.starts_with(p) for p in prefixes]).fill_null(False))
    # a fracture: a site word from the export, or a fracture code (not any code: M81 is osteoporosis without one)
    new_fragility = fractures.filter(pl.col("fragility") & pl.col("new_fracture") & is_fracture())

    def from_fractures(rows: pl.LazyFrame, label: pl.Expr) -> pl.LazyFrame:
        return rows.select("patient_id", pl.col("fracture_date").alias("date"), label.alias("label")).with_columns(
            day_after.alias("until")
        )

    found = {
        "bone_density_test": tests,
        "osteoporosis_medication": drugs,
        "osteoporosis_diagnosis": from_fractures(diagnosed, _text("osteoporosis code ", code)),
        "fracture": from_fractures(new_fragility, pl.lit("fracture")),
    }
    return {name: frame.select(list(_EVENTS)).cast(_EVENTS) for name, frame in found.items()}


def _first(candidates: pl.LazyFrame, latest: bool) -> pl.LazyFrame:
    """Per patient, the earliest (or latest) of the matching events: ``ev_date``, ``ev_label``."""
    ordered = candidates.sort("patient_id", "date", "label", descending=[False, latest, False])
    return ordered.group_by("patient_id", maintain_order=True).agg(
        pl.col("date").first().alias("ev_date"), pl.col("label").first().alias("ev_label")
    )


def _matching(base: pl.LazyFrame, found: dict[str, pl.LazyFrame], names, keep: pl.Expr, latest: bool) -> pl.LazyFrame:
    rows = pl.concat([found[name] for name in names]) if names else pl.LazyFrame(schema=_EVENTS)
    return _first(base.join(rows, on="patient_id").filter(keep), latest)


def measure_members(
    spec: MeasureSpec,
    people: pl.LazyFrame,
    stretches: pl.LazyFrame,
    found: dict[str, pl.LazyFrame],
    measurement_year: int,
    as_of: dt.date,
) -> pl.LazyFrame:
    """The rows of one measure (``MEMBERS_SCHEMA``, and ``OPEN``, which ``split`` takes off): ``people`` are the
    roster's patients (sex, birth and death date), ``stretches`` their unbroken enrolments
    (``gaps.population.enrolment_stretches``), ``found`` each value set's events (``events``)."""
    first_day, last_day = spec.period(measurement_year)
    age = parsing.completed_years(pl.col("birth_date"), pl.lit(last_day))
    base = people.filter((pl.col("sex") == spec.sex) & age.is_between(spec.min_age_years, spec.max_age_years)).select(
        "patient_id", "death_date"
    )
    index = pl.col("index_date")
    if spec.index_value_set is not None:
        assert spec.index_from is not None and spec.index_to is not None
        intake = found[spec.index_value_set].filter(
            pl.col("date").is_between(spec.index_from.of(measurement_year), spec.index_to.of(measurement_year))
        )
        firsts = intake.group_by("patient_id").agg(pl.col("date").min().alias("index_date"))
        base = base.join(firsts, on="patient_id")
    else:
        base = base.with_columns(pl.lit(None, dtype=pl.Date).alias("index_date"))

    # the denominator: the enrolment the spec requires; alive on a day means dying after it, so a death ends
    # enrolment the day before (as ``alive`` on the as-of date in the population table)
    ends = pl.min_horizontal(pl.col("stretch_to"), pl.col("death_date") - _DAY)
    if spec.enrolment == "around_index":
        need_from = index.dt.offset_by(f"-{spec.enrolment_months_before}mo")
        need_to = index + pl.duration(days=spec.enrolment_days_after)
        covered = (pl.col("stretch_from") <= need_from) & (ends >= need_to)
        missing = _text("not enrolled from ", need_from, " to ", need_to)
    elif spec.enrolment == "on_period_end":
        on = min(last_day, as_of)
        covered = (pl.col("stretch_from") <= on) & (ends >= on)
        missing = pl.lit(f"not alive and enrolled on {on.isoformat()}")
    else:  # listed in the roster is enough
        covered, missing = None, pl.lit(None, dtype=pl.Utf8)
    if covered is None:
        base = base.with_columns(pl.lit(True).alias("in_denominator"))
    else:
        enrolled = base.join(stretches, on="patient_id").filter(covered).select("patient_id").unique()
        base = base.join(enrolled.with_columns(pl.lit(True).alias("in_denominator")), on="patient_id", how="left")
        base = base.with_columns(pl.col("in_denominator").fill_null(False))
    base = base.with_columns(missing.alias("_missing"))

    # the numerator, among those in the denominator
    if spec.numerator_ever:
        window_end = pl.lit(min(last_day, as_of))
        keep, latest = pl.col("date") <= window_end, True
        window_from = None
    else:
        if spec.numerator_days_after is not None:
            window_end = index + pl.duration(days=spec.numerator_days_after)
        else:
            window_end = index.dt.offset_by(f"{spec.numerator_months_after}mo")
        keep, latest = pl.col("date").is_between(index, pl.min_horizontal(window_end, pl.lit(as_of))), False
        window_from = index
    counted = base.filter("in_denominator")
    met = _matching(counted, found, list(spec.numerator_value_sets), keep, latest)

    # exclusions, in spec order: the first that applies names the reason (one that yields to the numerator
    # applies only to those who do not meet it)
    reasons = []
    for number, rule in enumerate(spec.exclusions):
        if rule.days_before_index is not None:
            keep = (pl.col("date") < index) & (pl.col("until") > index - pl.duration(days=rule.days_before_index))
            hits = _matching(counted, found, [rule.value_set], keep, latest=True)
        else:
            hits = _matching(counted, found, [rule.value_set], pl.col("date") <= min(last_day, as_of), latest=False)
        if rule.yields_to_numerator:
            hits = hits.join(met.select("patient_id"), on="patient_id", how="anti")
        reasons.append(
            hits.select(
                "patient_id",
                pl.lit(number).alias("_order"),
                pl.lit(rule.reason).alias("exclusion_reason"),
                pl.col("ev_date").alias("_x_date"),
                pl.col("ev_label").alias("_x_label"),
            )
        )
    if reasons:
        excluded = pl.concat(reasons).sort("patient_id", "_order").group_by("patient_id", maintain_order=True).first()
        base = base.join(excluded.drop("_order"), on="patient_id", how="left")
    else:
        base = base.with_columns(
            pl.lit(None, dtype=pl.Utf8).alias("exclusion_reason"),
            pl.lit(None, dtype=pl.Date).alias("_x_date"),
            pl.lit(None, dtype=pl.Utf8).alias("_x_label"),
        )
    base = (
        base.with_columns(pl.col("exclusion_reason").is_not_null().alias("excluded"))
        .join(met, on="patient_id", how="left")
        .with_columns(
            (pl.col("ev_date").is_not_null() & pl.col("excluded").not_()).alias("in_numerator"),
            window_end.alias("_window_end"),
        )
    )
    if window_from is None:
        unmet = _text("none on or before ", pl.col("_window_end"))
    else:
        unmet = (
            pl.when(pl.col("_window_end") > as_of)
            .then(_text("window open until ", pl.col("_window_end")))
            .otherwise(_text("none from ", window_from, " to ", pl.col("_window_end")))
        )
    open_window = pl.col("in_denominator") & ~pl.col("excluded") & ~pl.col("in_numerator")
    base = base.with_columns((open_window & (pl.col("_window_end") > as_of)).fill_null(False).alias("_open"))
    outcome = pl.when(pl.col("in_denominator").not_())
    return (
        base.select(
            pl.lit(spec.id).alias("measure"),
            pl.lit(spec.version).alias("version"),
            "patient_id",
            "in_denominator",
            "excluded",
            "exclusion_reason",
            "in_numerator",
            outcome.then(None).when("excluded").then("_x_date").otherwise("ev_date").alias("evidence_date"),
            outcome.then("_missing")
            .when("excluded")
            .then("_x_label")
            .when("in_numerator")
            .then("ev_label")
            .otherwise(unmet)
            .alias("evidence"),
            pl.col("_open").alias(OPEN),
        )
        .cast(MEMBERS_SCHEMA | {OPEN: pl.Boolean})
        .sort("patient_id")
    )


def all_members(
    people: pl.LazyFrame,
    stretches: pl.LazyFrame,
    exams: pl.LazyFrame,
    meds: pl.LazyFrame,
    fractures: pl.LazyFrame,
    measurement_year: int,
    as_of: dt.date,
    dxa_procedures: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Every shipped measure's rows, measure after measure (``dxa_procedures``: completed DXA procedures, bone
    density tests as the exams are)."""
    found = events(exams, meds, fractures, dxa_procedures)
    return pl.concat(
        [measure_members(spec, people, stretches, found, measurement_year, as_of) for spec in load_measures()]
    )


def split(rows: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The published rows of ``all_members``, and per measure how many of them have a window still open on the
    as-of date (not met yet: the rate can still rise)."""
    still_open = rows.filter(pl.col(OPEN)).group_by("measure").len()
    return rows.drop(OPEN), {r["measure"]: r["len"] for r in still_open.iter_rows(named=True)}


def no_members() -> pl.DataFrame:
    """The members table of a run without a roster: the measures are not computed."""
    return pl.DataFrame(schema=MEMBERS_SCHEMA | {OPEN: pl.Boolean})


def no_summary() -> pl.DataFrame:
    """The summary of a run without a roster: no row (a rate of 0 would claim a measure was computed)."""
    return pl.DataFrame(schema=SUMMARY_SCHEMA)


def summary(members: pl.LazyFrame) -> pl.DataFrame:
    """One row per shipped measure (``SUMMARY_SCHEMA``): denominator, exclusions, numerator and the rate,
    numerator / (denominator − exclusions), null when nobody is left to count."""
    specs = pl.LazyFrame(
        {"measure": [s.id for s in load_measures()], "version": [s.version for s in load_measures()]},
        schema={"measure": pl.Utf8, "version": pl.Utf8},
    )
    counts = members.group_by("measure", "version").agg(
        pl.col("in_denominator").sum().alias("denominator"),
        (pl.col("in_denominator") & pl.col("excluded")).sum().alias("exclusions"),
        (pl.col("in_denominator") & pl.col("excluded").not_() & pl.col("in_numerator")).sum().alias("numerator"),
    )
    eligible = pl.col("denominator") - pl.col("exclusions")
    return (
        specs.join(counts, on=["measure", "version"], how="left")
        .with_columns(pl.col("denominator", "exclusions", "numerator").fill_null(0))
        .with_columns(pl.when(eligible > 0).then(pl.col("numerator") / eligible).alias("rate"))
        .select(list(SUMMARY_SCHEMA))
        .cast(SUMMARY_SCHEMA)
        .sort("measure")
        .collect()
    )

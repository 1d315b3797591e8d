"""The population roster's view of each patient, and the ``screening_due`` gap: who should have had a DXA
and never had one. Ages, sex and the men's rule come from ``data/reference/care_gaps.toml``
(``[screening_due]``), never from literals here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from schemas import parsing
from schemas.gaps import SCREENING_DUE
from schemas.tables import SOURCE_ROW

_DAY = pl.duration(days=1)
OPEN_END = dt.date(9999, 12, 30)  # an open-ended span's end: later than any real date, with a day to spare


def enrolment_stretches(roster: pl.LazyFrame) -> pl.LazyFrame:
    """One row per unbroken stretch of a patient's enrolment: ``stretch_from``, ``stretch_to`` (included;
    ``OPEN_END`` when still enrolled). Spans that overlap or follow each other day after day are one stretch;
    a blank ``enrolled_from`` is enrolment from birth, a blank ``enrolled_to`` still enrolled."""
    spans = roster.select(
        "patient_id",
        pl.coalesce("enrolled_from", "birth_date").alias("_from"),
        pl.col("enrolled_to").fill_null(OPEN_END).alias("_to"),  # still enrolled: reaches past any date
    )
    ordered = spans.sort("patient_id", "_from", "_to")
    # a span starts a new stretch unless it begins by the day after the furthest end so far of that patient. The
    # furthest end is a running maximum over the sorted rows of a key that puts each patient's dates above every
    # earlier patient's (her rank, times more days than any date has): no window per patient (12 x faster at
    # 250k patients, where a window over each one's few spans cost most of the measures' time)
    first = (pl.col("patient_id") != pl.col("patient_id").shift(1)).fill_null(True)
    rank = first.cast(pl.Int64).cum_sum() * _RANK_DAYS
    # in days as 64-bit integers: the day after a date at the end of the Date range still compares
    reach = (pl.col("_to").cast(pl.Int64) + rank).cum_max().shift(1) - rank  # on a patient's first span: another's
    starts = first | (pl.col("_from").cast(pl.Int64) > reach + 1)
    return (
        ordered.with_columns(starts.cast(pl.Int64).cum_sum().alias("_stretch"))
        .group_by("_stretch")
        .agg(
            pl.col("patient_id").first(),
            pl.col("_from").min().alias("stretch_from"),
            pl.col("_to").max().alias("stretch_to"),
        )
        .drop("_stretch")
    )


# more days than lie between any two dates Polars can hold (a Date is 32-bit days, about ±5.8 million years; a
# typed roster or a '+30000-01-01' may bring one): each patient's keys stay above every earlier patient's
_RANK_DAYS = 2**32


def roster_patients(
    roster: pl.LazyFrame, as_of: dt.date, routing: tuple[str, ...], stretches: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """One row per roster patient: sex, birth date, ``alive`` and ``enrolled`` on the as-of date (the dead are
    never enrolled, whatever their spans say), the first day of the unbroken enrolment that covers it
    (``enrolled_since``, ``enrolment_stretches``), and the routing columns of the span covering the as-of date
    (else the latest).

    The roster's rows agree on sex, birth and death date (``validate.population`` quarantines a patient whose
    rows do not). ``stretches``: ``enrolment_stretches(roster)`` when the caller has them already.
    """
    covering = (
        (stretches if stretches is not None else enrolment_stretches(roster))
        .filter((pl.col("stretch_from") <= as_of) & (pl.col("stretch_to") >= as_of))
        .select("patient_id", pl.col("stretch_from").alias("enrolled_since"))
    )
    spans = roster.with_columns(
        pl.coalesce("enrolled_from", "birth_date").alias("_from"),
        pl.col("enrolled_to").fill_null(OPEN_END).alias("_to"),
    ).with_columns(((pl.col("_from") <= as_of) & (pl.col("_to") >= as_of)).alias("_covers"))
    # routing from the span covering the as-of date, else the latest: each patient's last row in this order
    route_rows = spans.sort("patient_id", "_covers", "_from").filter(pl.col("patient_id").is_last_distinct())
    details = roster.group_by("patient_id").agg(
        pl.col("sex").drop_nulls().first(),
        pl.col("birth_date").drop_nulls().first(),
        pl.col("death_date").drop_nulls().first(),
    )
    return (
        details.join(covering, on="patient_id", how="left")
        .join(route_rows.select("patient_id", *routing), on="patient_id", how="left")
        .with_columns((pl.col("death_date").is_null() | (pl.col("death_date") > as_of)).alias("alive"))
        .with_columns(  # the dead are enrolled nowhere: a span the roster has not ended yet does not outlive them
            pl.when(pl.col("alive")).then(pl.col("enrolled_since")).alias("enrolled_since"),
        )
        .with_columns(pl.col("enrolled_since").is_not_null().alias("enrolled"))
        .sort("patient_id")
    )


DIED, DISENROLLED = "died", "disenrolled"  # why a patient is off every list (closed_gaps.closed_detail)
LEFT_ROSTER = "left_roster"  # closed_detail of a roster-only gap (screening_due) of a patient the roster dropped
DEATHS_SCHEMA = {"patient_id": pl.Utf8, "death_date": pl.Date}  # death_date blank: died, the date unknown


def recorded_deaths(frames: list[pl.LazyFrame], formats: tuple[str, ...]) -> pl.LazyFrame:
    """The deaths a scans export records beside the roster (a FHIR Patient's ``deceased[x]``: the patient rows'
    ``deceased`` and ``death_date``, ``schemas.scans.PATIENT_FACTS``): one row per patient who died, with the
    earliest date recorded, blank when none is (``deceasedBoolean``, or a date that does not read)."""
    found = [
        frame.filter(parsing.boolean(pl.col("deceased")).fill_null(False)).select(
            pl.col("patient_id").str.strip_chars(), parsing.date(pl.col("death_date"), formats).alias("death_date")
        )
        for frame in frames
        if {"deceased", "death_date"} <= set(frame.collect_schema().names())
    ]
    if not found:
        return pl.LazyFrame(schema=DEATHS_SCHEMA)
    return pl.concat(found).group_by("patient_id").agg(pl.col("death_date").min()).cast(DEATHS_SCHEMA)


MRNS_SCHEMA = {"patient_id": pl.Utf8, "mrn": pl.Utf8}
SEVERAL_MRNS = "several_mrns"  # recorded_mrns: the patient's rows gave different numbers (counted in the manifest)


def recorded_mrns(frames: list[pl.LazyFrame]) -> pl.LazyFrame:
    """The medical record numbers a scans export records beside the patient id (a FHIR Patient's identifier of
    type MR: the patient rows' ``mrn``, ``schemas.scans.PATIENT_FACTS``): one row per patient with one, trimmed.

    A patient whose rows give several different numbers (two Patient resources of one id) gets the first read:
    that of the first file given, then of its first row (``source_row``), never an error; ``several_mrns`` marks
    her (the manifest counts such patients). Exports without the column (a CSV export, a wide profile) give none."""
    found = [
        frame.select(
            pl.col("patient_id").cast(pl.Utf8).str.strip_chars(),
            pl.col("mrn").cast(pl.Utf8).str.strip_chars(),
            pl.lit(number).alias("_file"),
            (pl.col(SOURCE_ROW) if SOURCE_ROW in names else pl.lit(None)).cast(pl.Int64).alias("_row"),
        )
        for number, frame in enumerate(frames)
        if "mrn" in (names := frame.collect_schema().names())
    ]
    if not found:
        return pl.LazyFrame(schema=MRNS_SCHEMA | {SEVERAL_MRNS: pl.Boolean})
    return (
        pl.concat(found)
        .filter(pl.col("patient_id").is_not_null() & (pl.col("patient_id") != "") & (pl.col("mrn") != ""))
        .sort("_file", "_row", nulls_last=True, maintain_order=True)
        .group_by("patient_id", maintain_order=True)
        .agg(pl.col("mrn").first(), (pl.col("mrn").n_unique() > 1).alias(SEVERAL_MRNS))
        .cast(MRNS_SCHEMA | {SEVERAL_MRNS: pl.Boolean})
    )


def _dead_on(deaths: pl.LazyFrame, as_of: dt.date) -> pl.Expr:
    """True for a recorded death on or before the as-of date (or of unknown date): not alive on it."""
    return pl.col("death_date").is_null() | (pl.col("death_date") <= as_of)


def with_recorded_deaths(people: pl.LazyFrame, deaths: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """``roster_patients`` with the deaths the exports record beside the roster: a roster patient an export
    records as dead on the as-of date is not alive, and so not enrolled, whatever the roster says."""
    dead = deaths.filter(_dead_on(deaths, as_of)).select("patient_id", pl.lit(True).alias("_dead"))
    alive = pl.col("alive") & pl.col("_dead").is_null()
    return (
        people.join(dead, on="patient_id", how="left", maintain_order="left")
        .with_columns(alive.alias("alive"))
        .with_columns(
            pl.when(pl.col("alive")).then(pl.col("enrolled_since")).alias("enrolled_since"),
            (pl.col("enrolled") & pl.col("alive")).alias("enrolled"),
        )
        .drop("_dead")
    )


def off_the_list(
    people: pl.LazyFrame | None, deaths: pl.LazyFrame | None = None, as_of: dt.date | None = None
) -> pl.LazyFrame:
    """The patients no gap may list on the as-of date, and why: ``died`` (a roster patient not alive, or a death
    an export records on or before the as-of date, ``recorded_deaths``) or ``disenrolled`` (a roster patient
    alive and not enrolled). Patients the roster does not list keep their gaps unless an export records their
    death (the worklist says ``in_roster`` false). No roster and no deaths: nobody."""
    schema = {"patient_id": pl.Utf8, "left_because": pl.Utf8}
    found = [pl.LazyFrame(schema=schema)]
    if people is not None:
        why = pl.when(~pl.col("alive")).then(pl.lit(DIED)).when(~pl.col("enrolled")).then(pl.lit(DISENROLLED))
        found.append(people.select("patient_id", why.alias("left_because")))
    if deaths is not None:
        assert as_of is not None, "recorded deaths are judged on the as-of date"
        found.append(deaths.filter(_dead_on(deaths, as_of)).select("patient_id", pl.lit(DIED).alias("left_because")))
    return (
        pl.concat(found)
        .filter(pl.col("left_because").is_not_null())
        .group_by("patient_id")
        .agg(pl.col("left_because").sort_by(pl.col("left_because") != DIED).first())  # died before disenrolled
    )


def birthday(birth: pl.Expr, years: int) -> pl.Expr:
    """The day a person born on ``birth`` turns ``years`` old (29 Feb: 1 Mar in a common year), as
    ``parsing.completed_years`` counts it."""
    shifted = birth.dt.offset_by(f"{years}y")
    return pl.when(shifted.dt.day() != birth.dt.day()).then(shifted + _DAY).otherwise(shifted)


def screening_due(
    patients: pl.LazyFrame,
    exams: pl.LazyFrame,
    as_of: dt.date,
    params: dict[str, Any],
    dxa_procedures: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Roster patients alive and enrolled on the as-of date, of the screened sex and at least the screening
    age on it (and men from their own age, when ``include_men``), with no DXA on record: no valid exam and no
    completed DXA procedure (``dxa_procedures``, a DXA done even without a result) on or before the as-of date.
    ``since`` is the later of the birthday of that age and the start of the enrolment covering the as-of date."""
    p = params[SCREENING_DUE.name]
    women = pl.col("sex") == p["sex"]
    due_birthday = pl.when(women).then(birthday(pl.col("birth_date"), p["min_age_years"]))
    if p["include_men"]:
        due_birthday = due_birthday.when(pl.col("sex") == "M").then(
            birthday(pl.col("birth_date"), p["men_min_age_years"])
        )
    due_birthday = due_birthday.otherwise(None)  # the day the patient reached the screening age
    scanned = exams.filter(pl.col("exam_date") <= as_of).select("patient_id")
    if dxa_procedures is not None:
        done = dxa_procedures.filter(pl.col("procedure_date") <= as_of).select("patient_id")
        scanned = pl.concat([scanned, done])
    scanned = scanned.unique()
    age = parsing.completed_years(pl.col("birth_date"), pl.lit(as_of))
    return (
        patients.filter(pl.col("alive") & pl.col("enrolled") & (due_birthday <= as_of))
        .join(scanned, on="patient_id", how="anti")
        .with_columns(
            pl.max_horizontal(due_birthday, pl.col("enrolled_since")).alias("since"),
            pl.lit(None, dtype=pl.Utf8).alias("exam_id"),
            pl.format("no valid DXA on record; {} aged {} on {}", pl.col("sex"), age, pl.lit(as_of.isoformat())).alias(
                "detail"
            ),
        )
    )

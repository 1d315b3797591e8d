"""A roster's unbroken enrolments (``gaps.population.enrolment_stretches``), computed with one running maximum
over all patients' sorted spans, are the stretches a plain span-by-span merge of each patient's own spans gives:
the same whatever the dates (year 1 to the open end), the number of patients or the order of the rows."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.gaps.population import OPEN_END, enrolment_stretches, roster_patients

_DATES = st.one_of(
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 29)),
    st.dates(min_value=dt.date(2019, 12, 1), max_value=dt.date(2020, 3, 1)),  # spans that touch and overlap
)
_SPAN = st.tuples(
    st.sampled_from(["A", "B", "C", "D"]), _DATES, st.one_of(st.none(), _DATES), st.one_of(st.none(), _DATES)
)


def _merged(rows: list[tuple]) -> list[tuple]:
    """Each patient's spans merged one by one: a span that starts by the day after the furthest end so far joins
    the stretch (a blank start is her birth, a blank end the open end)."""
    by_patient: dict[str, list[tuple[dt.date, dt.date]]] = {}
    for patient, birth, start, end in rows:
        by_patient.setdefault(patient, []).append((start or birth, end or OPEN_END))
    stretches = []
    for patient, spans in by_patient.items():
        current = None
        for start, end in sorted(spans):
            if current is not None and start <= current[1] + dt.timedelta(days=1):
                current = (current[0], max(current[1], end))
                continue
            if current is not None:
                stretches.append((patient, *current))
            current = (start, end)
        stretches.append((patient, *current))
    return sorted(stretches)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_SPAN, min_size=1, max_size=25))
def test_the_stretches_are_the_spans_merged_patient_by_patient(rows):
    frame = pl.DataFrame(
        rows,
        schema={"patient_id": pl.Utf8, "birth_date": pl.Date, "enrolled_from": pl.Date, "enrolled_to": pl.Date},
        orient="row",
    )
    found = enrolment_stretches(frame.lazy()).collect()
    assert sorted(found.select("patient_id", "stretch_from", "stretch_to").iter_rows()) == _merged(rows)


def test_the_roster_patients_are_the_same_given_the_stretches_or_not():
    rows = [
        ("A", dt.date(1950, 1, 1), dt.date(2010, 1, 1), dt.date(2019, 12, 31)),
        ("A", dt.date(1950, 1, 1), dt.date(2020, 1, 1), None),  # the day after: one stretch since 2010
        ("B", dt.date(1960, 1, 1), None, dt.date(2015, 1, 1)),  # from birth, ended
    ]
    frame = pl.DataFrame(
        rows,
        schema={"patient_id": pl.Utf8, "birth_date": pl.Date, "enrolled_from": pl.Date, "enrolled_to": pl.Date},
        orient="row",
    ).with_columns(pl.lit("F").alias("sex"), pl.lit(None, pl.Date).alias("death_date"))
    as_of = dt.date(2025, 1, 1)
    alone = roster_patients(frame.lazy(), as_of, ()).collect()
    given = roster_patients(frame.lazy(), as_of, (), enrolment_stretches(frame.lazy()).collect().lazy()).collect()
    assert alone.equals(given)
    assert alone.filter(pl.col("patient_id") == "A").get_column("enrolled_since").item() == dt.date(2010, 1, 1)
    assert alone.filter(pl.col("patient_id") == "B").get_column("enrolled").item() is False


def test_a_patients_far_dates_never_bridge_the_next_patients_gap():
    """A Date reaches about ±5.8 million years (a typed roster, or '+30000-01-01' read as a date): one patient's
    end that far away must not become the next patient's reach and join her two stretches; and a span ending on
    the last day a Date holds still takes in her later spans."""
    last, first = 2**31 - 1, -(2**31)
    frame = pl.DataFrame(
        {
            "patient_id": ["A", "B", "B", "C", "C", "D", "D"],
            "birth_date": pl.Series([0] * 7, dtype=pl.Int32).cast(pl.Date),
            "enrolled_from": pl.Series([0, 0, 3 * 365, first, 100, 0, 3 * 365], dtype=pl.Int32).cast(pl.Date),
            "enrolled_to": pl.Series([50_000_000, 2 * 365, 4 * 365, last, 200, 2 * 365, 4 * 365], dtype=pl.Int32).cast(
                pl.Date
            ),
        }
    )
    found = enrolment_stretches(frame.lazy()).collect()
    count = dict(found.group_by("patient_id").len().iter_rows())
    assert count == {"A": 1, "B": 2, "C": 1, "D": 2}  # B's and D's gaps stay gaps; C's spans are one stretch

"""Treatment intervals (docs/tables.md ``treatment_intervals``) against a plain merge of date ranges."""

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.gaps.coverage import treatment_intervals

AS_OF = dt.date(2026, 1, 1)
START = dt.date(2024, 1, 1)

# one medication event: patient, days after START, days covered, drug, counts as osteoporosis treatment
event = st.tuples(
    st.sampled_from(["P1", "P2", "P10", "P3"]),
    st.integers(0, 800),
    st.integers(1, 200),
    st.sampled_from(["alendronate", "denosumab", "zoledronic_acid"]),
    st.booleans(),
)


def _meds(events: list[tuple]) -> pl.DataFrame:
    rows = [
        {
            "patient_id": patient,
            "event_date": START + dt.timedelta(days=offset),
            "coverage_end": START + dt.timedelta(days=offset + days),
            "generic": drug,
            "osteoporosis_treatment": counts,
        }
        for patient, offset, days, drug, counts in events
    ]
    schema = {
        "patient_id": pl.Utf8,
        "event_date": pl.Date,
        "coverage_end": pl.Date,
        "generic": pl.Utf8,
        "osteoporosis_treatment": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema)


def _merged(events: list[tuple]) -> list[tuple]:
    """Each patient's treatment ranges merged where they overlap or touch, one event at a time."""
    by_patient: dict[str, list[tuple]] = {}
    for patient, offset, days, drug, counts in events:
        start = START + dt.timedelta(days=offset)
        if counts and start <= AS_OF:
            by_patient.setdefault(patient, []).append((start, start + dt.timedelta(days=days), drug))
    merged = []
    for patient in sorted(by_patient):
        current = None
        for start, end, drug in sorted(by_patient[patient]):
            if current is not None and start <= current[1]:
                current = (current[0], max(current[1], end), current[2] | {drug})
                continue
            if current is not None:
                merged.append((patient, *current))
            current = (start, end, {drug})
        merged.append((patient, *current))
    last_day = AS_OF + dt.timedelta(days=1)
    return [(p, s, e, sorted(d), (min(e, last_day) - s).days) for p, s, e, d in merged]


@settings(max_examples=60, deadline=None)
@given(st.lists(event, max_size=30))
def test_intervals_are_the_merged_ranges_of_each_patient(events):
    intervals = treatment_intervals(_meds(events).lazy(), AS_OF).collect()
    got = intervals.select("patient_id", "interval_start", "interval_end", "drugs", "days_covered").rows()
    assert got == _merged(events)


def test_a_course_touching_the_next_patients_dates_stays_apart():
    """P1's long course reaches past P2's first event: the running maximum must not carry across patients."""
    events = [
        ("P1", 0, 700, "denosumab", True),
        ("P2", 10, 30, "alendronate", True),
        ("P2", 60, 30, "alendronate", True),
    ]
    intervals = treatment_intervals(_meds(events).lazy(), AS_OF).collect()
    assert intervals.select("patient_id", "interval_start").rows() == [
        ("P1", START),
        ("P2", START + dt.timedelta(days=10)),
        ("P2", START + dt.timedelta(days=60)),
    ]

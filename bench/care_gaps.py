"""Cost of the care-gap step (patients, care_gaps, treatment_intervals) at registry scale.

    .venv/bin/python bench/care_gaps.py [PATIENTS] [MED_EVENTS] [REPEATS]

Builds deterministic synthetic scans, medications and fractures, prepares them as the pipeline does
(typed exams, screening, classified events) outside the timing, then times the gap step alone.
"""

from __future__ import annotations

import datetime as dt
import resource
import statistics
import sys
import time

import polars as pl

from osteo_core import reference
from osteo_core.decide.events import classify_fractures, classify_meds
from osteo_core.decide.rules import load_rules
from osteo_core.decide.screening import screen
from osteo_core.demo import synthetic
from osteo_core.gaps.care_gaps import care_gaps, patients
from osteo_core.gaps.coverage import treatment_intervals
from osteo_core.ingest.profiles import load_profile
from osteo_core.validate.rows import typed_columns
from osteo_core.validate.scans import normalise_text, parse_scans
from schemas.events import EVENT_WORDS, FRACTURES_FIELDS, MEDS_FIELDS
from schemas.scans import SIDED_COLUMNS

AS_OF = dt.date(2026, 7, 1)


def _typed_events(text: pl.DataFrame, fields) -> pl.LazyFrame:
    return text.lazy().select(*typed_columns(fields, ["%Y-%m-%d"], EVENT_WORDS))


def main(patients_n: int = 1_000_000, med_events: int = 2_000_000, repeats: int = 3) -> None:
    started = time.perf_counter()
    scans = synthetic.registry(patients_n, invalid_share=0.0, duplicate_share=0.0)
    per_exam = med_events / scans.height
    meds_text = synthetic.medications(scans, events_per_exam=per_exam).head(med_events)
    fractures_text = synthetic.fractures(scans)
    source = [pl.lit("bench").alias("source_file"), pl.int_range(1, pl.len() + 1).alias("source_row")]
    exams = parse_scans(
        normalise_text(scans.lazy().with_columns(source)).with_row_index("_row"), load_profile("generic")
    ).collect()
    meds = classify_meds(_typed_events(meds_text, MEDS_FIELDS)).collect()
    fractures = classify_fractures(_typed_events(fractures_text, FRACTURES_FIELDS)).collect()
    screening = screen(exams.lazy(), load_rules("standard"), fractures.lazy()).collect()
    exams = exams.drop(c for c in SIDED_COLUMNS if c in exams.columns)  # one-hip registry: as the pipeline does
    print(
        f"{patients_n:,} patients, {exams.height:,} exams, {meds.height:,} medication events, "
        f"{fractures.height:,} fractures (prepared in {time.perf_counter() - started:.1f} s)"
    )
    params = reference.care_gap_parameters()

    def gap_step():
        gaps = care_gaps(screening.lazy(), exams.lazy(), meds.lazy(), fractures.lazy(), AS_OF, params)
        return pl.collect_all(
            [
                gaps,
                patients(screening.lazy(), meds.lazy(), fractures.lazy(), AS_OF),
                treatment_intervals(meds.lazy(), AS_OF),
            ]
        )

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gaps, people, intervals = gap_step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(
        f"gap step: median {statistics.median(times):.2f} s of {repeats} ({', '.join(f'{t:.2f}' for t in times)}); "
        f"{gaps.height:,} gaps, {people.height:,} patients, {intervals.height:,} intervals; "
        f"process peak RSS {peak:.1f} GiB"
    )
    print(gaps.group_by("gap").len().sort("gap"))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))

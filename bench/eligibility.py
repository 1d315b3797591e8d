"""What the eligibility engine (docs/rules.md §4–7) adds to a screen: classify-only vs classify + rules.

    .venv/bin/python bench/eligibility.py [EXAMS] [REPEATS]

Builds a deterministic synthetic registry, parses it to typed exams once, then times (median of
REPEATS) the screening step with and without ``apply_rules`` on the same in-memory frame.
"""

from __future__ import annotations

import statistics
import sys
import time

import polars as pl

from osteo_core.decide.classify import classify, fracture_history
from osteo_core.decide.eligibility import apply_rules
from osteo_core.decide.rules import load_rules
from osteo_core.decide.sides import fold_sides
from osteo_core.demo.synthetic import registry
from osteo_core.ingest.profiles import load_profile
from osteo_core.validate.scans import normalise_text, parse_scans


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(exams: int = 1_000_000, repeats: int = 5) -> None:
    patients = max(1, exams * 2 // 5)  # 2.5 exams per patient on average
    text = (
        registry(patients, invalid_share=0.0, duplicate_share=0.0)
        .head(exams)
        .with_columns(pl.lit("bench.csv").alias("source_file"), pl.int_range(1, pl.len() + 1).alias("source_row"))
    )
    typed = parse_scans(normalise_text(text.lazy()).with_row_index("_row"), load_profile("generic")).collect()
    print(f"{typed.height:,} typed exams, {pl.thread_pool_size()} threads")
    for name in ("standard", "bhof2022", "aace2020"):
        rules = load_rules(name)
        base = _median(lambda r=rules: classify(fracture_history(fold_sides(typed.lazy())), r).collect(), repeats)
        full = _median(
            lambda r=rules: apply_rules(classify(fracture_history(fold_sides(typed.lazy())), r), r).collect(), repeats
        )
        print(
            f"{name:9s} classify {base:.3f} s, classify + eligibility {full:.3f} s, "
            f"eligibility adds {full - base:.3f} s"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

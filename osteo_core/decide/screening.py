"""Assemble the ``screening`` table from classified exams."""

from __future__ import annotations

import polars as pl

from osteo_core.decide.classify import classify, fracture_history
from osteo_core.decide.eligibility import apply_rules
from osteo_core.decide.rules import RuleSet
from osteo_core.decide.sides import fold_sides
from schemas.tables import SCREENING_COLUMNS, SCREENING_SCHEMA


def decide(exams: pl.LazyFrame, rules: RuleSet, fractures: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Typed valid exams with every intermediate column of docs/rules.md §1–7 (``osteo explain`` reads them).

    ``fractures`` is the classified fractures export (``events.classify_fractures``), when there is one.
    Exports of both hips are folded first: the lower hip's scores stand for the exam (``sides``).
    """
    return apply_rules(classify(fracture_history(fold_sides(exams), fractures), rules), rules)


def screen(exams: pl.LazyFrame, rules: RuleSet, fractures: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Typed valid exams → ``screening`` rows, sorted for reproducible output."""
    return (
        decide(exams, rules, fractures)
        .with_columns(pl.col("age_years").cast(pl.Int64), pl.lit(rules.label).alias("rule_set"))
        .select(SCREENING_COLUMNS)
        .cast(SCREENING_SCHEMA)
        .sort("patient_id", "exam_date", "exam_id")
    )

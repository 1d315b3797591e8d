"""Assemble the ``screening`` table from classified exams."""

from __future__ import annotations

import polars as pl

from osteo_core.classify import classify, fracture_history
from osteo_core.eligibility import apply_rules
from osteo_core.rules import RuleSet
from schemas.published import SCREENING_COLUMNS, SCREENING_SCHEMA


def decide(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """Typed valid exams with every intermediate column of RULES.md §1–7 (``osteo explain`` reads them)."""
    return apply_rules(classify(fracture_history(exams), rules), rules)


def screen(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """Typed valid exams → ``screening`` rows, sorted for reproducible output."""
    return (
        decide(exams, rules)
        .with_columns(pl.col("age_years").cast(pl.Int64), pl.lit(rules.label).alias("rule_set"))
        .select(SCREENING_COLUMNS)
        .cast(SCREENING_SCHEMA)
        .sort("patient_id", "exam_date", "exam_id")
    )

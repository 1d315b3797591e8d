"""The catalogue of eligibility conditions: the *shape* of each test a rule set may name.

Which conditions a rule set uses, in which order, with which reason code and thresholds, is data
(``data/rules/*.toml``); ``rules.validate_rules`` checks a rule file against this catalogue, and
``eligibility`` evaluates it. Nothing here imports either of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

Number = (int, float)


def is_true(expr: pl.Expr) -> pl.Expr:
    """Unknown (null) is not true: an unknown risk factor is never a reason."""
    return expr.fill_null(False)


@dataclass(frozen=True)
class Condition:
    """One kind of eligibility test: ``test(reason)`` is a boolean expression, ``compared(reason)`` the
    value it looks at, ``describe(reason)`` its wording for ``osteo explain``."""

    test: Callable[[dict[str, Any]], pl.Expr]
    compared: Callable[[dict[str, Any]], pl.Expr]
    describe: Callable[[dict[str, Any]], str]
    params: dict[str, Any] = field(default_factory=dict)


def _threshold(column: str, op: str, words: str) -> Condition:
    ops = {">=": pl.Expr.__ge__, ">": pl.Expr.__gt__, "<": pl.Expr.__lt__, "<=": pl.Expr.__le__}
    return Condition(
        test=lambda r: is_true(ops[op](pl.col(column), r["threshold"])),
        compared=lambda r: pl.col(column),
        describe=lambda r: f"{words} {op} {r['threshold']}",
        params={"threshold": Number},
    )


CONDITIONS: dict[str, Condition] = {
    "hip_or_vertebral_fracture": Condition(
        test=lambda r: pl.col("has_hip_or_vertebral_fracture"),
        compared=lambda r: pl.col("has_hip_or_vertebral_fracture"),
        describe=lambda r: "hip or vertebral fracture on or before the exam",
    ),
    "fragility_fracture": Condition(
        test=lambda r: pl.col("has_fragility_fracture"),
        compared=lambda r: pl.col("has_fragility_fracture"),
        describe=lambda r: "fragility fracture on or before the exam",
    ),
    "who_category": Condition(
        test=lambda r: pl.lit(True),
        compared=lambda r: pl.col("who_category"),
        describe=lambda r: "WHO category",
    ),
    "frax_hip_at_least": _threshold("frax_hip_adjusted", ">=", "adjusted FRAX hip %"),
    "frax_mof_at_least": _threshold("frax_mof_adjusted", ">=", "adjusted FRAX MOF %"),
    "frax_hip_above": _threshold("frax_hip_adjusted", ">", "adjusted FRAX hip %"),
    "frax_mof_above": _threshold("frax_mof_adjusted", ">", "adjusted FRAX MOF %"),
    "t_score_below": _threshold("lowest_t_score", "<", "lowest T-score"),
    "weight_below": _threshold("weight_kg", "<", "weight kg"),
    "fracture_count_at_least": _threshold(
        "fracture_count", ">=", "fractures in the fractures export on or before the exam"
    ),
    "risk_factor": Condition(
        test=lambda r: pl.any_horizontal([is_true(pl.col(c)) for c in r["columns"]]),
        compared=lambda r: pl.concat_str(
            [pl.lit(f"{c}=") + pl.col(c).cast(pl.Utf8).fill_null("unknown") for c in r["columns"]], separator=", "
        ),
        describe=lambda r: " or ".join(r["columns"]),
        params={"columns": list},
    ),
    "glucocorticoid_exposure": Condition(
        test=lambda r: is_true(
            (pl.col("glucocorticoid_mg_daily") >= r["mg_at_least"])
            & (pl.col("glucocorticoid_months") >= r["months_at_least"])
        ),
        compared=lambda r: pl.format(
            "{} mg/day for {} months",
            pl.col("glucocorticoid_mg_daily").cast(pl.Utf8).fill_null("unknown"),
            pl.col("glucocorticoid_months").cast(pl.Utf8).fill_null("unknown"),
        ),
        describe=lambda r: f"glucocorticoids >= {r['mg_at_least']} mg/day for >= {r['months_at_least']} months",
        params={"mg_at_least": Number, "months_at_least": Number},
    ),
    "recent_fracture": Condition(
        test=lambda r: is_true(pl.col("latest_fracture_date") >= pl.col("exam_date").dt.offset_by(f"-{r['months']}mo")),
        compared=lambda r: pl.col("latest_fracture_date"),
        describe=lambda r: f"fracture in the {r['months']} months up to the exam",
        params={"months": int},
    ),
}

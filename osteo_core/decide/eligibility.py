"""docs/rules.md §4–7: glucocorticoid FRAX adjustment, eligibility with reasons, recommendation, next DXA.

Every function here is a pure LazyFrame → LazyFrame (or an expression) with no I/O. The *shape* of each
eligibility condition lives in ``conditions.CONDITIONS``; which conditions a rule set uses, in which order, with
which reason code and which thresholds is data (``data/rules/*.toml``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from osteo_core.decide.conditions import CONDITIONS, is_true
from osteo_core.decide.rules import RuleSet

_SEPARATOR = "|"  # joins reason codes; rules.py allows only [a-z0-9_] in codes
_FLOAT_NOISE_DECIMALS = 9  # 2.5 × 1.2 is 2.9999999999999996 in binary: compare the decimal product


def reason_test(reason: dict[str, Any]) -> pl.Expr:
    """The full test of one reason: its condition, restricted to its WHO categories and the T basis."""
    test = CONDITIONS[reason["condition"]].test(reason)
    if "categories" in reason:
        test = test & is_true(pl.col("who_category").is_in(reason["categories"]))
    return is_true(test & (pl.col("diagnostic_basis") == "t_score"))


def adjust_frax(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """docs/rules.md §4: FRAX after the glucocorticoid-dose adjustment, capped; unchanged when none applies."""
    adj = rules["frax_adjustment"]
    dose = pl.col("glucocorticoid_mg_daily")
    high = (dose >= adj["high_dose_mg"]) if adj["high_dose_inclusive"] else (dose > adj["high_dose_mg"])
    low = (dose > 0) & (dose < adj["low_dose_mg_below"])

    def adjusted(column: str, high_factor: float, low_factor: float) -> pl.Expr:
        value = pl.col(column)
        factor = pl.when(is_true(high)).then(high_factor).when(is_true(low)).then(low_factor).otherwise(1.0)
        product = (value * factor).round(_FLOAT_NOISE_DECIMALS)
        capped = pl.when(product > adj["cap_percent"]).then(pl.lit(float(adj["cap_percent"]))).otherwise(product)
        return capped.alias(f"{column}_adjusted")  # null stays null (min_horizontal would make it the cap)

    return exams.with_columns(
        adjusted("frax_mof", adj["high_dose_mof_multiplier"], adj["low_dose_mof_multiplier"]),
        adjusted("frax_hip", adj["high_dose_hip_multiplier"], adj["low_dose_hip_multiplier"]),
    )


def assess_eligibility(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """docs/rules.md §5: ``eligibility_reasons`` (in rule-set order) and ``eligibility``.

    Very-high-risk reasons (tier ``very_high_risk``) only count for exams that a base reason already
    makes eligible: they grade the risk of a treated patient, they do not widen who is treated.
    """
    base = [r for r in rules.reasons if r.get("tier", "base") == "base"]
    any_base = pl.any_horizontal([reason_test(r) for r in base]) if base else pl.lit(False)
    tests = {
        r["code"]: reason_test(r) if r.get("tier", "base") == "base" else reason_test(r) & any_base
        for r in rules.reasons
    }
    # concat_str + split is ~12x faster than concat_list + drop_nulls; codes are [a-z0-9_] (rules.py)
    joined = pl.concat_str(
        [pl.when(test).then(pl.lit(code)) for code, test in tests.items()], separator=_SEPARATOR, ignore_nulls=True
    )
    reasons = (
        pl.when(pl.any_horizontal(list(tests.values())))
        .then(joined.str.split(_SEPARATOR))
        .otherwise(pl.lit([], dtype=pl.List(pl.Utf8)))
    )
    very_high = [r["code"] for r in rules.reasons if r.get("tier") == "very_high_risk"]
    needs_frax = (
        pl.col("who_category").is_in(rules["eligibility"]["needs_frax_categories"])
        & pl.col("frax_mof_adjusted").is_null()
        & pl.col("frax_hip_adjusted").is_null()
    )
    z_review = (pl.col("z_category") == "below_expected") | pl.col("has_fragility_fracture")
    eligibility = (
        pl.when(pl.col("diagnostic_basis") == "z_score")
        .then(pl.when(is_true(z_review)).then(pl.lit("specialist_review")).otherwise(pl.lit("not_eligible")))
        .when(pl.col("eligibility_reasons").list.len() > 0)
        .then(pl.lit("eligible"))
        .when(is_true(needs_frax))
        .then(pl.lit("needs_frax"))
        .otherwise(pl.lit("not_eligible"))
    )
    very_high_flag = pl.any_horizontal([tests[code] for code in very_high]) if very_high else pl.lit(False)
    return exams.with_columns(
        reasons.alias("eligibility_reasons"), very_high_flag.alias("very_high_risk")
    ).with_columns(eligibility.alias("eligibility"))


def recommend(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """docs/rules.md §6: one recommendation per exam."""
    rec = rules["recommendation"]
    prefers_denosumab = is_true(pl.col("egfr") < rec["denosumab_if_egfr_below"])
    if rec["denosumab_if_bisphosphonate_intolerance"]:
        prefers_denosumab = prefers_denosumab | is_true(pl.col("bisphosphonate_intolerance"))
    eligible = (
        pl.when(pl.col("very_high_risk"))
        .then(pl.lit(rec.get("very_high_risk")))
        .when(prefers_denosumab)
        .then(pl.lit("denosumab"))
        .otherwise(pl.lit("oral_bisphosphonate"))
    )
    recommendation = (
        pl.when(pl.col("eligibility") == "eligible")
        .then(eligible)
        .when(pl.col("eligibility") == "needs_frax")
        .then(pl.lit("calculate_frax"))
        .when(pl.col("eligibility") == "specialist_review")
        .then(pl.lit("secondary_causes_workup"))
        .otherwise(pl.lit("lifestyle_and_monitor"))
    )
    return exams.with_columns(recommendation.alias("recommendation"))


def schedule_next_dxa(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """docs/rules.md §7: exam date + 1, 5 or 2 calendar years (29 Feb → 28 Feb)."""
    years = rules["next_dxa"]
    bone_loss_therapy = is_true(pl.col("glucocorticoid_mg_daily") > 0) | is_true(pl.col("cancer_bone_loss_therapy"))
    stable_normal = (
        (pl.col("diagnostic_basis") == "t_score")
        & is_true(pl.col("who_category") == "normal")
        & (pl.col("eligibility_reasons").list.len() == 0)
    )
    interval = (
        pl.when(bone_loss_therapy)
        .then(pl.lit(f"{years['years_if_glucocorticoids_or_cancer_therapy']}y"))
        .when(stable_normal)
        .then(pl.lit(f"{years['years_if_normal_without_reason']}y"))
        .otherwise(pl.lit(f"{years['years_otherwise']}y"))
    )
    return exams.with_columns(pl.col("exam_date").dt.offset_by(interval).alias("next_dxa_due"))


def apply_rules(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """§4 → §7 on classified exams."""
    return (
        exams.pipe(adjust_frax, rules)
        .pipe(assess_eligibility, rules)
        .pipe(recommend, rules)
        .pipe(schedule_next_dxa, rules)
    )

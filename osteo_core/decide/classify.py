"""docs/rules.md §1–3: score population, lowest usable score per exam, WHO category.

Pure Polars: ``classify(exams, rules)`` adds columns to a LazyFrame of typed valid exams and does no I/O.
"""

from __future__ import annotations

import polars as pl

from osteo_core.decide.rules import RuleSet
from osteo_core.decide.sides import side_column
from schemas.scans import SPINE_LEVEL_COUNT, UNSPECIFIED_T
from schemas.sites import HIP_SITES, UNSPECIFIED_SITE

_NUDGE = 1e-9  # rounds the decimal as written: -1.95 is stored as -1.9499999…; nudge away from zero first

FRAGILITY_FLAGS = ("prior_fragility_fracture", "prior_hip_fracture", "prior_vertebral_fracture")
HIP_VERTEBRAL_FLAGS = ("prior_hip_fracture", "prior_vertebral_fracture")
HIP_VERTEBRAL_SITES = ("hip", "vertebral")


def round_score(expr: pl.Expr, decimals: int) -> pl.Expr:
    """Round half away from zero, on the decimal value as written."""
    nudged = expr + pl.when(expr < 0).then(-_NUDGE).otherwise(_NUDGE)
    return nudged.round(decimals, mode="half_away_from_zero")


def diagnostic_basis(rules: RuleSet) -> pl.Expr:
    """``z_score`` for men under the age and women pre-menopausal (or unknown status and under it)."""
    young = pl.col("age_years") < rules["diagnostic_basis"]["z_score_under_age"]
    status = pl.col("menopausal_status")
    z_basis = ((pl.col("sex") == "M") & young) | (
        (pl.col("sex") == "F") & ((status == "pre") | (status.is_null() & young))
    )
    return pl.when(z_basis).then(pl.lit("z_score")).otherwise(pl.lit("t_score"))


def _usable(site: str, rules: RuleSet) -> pl.Expr:
    if site != "spine":
        return pl.lit(True)
    count = pl.col(SPINE_LEVEL_COUNT)
    return count.is_null() | (count >= rules["sites"]["min_spine_vertebrae"])


def lowest_score(kind: str, rules: RuleSet) -> tuple[pl.Expr, pl.Expr]:
    """(lowest rounded score, its site) over the rule set's diagnostic sites that are usable, and for T-scores
    a T-score whose site the export does not state (``unspecified_t``, filled only when the profile says
    ``[scores] unsited_t = "use"``), site ``unspecified``.

    Ties go to the first site in the rule set's ``diagnostic`` list; a stated site wins over ``unspecified``.
    """
    decimals = rules["sites"]["score_decimals"]
    order = rules["sites"]["diagnostic"]
    scores = {
        site: pl.when(_usable(site, rules)).then(round_score(pl.col(f"{site}_{kind}"), decimals)) for site in order
    }
    if kind == "t":
        scores[UNSPECIFIED_SITE] = round_score(pl.col(UNSPECIFIED_T), decimals)
    lowest = pl.min_horizontal(list(scores.values()))
    site = pl.coalesce([pl.when(score == lowest).then(pl.lit(site)) for site, score in scores.items()])
    return lowest, site


def has_any(flags: tuple[str, ...]) -> pl.Expr:
    """True when any flag is true; unknown flags are not read as true."""
    return pl.any_horizontal([pl.col(f).fill_null(False) for f in flags])


def lowest_side(site: pl.Expr) -> pl.Expr:
    """The hip (left/right) behind the lowest score's ``site``, when the export gave both hips."""
    return pl.coalesce([pl.when(site == s).then(pl.col(side_column(s, "t"))) for s in HIP_SITES])


def classify(exams: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    """Add ``diagnostic_basis``, lowest T/Z score, its site and side, ``who_category`` and ``z_category``.

    Expects ``has_fragility_fracture`` (bool) on the frame — see ``fracture_history`` — and the hips
    folded by ``sides.fold_sides``.
    """
    lowest_t, lowest_t_site = lowest_score("t", rules)
    lowest_z, _ = lowest_score("z", rules)
    who = rules["who_category"]
    t = pl.col("lowest_t_score")
    category = (
        pl.when((pl.col("diagnostic_basis") != "t_score") | t.is_null())
        .then(None)
        .when(t >= who["normal_t_at_or_above"])
        .then(pl.lit("normal"))
        .when((t <= who["osteoporosis_t_at_or_below"]) & pl.col("has_fragility_fracture"))
        .then(pl.lit("severe_osteoporosis"))
        .when(t <= who["osteoporosis_t_at_or_below"])
        .then(pl.lit("osteoporosis"))
        .otherwise(pl.lit("osteopenia"))
    )
    z = pl.col("lowest_z_score")
    z_category = (
        pl.when((pl.col("diagnostic_basis") != "z_score") | z.is_null())
        .then(None)
        .when(z <= rules["z_category"]["below_expected_z_at_or_below"])
        .then(pl.lit("below_expected"))
        .otherwise(pl.lit("within_expected"))
    )
    return exams.with_columns(
        diagnostic_basis(rules).alias("diagnostic_basis"),
        lowest_t.alias("lowest_t_score"),
        lowest_t_site.alias("lowest_t_site"),
        lowest_z.alias("lowest_z_score"),
    ).with_columns(
        category.alias("who_category"),
        z_category.alias("z_category"),
        lowest_side(pl.col("lowest_t_site")).alias("lowest_t_side"),
    )


def fracture_history(exams: pl.LazyFrame, fractures: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Fracture facts per exam: the scans' own flags, plus fractures-export rows dated on or before the exam.

    Export rows count when they are new fractures (not a later encounter) at a fragility site; no age
    limit applies. ``fracture_count`` (distinct date and site) and ``latest_fracture_date`` come from the
    export alone.
    """
    if fractures is None:
        fractures = pl.LazyFrame(
            schema={
                "patient_id": pl.Utf8,
                "fracture_date": pl.Date,
                "fracture_site": pl.Utf8,
                "fragility": pl.Boolean,
                "new_fracture": pl.Boolean,
            }
        )
    per_exam = (
        exams.select("exam_id", "patient_id", "exam_date")
        .join(fractures.filter(pl.col("new_fracture") & pl.col("fragility")), on="patient_id")
        .filter(pl.col("fracture_date") <= pl.col("exam_date"))
        .group_by("exam_id")
        .agg(
            # distinct events: the same fracture exported twice (or coded twice on one day) counts once
            pl.struct("fracture_date", "fracture_site").n_unique().cast(pl.Int64).alias("fracture_count"),
            pl.col("fracture_date").max().alias("latest_fracture_date"),
            pl.col("fracture_site").is_in(HIP_VERTEBRAL_SITES).any().alias("_export_hip_or_vertebral"),
        )
    )
    return (
        exams.join(per_exam, on="exam_id", how="left")
        .with_columns(pl.col("fracture_count").fill_null(0))
        .with_columns(
            (has_any(FRAGILITY_FLAGS) | (pl.col("fracture_count") > 0)).alias("has_fragility_fracture"),
            (has_any(HIP_VERTEBRAL_FLAGS) | pl.col("_export_hip_or_vertebral").fill_null(False)).alias(
                "has_hip_or_vertebral_fracture"
            ),
        )
        .drop("_export_hip_or_vertebral")
    )

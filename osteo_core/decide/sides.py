"""Both hips (docs/rules.md §2): an export of a dual-femur scan gives each hip's femoral neck and total hip
(``left_total_hip_t``, ``right_femoral_neck_t`` …) instead of one value per exam.

Diagnosis uses the lower side (ISCD 2023 official positions on bilateral hip DXA: the lowest T-score of
either femoral neck or total hip; the mean of both hips is never used for diagnosis). ``fold_sides`` puts
the lower side's T- and Z-score in the exam's unsided column and records which side it was; the BMD values
stay per side, for monitoring (``gaps.care_gaps.significant_bmd_loss``). Validation has already
quarantined an exam that gives both an unsided and a sided value for the same site and measure, so the
unsided column is blank wherever a side is given. Exports of one hip (unsided columns only) pass unchanged.
"""

from __future__ import annotations

import polars as pl

from schemas.scans import sided
from schemas.sites import HIP_SITES, SIDES

SCORE_KINDS = ("t", "z")


def side_column(site: str, kind: str) -> str:
    """The side (``left``/``right``) whose value ``fold_sides`` put in ``{site}_{kind}``; null when the
    export gave one unsided value."""
    return f"{site}_{kind}_side"


def _lower_side(site: str, kind: str) -> tuple[pl.Expr, pl.Expr]:
    """(the lower of the two sides' values, which side it is); ties go to the first side (left)."""
    left, right = (pl.col(sided(side, site, kind)) for side in SIDES)
    value = pl.min_horizontal(left, right)
    side = (
        pl.when(left.is_not_null() & (right.is_null() | (left <= right)))
        .then(pl.lit(SIDES[0]))
        .when(right.is_not_null())
        .then(pl.lit(SIDES[1]))
    )
    return value, side


def with_sided_columns(exams: pl.LazyFrame) -> pl.LazyFrame:
    """``exams`` with every sided column, null where absent (typed frames built without them)."""
    present = set(exams.collect_schema().names())
    missing = [
        pl.lit(None, dtype=pl.Float64).alias(name)
        for name in (sided(side, site, kind) for site in HIP_SITES for kind in (*SCORE_KINDS, "bmd") for side in SIDES)
        if name not in present
    ]
    return exams.with_columns(missing) if missing else exams


def fold_sides(exams: pl.LazyFrame) -> pl.LazyFrame:
    """Unsided hip T/Z = the given unsided value, else the lower side's; plus ``{site}_{kind}_side``."""
    exams = with_sided_columns(exams)
    folded = []
    for site in HIP_SITES:
        for kind in SCORE_KINDS:
            unsided = pl.col(f"{site}_{kind}")
            value, side = _lower_side(site, kind)
            folded += [
                pl.coalesce(unsided, value).alias(f"{site}_{kind}"),
                pl.when(unsided.is_null()).then(side).alias(side_column(site, kind)),
            ]
    return exams.with_columns(folded)

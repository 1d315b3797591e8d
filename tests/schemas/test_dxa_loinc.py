"""The LOINC grid of DXA results as data (issue 13): complete, unambiguous, with its known traps marked."""

import polars as pl

from osteo_core.reference import dxa_loinc


def test_every_system_has_each_measure_on_each_side_once():
    grid = dxa_loinc()
    assert grid.height == 30 and grid.get_column("code").is_unique().all()
    counts = grid.group_by("system", "side", "measure").len()
    assert counts.get_column("len").to_list() == [1] * counts.height
    per_system = dict(grid.group_by("system").len().iter_rows())
    assert per_system == {"lumbar_spine": 3, "hip": 9, "femur": 9, "radius_ulna": 9}  # no sided spine code


def test_hip_and_femur_codes_do_not_claim_neck_or_total_hip():
    """Public examples code total hip as 'Femur' and the neck as 'Hip': the site must come from elsewhere."""
    grid = dxa_loinc()
    ambiguous = grid.filter(pl.col("system").is_in(["hip", "femur"]))
    assert ambiguous.get_column("site").null_count() == ambiguous.height
    assert grid.filter(pl.col("site").is_null()).height == ambiguous.height


def test_the_generic_t_score_misuse_is_marked():
    grid = dxa_loinc()
    misused = grid.filter("misused").select("code", "system", "measure").rows()
    assert misused == [("38265-5", "radius_ulna", "t")]
    assert grid.filter(pl.col("code") == "80946-7").select("system", "side", "measure").row(0) == ("hip", "left", "t")

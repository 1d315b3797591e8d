import datetime as dt

import polars as pl
import pytest

from schemas import parsing


def _one(expr_fn, value):
    return pl.DataFrame({"x": [value]}, schema={"x": pl.Utf8}).select(expr_fn(pl.col("x"))).item()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1.5", -1.5),
        (" -1.50 ", -1.5),
        ("\u22122.3", -2.3),
        ("12.5%", 12.5),
        ("7", 7.0),
        ("abc", None),
        ("", None),
        ("inf", None),
        ("nan", None),
        ("1,5", None),
    ],
)
def test_number(text, expected):
    assert _one(parsing.number, text) == expected


@pytest.mark.parametrize(
    ("text", "formats", "expected"),
    [
        ("2020-02-29", [], dt.date(2020, 2, 29)),
        ("2021-02-29", [], None),
        ("02/03/2020", ["%m/%d/%Y"], dt.date(2020, 2, 3)),
        ("2020-02-03", ["%m/%d/%Y"], dt.date(2020, 2, 3)),
        ("2020-02-03 00:00:00", [], dt.date(2020, 2, 3)),
        ("02/03/2020", [], None),
        ("yesterday", [], None),
    ],
)
def test_date(text, formats, expected):
    assert _one(lambda e: parsing.date(e, formats), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("Yes", True),
        ("y", True),
        ("T", True),
        ("false", False),
        ("0", False),
        ("NO", False),
        ("n", False),
        ("f", False),
        ("maybe", None),
        ("2", None),
    ],
)
def test_boolean(text, expected):
    assert _one(parsing.boolean, text) == expected


@pytest.mark.parametrize(
    ("text", "levels", "count"),
    [
        ("L1-L4", "L1,L2,L3,L4", 4),
        ("L2-L4", "L2,L3,L4", 3),
        ("L1,L3", "L1,L3", 2),
        ("L3", "L3", 1),
        ("l1 - l2, L4", "L1,L2,L4", 3),
        ("L1\u2013L4", "L1,L2,L3,L4", 4),
        ("L1-4", "L1,L2,L3,L4", 4),
        ("L4-L1", None, None),
        ("T12-L2", None, None),
        ("L1-L5", None, None),
        ("spine", None, None),
    ],
)
def test_spine_levels(text, levels, count):
    frame = pl.DataFrame({"x": [text]}).select(parsing.spine_levels(pl.col("x")).alias("levels"))
    assert frame.item() == levels
    assert frame.select(parsing.spine_level_count(pl.col("levels"))).item() == count


@pytest.mark.parametrize(
    ("birth", "on", "years"),
    [
        (dt.date(1950, 6, 15), dt.date(2000, 6, 14), 49),
        (dt.date(1950, 6, 15), dt.date(2000, 6, 15), 50),
        (dt.date(1952, 2, 29), dt.date(2002, 2, 28), 49),
        (dt.date(1952, 2, 29), dt.date(2002, 3, 1), 50),
    ],
)
def test_completed_years(birth, on, years):
    frame = pl.DataFrame({"b": [birth], "e": [on]})
    assert frame.select(parsing.completed_years(pl.col("b"), pl.col("e"))).item() == years


def test_blank_cells_are_unknown_not_empty():
    frame = pl.DataFrame({"x": ["  ", "", None, " a "]})
    assert frame.select(parsing.blank_to_null(pl.col("x"))).to_series().to_list() == [None, None, None, "a"]

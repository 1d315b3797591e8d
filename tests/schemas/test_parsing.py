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


# The fast paths (direct cast, one parse per distinct cell) must give exactly what the full clean-up gives.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_CELLS = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "1,5",
            "12.5%",
            " 3 ",
            "\u22122.3",
            "-0",
            "1e3",
            "abc",
            "true",
            "No",
            "T",
            "2020-02-29",
            "02/03/2020",
            "2021-02-29",
            "2020-02-03T10:00",
            "L1-L4",
            "l2, L4",
            "F",
            "female",
            "unknown",
        ]
    ),
    st.text(max_size=8),
)


def _number_by_clean_up(expr: pl.Expr) -> pl.Expr:
    text = expr.str.strip_chars().str.replace_all(parsing.UNICODE_MINUS, "-", literal=True)
    value = text.str.strip_suffix("%").str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value).otherwise(None)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CELLS, max_size=30))
def test_number_fast_path_gives_the_clean_up_value(cells):
    frame = pl.DataFrame({"x": cells}, schema={"x": pl.Utf8})
    fast, full = frame.select(parsing.number(pl.col("x"))), frame.select(_number_by_clean_up(pl.col("x")))
    assert fast.equals(full)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CELLS, max_size=30))
def test_parsing_each_distinct_cell_once_gives_the_row_by_row_values(cells):
    frame = pl.DataFrame({"x": cells}, schema={"x": pl.Utf8})
    formats = ["%m/%d/%Y"]
    words = {"f": "F", "female": "F", "unknown": None}
    pairs = [
        (lambda e: parsing.date(e, formats), lambda e: parsing._date(e, formats)),
        (parsing.boolean, parsing._boolean),
        (parsing.spine_levels, parsing._spine_levels_expr),
        (
            lambda e: parsing.coded(e, words),
            lambda e: (
                e.str.strip_chars()
                .str.to_lowercase()
                .replace_strict({"f": "F", "female": "F"}, default=None, return_dtype=pl.Utf8)
            ),
        ),
    ]
    for by_distinct, row_by_row in pairs:
        once, each = frame.select(by_distinct(pl.col("x"))), frame.select(row_by_row(pl.col("x")))
        assert once.to_series().equals(each.to_series(), check_names=False)


def test_blank_to_null_trims_and_blanks_only():
    frame = pl.DataFrame({"x": ["  a ", "", "   ", None, "b"]})
    assert frame.select(parsing.blank_to_null(pl.col("x"))).to_series().to_list() == ["a", None, None, None, "b"]

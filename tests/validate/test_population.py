"""Roster row accounting (docs/inputs.md, population): every row is valid, quarantined or a counted
duplicate, whatever the cells hold; a patient is kept on all rows or none."""

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.ingest.profiles import load_profile
from osteo_core.validate.population import validate_population
from schemas.tables import SOURCE_FILE, SOURCE_ROW

AS_OF = dt.date(2026, 1, 1)
COLUMNS = ("patient_id", "sex", "birth_date", "death_date", "enrolled_from", "enrolled_to", "clinic", "pcp_id")
cell = {
    "patient_id": st.sampled_from(["P1", "P2", " P2 ", "P3", "", None]),
    "sex": st.sampled_from(["F", "female", "M", "x", "", None]),
    "birth_date": st.sampled_from(["1950-01-01", "1951-06-30", "2030-01-01", "1950-02-30", None]),
    "death_date": st.sampled_from([None, None, "2020-01-01", "1940-01-01", "soon"]),
    "enrolled_from": st.sampled_from([None, "2000-01-01", "2020-01-01", "2026-01-02"]),
    "enrolled_to": st.sampled_from([None, "2019-12-31", "2025-12-31", "1999-01-01"]),
    "clinic": st.sampled_from([None, "North", " North"]),
    "pcp_id": st.sampled_from([None, "D1"]),
}
roster_row = st.fixed_dictionaries(cell)


@settings(max_examples=60, deadline=None)
@given(st.lists(roster_row, min_size=1, max_size=12))
def test_every_roster_row_is_valid_quarantined_or_duplicate(rows):
    frame = pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS, pl.Utf8)).with_columns(
        pl.lit("roster.csv").alias(SOURCE_FILE), pl.int_range(1, len(rows) + 1, dtype=pl.Int64).alias(SOURCE_ROW)
    )
    result = validate_population(frame.lazy(), load_profile("generic"), AS_OF)
    assert result.rows_in == len(rows)
    assert result.valid.height + result.quarantined_rows + result.duplicates == len(rows)
    quarantined_rows = result.quarantine.select(SOURCE_ROW).unique().height
    assert quarantined_rows == result.quarantined_rows
    # no patient is both kept and quarantined: a patient is read on all rows or none
    kept = set(result.valid.get_column("patient_id").to_list())
    held = set(result.quarantine.get_column("patient_id").drop_nulls().to_list())
    assert not kept & held

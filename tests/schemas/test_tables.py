"""schemas.tables: each published column is declared once, with its name, type and description together, and the
dicts the engine, the catalog and the docs read are made from those declarations."""

import polars as pl
import pytest

from schemas import tables
from schemas.gaps import GAP_VIEWS
from schemas.published import PUBLISHED_SCHEMAS
from schemas.tables import (
    CATALOG_TABLES,
    COLUMN_DESCRIPTIONS,
    DECLARATIONS,
    DTYPES,
    EVENT_COLUMN_DESCRIPTIONS,
    EVENT_TABLES,
    LIVE_TABLES,
    TABLE_DESCRIPTIONS,
    TABLES,
    Column,
    Table,
    catalog_column_descriptions,
)


@pytest.mark.parametrize("description", ["", "   ", None])
def test_a_column_or_a_table_without_a_description_cannot_be_declared(description):
    with pytest.raises(ValueError, match="'exam_id': a description is required"):
        Column("exam_id", pl.Utf8, description)
    with pytest.raises(ValueError, match="'screening': a description is required"):
        Table("screening", description)


def test_a_column_declared_twice_or_a_typed_table_without_a_type_is_refused():
    column = Column("exam_id", pl.Utf8, "DXA exam identifier")
    with pytest.raises(ValueError, match="a column declared twice"):
        Table("screening", "Exams", (column, column))
    with pytest.raises(ValueError, match=r"no type declared for \['note'\]"):
        Table("outreach", "Marks", (column, Column("note", None, "Its note"))).dtypes()


def test_every_table_and_view_of_the_catalog_is_declared_once_in_the_catalogs_order():
    assert list(DECLARATIONS) == list(TABLE_DESCRIPTIONS)
    assert list(TABLE_DESCRIPTIONS) == [*TABLES, *GAP_VIEWS, *EVENT_TABLES, "worklist", *LIVE_TABLES]
    assert set(CATALOG_TABLES) | set(LIVE_TABLES) <= set(DECLARATIONS)


def test_every_published_column_has_a_type_and_a_description_from_one_declaration():
    for name in (*TABLES, *LIVE_TABLES):
        columns = DECLARATIONS[name].columns
        assert columns, name
        assert DTYPES[name] == {c.name: c.dtype for c in columns}
        assert COLUMN_DESCRIPTIONS[name] == {c.name: c.description for c in columns}
        assert list(DTYPES[name]) == list(COLUMN_DESCRIPTIONS[name]) == [c.name for c in columns]
        assert all(c.dtype is not None and c.description.strip() for c in columns), name
    for name in EVENT_TABLES:
        assert EVENT_COLUMN_DESCRIPTIONS[name] == {c.name: c.description for c in DECLARATIONS[name].columns}


def test_the_named_schemas_are_the_declared_columns():
    assert tables.SCREENING_SCHEMA == DTYPES["screening"] and tables.SCREENING_COLUMNS == tuple(DTYPES["screening"])
    assert tables.GAPS_SCHEMA == tables.FOUND_GAPS_SCHEMA | tables.LIFECYCLE_SCHEMA == DTYPES["care_gaps"]
    assert tables.OUTREACH_SCHEMA == DTYPES["outreach"] and tables.QUARANTINE_SCHEMA == DTYPES["quarantine"]


def test_every_catalog_column_is_described():
    for name in (*CATALOG_TABLES, *GAP_VIEWS, "worklist", *LIVE_TABLES):
        described = catalog_column_descriptions(name)
        assert described and all(isinstance(d, str) and d.strip() for d in described.values()), name
    for name, schema in PUBLISHED_SCHEMAS.items():  # and so every Pandera column that validates a published table
        assert [c.description for c in schema.columns.values()] == list(COLUMN_DESCRIPTIONS[name].values())

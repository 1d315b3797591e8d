"""Pandera schemas of the published tables (built from ``schemas.tables``): every partition's tables are
validated against them before they are written."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.tables import COLUMN_DESCRIPTIONS, DTYPES, TABLES


def _schema(name: str, dtypes: dict[str, pl.DataType], descriptions: dict[str, str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {col: pa.Column(dtype, nullable=True, description=descriptions[col]) for col, dtype in dtypes.items()},
        name=name,
        strict=True,
        ordered=True,
    )


PUBLISHED_SCHEMAS = {table: _schema(table, DTYPES[table], COLUMN_DESCRIPTIONS[table]) for table in TABLES}

"""Read-only SQL over the published catalog (``OUT/osteo.duckdb``)."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import polars as pl

from osteo_core.errors import InputError, OsteoError
from osteo_core.publish import CATALOG


def connect(out: Path) -> duckdb.DuckDBPyConnection:
    path = out / CATALOG
    if not path.exists():
        raise InputError(str(out), "no published screen here (run osteo screen first)")
    return duckdb.connect(str(path), read_only=True)


def query(out: Path, sql: str) -> pl.DataFrame:
    con = connect(out)
    try:
        relation = con.sql(sql)  # run once: a statement without a result (e.g. SET) gives None
        return relation.pl() if relation is not None else pl.DataFrame()
    except duckdb.Error as err:
        raise OsteoError(f"SQL error: {str(err).strip()}") from None
    finally:
        con.close()


def table_listing() -> str:
    """Every published table and view with its columns and descriptions (from ``schemas.published``)."""
    from schemas.published import COLUMN_DESCRIPTIONS, PUBLISHED_SCHEMAS, TABLE_DESCRIPTIONS

    lines = []
    for table, description in TABLE_DESCRIPTIONS.items():
        lines.append(f"{table}: {description}")
        if table in PUBLISHED_SCHEMAS:
            for column, col in PUBLISHED_SCHEMAS[table].columns.items():
                lines.append(f"  {column:<24} {str(col.dtype):<14} {COLUMN_DESCRIPTIONS[table][column]}")
        elif table == "untreated_high_risk":
            lines.append("  (view: the care_gaps columns, then the screening columns)")
        else:
            lines.append("  (the export's columns, typed, plus the resolved drug class or fracture site)")
        lines.append("")
    return "\n".join(lines).rstrip()


def run_query(out: Path, sql: str, fmt: str) -> int:
    frame = query(out, sql)
    if fmt == "parquet":
        frame.write_parquet(sys.stdout.buffer)
    elif fmt == "csv":
        frame.write_csv(sys.stdout)
    elif fmt == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        with pl.Config(
            tbl_rows=50,
            tbl_cols=-1,
            tbl_width_chars=160,
            tbl_hide_dataframe_shape=False,
            tbl_hide_column_data_types=True,
            fmt_str_lengths=40,
        ):
            print(frame)
    return 0

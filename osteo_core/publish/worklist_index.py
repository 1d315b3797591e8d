"""The worklist's per-patient index, ``worklist_index.parquet`` in the run folder: one row per patient with an
open gap, already in the per-patient list's order (most urgent headline gap first, then the most recent
``since``, then the patient), written at publish beside the catalog. ``osteo worklist --limit N`` reads its first
rows instead of grouping millions of gaps (issue 34): only the patients an outreach mark touches are recomputed
when it is read, from their own gaps (the ``open`` column), since a mark can hide a gap or change what is shown.

It is the run's own derived file, not a published table: no catalog view, no ``OUT/`` link; a run published
without it (an older version's) is read as before, by DuckDB over the whole list. It is built from the catalog's
``worklist`` view (``folder.VIEWS``), so routing, ``mrn`` and ``in_roster`` are those of the list itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

from osteo_core.literal_paths import duckdb_database

INDEX = "worklist_index.parquet"
# the per-patient columns the index holds besides the roster's routing columns, which go after in_roster
HEAD_COLUMNS = ("patient_id", "mrn", "priority", "gap", "since", "detail", "exam_id", "in_roster")
SUMMARY_COLUMNS = ("gaps", "open_gaps", "days_on_list")
OPEN = "open"  # every open gap of hers, most urgent first: what a mark can change is recomputed from it
OPEN_FIELDS = ("gap", "priority", "since", "first_seen", "detail", "exam_id", "days_open")


def routing_of(columns: Iterable[str]) -> list[str]:
    """The roster's routing columns among a worklist's ``columns``: those that are not care_gaps', the live
    worklist view's own or the per-patient list's (the same rule as ``outputs.worklist.routing_columns``)."""
    from schemas.tables import GAPS_SCHEMA, WORKLIST_PATIENT_COLUMNS, catalog_column_descriptions

    own = set(catalog_column_descriptions("worklist")) | set(GAPS_SCHEMA) | set(WORKLIST_PATIENT_COLUMNS)
    own |= {*SUMMARY_COLUMNS, OPEN}
    return [c for c in columns if c not in own]


def index_sql(as_of: str, routing: list[str]) -> str:
    """The index's rows, in list order: each patient's headline gap (her most urgent: priority, then the earliest
    since, then the gap's name, as ``outputs.worklist.by_patient``), her roster columns, every open gap of hers
    (``gaps``, ``open_gaps``, ``open``) and ``days_on_list``, with no outreach mark applied."""
    routed = "".join(f', "{c}"' for c in routing)
    fields = ", ".join(f"'{f}': {f}" for f in OPEN_FIELDS)
    return f"""WITH w AS (SELECT *, date_diff('day', first_seen, DATE '{as_of}') AS days_open FROM worklist),
        head AS (SELECT {", ".join(HEAD_COLUMNS)}{routed} FROM w
                 QUALIFY row_number() OVER (PARTITION BY patient_id ORDER BY priority, since, gap) = 1),
        summary AS (SELECT patient_id, string_agg(gap, ', ' ORDER BY priority, gap) AS gaps, count(*) AS open_gaps,
                           max(days_open) AS days_on_list,
                           list({{{fields}}} ORDER BY priority, since, gap) AS {OPEN}
                    FROM w GROUP BY patient_id)
        SELECT t.*, s.gaps, s.open_gaps, s.days_on_list, s.{OPEN} FROM head t JOIN summary s USING (patient_id)
        ORDER BY t.priority, t.since DESC, t.patient_id"""


def write(con: duckdb.DuckDBPyConnection, folder: Path, as_of: str) -> Path | None:
    """Write ``folder/INDEX`` from the ``worklist`` view of the catalog being built on ``con`` (nothing when the
    run has no such view: no care_gaps). DuckDB streams it to the file; row groups are small, so a page reads one."""
    try:
        columns = [row[0] for row in con.execute("DESCRIBE worklist").fetchall()]
    except duckdb.CatalogException:
        return None
    path = folder / INDEX
    with duckdb_database(path) as target:  # DuckDB writes literally, but not under a '?' or a backslash
        literal = str(target).replace("'", "''")
        con.execute("SET preserve_insertion_order = true")  # COPY keeps the ORDER BY only with it (the catalog's
        try:  # own copies are written without it, which lets DuckDB write them in parallel)
            con.execute(
                f"COPY ({index_sql(as_of, routing_of(columns))}) TO '{literal}' (FORMAT parquet, ROW_GROUP_SIZE 16384)"
            )
        finally:
            con.execute("SET preserve_insertion_order = false")
    return path

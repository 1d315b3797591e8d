"""An OMOP screen's own steps in its run (``osteo screen --omop SOURCE``): extract the CDM's rows the screen reads into
the run's folder (``ingest.omop``), under the output folder's lock, and say in the manifest what was extracted and what
each CDM table's rows became."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core.errors import InputError
from osteo_core.ingest import omop
from osteo_core.pipeline.request import ScreenRequest, auto_partitions, check_patient_ids
from osteo_core.pipeline.resolve import InputFile, input_files
from schemas.inputs import INPUTS, POPULATION, SCANS
from schemas.tables import SOURCE_FILE, SOURCE_ROW

OMOP_FOLDER = "omop"  # in the run's folder: what was extracted from the CDM, and extraction.json (its counts)
OMOP_COUNTS = "extraction.json"


def extract_omop(request: ScreenRequest, folder: Path) -> tuple[dict[str, tuple[InputFile, ...]], int]:
    """Extract the CDM (``ingest.omop``) into ``folder``: the files of each input, and the partitions (as given,
    else one per 500,000 measurement or person rows). The extraction's counts, the column that gave the patient
    ids, the enrolment and the CDM's release date go to ``extraction.json`` (the manifest's ``omop``). A run whose
    ids no longer match the published run's is refused here, under the output folder's lock
    (``request.check_patient_ids``)."""
    con = omop.open_cdm(request.omop, request.omop_schema)
    try:
        extracted = omop.extract(con, folder, request.omop_patient_id, request.omop_enrolment)
        released = omop.release_date(con)
    finally:
        con.close()
        del con  # no DuckDB object outlives the extraction (a refusal below must not keep one to interpreter exit)
    measurement = extracted.tables["measurement"]
    if not measurement["read"]:  # screened, every woman would be "never scanned": a wrong list, not an empty one
        raise InputError(
            request.omop,
            f"no DXA result: none of table 'measurement''s {measurement['rows']:,} rows is of a DXA LOINC concept"
            " (docs/inputs.md, 'From an OMOP CDM')",
        )
    column = "person_id" if extracted.counts.get("patient_ids_from_person_id") else "person_source_value"
    entry: dict[str, Any] = {"patient_id_column": column, "enrolment": request.omop_enrolment}
    entry |= {"release_date": released} | extracted.counts | {"tables": extracted.tables}
    changed = check_patient_ids(request, column, folder)
    if changed:  # accepted (--accept-input-change): said in the manifest and by osteo screen
        entry["patient_ids_changed"] = changed
    (folder / OMOP_COUNTS).write_text(json.dumps(entry, indent=2), encoding="utf-8")
    files = {kind: input_files(extracted.files.get(kind, [])) for kind in INPUTS}
    partitions = request.partitions or auto_partitions(
        extracted.files.get(SCANS.name, []), extracted.files.get(POPULATION.name, [])
    )
    return files, partitions


def omop_manifest(request: ScreenRequest, run_folder: Path) -> dict[str, Any]:
    """The manifest's ``omop``: the CDM named (never a credential: ``omop_postgres`` refuses a URL holding one), what
    its extraction counted (``extraction.json``), and per CDM table the rows read that the screen's quarantine names
    (``quarantined``: distinct rows of the table's extracted file, each table's ``file`` given relative to the run's
    folder)."""
    entry: dict[str, Any] = {"source": request.omop, "schema": request.omop_schema or None}
    extraction = run_folder / OMOP_FOLDER / OMOP_COUNTS
    if extraction.exists():
        entry |= json.loads(extraction.read_text(encoding="utf-8"))
    quarantine = run_folder / "quarantine.parquet"
    named: dict[str, int] = {}
    if quarantine.exists():
        by_file = (
            pl.scan_parquet(quarantine, glob=False)
            .group_by(SOURCE_FILE)
            .agg(pl.col(SOURCE_ROW).n_unique().alias("rows"))
            .collect()
        )
        named = dict(by_file.iter_rows())
    for table in entry.get("tables", {}).values():
        if "file" in table:
            table["quarantined"] = named.get(table["file"], 0)
            table["file"] = Path(table["file"]).relative_to(run_folder).as_posix()
    return entry

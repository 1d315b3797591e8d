"""The raw layer of a run: each input file streamed once into ``raw/KIND/NNN/_partition=P/*.parquet`` (text, or a
typed Parquet column of a native type of its field as it is; canonical headers, source columns), split by a hash of
the patient id; the run-wide exam-id conflict check over the (exam id, patient id) pairs read back from it; and
the readers a partition's screen takes its rows from."""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core.errors import InputError, disk_problem, output_errors
from osteo_core.ingest.readers import SOURCE_FILE, Fingerprint, blank_row, concat_text, read_export, unreadable
from osteo_core.pipeline.partitions import PARTITION, partition_key, sink_split
from osteo_core.pipeline.request import canonical_namer, require_columns
from osteo_core.pipeline.resolve import InputFile, Resolved
from osteo_core.publish.folder import RunPaths
from osteo_core.validate.scans import EXAM_ID_BUCKET, exam_id_pairs, exam_ids_under_several_patients
from schemas.inputs import BY_NAME, SCANS, InputKind

log = logging.getLogger("osteo")
BLANK_PARTITION = -1  # where ingest's one pass puts a file's blank lines, to count them (then removed)
PARTITIONS_PER_CONFLICT_BUCKET = 4  # an exam-id bucket holds about as many rows as four partitions


def conflict_buckets(partitions: int) -> int:
    return max(1, -(-partitions // PARTITIONS_PER_CONFLICT_BUCKET))


def ingest(resolved: Resolved, run_id: str, kind: str, files: list[InputFile], partitions: int) -> list[dict[str, Any]]:
    """Each file of one input → ``raw/KIND/NNN/_partition=P/*.parquet``: the raw layer (text, or a typed
    column's own type: ``readers.raw_layer``), canonical headers,
    source columns, split by patient partition in one streaming pass whose memory does not grow with the file
    (``partitions.sink_split``; the pass's only query). The scans' (exam id, patient id) pairs are then read back
    from the file's raw layer (two columns) and split by exam-id bucket, for the run-wide conflict check. Blank
    lines are counted, not kept; an input whose files hold no data row at all stops the run (exit 2), unless they are
    FHIR NDJSON files (no header; none of their resources being read is normal) or extracted from an OMOP CDM
    (where a CDM without a DXA result is refused before: ``omop_run.extract_omop``). Each file's digest and
    encoding are the ones found when the request was resolved (one pass over the file); a file rewritten since
    stops the run."""
    request, profile = resolved.request, resolved.profile
    paths = RunPaths(Path(request.out), run_id)
    inputs = []
    for number, given in enumerate(files):
        path = Path(given.path)
        refuse_changed(path, given.fingerprint)
        with output_errors(paths.folder):
            require = functools.partial(require_columns, kind, path, profile=profile)
            kinds = None if kind == SCANS.name and profile.long else {f.name: f.kind for f in BY_NAME[kind].fields}
            namer = canonical_namer(kind, profile)
            encoding = given.fingerprint.encoding
            export = read_export(path, paths.work, namer, request.sheet, require, kinds, profile.fhir, encoding)
            target = paths.raw / kind / f"{number:03d}"
            blank = blank_row(export.columns, anchor="patient_id", schema=export.frame.collect_schema())
            # one query with one sink: a second query over the same read (a count, the exam-id pairs) would make
            # Polars hold the whole file in memory for both (a 60M-row roster: 8.3 GiB). Blank lines go to a
            # partition of their own, counted and removed; the pairs are read back from the file's raw layer.
            key = pl.when(blank).then(pl.lit(BLANK_PARTITION, pl.Int64)).otherwise(partition_key(partitions))
            try:
                split = export.frame.with_columns(key.alias(PARTITION))
                pl.collect_all([sink_split(split, target, PARTITION, partitions)])
            except Exception as exc:  # noqa: BLE001 - a malformed body is an unreadable file for the user
                if disk_problem(exc):
                    raise
                raise unreadable(path, export.file_format) from None  # its own words may quote a cell: never
            blanks = target / f"{PARTITION}={BLANK_PARTITION}"
            blank_lines = _rows_in(sorted(blanks.glob("*.parquet")))
            if blanks.is_dir():  # never left to be read as rows
                shutil.rmtree(blanks)
            written = sorted(target.glob("*/*.parquet"))
            rows = _rows_in(written)
            if kind == SCANS.name and "exam_id" in export.columns and rows:  # (a blank row has no exam id)
                buckets = conflict_buckets(partitions)
                pairs = exam_id_pairs(pl.scan_parquet(written, glob=False), buckets)
                pl.collect_all([sink_split(pairs, paths.exam_ids / f"{number:03d}", EXAM_ID_BUCKET, buckets)])
        entry = {"input": kind, "path": str(path), "sha256": given.fingerprint.sha256, "rows": rows}
        entry["blank_lines"] = blank_lines
        entry["format"] = export.file_format
        if export.encoding:
            entry["encoding"] = export.encoding
        entry["unmapped_columns"] = export.unmapped_columns
        if export.resource_type:
            entry["resource_type"] = export.resource_type
            entry["not_read"] = export.not_read
        if export.sheet is not None:
            entry["sheet"] = export.sheet
            entry["other_sheets"] = export.other_sheets
        inputs.append(entry)
        log.info("read %s file %d of %d: %d rows", kind, number + 1, len(files), rows)
    # a FHIR NDJSON file has no header, and none of its resources being read is normal (a Condition file without
    # a fracture): said in the summary (0 fractures among N conditions), never a refusal
    tabular = not all(entry["format"] == "ndjson" for entry in inputs)
    if files and tabular and not any(entry["rows"] for entry in inputs):
        if not request.omop:  # a CDM without a fracture or drug row is normal (its accounting); without a DXA
            # result it is refused by the extraction (pipeline.omop_run)
            where = files[0].path if len(files) == 1 else str(Path(files[0].path).parent)
            raise InputError(where, f"no rows: the {kind} export has a header but no data")
    shutil.rmtree(paths.work, ignore_errors=True)
    return inputs


def _rows_in(files: list[Path]) -> int:
    """Rows of Parquet files, from their footers."""
    return pl.scan_parquet(files, glob=False).select(pl.len()).collect().item() if files else 0


def raw_rows(paths: RunPaths, kind: InputKind, partition: int | None = None) -> pl.LazyFrame:
    """The raw text rows of one input (one partition of it, or all)."""
    files = _raw_files(paths, kind.name, partition)
    if not files:
        return pl.LazyFrame(
            schema={f.name: pl.Utf8 for f in kind.fields} | {SOURCE_FILE: pl.Utf8, "source_row": pl.Int64}
        )
    return concat_text([pl.scan_parquet(p, glob=False) for p in files])


def raw_columns(paths: RunPaths, kind: str) -> list[str]:
    """Every column of an input's raw layer, over all its files and partitions (one file's schema each: a
    partition the roster's rows did not reach still gets every routing column). The file's schema is read by
    pyarrow: ``pl.read_parquet_schema`` would take the path, under a ``--out`` named ``out[1]``, as a pattern."""
    import pyarrow.parquet as pq

    folders = sorted(p for p in (paths.raw / kind).glob("*") if p.is_dir()) if (paths.raw / kind).is_dir() else []
    names: dict[str, None] = {}
    for folder in folders:
        first = next(iter(sorted(folder.glob("*/*.parquet"))), None)
        if first is not None:
            names.update(dict.fromkeys(pq.read_schema(first).names))
    return list(names)


def _raw_files(paths: RunPaths, kind: str, partition: int | None = None) -> list[Path]:
    pattern = f"*/{PARTITION}={partition}/*.parquet" if partition is not None else "*/*/*.parquet"
    return sorted((paths.raw / kind).glob(pattern))


def raw_rows_by_file(paths: RunPaths, kind: str, partition: int) -> list[pl.LazyFrame]:
    """One partition's raw rows of each input file apart, in the order the files were given (each frame
    has that file's own columns: what a long export's assembly tells its files apart by)."""
    by_file: dict[str, list[Path]] = {}
    for path in _raw_files(paths, kind, partition):
        by_file.setdefault(path.relative_to(paths.raw / kind).parts[0], []).append(path)
    return [pl.scan_parquet(by_file[number], glob=False) for number in sorted(by_file)]


def find_exam_conflicts(out: Path, run_id: str, partitions: int = 1) -> int:
    """Exam ids under several patients, run-wide; partitions quarantine those copies.

    Run-wide, so its memory would grow with the registry: one group-by per exam-id bucket, each over the
    bucket's own (exam id, patient id) files written by ingest.
    """
    paths = RunPaths(out, run_id)
    found = [pl.DataFrame(schema={"exam_id": pl.Utf8})]
    with output_errors(paths.folder):
        for bucket in range(conflict_buckets(partitions)):
            files = sorted(paths.exam_ids.glob(f"*/{EXAM_ID_BUCKET}={bucket}/*.parquet"))
            if files:
                found.append(exam_ids_under_several_patients(pl.scan_parquet(files, glob=False)))
        conflicts = pl.concat(found).sort("exam_id")
        paths.work.mkdir(exist_ok=True)
        conflicts.write_parquet(paths.conflicts)
    shutil.rmtree(paths.exam_ids, ignore_errors=True)
    return conflicts.height


def refuse_changed(path: Path, found: Fingerprint) -> None:
    """Stop the run (exit 2) when a file is no longer the one read when the request was resolved (its size or
    modification time differ): its digest in the manifest would not be of the rows screened."""
    try:
        unchanged = found.describes(path)
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    if not unchanged:
        raise InputError(
            str(path),
            "changed while the screen was running (another program wrote it): screen again once it is written",
        )

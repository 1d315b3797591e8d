"""Read export files (CSV, Parquet, XLSX) into all-text frames with canonical headers.

Each returned frame keeps every column of the file (unknown extras too: the raw layer), every cell as
text, plus ``source_file`` and ``source_row`` (1-based data row). Nothing is parsed or dropped here.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import polars as pl

from osteo_core.errors import InputError

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
XLSX_SUFFIXES = {".xlsx", ".xlsm"}
SUPPORTED_SUFFIXES = CSV_SUFFIXES | PARQUET_SUFFIXES | XLSX_SUFFIXES
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"
_CHUNK = 1 << 22


def discover(paths: Iterable[str | Path], what: str) -> list[Path]:
    """Expand files and directories (every supported file in it, sorted) into a list of files."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                raise InputError(str(path), f"directory holds no CSV, Parquet or XLSX {what} file")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise InputError(str(path), "unsupported file type (expected .csv, .tsv, .parquet or .xlsx)")
            files.append(path)
        else:
            raise InputError(str(path), "file not found")
    if len(set(files)) != len(files):
        raise InputError(str(files[0].parent), f"the same {what} file is given twice")
    return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_encoding(path: Path) -> str:
    """``utf-8-sig`` (with BOM), ``utf-8``, or ``latin-1`` when the bytes are not valid UTF-8."""
    with path.open("rb") as fh:
        head = fh.read(3)
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8-sig" if head == codecs.BOM_UTF8 else "utf-8"


def sniff_separator(first_line: str) -> str:
    """Comma, semicolon or tab: whichever splits the header line into the most fields."""
    best, best_fields = ",", 1
    for sep in (",", ";", "\t"):
        fields = len(next(csv.reader([first_line], delimiter=sep), []))
        if fields > best_fields:
            best, best_fields = sep, fields
    return best


def _utf8_copy(path: Path, workdir: Path) -> Path:
    """Transcode a Latin-1 file to UTF-8 in the run's work folder (streamed, any size)."""
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{hashlib.sha1(str(path).encode()).hexdigest()[:12]}-{path.name}"
    with path.open("r", encoding="latin-1", newline="") as src, target.open("w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
    return target


def _read_csv(path: Path, workdir: Path) -> pl.LazyFrame:
    encoding = sniff_encoding(path)
    with path.open("r", encoding=encoding, newline="") as fh:
        first_line = fh.readline()
    if not first_line.strip():
        raise InputError(str(path), "file is empty (no header line)")
    readable = _utf8_copy(path, workdir) if encoding == "latin-1" else path
    return pl.scan_csv(
        readable,
        separator=sniff_separator(first_line.rstrip("\r\n")),
        infer_schema=False,
        encoding="utf8",
        truncate_ragged_lines=False,
        raise_if_empty=False,
    )


def _read_parquet(path: Path) -> pl.LazyFrame:
    frame = pl.scan_parquet(path)
    schema = frame.collect_schema()
    return frame.with_columns(
        pl.col(name).dt.strftime("%Y-%m-%d") if dtype == pl.Date else pl.col(name).cast(pl.Utf8)
        for name, dtype in schema.items()
    )


def _read_xlsx(path: Path) -> pl.LazyFrame:
    frame = pl.read_excel(
        path, sheet_id=1, infer_schema_length=0, drop_empty_rows=False, drop_empty_cols=False, raise_if_empty=False
    )
    return frame.with_columns(pl.all().cast(pl.Utf8)).lazy()


def read_export(path: Path, workdir: Path, canonical_name: Callable[[str], str] = str.strip) -> pl.LazyFrame:
    """One export file as text columns + ``source_file`` / ``source_row``.

    ``canonical_name`` maps a file header (BOM and surrounding spaces removed) to its canonical name
    (the profile's mapping). Raises ``InputError`` naming the file when it cannot be read.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            frame = _read_csv(path, workdir)
        elif suffix in PARQUET_SUFFIXES:
            frame = _read_parquet(path)
        else:
            frame = _read_xlsx(path)
        headers = frame.collect_schema().names()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable file for the user
        raise InputError(str(path), f"cannot be read as {suffix.lstrip('.').upper()} ({_first_line(exc)})") from None
    mapped = {h: canonical_name(h.replace("\ufeff", "").strip()) for h in headers}
    clashes = _clashes(mapped)
    if clashes:
        raise InputError(str(path), f"columns {clashes[1]} all map to '{clashes[0]}'")
    if {SOURCE_FILE, SOURCE_ROW} & set(mapped.values()):
        raise InputError(str(path), f"column names '{SOURCE_FILE}'/'{SOURCE_ROW}' are reserved")
    return (
        frame.rename(mapped)
        .with_row_index(SOURCE_ROW, offset=1)
        .with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), pl.lit(str(path)).alias(SOURCE_FILE))
    )


def _clashes(mapped: dict[str, str]) -> tuple[str, list[str]] | None:
    seen: dict[str, list[str]] = {}
    for header, canonical in mapped.items():
        seen.setdefault(canonical, []).append(header)
    for canonical, headers in seen.items():
        if len(headers) > 1:
            return canonical, headers
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def concat_text(frames: Sequence[pl.LazyFrame]) -> pl.LazyFrame:
    """Union of several files' frames by column name (missing columns become null)."""
    return pl.concat(list(frames), how="diagonal_relaxed")

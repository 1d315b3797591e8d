"""Read export files (CSV, Parquet, XLSX) into raw-layer frames with canonical headers.

Each returned frame keeps every column of the file (unknown extras too: the raw layer), every cell as text (a typed
Parquet column of a native type of its field as it is: ``raw_layer``), plus ``source_file`` and ``source_row`` (1-based
data row, counted as in the file). Nothing is parsed or dropped here, and nothing is guessed silently: a header that
appears twice, two headers that map to one column, a nested Parquet column, a text file that is not text, all stop the
run naming the file; the encoding used, the columns nobody maps and the workbook sheets not read are reported.
"""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from osteo_core.errors import InputError
from osteo_core.ingest import fhir
from schemas.readers import stays_typed
from schemas.tables import SOURCE_FILE, SOURCE_ROW

# What a folder scan reads; a file named explicitly is read whatever its extension (format sniffed).
FOLDER_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".parquet", ".xlsx")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".csv.gz": "csv.gz",
    ".tsv.gz": "csv.gz",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".ndjson": "ndjson",
}
_CHUNK = 1 << 22
# Bytes Windows-1252 leaves undefined: a file holding one of them is Latin-1 (C1 controls), not 1252.
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_C1_BYTES = re.compile(rb"[\x80-\x9f]")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# A well-formed UTF-8 sequence of two to four bytes: beside bytes that are not UTF-8, a sign of mixed encodings.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
RESERVED_COLUMNS = frozenset({SOURCE_FILE, SOURCE_ROW, "_row", "_partition", "_blank"})


# Characters exports write for one another: typographic dashes and quotes, odd spaces.
_HEADER_CHARACTERS = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4\u0060", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
        **dict.fromkeys("\ufeff\u200b\u200c\u200d\u2060", ""),
    }
)


def header_key(header: str) -> str:
    """Headers match ignoring case, a BOM, runs of white space (any kind), and which dash or quote
    character was typed: ``FRAX – Hip`` and ``frax - hip`` are the same header."""
    return re.sub(r"\s+", " ", header.translate(_HEADER_CHARACTERS)).strip().lower()


@dataclass(frozen=True)
class Discovered:
    """The files of one input, and what a folder scan passed over (not data files)."""

    files: list[Path]
    skipped: list[str] = field(default_factory=list)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else ".tsv.gz" if name.endswith(".tsv.gz") else path.suffix.lower()


def discover(paths: Iterable[str | Path], what: str) -> Discovered:
    """Expand files and folders into files. A folder gives its data files (sorted); the rest is listed
    as skipped. A file named explicitly is always read."""
    files: list[Path] = []
    skipped: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir() and what in fhir.RESOURCES and fhir.is_bulk_export(path):
            wanted, other = fhir.files_for(path, what)
            if not wanted:
                types = " or ".join(fhir.RESOURCES[what])
                raise InputError(str(path), f"FHIR Bulk Data export holds no {types} file for the {what} input")
            files.extend(wanted)
            skipped += other
        elif path.is_dir():
            entries = sorted(path.iterdir())
            found = [p for p in entries if p.is_file() and not p.name.startswith(".") and _suffix(p) in FOLDER_SUFFIXES]
            skipped += [str(p) for p in entries if p not in found]
            if not found:
                raise InputError(str(path), f"folder holds no {what} data file ({', '.join(FOLDER_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise InputError(str(path), "not a regular file or folder")
        else:
            raise InputError(str(path), "file not found")
    if len({f.resolve() for f in files}) != len(files):
        raise InputError(str(files[0].parent), f"the same {what} file is given twice")
    return Discovered(files, skipped)


def file_format(path: Path) -> str:
    """``csv``, ``csv.gz``, ``parquet``, ``xlsx`` or ``ndjson`` (a FHIR export's file): by extension, else by the
    file's first bytes (never ``ndjson``: NDJSON is known by its extension alone)."""
    known = _SUFFIX_FORMATS.get(_suffix(path))
    if known:
        return known
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        return "parquet"
    if magic == b"PK\x03\x04":
        return "xlsx"
    if magic[:2] == b"\x1f\x8b":
        return "csv.gz"
    return "csv"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _open_bytes(path: Path, compressed: bool):
    return gzip.open(path, "rb") if compressed else path.open("rb")


def sniff_encoding(path: Path, compressed: bool = False) -> str:
    """The text encoding of an export, decided from its bytes, never guessed per cell (``EncodingSniffer``)."""
    sniffer = EncodingSniffer(str(path))
    with _open_bytes(path, compressed) as fh:
        while not sniffer.decided and (chunk := fh.read(_CHUNK)):
            sniffer.feed(chunk)
    return sniffer.result()


class EncodingSniffer:
    """The text encoding of a stream of bytes fed in any pieces (so one pass over a file can also digest it).

    ``utf-16`` (byte-order mark), ``utf-8-sig`` (UTF-8 BOM), ``utf-8`` (every byte sequence valid), else an
    8-bit code page: ``cp1252`` (what Excel writes on Windows) unless a byte Windows-1252 leaves undefined
    appears, then ``latin-1``. Bytes 0x80–0x9F decide: where none appears the two read the same. A file
    that is part UTF-8 and part 8-bit would be misread either way: it is refused (``InputError`` naming
    ``where``), as is one with a NUL byte in its first 64 KiB (not text). The bytes are judged in pieces of
    ``_CHUNK`` whatever pieces they are fed in, so the answer never depends on how they were read.
    """

    _HEAD = 4 + (1 << 16)  # the byte-order mark, and the span a NUL byte is looked for in

    def __init__(self, where: str) -> None:
        self.where = where
        self._pending = bytearray()
        self._head = b""
        self._started = False
        self._utf16 = False
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._utf8 = True
        self._utf8_text_seen = self._c1_seen = self._undefined_seen = False

    @property
    def decided(self) -> bool:
        """No more bytes can change the answer (a UTF-16 byte-order mark)."""
        return self._utf16

    def feed(self, data: bytes) -> None:
        if self._utf16:
            return
        self._pending += data
        if not self._started:
            if len(self._pending) < self._HEAD:
                return
            self._start()
        while len(self._pending) >= _CHUNK:
            self._judge(bytes(self._pending[:_CHUNK]))
            del self._pending[:_CHUNK]

    def _start(self) -> None:
        self._started = True
        self._head = bytes(self._pending[:4])
        if self._head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            self._utf16 = True
            self._pending.clear()
        elif b"\x00" in self._pending[: self._HEAD]:
            raise InputError(self.where, "holds NUL bytes: not a text CSV (UTF-16 without a byte-order mark?)")

    def _judge(self, chunk: bytes) -> None:
        if self._utf8:
            try:
                self._decoder.decode(chunk)
                self._utf8_text_seen = self._utf8_text_seen or _NON_ASCII.search(chunk) is not None
                return
            except UnicodeDecodeError as err:
                self._utf8 = False
                pending = len(self._decoder.getstate()[0])  # bytes of a character split across chunks
                valid_prefix = chunk[: max(0, err.start)]
                self._utf8_text_seen = (
                    self._utf8_text_seen or pending > 0 or _NON_ASCII.search(valid_prefix) is not None
                )
                chunk = chunk[max(0, err.start) :]
        self._utf8_text_seen = self._utf8_text_seen or _UTF8_MULTIBYTE.search(chunk) is not None
        self._c1_seen = self._c1_seen or _C1_BYTES.search(chunk) is not None
        self._undefined_seen = self._undefined_seen or _CP1252_UNDEFINED.search(chunk) is not None

    def result(self) -> str:
        """The encoding, once every byte has been fed."""
        if not self._started:
            self._start()
        if self._utf16:
            return "utf-16"
        if self._pending:
            self._judge(bytes(self._pending))
            self._pending.clear()
        if self._utf8:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self._utf8 = False  # a truncated character at the very end: an 8-bit byte
        if self._utf8:
            return "utf-8-sig" if self._head[:3] == codecs.BOM_UTF8 else "utf-8"
        if self._utf8_text_seen:
            raise InputError(
                self.where, "mixes UTF-8 text with bytes of another encoding; export it again in one encoding (UTF-8)"
            )
        return "latin-1" if self._undefined_seen or not self._c1_seen else "cp1252"


@dataclass(frozen=True)
class Fingerprint:
    """What one pass over an input file tells before it is read: its format, size and modification time (to
    notice a file rewritten while the screen runs), SHA-256 (the manifest's) and, for a text file, its encoding
    (``EncodingSniffer``; None where the pass could not decide it, e.g. a damaged gzip stream: the read that
    follows decides it again and names what is wrong)."""

    format: str
    size: int
    mtime_ns: int
    sha256: str
    encoding: str | None = None

    def describes(self, path: Path) -> bool:
        """``path`` is still the file this was taken of: the same size and modification time (``OSError`` when it
        cannot be looked at)."""
        stat = path.stat()
        return (stat.st_size, stat.st_mtime_ns) == (self.size, self.mtime_ns)


def fingerprint(path: Path) -> Fingerprint:
    """Read ``path`` once: its digest and, for CSV (and gzip-compressed CSV, decompressed in the same pass),
    its encoding. ``InputError`` naming the file when it cannot be read, or is not text where text is due."""
    try:
        fmt = file_format(path)
        stat = path.stat()
        digest = hashlib.sha256()
        sniffer = EncodingSniffer(str(path)) if fmt in ("csv", "csv.gz") else None
        inflate = _GzipStream() if fmt == "csv.gz" else None
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                if sniffer is not None and inflate is not None:
                    text = inflate.feed(chunk)
                    if text is None:
                        sniffer = inflate = None  # damaged: the read says where
                    else:
                        sniffer.feed(text)
                elif sniffer is not None:
                    sniffer.feed(chunk)
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    encoding = sniffer.result() if sniffer is not None and (inflate is None or inflate.complete) else None
    return Fingerprint(fmt, stat.st_size, stat.st_mtime_ns, digest.hexdigest(), encoding)


class _GzipStream:
    """gzip members (one or several, as ``gzip.open`` reads them) decompressed piece by piece; ``feed`` gives
    None once the stream is found damaged."""

    def __init__(self) -> None:
        self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.complete = False

    def feed(self, chunk: bytes) -> bytes | None:
        out = bytearray()
        try:
            while chunk:
                out += self._member.decompress(chunk)
                self.complete = self._member.eof
                chunk = self._member.unused_data if self._member.eof else b""
                if chunk:
                    self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        except zlib.error:
            return None
        return bytes(out)


def sniff_separator(first_line: str) -> str:
    """Comma, semicolon or tab: whichever splits the header line into the most fields."""
    best, best_fields = ",", 1
    for sep in (",", ";", "\t"):
        fields = len(next(csv.reader([first_line], delimiter=sep), []))
        if fields > best_fields:
            best, best_fields = sep, fields
    return best


@dataclass
class RawExport:
    """One file as read: its columns under the file's own headers (text; a Parquet file's in their own
    types), and what was learnt reading it."""

    frame: pl.LazyFrame
    headers: list[str]  # as in the file, in order (BOM removed)
    file_format: str
    encoding: str | None = None
    sheet: str | None = None
    other_sheets: list[str] = field(default_factory=list)
    resource_type: str | None = None  # FHIR NDJSON: the file's resource type
    not_read: dict[str, int] = field(default_factory=dict)  # FHIR NDJSON: resources counted, not read


def _utf8_copy(path: Path, workdir: Path, encoding: str, compressed: bool) -> Path:
    """Transcode (and decompress) a text file to UTF-8 in the run's work folder, streamed, any size."""
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{hashlib.sha1(str(path).encode()).hexdigest()[:12]}-{path.name}.csv"
    with (
        _open_bytes(path, compressed) as raw,
        io.TextIOWrapper(raw, encoding=encoding, newline="") as src,
        target.open("w", encoding="utf-8", newline="") as dst,
    ):
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
    return target


def _read_csv(path: Path, workdir: Path, compressed: bool, encoding: str | None = None) -> RawExport:
    encoding = encoding or sniff_encoding(path, compressed)
    with _open_bytes(path, compressed) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as fh:
        first_line = fh.readline().lstrip("\ufeff")
    if not first_line.strip():
        raise InputError(str(path), "file is empty (no header line)")
    separator = sniff_separator(first_line.rstrip("\r\n"))
    with _open_bytes(path, compressed) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as fh:
        try:
            headers = next(csv.reader(fh, delimiter=separator))  # a quoted header may span lines
        except csv.Error as exc:
            raise InputError(str(path), f"cannot read the header row ({exc})") from None
    if headers:
        headers[0] = headers[0].lstrip("\ufeff")
    readable = (
        path
        if encoding in ("utf-8", "utf-8-sig") and not compressed
        else _utf8_copy(path, workdir, encoding, compressed)
    )
    frame = pl.scan_csv(
        readable,
        glob=False,  # the file named, never a pattern: scans[1].csv is not scans1.csv
        separator=separator,
        infer_schema=False,
        encoding="utf8",
        truncate_ragged_lines=False,
        raise_if_empty=False,
    )
    label = {"utf-8-sig": "utf-8 (BOM)", "utf-16": "utf-16 (BOM)", "cp1252": "windows-1252"}.get(encoding, encoding)
    return RawExport(frame, headers, "csv.gz" if compressed else "csv", encoding=label)


def _read_parquet(path: Path) -> RawExport:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    nested = [f.name for f in schema if _is_nested(f.type)]
    if nested:
        raise InputError(
            str(path), f"column(s) {', '.join(repr(n) for n in nested)} hold lists or records; export flat columns"
        )
    frame = pl.scan_parquet(path, glob=False)
    _refuse_unwritable_dates(path, frame)
    return RawExport(frame, list(schema.names), "parquet")  # typed: ``raw_layer`` decides


_WRITABLE_YEARS = (-262143, 262142)  # the calendar Polars can write a date of as text (chrono's range)


def _refuse_unwritable_dates(path: Path, frame: pl.LazyFrame) -> None:
    """A Parquet date beyond the calendar Polars can write as text (``_WRITABLE_YEARS``) could be neither
    compared as text nor quarantined with its value (Polars panics), so such a file is refused, naming the
    column and the first such row. Reads the file's date columns only."""
    dates = [name for name, dtype in frame.collect_schema().items() if dtype == pl.Date]
    if not dates:
        return
    first, last = _WRITABLE_YEARS
    low, high = pl.date(first, 1, 1), pl.date(last, 12, 31)
    beyond = frame.select(((pl.col(n) < low) | (pl.col(n) > high)).alias(n) for n in dates)
    found = beyond.select(pl.col(dates).arg_true().first()).collect().row(0)
    for name, row in zip(dates, found, strict=True):
        if row is not None:
            raise InputError(str(path), f"row {row + 1}, column '{name}': a date outside the years {first} to {last}")


def _is_nested(arrow_type) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return _is_nested(arrow_type.value_type)
    return pa.types.is_nested(arrow_type)


def _read_xlsx(path: Path, sheet: str | None) -> RawExport:
    import fastexcel

    reader = fastexcel.read_excel(path)
    names = list(reader.sheet_names)
    if sheet is not None and sheet not in names:
        raise InputError(str(path), f"no sheet named '{sheet}' (sheets: {', '.join(names)})")
    chosen = sheet if sheet is not None else names[0]
    table = reader.load_sheet(chosen, header_row=None, dtypes="string").to_polars()
    if table.height == 0:
        raise InputError(str(path), f"sheet '{chosen}' is empty (no header row)")
    headers = ["" if v is None else str(v) for v in table.row(0)]
    positional = [f"__column_{i}" for i in range(table.width)]
    frame = table.slice(1).cast(pl.Utf8).rename(dict(zip(table.columns, positional, strict=True))).lazy()
    return RawExport(frame, headers, "xlsx", sheet=chosen, other_sheets=[n for n in names if n != chosen])


def read_raw(
    path: Path,
    workdir: Path,
    sheet: str | None = None,
    fhir_settings: fhir.FhirSettings | None = None,
    encoding: str | None = None,
) -> RawExport:
    """One export file as columns (text; Parquet in its own types), whatever its format; ``InputError``
    naming the file if unreadable. ``fhir_settings``: the FHIR profile's, for NDJSON (by default ``fhir_bulk``'s).
    ``encoding``: a text file's, when already known (``fingerprint``); else decided here."""
    try:
        fmt = file_format(path)
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    try:
        if fmt in ("csv", "csv.gz"):
            raw = _read_csv(path, workdir, compressed=fmt == "csv.gz", encoding=encoding)
        elif fmt == "parquet":
            raw = _read_parquet(path)
        elif fmt == "ndjson":
            rows = fhir.read_bulk_file(path, fhir_settings)
            raw = RawExport(rows.frame, rows.headers, "ndjson", resource_type=rows.resource_type)
            raw.not_read = rows.not_read
        else:
            raw = _read_xlsx(path, sheet)
        raw.frame.collect_schema()
    except InputError:
        raise
    except OSError as exc:
        if exc.errno in _WRITE_ERRNOS:
            raise  # writing the work copy failed: the output disk's problem, reported as such by the caller
        if exc.errno is not None:
            raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
        raise unreadable(path, fmt) from None  # gzip's "not a gzipped file (b'..')" quotes the file's bytes
    except (AttributeError, TypeError, NameError, KeyError, AssertionError):
        raise  # a fault of this program, never reported as the user's file
    except Exception:  # noqa: BLE001 - any reader failure is an unreadable file for the user
        raise unreadable(path, fmt) from None
    return raw


def read_table(path: Path) -> pl.DataFrame:
    """A small table the user names beside the exports (an ``--lsc`` file, a CSV of marks), read as an export is
    (``read_raw``: exactly the file named, never a pattern; the encoding and a BOM, the delimiter sniffed; a Parquet
    or XLSX file too) and collected: one column per header (stripped; one without a name is ``column_N``), every
    cell as text. A non-UTF-8 file's UTF-8 copy lives in a temporary folder, gone on return. ``InputError`` naming
    the file (and, for a CSV that breaks, the line), never a cell; a header written twice is refused as an
    export's is."""
    import tempfile

    try:
        fmt = file_format(path)
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    if fmt == "ndjson":
        raise InputError(str(path), "an NDJSON file, not a table: give a CSV, Parquet or XLSX file")
    with tempfile.TemporaryDirectory(prefix="osteo-read-") as work:
        raw = read_raw(path, Path(work))
        headers = [h.replace("\ufeff", "").strip() for h in raw.headers]
        refuse_repeated_headers(path, headers)
        names = raw.frame.collect_schema().names()
        if len(names) != len(headers):
            raise InputError(str(path), f"the header row has {len(headers)} columns but the data {len(names)}")
        columns = [header or f"column_{number}" for number, header in enumerate(headers, start=1)]
        frame = raw_layer(raw.frame.rename(dict(zip(names, columns, strict=True))), {})
        try:
            return frame.collect()
        except Exception:  # noqa: BLE001 - a reader's own words may quote a cell: never passed on
            raise unreadable(path, raw.file_format) from None


@dataclass
class Export:
    """A file with canonical headers: its text frame (+ source columns) and what the manifest reports."""

    frame: pl.LazyFrame
    columns: list[str]  # canonical names, then unmapped headers as written
    file_format: str
    encoding: str | None
    unmapped_columns: list[str]
    sheet: str | None = None
    other_sheets: list[str] = field(default_factory=list)
    resource_type: str | None = None
    not_read: dict[str, int] = field(default_factory=dict)


def read_export(
    path: Path,
    workdir: Path,
    canonical_name: Callable[[str], str | None],
    sheet: str | None = None,
    require: Callable[[list[str]], None] | None = None,
    kinds: Mapping[str, str] | None = None,
    fhir_settings: fhir.FhirSettings | None = None,
    encoding: str | None = None,
) -> Export:
    """One export file as its raw layer (``raw_layer``) + ``source_file`` / ``source_row``, headers made
    canonical. ``kinds`` maps a canonical column to its field's kind (a typed column of a native type of its
    kind stays typed); without it every column is text.

    ``canonical_name`` maps a file header to its canonical column, or ``None`` when nothing maps it (such
    columns are kept under their own name and reported as unmapped). Headers are compared after
    normalising case, spaces, dashes and quotes (``header_key``). Raises ``InputError`` naming
    the file when two headers are the same, or two map to one column.
    """
    raw = read_raw(path, workdir, sheet, fhir_settings, encoding)
    targets, unmapped = canonical_columns(path, raw.headers, canonical_name, require)
    names = raw.frame.collect_schema().names()
    numbered = SOURCE_ROW in names  # FHIR NDJSON: numbered by line before resources are set aside
    if numbered:
        names.remove(SOURCE_ROW)
    if len(names) != len(targets):
        raise InputError(str(path), f"the header row has {len(targets)} columns but the data {len(names)}")
    frame = raw_layer(raw.frame.rename(dict(zip(names, targets, strict=True))), kinds or {})
    if not numbered:
        frame = frame.with_row_index(SOURCE_ROW, offset=1)
    frame = frame.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), pl.lit(str(path)).alias(SOURCE_FILE))
    export = Export(frame, targets, raw.file_format, raw.encoding, unmapped, raw.sheet, raw.other_sheets)
    export.resource_type, export.not_read = raw.resource_type, raw.not_read
    return export


def raw_layer(frame: pl.LazyFrame, kinds: Mapping[str, str]) -> pl.LazyFrame:
    """The raw layer of one file: a column of a native type of its field's kind (``kinds``; a Parquet
    float for a number, a date for a date) as it is, never turned into text to be parsed back; every other
    column as text (a date as ``YYYY-MM-DD``, anything else as Polars writes it). CSV and XLSX are text."""
    schema = frame.collect_schema()
    recast = [
        pl.col(name).dt.strftime("%Y-%m-%d") if dtype == pl.Date else pl.col(name).cast(pl.Utf8)
        for name, dtype in schema.items()
        if dtype != pl.Utf8 and name != SOURCE_ROW and not stays_typed(kinds.get(name), dtype)
    ]
    return frame.with_columns(recast) if recast else frame


def canonical_columns(
    path: Path,
    headers: Sequence[str],
    canonical_name: Callable[[str], str | None],
    require: Callable[[list[str], list[str]], None] | None = None,
) -> tuple[list[str], list[str]]:
    """(column name for each header, headers nothing maps). Refuses (``InputError`` naming the file) a
    header that appears twice, or two headers mapped onto one column: the screen never picks one for you.

    ``require(columns, headers)`` (the input's required-columns check) runs first: a file without a header
    row fails there, naming canonical columns, rather than in a message that would repeat its first data row.
    """
    headers = [h.replace("\ufeff", "").strip() for h in headers]
    targets: list[str] = []
    unmapped: list[str] = []
    for position, header in enumerate(headers):
        canonical = canonical_name(header) if header else None
        if canonical is None:
            unmapped.append(header or f"(column {position + 1}, no header)")
            canonical = header or f"column_{position + 1}"
        targets.append(canonical)
    if require is not None:
        require(targets, headers)
    refuse_repeated_headers(path, headers)
    _refuse_clashes(path, headers, targets)
    reserved = sorted(RESERVED_COLUMNS & set(targets))
    if reserved:
        raise InputError(str(path), f"column name(s) {', '.join(repr(r) for r in reserved)} are reserved")
    return targets, unmapped


def read_headers(path: Path, sheet: str | None = None) -> list[str]:
    """The header row of a file, read cheaply (first line, Parquet schema, first sheet row), so bad headers
    are reported before any work starts. ``[]`` when it cannot be read here: the full read reports that."""
    try:
        fmt = file_format(path)
        if fmt == "ndjson":
            return []  # flattened by the full read (ingest.fhir): its columns are the screen's own
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if fmt == "xlsx":
            import fastexcel

            reader = fastexcel.read_excel(path)
            name = sheet if sheet is not None else reader.sheet_names[0]
            first = reader.load_sheet(name, header_row=None, n_rows=1, dtypes="string").to_polars()
            return ["" if v is None else str(v) for v in first.row(0)] if first.height else []
        with _open_bytes(path, fmt == "csv.gz") as fh:
            head = fh.read(1 << 20)
    except PermissionError as exc:  # said now, before any engine starts, as the full read would say it
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    except Exception:  # noqa: BLE001 - reported with its cause by the full read
        return []
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        text = head.decode("utf-16", errors="ignore")
    elif b"\x00" in head:
        return []  # not text: the full read says so
    else:
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError as err:  # a character cut at the end of the head, or not UTF-8
            text = head[: err.start].decode("utf-8-sig") if err.start > 1024 else head.decode("cp1252", "replace")
    text = text.lstrip("\ufeff")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if not first_line.strip():
        return []
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=sniff_separator(first_line)))
    except (csv.Error, StopIteration):
        return []  # the full read reports it


def refuse_repeated_headers(path: Path, headers: list[str]) -> None:
    """The same header twice (or differing only in case, spaces, dashes or quotes): which one is meant?"""
    seen: dict[str, list[str]] = {}
    for position, header in enumerate(headers, start=1):
        if header:
            seen.setdefault(header_key(header), []).append(f"{header!r} (column {position})")
    repeated = [names for names in seen.values() if len(names) > 1]
    if repeated:
        listed = "; ".join(" and ".join(names) for names in repeated)
        raise InputError(str(path), f"duplicate column header(s): {listed}")


def _refuse_clashes(path: Path, headers: list[str], targets: list[str]) -> None:
    """Two different headers mapped (by the profile) onto one canonical column."""
    by_target: dict[str, list[str]] = {}
    for header, target in zip(headers, targets, strict=True):
        by_target.setdefault(target, []).append(header)
    clashes = {target: names for target, names in by_target.items() if len(names) > 1}
    if clashes:
        target, names = next(iter(clashes.items()))
        raise InputError(str(path), f"columns {', '.join(repr(n) for n in names)} all map to '{target}'")


def blank_row(
    columns: Sequence[str], anchor: str | None = None, schema: Mapping[str, pl.DataType] | None = None
) -> pl.Expr:
    """True where every cell of the row is empty or white space: a blank line, not a row.

    ``anchor`` names a column almost always filled (``patient_id``): the full test runs only where it is
    blank (``when`` evaluates its branch on those rows only), which keeps this off the hot path. ``schema``:
    the frame's types, when some columns are not text.
    """
    if not columns:
        return pl.lit(False)

    def blank(name: str) -> pl.Expr:
        if schema is not None and schema.get(name, pl.Utf8) != pl.Utf8:
            return pl.col(name).is_null()  # a typed cell (raw_layer) is blank when it is missing
        return pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "")

    every = pl.all_horizontal([blank(c) for c in columns])
    if anchor is None or anchor not in columns:
        return every.alias("_blank")
    return pl.when(blank(anchor)).then(every).otherwise(False).alias("_blank")


def unreadable(path: Path, fmt: str) -> InputError:
    """Why a file cannot be read, naming the line (and, where known, how it is broken), never its content: a
    reader's own message may quote a cell, a row or a line of the file (a patient id, a birth date), so it is
    never passed on."""
    if fmt in ("csv", "csv.gz"):
        return InputError(str(path), f"cannot be read as CSV ({csv_problem(path, fmt == 'csv.gz')})")
    if fmt == "ndjson":
        return InputError(str(path), fhir._first_bad_line(path))
    what = {"parquet": "a Parquet file", "xlsx": "an XLSX workbook"}.get(fmt, fmt)
    return InputError(str(path), f"cannot be read as {what} (damaged, or not {what})")


def csv_problem(path: Path, compressed: bool = False) -> str:
    """Where a CSV stops being one: the line (1 = the header) and what is wrong there, found by Python's strict CSV
    reader; never a cell."""
    try:
        encoding = sniff_encoding(path, compressed)
        with _open_bytes(path, compressed) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as fh:
            separator = sniff_separator(fh.readline().lstrip("\ufeff").rstrip("\r\n"))
        with _open_bytes(path, compressed) as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=separator, strict=True)
            start = 1
            try:
                width = len(next(reader))
                start = reader.line_num + 1
                for row in reader:
                    if row and len(row) != width:
                        return f"line {start}: {len(row)} cells where the header has {width}"
                    start = reader.line_num + 1
            except csv.Error as exc:
                if "end of data" in str(exc) or "EOF" in str(exc):
                    return f"line {start}: a quote opened there is never closed (a stray quote?)"
                return (
                    f"line {reader.line_num}: a quote inside a cell that is not quoted, or text after a closing quote"
                )
    except (OSError, UnicodeDecodeError, EOFError, StopIteration):
        return "the file is damaged or not text in a known encoding"
    return "no line could be named: the CSV reader stopped"


def concat_text(frames: Sequence[pl.LazyFrame]) -> pl.LazyFrame:
    """Union of several files' frames by column name (missing columns become null)."""
    return pl.concat(list(frames), how="diagonal_relaxed")

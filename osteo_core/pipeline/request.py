"""What a user asks for (``ScreenRequest``: plain, JSON-serialisable, what a flow run's parameters show) and the
checks ``pipeline.resolve`` makes of it before any data is read or any engine starts: dates and limits, the files
and their headers, a writable output folder, an OMOP CDM's tables and ids (exit 2, one line, in about a second)."""

from __future__ import annotations

import datetime as dt
import gzip
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core.errors import InputError, OutputError
from osteo_core.ingest import fhir, omop
from osteo_core.ingest.long_layout import MEASUREMENT, LongLayout, value_column
from osteo_core.ingest.profiles import Profile, load_profile, shipped_profiles
from osteo_core.ingest.readers import file_format, header_key
from osteo_core.publish import folder as publish
from schemas.inputs import BY_NAME, INPUT_KINDS, INPUTS, OPTIONS, POPULATION, SCANS
from schemas.scans import AGE_SOURCES, REQUIRED_HEADERS, UNSPECIFIED_T

FIELDS = {kind.name: kind.fields for kind in INPUT_KINDS}  # input kind -> its fields (schemas.inputs)
ROWS_PER_PARTITION = 500_000  # automatic partitioning: scan rows per partition (bounds memory)
MAX_AUTO_PARTITIONS = 256
EARLIEST_MEASUREMENT_YEAR = 1900  # a year of the Gregorian calendar Python's dates hold with a year to spare


def estimated_rows(path: Path) -> int:
    """Rows in a scans file: exact for Parquet (metadata only), estimated from the first MiB for text
    (of the decompressed text for ``.csv.gz``), 0 for XLSX (small by nature)."""
    fmt = file_format(path)
    if fmt == "parquet":
        try:
            return pl.scan_parquet(path, glob=False).select(pl.len()).collect().item()
        except Exception:  # noqa: BLE001 - unreadable: ingest reports it, naming the file (exit 2)
            return 0
    if fmt == "xlsx":
        return 0
    size = path.stat().st_size
    try:
        with path.open("rb") as raw:
            if fmt == "csv.gz":
                with gzip.GzipFile(fileobj=raw) as fh:
                    head = fh.read(1 << 20)
                consumed = raw.tell()  # compressed bytes behind that MiB of text
            else:
                head = raw.read(1 << 20)
                consumed = len(head)
    except (OSError, EOFError):
        return 0  # unreadable: ingest reports it, naming the file
    lines = max(1, head.count(b"\n"))
    return int(size / consumed * lines) if head and consumed else 0


def auto_partitions(scans: list[Path], population: list[Path] | None = None) -> int:
    """About one partition per 500,000 scan rows, so each partition's frames stay small; or per 500,000
    roster rows when the population roster is longer (every member of a health system, most never scanned)."""
    rows = sum(estimated_rows(f) for f in scans)
    if population:
        rows = max(rows, sum(estimated_rows(f) for f in population))
    return max(1, min(MAX_AUTO_PARTITIONS, -(-rows // ROWS_PER_PARTITION)))


@dataclass(frozen=True)
class ScreenRequest:
    """What the user asked for (CLI arguments); JSON-serialisable so it can be a flow parameter."""

    scans: list[str]
    out: str = "osteo-out"
    # None: not given (``osteo screen`` without --as-of): today, or an OMOP CDM's release date; blank: the day the
    # run starts (a scheduled screen's); made a date once, by ``pipeline.resolve``
    as_of: str | None = field(default_factory=lambda: dt.date.today().isoformat())
    rules: str = "standard"
    profile: str = "generic"
    max_reject_rate: float = 0.05
    max_shrink: float = 0.5  # refuse a run whose valid exams fall below (1 - this) x the last published run's
    sheet: str | None = None  # XLSX inputs: the sheet to read (default: the first)
    meds: str | None = None
    fractures: str | None = None
    keep_runs: int = 5
    lsc: str | None = None  # optional per-device least significant change file (device_id, site, lsc)
    partitions: int = 0  # patient partitions; 0 = one per 500,000 scan (or roster) rows
    population: str | None = None  # optional roster: everyone the health system is responsible for
    measurement_year: int | None = None  # quality measures' year (with a roster); None: the as-of year
    accept_input_change: bool = False  # publish even without a kind of input the last published run had
    omop: str | None = None  # an OMOP CDM (a folder of CDM tables or a DuckDB file) feeding every input
    omop_schema: str | None = None  # the CDM's schema in a DuckDB file (default: main)
    omop_patient_id: str | None = None  # the CDM column giving patient_id; None: person_source_value if distinct
    omop_enrolment: str = "birth"  # the CDM's roster: every person from birth, or its observation periods

    def given(self, kind: str) -> list[str]:
        """The paths given with the kind's own option (``--meds PATH``: the field of its name); none for a kind
        without one (DXA procedures: a FHIR Bulk Data export's Procedure files)."""
        value = getattr(self, kind) if BY_NAME[kind].option else None
        return list(value) if isinstance(value, list) else [value] if value else []


def profile_name(request: ScreenRequest, bulk_export: str | None) -> str:
    """The profile that reads the scans: an OMOP CDM is read with ``omop`` and a FHIR Bulk Data export with
    ``fhir_bulk`` unless another profile is named."""
    if request.omop and request.profile == "generic":
        return omop.PROFILE
    return fhir.PROFILE if bulk_export and request.profile == "generic" else request.profile


def paths_of(request: ScreenRequest, kind: str, bulk_export: str | None) -> list[str]:
    """What a kind of input is read from: the paths given for it; a FHIR Bulk Data export's own medications,
    conditions or procedures when the export is the scans and nothing else is given; an OMOP CDM for every kind."""
    if request.omop:  # the CDM feeds every input; its tables are extracted into the run (``ingest.omop``)
        return [request.omop]
    given = request.given(kind)
    if not given and bulk_export and kind in fhir.RESOURCES and fhir.files_for(Path(bulk_export), kind)[0]:
        return [bulk_export]  # the export's own medications or conditions
    return given


def measurement_year(given: int | None, as_of: dt.date) -> int:
    """The quality measures' year: ``--measurement-year``, else the as-of year; never after the as-of year."""
    year = given if given is not None else as_of.year
    if not EARLIEST_MEASUREMENT_YEAR <= year <= as_of.year:
        raise InputError(
            "--measurement-year",
            f"{year} is not a year from {EARLIEST_MEASUREMENT_YEAR} to the as-of year {as_of.year}",
        )
    return year


def check_omop(request: ScreenRequest, profile: Profile) -> None:
    """An OMOP CDM is the only input (``--omop`` with no ``--scans``/``--meds``/``--fractures``/``--population``),
    read with a long profile, and holds the tables and columns the screen reads (exit 2, naming what is missing)."""
    given = [kind.option for kind in OPTIONS if request.given(kind.name)]
    if given:
        raise InputError("--omop", f"the CDM feeds every input: give it alone, without {', '.join(given)}")
    if profile.long is None or profile.fhir is not None:
        raise InputError("--profile", f"profile '{profile.name}' does not read an OMOP CDM (omop, omop_unsited_t)")
    if request.omop_patient_id not in (None, *omop.PATIENT_ID_COLUMNS):
        raise InputError("--omop-patient-id", f"'{request.omop_patient_id}' is not one of {omop.PATIENT_ID_COLUMNS}")
    if request.omop_enrolment not in omop.ENROLMENTS:
        raise InputError("--omop-enrolment", f"'{request.omop_enrolment}' is not one of {omop.ENROLMENTS}")
    found = omop.probe(request.omop, request.omop_schema, request.omop_patient_id)  # tables, columns, persons
    if request.omop_enrolment == "observation_period" and not found.has_observation_period:
        raise InputError(
            request.omop, "table 'observation_period' missing (read with --omop-enrolment observation_period)"
        )
    check_patient_ids(request, found.patient_id_column)


def check_patient_ids(request: ScreenRequest, column: str, extracted: Path | None = None) -> dict[str, Any] | None:
    """Refuse (exit 2, unless ``--accept-input-change``) an OMOP screen whose patient ids no longer match those of
    the OMOP run published in ``--out``: its manifest's ``omop.patient_id_column`` is the other column, or (with
    ``extracted``, this run's extraction folder: ``omop_run.extract_omop``, under the output folder's lock) fewer
    than half of this run's patients with a DXA result are in that run's population with the same birth date
    (a CDM rebuilt with new person_ids: dense ids match, birth dates do not). Gaps, their first_seen and the outreach
    marks are kept per patient id: such a run would start every gap anew and lose every mark. Counts and column
    names only. Returns what changed when accepted (for the manifest), else None."""
    try:
        published = publish.published_manifest(Path(request.out))
        before = (published or {}).get("omop", {}).get("patient_id_column")
    except (OSError, ValueError, AttributeError):
        return None  # no readable manifest: the run's own reading of the folder says what is wrong
    if before not in omop.PATIENT_ID_COLUMNS:
        return None  # no OMOP run published there, or one that did not record its ids
    assert published is not None
    changed: dict[str, Any] = {"previous_run_id": published.get("run_id")}
    if before != column:
        problem = f"this run's patient ids are the CDM's {column}, the published run's were its {before}"
        changed |= {"previous_patient_id_column": before}
    elif extracted is not None and (found := _patients_found(Path(request.out), extracted)) is not None:
        if found[0] * 2 >= found[1]:
            return None
        problem = (
            f"only {found[0]:,} of this run's {found[1]:,} patients with a DXA result are in the published run's"
            f" population with the same birth date: the CDM's {column} no longer names the same persons"
        )
        changed |= {"patients_found": found[0], "patients_with_a_result": found[1]}
    else:
        return None
    if request.accept_input_change:
        return changed
    raise InputError(
        "--omop",
        f"{problem} (run {published.get('run_id')}): its gaps would all start anew and lose their outreach marks;"
        " choose the same ids (--omop-patient-id), screen into another --out, or give --accept-input-change",
    )


def _patients_found(out: Path, extracted: Path) -> tuple[int, int] | None:
    """(found, of): this run's patients with a DXA result (``extracted``: ``scans/measurement.parquet``, their birth
    dates from ``scans/person.parquet``) and how many the published run's population lists with the same birth
    date; None when either side has none to compare."""
    current = publish.current_run(out)
    published = sorted((current / "population").glob("*.parquet")) if current is not None else []
    if not published:
        return None
    ids = pl.col("patient_id").cast(pl.Utf8)
    born = pl.col("birth_date").cast(pl.Utf8)
    before = pl.scan_parquet(published, glob=False).select(ids, born).unique()
    people = pl.scan_parquet(extracted / "scans" / "person.parquet", glob=False).select(ids, born)
    tested = (
        pl.scan_parquet(extracted / "scans" / "measurement.parquet", glob=False)
        .select(ids)
        .unique()
        .join(people, on="patient_id", how="left")
    )
    counts = pl.collect_all(
        [
            before.select(pl.len()),
            tested.select(pl.len()),
            tested.join(before, on=["patient_id", "birth_date"], how="semi").select(pl.len()),
        ]
    )
    if not counts[0].item() or not counts[1].item():
        return None
    return counts[2].item(), counts[1].item()


def check_out_apart(request: ScreenRequest, paths: dict[str, list[str]]) -> None:
    """Refuse (exit 2, naming both) an ``--out`` that is, or is inside, a folder given as an input (reading the
    folder would read the published tables as exports), and an input folder inside ``--out`` (a run would write
    where it reads). A single input file kept inside the output folder (as ``osteo demo`` keeps its inputs) is
    allowed: it is read as itself, never as part of a folder."""
    out = Path(request.out).resolve()
    for kind in INPUTS:
        option = BY_NAME[kind].option or SCANS.option  # DXA procedures: the export given as --scans
        for given in paths[kind]:
            folder = Path(given)
            if not folder.is_dir():
                continue
            inside = folder.resolve()
            if out == inside or inside in out.parents:
                raise InputError(
                    "--out",
                    f"{request.out} is {'the' if out == inside else 'inside the'} {option} folder {given}: the next"
                    " screen would read the published tables as input; write the outputs elsewhere",
                )
            if out in inside.parents:
                raise InputError(
                    "--out",
                    f"the {option} folder {given} is inside {request.out}: a screen writes there; keep inputs"
                    " outside the output folder (a single input file inside it is allowed)",
                )


MAX_DAYS_AHEAD = 31  # not clinical: how far past today a screen may be dated (a week on, as in a guide's example)


def check_not_ahead(as_of: dt.date) -> None:
    """Refuse an as-of date more than ``MAX_DAYS_AHEAD`` days after today (exit 2): a typo (2062 for 2026) would
    publish a run that every later screen into the folder is refused after (``check_run_order``), and whose
    worklist would let a mark hide a gap for decades."""
    today = dt.date.today()
    if as_of > today + dt.timedelta(days=MAX_DAYS_AHEAD):
        raise InputError(
            "--as-of",
            f"{as_of.isoformat()} is more than {MAX_DAYS_AHEAD} days after today ({today.isoformat()}): a typo?"
            " A screen is as of today or a past day",
        )


def check_run_order(out: str, as_of: dt.date) -> None:
    """Refuse a screen as of a day before the published run's as-of date (exit 2, one line).

    Runs into one ``--out`` go forward in time: each is compared with the run published before it, so an
    earlier day published there would give every open gap a new ``first_seen``, and the outreach marks
    (kept per episode: patient, gap, first_seen) would stop applying, in that run and in every later one.
    The same as-of date is a re-run of that day and is allowed. Checked with the arguments (before any engine
    starts) and again under the output folder's lock (``lifecycle.prepare``), which a screen holds until it
    has published: another screen may publish in between."""
    try:
        published = publish.published_manifest(Path(out))
        if published is None:
            return
        published_as_of = dt.date.fromisoformat(published["as_of"])
    except (OSError, KeyError, TypeError, ValueError):
        return  # no readable as-of date to compare with: the run's own reading of the folder says what is wrong
    if as_of < published_as_of:
        raise InputError(
            "--as-of",
            f"{as_of.isoformat()} is before the as-of date of the run published in {out}"
            f" ({published_as_of.isoformat()}); screens into one folder go forward in time (an earlier day there"
            " would start every open gap anew and drop its outreach marks): replay an earlier day into another --out",
        )


def check_writable(out: Path) -> None:
    """A read-only or forbidden ``--out`` is said at once, before any data is read (exit 2)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    probe = existing / f".osteo-write-test-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputError(str(existing), f"cannot write the output ({exc.strerror or exc})") from None


def canonical_namer(kind: str, profile: Profile):
    if kind == SCANS.name:
        return profile.canonical_name
    if kind == POPULATION.name and profile.routing is None:  # every column is the roster's: a field or routing
        return header_key
    known = {f.name for f in BY_NAME[kind].fields} | (set(profile.routing) if kind == POPULATION.name else set())
    return lambda header: header_key(header) if header_key(header) in known else None


def require_columns(kind: str, path: Path, names: list[str], headers: list[str], *, profile: Profile) -> None:
    """Refuse a file that lacks a required column (exit 2, one line). For scans, name the shipped profile
    whose headers match the file best, when it is not the one given."""
    required, one_of = BY_NAME[kind].required_headers, BY_NAME[kind].one_of_headers
    if kind == SCANS.name and not profile.unsited_t and UNSPECIFIED_T in (header_key(h) for h in headers):
        raise InputError(
            str(path),
            f"column '{UNSPECIFIED_T}' (a T-score whose site is not stated) is read only with a profile saying"
            f" [scores] unsited_t = \"use\" (profile '{profile.name}' does not): drop or rename the column, or"
            " choose such a profile",
        )
    if kind == SCANS.name and profile.long is not None:
        required, one_of = _long_file_requires(names, profile.long), ()
    missing = [c for c in required if c not in names]
    if one_of and not any(c in names for c in one_of):
        missing.append(" or ".join(one_of))
    if missing:
        where = f" (profile '{profile.name}'{_better_profile(headers, profile)})" if kind == SCANS.name else ""
        raise InputError(str(path), f"required column(s) missing: {', '.join(missing)}{where}")


def _long_file_requires(names: list[str], layout: LongLayout) -> tuple[str, ...]:
    """A long export's file needs the patient id; a file of measurement rows also the exam key, the
    measurement and a value column (any one)."""
    if MEASUREMENT not in names:
        return ("patient_id",)
    values = [value_column(m) for m in layout.measures]
    value = () if any(v in names for v in values) else (" or ".join(values),)
    return ("patient_id", *layout.exam_key, MEASUREMENT, *value)


def require_long_input(columns: dict[Path, list[str]], profile: Profile) -> None:
    """Across the files of a long export: some file gives measurement rows, and some file each column
    every exam needs (exam date, sex, birth date or age), so no exam is left without them."""
    assert profile.long is not None
    given = {c for names in columns.values() for c in names}
    where = str(next(iter(columns)).parent) if len(columns) > 1 else str(next(iter(columns)))
    needed = [MEASUREMENT, *(c for c in REQUIRED_HEADERS if c != "exam_id")]
    missing = [c for c in needed if c not in given]
    if not any(c in given for c in AGE_SOURCES):
        missing.append(" or ".join(AGE_SOURCES))
    if missing:
        raise InputError(where, f"no file of the long export gives: {', '.join(missing)} (profile '{profile.name}')")


def _better_profile(headers: list[str], given: Profile) -> str:
    """``; its headers match the shipped profile 'NAME' (N of M columns): try --profile NAME`` or ``""``."""

    def mapped(profile: Profile) -> int:
        return sum(1 for h in headers if h and profile.canonical_name(h) is not None)

    scores = {name: mapped(load_profile(name)) for name in shipped_profiles()}
    best = max(scores, key=lambda name: (scores[name], name == given.name))
    if best == given.name or scores[best] <= mapped(given):
        return ""
    columns = sum(1 for h in headers if h)
    return (
        f"; its headers match the shipped profile '{best}' ({scores[best]} of {columns} columns): try --profile {best}"
    )

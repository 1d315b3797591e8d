"""Long exports → one canonical text row per exam (profiles with a ``[long]`` section; docs/inputs.md).

The files of a long scans input are of three kinds, told apart by their columns:

- **measurement rows** (the file has the ``measurement`` column): each gives one value per value column
  for what its measurement names, plus any per-exam fields it carries (sex, birth date, FRAX …);
- **exam rows** (no measurement column, every exam-key column): per-exam fields, a wide companion file;
- **patient rows** (neither: a patient id only): per-patient fields (sex, birth date), for each of the
  patient's exams.

Every value becomes a *cell* (exam, column, text). An exam's cells for one column must agree (compared
as read: ``0.80`` and ``0.8`` agree, ``F`` and ``female`` agree); when they do not, every cell of that
column is a quarantine row (``one_value_per_exam``) and the exam is quarantined whole. A measurement
nobody names (``known_measurement``), a code whose site the text does not state (``site_stated``), a
side the text contradicts (``side_agrees``) or a unit not accepted for the measure (``known_unit``) also
quarantine the exam: a measurement is never dropped and the rest screened as if it had not been taken.

The result is the exam rows the wide path validates, with the source file and row of each exam's first
row, plus where each cell came from (a failing cell is reported at its own row).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from osteo_core import reference
from osteo_core.ingest.long_layout import (
    LONG_MEASURES,
    MEASUREMENT,
    MEASUREMENT_TEXT,
    MEASUREMENT_UNIT,
    NOT_SCREENED,
    LongLayout,
    value_column,
)
from osteo_core.ingest.profiles import Profile
from schemas import parsing
from schemas.readers import reader
from schemas.scans import SCANS_FIELDS
from schemas.sites import HIP_SITES, UNSPECIFIED_SITE
from schemas.tables import SOURCE_FILE, SOURCE_ROW

EXAM = "_exam"  # an assembled exam's number within the partition
FILE_NUMBER = "_file"  # the input file's position (files are read in the order given)
CHECKS = {
    "one_value_per_exam": "an exam's rows give two different values for one column; each is quarantined",
    "known_measurement": "what the row measures is not in the profile's list (nor, with codes = loinc, a DXA LOINC)",
    "site_stated": "a code that does not say femoral neck or total hip (or is misused) without text naming it",
    "side_agrees": "the text names the other hip than the code",
    "known_unit": "the unit is not one accepted for a T-score, Z-score or BMD",
}
_FIELDS = {f.name: f for f in SCANS_FIELDS}
_CELL = {EXAM: pl.Int64, "column": pl.Utf8, "value": pl.Utf8, SOURCE_FILE: pl.Utf8, SOURCE_ROW: pl.Int64}
_PROBLEM = {EXAM: pl.Int64, SOURCE_FILE: pl.Utf8, SOURCE_ROW: pl.Int64, "column": pl.Utf8, "check": pl.Utf8}
_PROBLEM |= {"value": pl.Utf8}


@dataclass(frozen=True)
class Assembled:
    exams: pl.DataFrame  # one text row per exam: canonical columns, source columns (first row), _exam
    problems: pl.DataFrame  # _exam, source_file, source_row, column, check, value: quarantine the exam
    origins: pl.DataFrame  # _exam, column, source_file, source_row: where each kept cell was read
    counts: dict[str, int]


def measurement_key_expr(expr: pl.Expr) -> pl.Expr:
    """``long_layout.measurement_key`` as an expression."""
    return expr.str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")


def assemble(files: list[pl.LazyFrame], profile: Profile) -> Assembled:
    """The exams of one partition's long scans files (``files`` in the order given to the run)."""
    layout = profile.long
    assert layout is not None, "assemble() reads long profiles only"
    key = ["patient_id", *layout.exam_key]
    rows = [_trimmed(frame, number) for number, frame in enumerate(files)]
    keyed = [all(k in r.collect_schema().names() for k in layout.exam_key) for r in rows]
    exam_rows = [r for r, has_key in zip(rows, keyed, strict=True) if has_key]
    patient_rows = [r for r, has_key in zip(rows, keyed, strict=True) if not has_key]
    exams = _exams(exam_rows, key)
    measurements = [
        _measurements(r, layout, profile.unsited_t) for r in exam_rows if MEASUREMENT in r.collect_schema().names()
    ]
    readings = pl.concat([m.collect() for m in measurements]) if measurements else None
    cells = [c for c in (_field_cells(r, key) for r in exam_rows) if c is not None]
    if readings is not None:
        cells.append(readings.filter(pl.col("check").is_null() & ~pl.col("_not_screened")).lazy())
    placed = [_place(c, exams, key) for c in cells]
    patient_cells = [c for c in (_field_cells(r, ["patient_id"]) for r in patient_rows) if c is not None]
    by_patient = exams.select(EXAM, "patient_id").lazy()
    placed += [c.join(by_patient, on="patient_id", how="inner") for c in patient_cells]
    all_cells = pl.concat([c.select(*_CELL) for c in placed]).collect() if placed else pl.DataFrame(schema=_CELL)
    kept, conflicts = _agree(all_cells, profile)
    problems = [conflicts]
    if readings is not None:
        flagged = readings.filter(pl.col("check").is_not_null()).lazy()
        problems.append(_place(flagged, exams, key).select(*_PROBLEM).collect())
    wide = kept.pivot(on="column", index=EXAM, values="value") if kept.height else kept.select(EXAM).unique()
    assembled = exams.join(wide, on=EXAM, how="left").sort(EXAM)
    if "exam_id" not in assembled.columns:
        assembled = assembled.with_columns(pl.lit(None, dtype=pl.Utf8).alias("exam_id"))
    if "exam_id" not in layout.exam_key:  # an exam without an id: patient and date name it
        made = pl.col("patient_id") + "@" + pl.col("exam_date")
        assembled = assembled.with_columns(pl.coalesce("exam_id", made).alias("exam_id"))
    counts = _counts(exam_rows, readings, patient_rows, exams)
    return Assembled(
        assembled.drop(FILE_NUMBER, *_LONE),
        pl.concat(problems).sort(EXAM, SOURCE_FILE, SOURCE_ROW, "column"),
        kept.select(EXAM, "column", SOURCE_FILE, SOURCE_ROW),
        counts,
    )


def _trimmed(frame: pl.LazyFrame, number: int) -> pl.LazyFrame:
    names = frame.collect_schema().names()
    text = [c for c in names if c not in (SOURCE_FILE, SOURCE_ROW)]
    return frame.with_columns(
        *(parsing.blank_to_null(pl.col(c).cast(pl.Utf8)).alias(c) for c in text),
        pl.lit(number, dtype=pl.Int64).alias(FILE_NUMBER),
    )


def _group_key(key: list[str]) -> list[pl.Expr]:
    """The exam key; a row missing part of it is an exam of its own (validation then names the blank)."""
    incomplete = pl.any_horizontal(pl.col(k).is_null() for k in key)
    return [
        *(pl.col(k) for k in key),
        pl.when(incomplete).then(pl.col(FILE_NUMBER)).alias("_lone_file"),
        pl.when(incomplete).then(pl.col(SOURCE_ROW)).alias("_lone_row"),
    ]


_LONE = ["_lone_file", "_lone_row"]


def _exams(exam_rows: list[pl.LazyFrame], key: list[str]) -> pl.DataFrame:
    """Each exam once, numbered in the order of its first row; its source file and row are that row's."""
    if not exam_rows:
        schema = {k: pl.Utf8 for k in key} | {"_lone_file": pl.Int64, "_lone_row": pl.Int64}
        return pl.DataFrame(
            schema={EXAM: pl.Int64, **schema, FILE_NUMBER: pl.Int64, SOURCE_FILE: pl.Utf8, SOURCE_ROW: pl.Int64}
        )
    firsts = pl.concat(
        [r.select(*_group_key(key), FILE_NUMBER, SOURCE_FILE, SOURCE_ROW) for r in exam_rows], how="vertical_relaxed"
    )
    return (
        firsts.sort(FILE_NUMBER, SOURCE_ROW)
        .group_by(*key, *_LONE, maintain_order=True)
        .first()
        .with_row_index(EXAM)
        .with_columns(pl.col(EXAM).cast(pl.Int64))
        .collect()
    )


def _place(cells: pl.LazyFrame, exams: pl.DataFrame, key: list[str]) -> pl.LazyFrame:
    """Cells (with their rows' exam key) → with their exam's number."""
    keyed = cells.with_columns(_group_key(key))
    return keyed.join(exams.lazy().select(*key, *_LONE, EXAM), on=[*key, *_LONE], how="inner", nulls_equal=True)


def _field_cells(rows: pl.LazyFrame, key: list[str]) -> pl.LazyFrame | None:
    """The scans fields a file's rows carry, one cell per non-blank value (the key's own columns aside)."""
    names = rows.collect_schema().names()
    fields = [c for c in names if c in _FIELDS and c not in key]
    identity = [*key, FILE_NUMBER, SOURCE_FILE, SOURCE_ROW]
    if not fields:
        return None
    return (
        rows.select(*identity, *fields)
        .unpivot(index=identity, on=fields, variable_name="column", value_name="value")
        .filter(pl.col("value").is_not_null())
    )


def _words_match(text: pl.Expr, table: dict[str, tuple[str, ...]]) -> pl.Expr:
    """The one entry of ``table`` whose words appear in ``text``; null when none or several do."""
    hits = [
        pl.when(pl.any_horizontal(text.str.contains(w, literal=True) for w in ws)).then(pl.lit(v))
        for v, ws in table.items()
    ]
    found = pl.concat_list(hits).list.drop_nulls()
    return pl.when(found.list.len() == 1).then(found.list.first())


def _words_count(text: pl.Expr, table: dict[str, tuple[str, ...]]) -> pl.Expr:
    """How many entries of ``table`` have a word in ``text``."""
    return pl.sum_horizontal(
        pl.any_horizontal(text.str.contains(w, literal=True) for w in ws).cast(pl.Int32) for ws in table.values()
    )


def _measurements(rows: pl.LazyFrame, layout: LongLayout, unsited_t: bool = False) -> pl.LazyFrame:
    """What a file's measurement rows say: one reading per non-blank value (its column, and ``known_unit``
    when its unit is not accepted), and one problem per row whose measurement cannot be read (its check).
    A row the profile marks ``-`` (a region not screened) gives nothing; ``_not_screened`` counts it."""
    names = rows.collect_schema().names()
    identity = ["patient_id", *layout.exam_key, FILE_NUMBER, SOURCE_FILE, SOURCE_ROW]
    text = pl.col(MEASUREMENT_TEXT) if MEASUREMENT_TEXT in names else pl.lit(None, pl.Utf8)
    unit = pl.col(MEASUREMENT_UNIT) if MEASUREMENT_UNIT in names else pl.lit(None, pl.Utf8)
    named = pl.DataFrame(
        {"_key": list(layout.measurements), "_stem": list(layout.measurements.values())},
        schema={"_key": pl.Utf8, "_stem": pl.Utf8},
    )
    resolved = rows.with_columns(
        measurement_key_expr(pl.col(MEASUREMENT)).alias("_key"),
        text.str.to_lowercase().alias("_text"),
        text.alias("_shown_text"),
        unit.alias("_unit"),
    ).join(named.lazy(), on="_key", how="left")
    if layout.loinc:
        resolved = _loinc(resolved, unsited_t)
    else:
        resolved = resolved.with_columns(
            pl.lit(None, pl.Utf8).alias("_loinc_column"), pl.lit("known_measurement").alias("_loinc_check")
        )
    resolved = resolved.with_columns((pl.col("_stem") == NOT_SCREENED).fill_null(False).alias("_not_screened"))
    readable = pl.col("_stem").is_not_null() | pl.col("_loinc_column").is_not_null()
    about = pl.coalesce(pl.col(MEASUREMENT), pl.lit("(blank)"))
    described = pl.when(pl.col("_shown_text").is_not_null()).then(about + " (" + pl.col("_shown_text") + ")")
    problems = resolved.filter(~readable).select(
        *identity,
        pl.lit(MEASUREMENT).alias("column"),
        described.otherwise(about).alias("value"),
        pl.coalesce(pl.col("_loinc_check"), pl.lit("known_measurement")).alias("check"),
        pl.lit(False).alias("_not_screened"),
    )
    accepted = pl.lit(None, pl.Boolean)
    measure_of = pl.col("column").str.extract(rf"_({'|'.join(LONG_MEASURES)})$")
    for measure, allowed in reference.dxa_units().items():
        accepted = (
            pl.when(measure_of == measure).then(pl.col("_unit").str.to_lowercase().is_in(allowed)).otherwise(accepted)
        )
    readings = []
    for measure in layout.measures:
        column = value_column(measure)
        if column not in names:
            continue
        target = pl.col("_stem") + f"_{measure}" if measure else pl.col("_stem")
        reading = resolved.filter(readable & ~pl.col("_not_screened") & pl.col(column).is_not_null()).select(
            *identity,
            pl.coalesce(target, pl.col("_loinc_column")).alias("column"),
            pl.col(column).alias("value"),
            "_unit",
        )
        unit_refused = (pl.col("_unit").is_not_null() & accepted.not_()).fill_null(False)
        readings.append(
            reading.select(
                *identity,
                "column",
                pl.when(unit_refused).then(pl.col("_unit")).otherwise(pl.col("value")).alias("value"),
                pl.when(unit_refused).then(pl.lit("known_unit")).alias("check"),
                pl.lit(False).alias("_not_screened"),
            )
        )
    marked = resolved.filter("_not_screened").select(
        *identity,
        pl.lit(NOT_SCREENED).alias("column"),
        pl.lit(None, pl.Utf8).alias("value"),
        pl.lit(None, pl.Utf8).alias("check"),
        "_not_screened",
    )
    return pl.concat([problems, *readings, marked])


def _loinc(resolved: pl.LazyFrame, unsited_t: bool = False) -> pl.LazyFrame:
    """``_loinc_column`` (the canonical column a DXA LOINC code names, with its site and side read from the
    text where the code does not say them) or ``_loinc_check`` (why it cannot be read).

    ``unsited_t`` (a profile's ``[scores] unsited_t = "use"``): a T-score of a misused code (38265-5 as "any
    DXA T-score") whose text names no site, side or other region at all (``[words]`` of ``dxa_loinc.toml``) is
    ``unspecified_t``; any other text without exactly one site stays ``site_stated``, as does every BMD and
    Z-score without a site."""
    grid = reference.dxa_loinc().select(
        pl.col("code").str.to_lowercase().alias("_key"),
        pl.col("site").alias("_site"),
        pl.col("side").alias("_side"),
        pl.col("measure").alias("_measure"),
        pl.col("misused").alias("_misused"),
        pl.lit(True).alias("_in_grid"),
    )
    words = reference.dxa_words()
    text = pl.col("_text").fill_null("")
    text_site = (
        pl.when(pl.col("_misused"))
        .then(_words_match(text, words["site"]))
        .otherwise(_words_match(text, words["hip_site"]))
    )
    site = pl.when(pl.col("_site").is_not_null() & ~pl.col("_misused")).then(pl.col("_site")).otherwise(text_site)
    if unsited_t:
        # no word naming a site, a hip region, a side or another region (total body, a Z-score …): nothing says where
        no_site_word = pl.sum_horizontal(_words_count(text, table) for table in words.values()) == 0
        unsited = pl.col("_misused") & (pl.col("_measure") == "t") & no_site_word
        site = pl.when(unsited.fill_null(False)).then(pl.lit(UNSPECIFIED_SITE)).otherwise(site)
    text_side = _words_match(text, words["side"])
    side = pl.coalesce(pl.col("_side"), text_side)
    sided = pl.col("_site_read").is_in(list(HIP_SITES)) & pl.col("_side_read").is_not_null()
    column = (
        pl.when(sided)
        .then(pl.col("_side_read") + "_" + pl.col("_site_read") + "_" + pl.col("_measure"))
        .otherwise(pl.col("_site_read") + "_" + pl.col("_measure"))
    )
    check = (
        pl.when(pl.col("_in_grid").is_null())
        .then(pl.lit("known_measurement"))
        .when(pl.col("_site_read").is_null())
        .then(pl.lit("site_stated"))
        .when(pl.col("_side").is_not_null() & text_side.is_not_null() & (pl.col("_side") != text_side))
        .then(pl.lit("side_agrees"))
    )
    return (
        resolved.join(grid.lazy(), on="_key", how="left")
        .with_columns(site.alias("_site_read"), side.alias("_side_read"))
        .with_columns(check.alias("_loinc_check"))
        .with_columns(pl.when(pl.col("_loinc_check").is_null()).then(column).alias("_loinc_column"))
    )


def _agree(cells: pl.DataFrame, profile: Profile) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the first value of each exam's column, in the order read; every cell of a column whose values
    differ as read, as ``one_value_per_exam`` problems)."""
    if cells.is_empty():
        return cells, pl.DataFrame(schema=_PROBLEM)
    kinds: dict[str, list[str]] = {}
    for name in cells.get_column("column").unique().to_list():
        kinds.setdefault(_FIELDS[name].kind, []).append(name)
    meaning = pl.col("value")
    for kind, names in kinds.items():
        read = reader(kind, profile.date_formats, profile.words, profile.decimal)(pl.col("value"))
        meaning = pl.when(pl.col("column").is_in(names)).then(read.cast(pl.Utf8)).otherwise(meaning)
    compared = cells.sort(EXAM, "column", SOURCE_FILE, SOURCE_ROW).with_columns(
        pl.coalesce(meaning, pl.col("value")).alias("_meaning")
    )
    differ = compared.select(pl.col("_meaning").n_unique().over(EXAM, "column") > 1).to_series()
    conflicting = compared.filter(differ).select(
        EXAM, SOURCE_FILE, SOURCE_ROW, "column", pl.lit("one_value_per_exam").alias("check"), "value"
    )
    # a column whose values differ keeps its first: the exam is quarantined either way, and no check
    # then reports it as missing a value it had
    kept = compared.group_by(EXAM, "column", maintain_order=True).first().drop("_meaning")
    return kept, conflicting


def _counts(exam_rows, readings, patient_rows, exams) -> dict[str, int]:
    """Rows of measurement files, those marked not screened, patient rows with no exam, exams made."""
    measured = sum(r.select(pl.len()).collect().item() for r in exam_rows if MEASUREMENT in r.collect_schema().names())
    not_screened = int(readings.get_column("_not_screened").sum()) if readings is not None else 0
    unused = 0
    for rows in patient_rows:
        orphans = rows.join(exams.lazy().select("patient_id").unique(), on="patient_id", how="anti")
        unused += orphans.select(pl.len()).collect().item()
    return {
        "measurement_rows": measured,
        "measurement_rows_not_screened": not_screened,
        "patient_rows_without_exam": unused,
        "exams_assembled": exams.height,
    }

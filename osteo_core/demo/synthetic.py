"""A deterministic synthetic DXA registry (no real patient data), built with vectorised Polars.

Pseudo-random numbers come from hashing row numbers with a seed, so the same seed and size always give
the same registry. Two registries:

- ``registry`` (with ``medications``, ``fractures``, ``recent_fractures``, ``roster``): a fixed registry of
  1–4 exams a patient from 2012 on, for the tests, the golden digests and the benchmarks. Rough real-world
  shapes: mostly older women, T-scores falling with age, FRAX present on about two thirds of exams, a few
  blank risk factors, a small share of invalid cells and identical re-exports (duplicates). Its numbers are
  frozen: the golden digests are computed from it.
- the registry ``osteo demo`` screens, alive up to its as-of date: ``living_registry.demo_inputs``, drawn with
  this module's scan columns and pseudo-random numbers.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from schemas.fields import Field
from schemas.sites import SITES

_SCALE = float(1 << 53)
FIRST_EXAM = dt.date(2012, 1, 2)
LAST_EVENT = dt.date(2026, 6, 30)  # no synthetic medication or fracture after this date


def _uniform(key: pl.Expr, salt: int, seed: int) -> pl.Expr:
    """A uniform number in [0, 1) from a row key: the same key, salt and seed give the same number."""
    return (key.hash(seed * 1_000_003 + salt) // 2048).cast(pl.Float64) / _SCALE


def _normal(key: pl.Expr, salt: int, seed: int) -> pl.Expr:
    """Roughly standard normal (Irwin–Hall sum of 12 uniforms)."""
    return pl.sum_horizontal([_uniform(key, salt * 100 + i, seed) for i in range(12)]) - 6.0


def _fmt(expr: pl.Expr, decimals: int) -> pl.Expr:
    return expr.round(decimals).cast(pl.Utf8)


def _flag(key: pl.Expr, salt: int, seed: int, p_true: float, p_blank: float = 0.05) -> pl.Expr:
    u = _uniform(key, salt, seed)
    return pl.when(u < p_blank).then(None).when(u < p_blank + p_true).then(pl.lit("true")).otherwise(pl.lit("false"))


def registry(
    patients: int,
    seed: int = 7,
    invalid_share: float = 0.005,
    duplicate_share: float = 0.002,
    first_patient: int = 0,
    first_exam: dt.date = FIRST_EXAM,
) -> pl.DataFrame:
    """Scans export (text cells, canonical headers) for ``patients`` patients with 1–4 exams each, from
    ``first_exam`` over about 13 years.

    ``first_patient`` offsets the patient numbers, so a large registry can be written in chunks.
    """
    base = pl.DataFrame({"p": pl.int_range(first_patient, first_patient + patients, eager=True, dtype=pl.Int64)})
    people = base.with_columns(
        patient_id=pl.format("P{}", pl.col("p").cast(pl.Utf8).str.zfill(7)),
        n_exams=(_uniform(pl.col("p"), 1, seed) * 4).floor().cast(pl.Int64) + 1,
        female=_uniform(pl.col("p"), 2, seed) < 0.82,
        first_age=(40 + _uniform(pl.col("p"), 3, seed) * 48).floor().cast(pl.Int64),
        first_day=(_uniform(pl.col("p"), 4, seed) * 365 * 5).floor().cast(pl.Int64),
        bone=_normal(pl.col("p"), 5, seed) * 0.9 - 1.1,
        device=pl.format("DXA-{}", (_uniform(pl.col("p"), 6, seed) * 3).floor().cast(pl.Int64) + 1),
    )
    exams = (
        people.with_columns(k=pl.int_ranges(0, pl.col("n_exams")))
        .explode("k")
        .with_columns(
            e=pl.col("p") * 8 + pl.col("k"),
        )
    )
    e = pl.col("e")
    gap_days = (pl.col("k") * (550 + _uniform(e, 10, seed) * 400)).floor().cast(pl.Int64)
    exams = exams.with_columns(
        exam_date=pl.lit(first_exam) + pl.duration(days=pl.col("first_day") + gap_days),
        birth_date=pl.lit(first_exam)
        + pl.duration(
            days=pl.col("first_day")
            - pl.col("first_age") * 365
            - (_uniform(pl.col("p"), 11, seed) * 364).floor().cast(pl.Int64)
        ),
    ).with_columns(age=(pl.col("exam_date") - pl.col("birth_date")).dt.total_days() // 365)
    t = pl.col("bone") - (pl.col("age") - 50).clip(0) * 0.03 - pl.col("k") * 0.05
    out = _scan_text(exams, t, e, _frax(e, t, seed), seed)
    return _spoil(out, seed, invalid_share, duplicate_share)


def _scan_text(exams: pl.DataFrame, t: pl.Expr, e: pl.Expr, frax: list[pl.Expr], seed: int) -> pl.DataFrame:
    """The scans export's text cells for ``exams`` (columns ``p``, ``patient_id``, ``exam_date``, ``birth_date``,
    ``female``, ``age``, ``device``): ``t`` the patient's T-score before site offsets, ``e`` the exam key, ``frax``
    the two FRAX cells; risk factors are drawn per patient (``p``), exam-level values per exam (``e``)."""
    # each site: a patient-level offset, plus a small exam-to-exam measurement error (~1 % of BMD)
    site_t = {
        s: t + _normal(pl.col("p"), 20 + i, seed) * 0.45 + _normal(e, 24 + i, seed) * 0.08 for i, s in enumerate(SITES)
    }
    u_meno = _uniform(pl.col("p"), 30, seed)
    return exams.select(
        pl.col("patient_id"),
        pl.format("X{}", e.cast(pl.Utf8).str.zfill(9)).alias("exam_id"),
        pl.col("exam_date").cast(pl.Utf8),
        pl.when(pl.col("female")).then(pl.lit("F")).otherwise(pl.lit("M")).alias("sex"),
        pl.col("birth_date").cast(pl.Utf8),
        pl.lit(None, dtype=pl.Utf8).alias("age_years"),
        pl.when(~pl.col("female"))
        .then(None)
        .when(u_meno < 0.1)
        .then(None)
        .when(pl.col("age") >= 52)
        .then(pl.lit("post"))
        .when(pl.col("age") >= 48)
        .then(pl.lit("peri"))
        .otherwise(pl.lit("pre"))
        .alias("menopausal_status"),
        _fmt(pl.when(pl.col("female")).then(66.0).otherwise(82.0) + _normal(pl.col("p"), 31, seed) * 12, 1).alias(
            "weight_kg"
        ),
        _fmt(pl.when(pl.col("female")).then(162.0).otherwise(176.0) + _normal(pl.col("p"), 32, seed) * 7, 0).alias(
            "height_cm"
        ),
        pl.col("device").alias("device_id"),
        *[
            expr
            for i, (site, st) in enumerate(site_t.items())
            for expr in (
                _fmt(st.clip(-6.5, 6.5), 1).alias(f"{site}_t"),
                _fmt((st + (pl.col("age") - 30) * 0.025).clip(-6.5, 6.5), 1).alias(f"{site}_z"),
                _fmt((1.0 + st * 0.11).clip(0.2, 2.4), 3).alias(f"{site}_bmd"),
            )
        ],
        pl.when(_uniform(e, 40, seed) < 0.06).then(pl.lit("L2-L4")).otherwise(pl.lit("L1-L4")).alias("spine_levels"),
        *frax,
        _flag(pl.col("p"), 50, seed, 0.12).alias("prior_fragility_fracture"),
        _flag(pl.col("p"), 51, seed, 0.03).alias("prior_hip_fracture"),
        _flag(pl.col("p"), 52, seed, 0.04).alias("prior_vertebral_fracture"),
        _flag(pl.col("p"), 53, seed, 0.12, 0.2).alias("parental_hip_fracture"),
        _flag(pl.col("p"), 54, seed, 0.1).alias("current_smoker"),
        _flag(pl.col("p"), 55, seed, 0.04).alias("alcohol_3plus_daily"),
        pl.when(_uniform(pl.col("p"), 56, seed) < 0.06)
        .then(_fmt(2 + _uniform(e, 57, seed) * 15, 1))
        .when(_uniform(pl.col("p"), 56, seed) < 0.9)
        .then(pl.lit("0"))
        .otherwise(None)
        .alias("glucocorticoid_mg_daily"),
        pl.when(_uniform(pl.col("p"), 56, seed) < 0.06)
        .then(_fmt((_uniform(e, 58, seed) * 24).floor(), 0))
        .otherwise(None)
        .alias("glucocorticoid_months"),
        _flag(pl.col("p"), 59, seed, 0.04).alias("cancer_bone_loss_therapy"),
        _flag(pl.col("p"), 60, seed, 0.03).alias("rheumatoid_arthritis"),
        _flag(pl.col("p"), 61, seed, 0.01).alias("inflammatory_bowel_disease"),
        _flag(pl.col("p"), 62, seed, 0.01).alias("chronic_liver_disease"),
        _flag(pl.col("p"), 63, seed, 0.08).alias("chronic_kidney_disease"),
        _fmt(20 + _uniform(e, 64, seed) * 80, 0).alias("egfr"),
        _flag(pl.col("p"), 65, seed, 0.05).alias("bisphosphonate_intolerance"),
        e.alias("_e"),
    )


def _frax(e: pl.Expr, t: pl.Expr, seed: int) -> list[pl.Expr]:
    risk = (-(t) * 4 + (pl.col("age") - 50).clip(0) * 0.35 + 6 + _normal(e, 41, seed) * 2).clip(1.0, 60.0)
    present = _uniform(e, 42, seed) < 0.65
    return [
        pl.when(present).then(_fmt(risk, 1)).alias("frax_mof"),
        pl.when(present).then(_fmt(risk * (0.1 + _uniform(e, 43, seed) * 0.3), 1)).alias("frax_hip"),
    ]


def _spoil(frame: pl.DataFrame, seed: int, invalid_share: float, duplicate_share: float) -> pl.DataFrame:
    """Break a small share of cells the way real exports break, and re-export a few exams verbatim."""
    u = _uniform(pl.col("_e"), 90, seed)
    kind = (_uniform(pl.col("_e"), 91, seed) * 4).floor()
    bad = u < invalid_share
    frame = frame.with_columns(
        pl.when(bad & (kind == 0)).then(pl.lit("2019-13-45")).otherwise(pl.col("exam_date")).alias("exam_date"),
        pl.when(bad & (kind == 1)).then(pl.lit("-9.9")).otherwise(pl.col("femoral_neck_t")).alias("femoral_neck_t"),
        pl.when(bad & (kind == 2)).then(pl.lit("unknown")).otherwise(pl.col("sex")).alias("sex"),
        pl.when(bad & (kind == 3)).then(pl.lit("999")).otherwise(pl.col("weight_kg")).alias("weight_kg"),
    )
    copies = frame.filter(_uniform(pl.col("_e"), 92, seed) < duplicate_share)
    return pl.concat([frame, copies]).sort("_e", maintain_order=True).drop("_e")


_DRUG_MIX = (  # (cumulative share of treated patients, drug cell as exported, days between events, days_supply, dose)
    (0.45, "alendronate", 30, "30", None),
    (0.55, "Fosamax", 30, "", None),
    (0.62, "M05BA07", 30, "30", None),
    (0.70, "Reclast", 365, "", "5"),
    (0.88, "Prolia", 183, "", "60"),
    (0.92, "Xgeva", 28, "", "120"),
    (0.95, "Evista", 30, "30", None),
    (0.97, "teriparatide", 30, "", None),
    (1.00, "calcium carbonate", 30, "30", None),
)


def medications(
    scans: pl.DataFrame, seed: int = 7, events_per_exam: float = 0.5, last_event: dt.date = LAST_EVENT
) -> pl.DataFrame:
    """A medications export for the registry's patients (docs/inputs.md, medications), about ``events_per_exam``
    events per exam: courses of one drug each, some stopped early, a few oncology and non-osteoporosis
    products."""
    first = scans.group_by("patient_id").agg(
        pl.col("exam_date").min().str.to_date(strict=False).alias("first_exam"), pl.len().alias("exams")
    )
    u = lambda salt: (pl.col("patient_id").hash(seed * 31 + salt) // 2048).cast(pl.Float64) / _SCALE  # noqa: E731
    treated = first.filter(u(1) < 0.35).with_columns(
        pick=u(2),
        start=pl.col("first_exam") + pl.duration(days=(u(3) * 500).floor().cast(pl.Int64) - 120),
        n=((events_per_exam / 0.35) * pl.col("exams") * (0.5 + u(4))).round().cast(pl.Int64).clip(1, 60),
    )
    drug = pl.lit(None, dtype=pl.Utf8)
    interval = pl.lit(None, dtype=pl.Int64)
    supply = pl.lit(None, dtype=pl.Utf8)
    dose = pl.lit(None, dtype=pl.Utf8)
    for share, name, every, days, mg in reversed(_DRUG_MIX):
        hit = pl.col("pick") < share
        drug = pl.when(hit).then(pl.lit(name)).otherwise(drug)
        interval = pl.when(hit).then(pl.lit(every)).otherwise(interval)
        supply = pl.when(hit).then(pl.lit(days or None, dtype=pl.Utf8)).otherwise(supply)
        dose = pl.when(hit).then(pl.lit(mg, dtype=pl.Utf8)).otherwise(dose)
    events = (
        treated.with_columns(drug=drug, every=interval, days_supply=supply, dose_mg=dose, k=pl.int_ranges(0, "n"))
        .explode("k")
        .with_columns(event=pl.col("start") + pl.duration(days=pl.col("k") * pl.col("every")))
        .filter(pl.col("event") <= pl.lit(last_event))
    )
    return events.select(
        "patient_id",
        "drug",
        pl.col("event").cast(pl.Utf8).alias("event_date"),
        "days_supply",
        "dose_mg",
    ).sort("patient_id", "event_date", "drug")


_FRACTURE_CODES = (
    "S72.001A",
    "S32.010A",
    "S52.501A",
    "S42.201A",
    "S32.401A",
    "S82.001A",
    "S62.101A",
    "S72.001D",
    "M80.08XA",
    "S22.000A",
)


def fractures(
    scans: pl.DataFrame, seed: int = 7, per_exam: float = 0.05, last_event: dt.date = LAST_EVENT
) -> pl.DataFrame:
    """A fractures export (docs/inputs.md, fractures), about ``per_exam`` fractures per exam, with ICD-10 codes
    (some non-fragility, some later-encounter) or a site word, and some birth dates."""
    exams = (
        scans.select("patient_id", "exam_date", "birth_date")
        .filter(pl.col("exam_date").str.to_date(strict=False).is_not_null())
        .with_row_index("_i")
    )
    u = lambda salt: (pl.col("_i").hash(seed * 37 + salt) // 2048).cast(pl.Float64) / _SCALE  # noqa: E731
    picked = exams.filter(u(1) < per_exam)
    code_index = (u(2) * len(_FRACTURE_CODES)).floor().cast(pl.Int64)
    date = pl.col("exam_date").str.to_date(strict=False) + pl.duration(days=(u(3) * 1400).floor().cast(pl.Int64) - 700)
    return picked.select(
        "patient_id",
        pl.min_horizontal(date, pl.lit(last_event)).cast(pl.Utf8).alias("fracture_date"),
        pl.when(u(4) < 0.2).then(pl.lit("wrist")).otherwise(None).alias("site"),
        pl.when(u(4) >= 0.2)
        .then(code_index.replace_strict(dict(enumerate(_FRACTURE_CODES)), return_dtype=pl.Utf8))
        .alias("icd10"),
        pl.when(u(5) < 0.5).then(pl.col("birth_date")).alias("birth_date"),
    ).sort("patient_id", "fracture_date")


def recent_fractures(
    scans: pl.DataFrame, seed: int = 7, share: float = 0.03, last_event: dt.date = LAST_EVENT, days: int = 730
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """For the demo's quality measures: about ``share`` of the patients with a fracture in the ``days`` before
    ``last_event`` (rows of a fractures export), and for about half of them a bisphosphonate started within
    five months after it (rows of a medications export, the treatment a measure looks for)."""
    people = scans.group_by("patient_id").agg(pl.col("birth_date").first()).sort("patient_id").with_row_index("_i")
    u = lambda salt: (pl.col("_i").hash(seed * 43 + salt) // 2048).cast(pl.Float64) / _SCALE  # noqa: E731
    code_index = (u(2) * len(_FRACTURE_CODES)).floor().cast(pl.Int64)
    picked = people.filter(u(1) < share).with_columns(
        (pl.lit(last_event) - pl.duration(days=(u(3) * days).floor().cast(pl.Int64))).alias("_date")
    )
    fractures = picked.select(
        "patient_id",
        pl.col("_date").cast(pl.Utf8).alias("fracture_date"),
        pl.lit(None, dtype=pl.Utf8).alias("site"),
        code_index.replace_strict(dict(enumerate(_FRACTURE_CODES)), return_dtype=pl.Utf8).alias("icd10"),
        pl.col("birth_date"),
    )
    start = pl.min_horizontal(
        pl.col("_date") + pl.duration(days=(u(5) * 150).floor().cast(pl.Int64)), pl.lit(last_event)
    )
    treated = picked.filter(u(4) < 0.5).select(
        "patient_id",
        pl.lit("alendronate").alias("drug"),
        start.cast(pl.Utf8).alias("event_date"),
        pl.lit("30").alias("days_supply"),
        pl.lit(None, dtype=pl.Utf8).alias("dose_mg"),
    )
    return fractures.sort("patient_id"), treated.sort("patient_id")


def roster(
    scans: pl.DataFrame, seed: int = 7, never_scanned: float = 0.25, as_of: dt.date = LAST_EVENT
) -> pl.DataFrame:
    """A population roster (docs/inputs.md, population) for the registry: every scanned patient (sex and birth
    date as on their first exam), plus about ``never_scanned`` × as many patients never scanned (aged 40–90 on
    ``as_of``, three in five women). One coverage span each; about one in five has a second span after a
    break, one in twenty an enrolment that ended, one in thirty a death date. Routing: ``clinic``, ``pcp_id``."""
    scanned = scans.group_by("patient_id").agg(pl.col("sex").first(), pl.col("birth_date").first())
    extra = int(scanned.height * never_scanned)
    base = pl.DataFrame({"q": pl.int_range(0, extra, eager=True, dtype=pl.Int64)})
    age_days = ((40 + _uniform(pl.col("q"), 21, seed) * 50) * 365.25).floor().cast(pl.Int64)
    unscanned = base.select(
        pl.format("Q{}", pl.col("q").cast(pl.Utf8).str.zfill(7)).alias("patient_id"),
        pl.when(_uniform(pl.col("q"), 22, seed) < 0.6).then(pl.lit("F")).otherwise(pl.lit("M")).alias("sex"),
        (pl.lit(as_of) - pl.duration(days=age_days)).cast(pl.Utf8).alias("birth_date"),
    )
    people = pl.concat([scanned, unscanned]).sort("patient_id").with_row_index("_i")
    u = lambda salt: (pl.col("_i").hash(seed * 41 + salt) // 2048).cast(pl.Float64) / _SCALE  # noqa: E731
    start = pl.lit(as_of) - pl.duration(days=(u(1) * 365 * 15).floor().cast(pl.Int64) + 30)
    break_at = start + pl.duration(days=(u(2) * 365 * 3).floor().cast(pl.Int64) + 1)
    ended = u(3) < 0.05
    died = pl.when(u(4) < 1 / 30).then(pl.lit(as_of) - pl.duration(days=(u(5) * 300).floor().cast(pl.Int64)))
    first = people.with_columns(
        start.alias("_from"),
        pl.when(u(6) < 0.2).then(break_at).when(ended).then(pl.lit(as_of) - pl.duration(days=40)).alias("_to"),
        died.alias("_died"),
        pl.format("clinic-{}", (u(7) * 12).floor().cast(pl.Int64) + 1).alias("clinic"),
        pl.format("pcp-{}", (u(8) * 400).floor().cast(pl.Int64) + 1).alias("pcp_id"),
    )
    second = first.filter(u(6) < 0.2).with_columns(
        (pl.col("_to") + pl.duration(days=(u(9) * 400).floor().cast(pl.Int64) + 1)).alias("_from"),
        pl.lit(None, dtype=pl.Date).alias("_to"),
    )
    return (
        pl.concat([first, second])
        .select(
            "patient_id",
            "sex",
            "birth_date",
            pl.col("_died").cast(pl.Utf8).alias("death_date"),
            pl.col("_from").cast(pl.Utf8).alias("enrolled_from"),
            pl.col("_to").cast(pl.Utf8).alias("enrolled_to"),
            "clinic",
            "pcp_id",
        )
        .sort("patient_id", "enrolled_from")
    )


_NATIVE = {"number": pl.Float64, "integer": pl.Int64, "date": pl.Date, "boolean": pl.Boolean}


def as_typed_export(text: pl.DataFrame, fields: tuple[Field, ...]) -> tuple[pl.DataFrame, set[str]]:
    """``text`` (an export as text) as a typed export would hold it: each column whose every written cell
    reads as its field's type cast to it (numbers Float64, whole numbers Int64, ISO dates Date, true/false
    Boolean); a column with a cell that does not (an impossible date, a word in a number column) stays text,
    as a real export would have to keep it. Returns the frame and the columns cast."""
    kinds = {f.name: f.kind for f in fields}
    cast, columns = [], set()
    for name in text.columns:
        dtype = _NATIVE.get(kinds.get(name, "text"))
        if dtype is None:
            continue
        values = text.get_column(name)
        if dtype == pl.Boolean:
            typed = values.replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
        elif dtype == pl.Date:
            typed = values.str.to_date("%Y-%m-%d", strict=False)
        else:
            typed = values.cast(dtype, strict=False)
        if typed.null_count() == values.null_count():  # every written cell read as the type
            cast.append(typed.alias(name))
            columns.add(name)
    return text.with_columns(cast), columns

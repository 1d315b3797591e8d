"""docs/tables.md ``patients`` and ``care_gaps``: who should be treated or followed up and is not.

Pure Polars over LazyFrames; windows, priorities and least-significant-change values come from
``data/reference/care_gaps.toml`` (``params``), never from literals here. Each gap is declared once
(``schemas.gaps``); its finder is attached to it here (``FINDERS``), and ``care_gaps`` runs them all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from osteo_core.decide.sides import with_sided_columns
from osteo_core.gaps.coverage import patient_treatment, treatment_events
from osteo_core.gaps.population import MRNS_SCHEMA, off_the_list, screening_due
from schemas import parsing
from schemas.gaps import (
    DENOSUMAB_LAPSE,
    OVERDUE_DXA,
    POST_FRACTURE_UNTREATED,
    SCREENING_DUE,
    SIGNIFICANT_BMD_LOSS,
    UNTREATED_HIGH_RISK,
    Gap,
)
from schemas.scans import sided
from schemas.sites import HIP_SITES, LSC_SITES, SIDES
from schemas.tables import FOUND_GAPS_SCHEMA, GAPS_SCHEMA, PATIENTS_SCHEMA

_MICRO = 1_000_000  # exact decimal comparison in integer millionths (BMD g/cm² and LSC fractions)
# The float screen before the exact comparison lets through every pair within a hundred millionths of the LSC:
# far wider than any difference between a float and its exact millionths, so it never drops a loss.
_SCREEN_MARGIN = 100 / _MICRO


EXAM_ORDER = ("patient_id", "exam_date", "exam_id")  # a patient's exams, oldest first (exam ids are unique)
_POSITION = "_position"


def _last_per_patient() -> pl.Expr:
    """True on each patient's last row of a frame sorted by ``EXAM_ORDER``."""
    return pl.col("patient_id").is_last_distinct()


def latest_exams(screening: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Each patient's latest exam on or before the as-of date; ties on a date go to the highest exam_id.

    Only the three key columns are sorted (with each row's position); the chosen rows are then picked from
    the frame as it came. Sorting every column of a wide frame cost more than the rest of the step."""
    on_or_before = screening.filter(pl.col("exam_date") <= as_of).with_row_index(_POSITION)
    chosen = on_or_before.select(_POSITION, *EXAM_ORDER).sort(EXAM_ORDER).filter(_last_per_patient())
    return on_or_before.join(chosen.select(_POSITION), on=_POSITION, how="semi").drop(_POSITION)


def patients(
    screening: pl.LazyFrame,
    meds: pl.LazyFrame,
    fractures: pl.LazyFrame,
    as_of: dt.date,
    mrns: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """One row per patient seen in any export (scans, osteoporosis treatment, fractures, and a patient record with
    her medical record number: a FHIR Patient, ``mrns``, one row per patient, ``population.recorded_mrns``), with
    that number where the export gives one (else null): the worklist shows it beside every gap of hers, a
    ``screening_due`` gap of a patient with no exam included."""
    latest = latest_exams(screening, as_of).select(
        "patient_id",
        pl.col("exam_id").alias("latest_exam_id"),
        pl.col("exam_date").alias("latest_exam_date"),
        "who_category",
        "eligibility",
        "recommendation",
        "next_dxa_due",
    )
    everyone = pl.concat(
        [
            screening.select("patient_id"),
            treatment_events(meds, as_of).select("patient_id"),
            fractures.select("patient_id"),
            *([mrns.select("patient_id")] if mrns is not None else []),
        ]
    ).unique()
    return (
        everyone.join(latest, on="patient_id", how="left")
        .join(patient_treatment(meds, as_of), on="patient_id", how="left")
        .join(
            mrns.select(list(MRNS_SCHEMA)) if mrns is not None else pl.LazyFrame(schema=MRNS_SCHEMA),
            on="patient_id",
            how="left",
        )
        .with_columns(pl.col("on_treatment").fill_null(False))
        .select(list(PATIENTS_SCHEMA))
        .cast(PATIENTS_SCHEMA)
        .sort("patient_id")
    )


def _gap(frame: pl.LazyFrame, gap: Gap, params: dict[str, Any]) -> pl.LazyFrame:
    """The rows a finder found, as gaps of its type, with the type's priority (``care_gaps.toml`` ``[priority]``)."""
    return frame.with_columns(
        pl.lit(gap.name).alias("gap"), pl.lit(params["priority"][gap.name]).alias("priority")
    ).select(list(FOUND_GAPS_SCHEMA))


def denosumab_lapse(meds: pl.LazyFrame, as_of: dt.date, params: dict[str, Any]) -> pl.LazyFrame:
    """Last osteoporosis denosumab dose + 6 calendar months + 28 days before the as-of date, and no
    osteoporosis-strength bisphosphonate after that dose."""
    p = params[DENOSUMAB_LAPSE.name]
    events = treatment_events(meds, as_of)
    last_dose = (
        events.filter(pl.col("drug_class") == "denosumab")
        .group_by("patient_id")
        .agg(pl.col("event_date").max().alias("last_dose"))
    )
    bisphosphonate_after = (
        events.filter(pl.col("drug_class") == "bisphosphonate")
        .join(last_dose, on="patient_id")
        .filter(pl.col("event_date") > pl.col("last_dose"))
        .select("patient_id")
        .unique()
    )
    due = pl.col("last_dose").dt.offset_by(f"{p['months_after_dose']}mo") + pl.duration(days=p["grace_days"])
    lapsed = (
        last_dose.with_columns(due.alias("since"))
        .filter(pl.col("since") < as_of)
        .join(bisphosphonate_after, on="patient_id", how="anti")
        .with_columns(
            pl.lit(None, dtype=pl.Utf8).alias("exam_id"),
            pl.format("last denosumab dose {}; next dose overdue since {}", "last_dose", "since").alias("detail"),
        )
    )
    return _gap(lapsed, DENOSUMAB_LAPSE, params)


def untreated_high_risk(
    latest: pl.LazyFrame, meds: pl.LazyFrame, as_of: dt.date, params: dict[str, Any]
) -> pl.LazyFrame:
    """The latest exam is eligible and no osteoporosis drug in [exam date − 365 days, as-of date]."""
    lookback = params[UNTREATED_HIGH_RISK.name]["lookback_days"]
    eligible = latest.filter(pl.col("eligibility") == "eligible")
    treated = (
        treatment_events(meds, as_of)
        .join(eligible.select("patient_id", "exam_date"), on="patient_id")
        .filter(pl.col("event_date") >= pl.col("exam_date") - pl.duration(days=lookback))
        .select("patient_id")
        .unique()
    )
    open_gaps = eligible.join(treated, on="patient_id", how="anti").with_columns(
        pl.col("exam_date").alias("since"),
        pl.format(
            "{} ({}); recommend {}", "eligibility", pl.col("eligibility_reasons").list.join(", "), "recommendation"
        ).alias("detail"),
    )
    return _gap(open_gaps, UNTREATED_HIGH_RISK, params)


def post_fracture_untreated(
    fractures: pl.LazyFrame,
    exams: pl.LazyFrame,
    meds: pl.LazyFrame,
    as_of: dt.date,
    params: dict[str, Any],
    roster: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """A recent fragility fracture at age ≥ 50 (where known) whose 180-day window closed with no exam and
    no treatment, and no treatment in the 365 days before it. One row per patient: the latest such. The age is
    known from the fracture row's birth date, else the patient's latest exam's, else the roster's (``roster``:
    ``gaps.population``'s patients): a woman of 40 the roster knows is never on the list for a wrist fracture."""
    p = params[POST_FRACTURE_UNTREATED.name]
    window = pl.duration(days=p["window_days"])
    known_birth = (  # the birth date on the patient's latest exam that has one
        exams.select(*EXAM_ORDER, "birth_date")
        .filter(pl.col("birth_date").is_not_null())
        .sort(EXAM_ORDER)
        .filter(_last_per_patient())
        .select("patient_id", pl.col("birth_date").alias("scan_birth_date"))
    )
    roster_birth = (
        pl.LazyFrame(schema={"patient_id": pl.Utf8, "roster_birth_date": pl.Date})
        if roster is None
        else roster.select("patient_id", pl.col("birth_date").alias("roster_birth_date"))
        .filter(pl.col("roster_birth_date").is_not_null())
        .unique("patient_id")
    )
    candidates = (
        fractures.filter(pl.col("new_fracture") & pl.col("fragility"))
        .filter(pl.col("fracture_date") >= pl.lit(as_of).dt.offset_by(f"-{p['lookback_years']}y"))
        .filter(pl.lit(as_of) > pl.col("fracture_date") + window)
        .join(known_birth, on="patient_id", how="left")
        .join(roster_birth, on="patient_id", how="left")
        .with_columns(
            parsing.completed_years(
                pl.coalesce("birth_date", "scan_birth_date", "roster_birth_date"), pl.col("fracture_date")
            ).alias("age_at_fracture")
        )
        .filter(pl.col("age_at_fracture").is_null() | (pl.col("age_at_fracture") >= p["min_age_years"]))
        .select("patient_id", "fracture_date", "fracture_site")
        .unique()
    )
    followed_by_exam = (
        candidates.join(exams.select("patient_id", "exam_date"), on="patient_id")
        .filter(pl.col("exam_date").is_between(pl.col("fracture_date"), pl.col("fracture_date") + window))
        .select("patient_id", "fracture_date")
    )
    treated = (
        candidates.join(treatment_events(meds, as_of).select("patient_id", "event_date"), on="patient_id")
        .filter(
            pl.col("event_date").is_between(
                pl.col("fracture_date") - pl.duration(days=p["prior_treatment_days"]),
                pl.col("fracture_date") + window,
            )
        )
        .select("patient_id", "fracture_date")
    )
    untreated = (
        candidates.join(followed_by_exam, on=["patient_id", "fracture_date"], how="anti")
        .join(treated, on=["patient_id", "fracture_date"], how="anti")
        .sort("patient_id", "fracture_date", "fracture_site")
        .group_by("patient_id")
        .last()
        .with_columns(
            pl.col("fracture_date").alias("since"),
            pl.lit(None, dtype=pl.Utf8).alias("exam_id"),
            pl.format(
                "{} fracture {}: no DXA or osteoporosis treatment within {} days",
                "fracture_site",
                "fracture_date",
                pl.lit(p["window_days"]),
            ).alias("detail"),
        )
    )
    return _gap(untreated, POST_FRACTURE_UNTREATED, params)


def _micro(expr: pl.Expr) -> pl.Expr:
    """A decimal as written (float's shortest text) in exact integer millionths."""
    return (expr.cast(pl.Utf8).cast(pl.Decimal(18, 6)) * _MICRO).cast(pl.Int64)


def _site_comparison(site: str, hips_given: bool) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(earlier, later) BMD of one site of a pair of exams in exact integer millionths, at one scale, then
    the two values as shown and a label: like is compared with like (ISCD 2023: monitor on both hips' mean).

    For a hip site: both hips' sum when both exams give both hips (earlier − later ≥ LSC × earlier holds for
    the sum exactly when it holds for the mean); else the left hip when both exams give it; else the right;
    else the unsided value. Other sites, and frames without any hip's column: the unsided value.
    """

    def pair(column: str) -> tuple[pl.Expr, pl.Expr]:
        return pl.col(f"{column}_earlier"), pl.col(column)

    unsided = pair(f"{site}_bmd")
    if site not in HIP_SITES or not hips_given:
        return _micro(unsided[0]), _micro(unsided[1]), unsided[0], unsided[1], pl.lit("")
    left, right = pair(sided(SIDES[0], site, "bmd")), pair(sided(SIDES[1], site, "bmd"))
    both = pl.all_horizontal(c.is_not_null() for c in (*left, *right))
    left_on_both = left[0].is_not_null() & left[1].is_not_null()
    right_on_both = right[0].is_not_null() & right[1].is_not_null()

    def choose(mean_of_both: pl.Expr, left_only: pl.Expr, right_only: pl.Expr, unsided_only: pl.Expr) -> pl.Expr:
        return (
            pl.when(both)
            .then(mean_of_both)
            .when(left_on_both)
            .then(left_only)
            .when(right_on_both)
            .then(right_only)
            .otherwise(unsided_only)
        )

    micro = []
    for i in (0, 1):  # each value turned into millionths once (a text cast and a decimal parse per cell)
        left_micro, right_micro = _micro(left[i]), _micro(right[i])
        micro.append(choose(left_micro + right_micro, left_micro, right_micro, _micro(unsided[i])))
    shown = [choose(((left[i] + right[i]) / 2).round(4), left[i], right[i], unsided[i]) for i in (0, 1)]
    label = choose(pl.lit(" (mean of both hips)"), pl.lit(" (left hip)"), pl.lit(" (right hip)"), pl.lit(""))
    return micro[0], micro[1], shown[0], shown[1], label


def significant_bmd_loss(
    exams: pl.LazyFrame, params: dict[str, Any], device_lsc: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """The two most recent exams on one device lost at least the LSC at spine, total hip or femoral neck.

    Compared in exact decimals: earlier − later ≥ LSC × earlier. The spine counts only when both exams used
    the same ``spine_levels`` (blank on both = the same) with at least the minimum number of vertebrae
    (blank = all four). ``device_lsc`` (device_id, site, lsc) overrides the defaults per device. Exports of
    both hips compare like with like (``_site_comparison``).
    """
    p = params[SIGNIFICANT_BMD_LOSS.name]
    keep = ["patient_id", "exam_id", "exam_date", "device_id", "spine_levels", "spine_level_count"]
    keep += [f"{s}_bmd" for s in LSC_SITES]
    hip_columns = [sided(side, s, "bmd") for s in HIP_SITES for side in SIDES]
    hips_given = bool(set(hip_columns) & set(exams.collect_schema().names()))  # else the one-hip plan, cheaper
    if hips_given:
        exams, keep = with_sided_columns(exams), keep + hip_columns
    ordered = exams.select(keep).sort(EXAM_ORDER)
    last = _last_per_patient()
    later = ordered.filter(last)
    # the row just before a patient's last row, when it is the same patient's: the second most recent exam
    earlier = ordered.filter(last.shift(-1).fill_null(False) & (pl.col("patient_id").shift(-1) == pl.col("patient_id")))
    pairs = later.join(earlier, on="patient_id", suffix="_earlier").filter(
        pl.col("device_id").is_not_null() & (pl.col("device_id") == pl.col("device_id_earlier"))
    )
    pairs = pairs.join(_device_lsc_columns(device_lsc), on="device_id", how="left")
    lsc_of = {site: pl.coalesce(pl.col(f"_lsc_{site}"), pl.lit(p[site])) for site in LSC_SITES}
    # the exact comparison (a text cast and a decimal parse per value) and the details only where a loss is possible
    pairs = pairs.filter(pl.any_horizontal(_may_have_lost(site, lsc_of[site], hips_given) for site in LSC_SITES))
    enough = pl.coalesce(pl.col("spine_level_count"), pl.lit(4)) >= p["min_spine_vertebrae"]
    enough_earlier = pl.coalesce(pl.col("spine_level_count_earlier"), pl.lit(4)) >= p["min_spine_vertebrae"]
    spine_comparable = enough & enough_earlier & pl.col("spine_levels").eq_missing(pl.col("spine_levels_earlier"))
    findings = []
    for site in LSC_SITES:
        lsc = lsc_of[site]
        before, after, shown_before, shown_after, label = _site_comparison(site, hips_given)
        lost = ((before - after) * _MICRO >= _micro(lsc) * before).fill_null(False)
        if site == "spine":
            lost = lost & spine_comparable
        change = (shown_after / shown_before - 1) * 100
        findings.append(
            pl.when(lost).then(
                pl.format(
                    "{}{} {} → {} g/cm² ({}%, LSC {}%)",
                    pl.lit(site),
                    label,
                    shown_before,
                    shown_after,
                    change.round(1),
                    (lsc * 100).round(1),
                )
            )
        )
    detail = pl.concat_str(findings, separator="; ", ignore_nulls=True)
    lossy = (
        pairs.with_columns(detail.alias("detail"))
        .filter(pl.any_horizontal([f.is_not_null() for f in findings]))
        .with_columns(pl.col("exam_date").alias("since"))
    )
    return _gap(lossy, SIGNIFICANT_BMD_LOSS, params)


def _may_have_lost(site: str, lsc: pl.Expr, hips_given: bool) -> pl.Expr:
    """A float screen for ``significant_bmd_loss``: true wherever the exact comparison of ``_site_comparison``
    could find a loss at ``site``, whichever of its values it compares (unsided, left, right, both hips' sum: a
    sum that loses the LSC has at least one hip that does), within ``_SCREEN_MARGIN``; false only where none
    comes near the LSC. Cheap, and never the decision."""

    def near_loss(before: pl.Expr, after: pl.Expr) -> pl.Expr:
        return (before - after >= lsc * before - _SCREEN_MARGIN).fill_null(False)

    def values(column: str) -> tuple[pl.Expr, pl.Expr]:
        return pl.col(f"{column}_earlier"), pl.col(column)

    candidates = [near_loss(*values(f"{site}_bmd"))]
    if site in HIP_SITES and hips_given:
        left, right = values(sided(SIDES[0], site, "bmd")), values(sided(SIDES[1], site, "bmd"))
        candidates += [near_loss(*left), near_loss(*right)]
    return pl.any_horizontal(candidates)


def _device_lsc_columns(device_lsc: pl.LazyFrame | None) -> pl.LazyFrame:
    """(device_id, _lsc_spine, _lsc_total_hip, _lsc_femoral_neck) from long rows (device_id, site, lsc)."""
    wide = {"device_id": pl.Utf8, **{f"_lsc_{s}": pl.Float64 for s in LSC_SITES}}
    if device_lsc is None:
        return pl.LazyFrame(schema=wide)
    return (
        device_lsc.group_by("device_id")
        .agg(pl.col("lsc").filter(pl.col("site") == s).first().alias(f"_lsc_{s}") for s in LSC_SITES)
        .cast(wide)
    )


def overdue_dxa(
    latest: pl.LazyFrame, as_of: dt.date, params: dict[str, Any], dxa_procedures: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """The latest exam's next DXA date has passed, and no DXA was done since: a completed DXA procedure after that
    exam (``dxa_procedures``, a FHIR export's Procedure without a result) is a DXA done, so the patient is not
    called to book one."""
    overdue = latest.filter(pl.col("next_dxa_due") < as_of)
    if dxa_procedures is not None:
        since_exam = (
            overdue.select("patient_id", "exam_date")
            .join(dxa_procedures.filter(pl.col("procedure_date") <= as_of), on="patient_id")
            .filter(pl.col("procedure_date") > pl.col("exam_date"))
            .select("patient_id")
        )
        overdue = overdue.join(since_exam, on="patient_id", how="anti")
    overdue = overdue.with_columns(
        pl.col("next_dxa_due").alias("since"),
        pl.format("next DXA was due {} (exam of {})", "next_dxa_due", "exam_date").alias("detail"),
    )
    return _gap(overdue, OVERDUE_DXA, params)


@dataclass(frozen=True)
class GapInputs:
    """What the finders read: one partition's frames on the as-of date (``care_gaps``'s arguments)."""

    latest: pl.LazyFrame  # each patient's latest exam on or before the as-of date (``latest_exams``)
    exams: pl.LazyFrame
    meds: pl.LazyFrame
    fractures: pl.LazyFrame
    as_of: dt.date
    params: dict[str, Any]
    device_lsc: pl.LazyFrame | None
    roster: pl.LazyFrame | None
    dxa_procedures: pl.LazyFrame | None


# each gap's finder (None: the gap cannot open in this screen); one per gap of ``schemas.gaps.GAPS``
# (tests/test_registries.py)
FINDERS: dict[str, Callable[[GapInputs], pl.LazyFrame | None]] = {
    DENOSUMAB_LAPSE.name: lambda s: denosumab_lapse(s.meds, s.as_of, s.params),
    UNTREATED_HIGH_RISK.name: lambda s: untreated_high_risk(s.latest, s.meds, s.as_of, s.params),
    POST_FRACTURE_UNTREATED.name: lambda s: post_fracture_untreated(
        s.fractures, s.exams, s.meds, s.as_of, s.params, s.roster
    ),
    SIGNIFICANT_BMD_LOSS.name: lambda s: significant_bmd_loss(s.exams, s.params, s.device_lsc),
    OVERDUE_DXA.name: lambda s: overdue_dxa(s.latest, s.as_of, s.params, s.dxa_procedures),
    SCREENING_DUE.name: lambda s: (  # only a population roster lists those never scanned
        _gap(screening_due(s.roster, s.exams, s.as_of, s.params, s.dxa_procedures), SCREENING_DUE, s.params)
        if s.roster is not None
        else None
    ),
}


def care_gaps(
    screening: pl.LazyFrame,
    exams: pl.LazyFrame,
    meds: pl.LazyFrame,
    fractures: pl.LazyFrame,
    as_of: dt.date,
    params: dict[str, Any],
    device_lsc: pl.LazyFrame | None = None,
    roster: pl.LazyFrame | None = None,
    deaths: pl.LazyFrame | None = None,
    dxa_procedures: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """All gaps, highest priority first, then the oldest ``since``. ``roster`` (``gaps.population``'s
    patients, when a population roster was given) adds ``screening_due`` and takes every gap of a patient who is
    dead or not enrolled on the as-of date off the list (``population.off_the_list``): no gap type opens for
    them. Patients the roster does not list keep their gaps. ``deaths`` (``population.recorded_deaths``): the
    deaths an export records, with or without a roster: no gap opens for a patient dead on the as-of date.
    ``dxa_procedures``: completed DXA procedures, a DXA on record for ``screening_due`` and, after the latest exam,
    a DXA done for ``overdue_dxa``."""
    inputs = GapInputs(latest_exams(screening, as_of), exams, meds, fractures, as_of, params, device_lsc, roster,
                       dxa_procedures)  # fmt: skip
    found = [frame for find in FINDERS.values() if (frame := find(inputs)) is not None]
    # first_seen and status are left blank: publishing fills them against the last published run
    lifecycle = [pl.lit(None, dtype=GAPS_SCHEMA[c]).alias(c) for c in GAPS_SCHEMA if c not in FOUND_GAPS_SCHEMA]
    listed = pl.concat(found).join(off_the_list(roster, deaths, as_of), on="patient_id", how="anti")
    return listed.cast(FOUND_GAPS_SCHEMA).with_columns(lifecycle).sort("priority", "since", "patient_id")

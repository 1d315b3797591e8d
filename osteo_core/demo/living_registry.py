"""The registry ``osteo demo`` screens: alive up to its as-of date (``demo_inputs``), drawn with the shares of
``DEMO_SHAPE`` (each with its source) so that a screen of it shows ``DEMO_TARGETS``. The fixed registry of the tests,
the golden digests and the benchmarks is ``synthetic.registry``; this one shares its scan columns and pseudo-random
numbers (``synthetic``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from osteo_core.demo.synthetic import (
    _FRACTURE_CODES,
    _fmt,
    _normal,
    _scan_text,
    _spoil,
    _uniform,
)
from schemas.gaps import OVERDUE_DXA
from schemas.sites import SITES

# ---------------------------------------------------------------------------------------------------------------
# The demo's registry: alive up to its as-of date.
#
# A health system whose DXA service ran before its export starts: patients enter at a steady rate, come back at
# intervals that depend on their result, start (and mostly stop) treatment after a diagnosis or a fracture,
# break bones, and leave the population (death, disenrolment) or the follow-up. The export holds the last
# ``window_years`` of it, up to ``export_lag_days`` before the as-of date. These are the shapes of demo data,
# not screening rules (the rules live in data/rules and data/reference): each number says what it means and
# where it comes from; "demo choice" means no published figure was used.


@dataclass(frozen=True)
class Shape:
    """A number the demo registry is drawn with: its value, what it means, where it comes from."""

    value: float
    means: str
    source: str


_NHANES = (
    "Sarafrazi N, Wambogo EA, Shepherd JA. Osteoporosis or low bone mass in older adults: United States, "
    "2017-2018. NCHS Data Brief no 405, 2021 (osteoporosis at femoral neck or spine, age 50+: women 19.6 %, men "
    "4.4 %; women 50-64 13.1 %, 65+ 27.1 %)"
)
_SOLOMON = (
    "Solomon DH et al. Osteoporosis medication use after hip fracture in U.S. patients between 2002 and 2011. "
    "J Bone Miner Res 2014;29:1929-37 (treated within 12 months: 28.5 %; 40.2 % in 2002, 20.5 % in 2011)"
)
_PERSISTENCE = (
    "Balasubramanian A et al. Discontinuation and reinitiation patterns of osteoporosis treatment among "
    "commercially insured postmenopausal women. Int J Gen Med 2013;6:839-48 (45 %, 58 %, 70 % stopped by 6, 12, "
    "24 months; 46 % of those who stopped restarted, most within 6 months)"
)

DEMO_SHAPE: dict[str, Shape] = {
    # the timeline
    "window_years": Shape(12, "years of exams the export holds, up to the as-of date", "demo choice"),
    "lead_in_years": Shape(
        20,
        "years the DXA service ran before the export starts; patients enter steadily over both, so the export's"
        " yearly exam volume is flat (its first exams include follow-up scans)",
        "demo choice",
    ),
    "export_lag_days": Shape(
        14, "the export's last exam, fill and fracture are this many days before the as-of date", "demo choice"
    ),
    "women": Shape(
        0.82,
        "share of scanned patients who are women",
        "USPSTF 2018 (Curry SJ et al. JAMA 2018;319:2521-31): screen women 65+ and younger postmenopausal women"
        " at risk; evidence for men insufficient, so a DXA registry is mostly women",
    ),
    # bone: T-score (before each site's own offset) = at_50 + t_sd x N(0, 1) - loss x (years past 50). With the
    # lowest of four sites, osteoporosis on the latest exam: women ~11 % at 50-64, ~23 % at 65-79, ~44 % at 80+;
    # men ~2 %, ~5 %, ~9 %: a DXA-referred population a little above the general one, about 5 women to 1 man
    "women_t_at_50": Shape(-0.5, "women's mean T-score at 50", "calibrated to " + _NHANES),
    "women_t_loss_per_year": Shape(0.035, "women's T-score loss a year after 50 (menopause)", "as above"),
    "men_t_at_50": Shape(
        0.05,
        "men's mean T-score at 50, against the female reference",
        "calibrated to NHANES as above; ISCD 2019 official positions: men's T-scores against the female reference",
    ),
    "men_t_loss_per_year": Shape(0.02, "men's T-score loss a year after 50", "as above"),
    "t_sd": Shape(0.9, "spread of T-scores at a given age and sex", "demo choice"),
    # follow-up: the next DXA this many years later (uniform in [low, low + spread]) by the result at entry
    "rescan_years_normal": Shape(
        5, "next DXA after a normal result (+0-2 years)", "Gourlay ML et al. NEJM 2012;366:225-33 (~15 years)"
    ),
    "rescan_years_osteopenia": Shape(
        2,
        "next DXA after osteopenia (+0-2 years, most soon after 2)",
        "Gourlay ML et al. Bone-density testing interval and transition to osteoporosis in older women. NEJM"
        " 2012;366:225-33 (moderate osteopenia ~5 years, advanced ~1 year); Medicare covers a DXA every 24 months"
        " (42 CFR 410.31)",
    ),
    "rescan_years_osteoporosis": Shape(2, "next DXA after osteoporosis (+0-0.5 years)", "as above"),
    "rescan_years_glucocorticoids": Shape(
        1, "next DXA on glucocorticoids or cancer therapy (+0-0.5 years)", "as above"
    ),
    "not_back_after_exam": Shape(
        0.06,
        "after each exam, the share of patients still in the population who never come back for a DXA (lost to"
        " follow-up: overdue for good)",
        "demo choice",
    ),
    "leave_per_year": Shape(
        0.04,
        "yearly rate at which patients leave the population (death, more often the older, or disenrolment): the"
        " roster records it and their exams, fills and fractures stop",
        "demo choice near US mortality at 70-80 (NCHS United States Life Tables: 2-5 % a year) plus moves",
    ),
    # treatment
    "treat_osteoporosis": Shape(
        0.4, "an exam showing osteoporosis starts treatment within 3 months, this often", _SOLOMON
    ),
    "treat_osteopenia_high_frax": Shape(
        0.25, "an exam showing osteopenia with FRAX MOF >= 20 % or hip >= 3 % starts treatment, this often", _SOLOMON
    ),
    "treat_after_fracture": Shape(0.28, "a fracture starts treatment within 5 months, this often", _SOLOMON),
    "stop_early": Shape(
        0.41,
        "share of courses (other than denosumab) stopped within 6 months; the rest last ~36 months on average",
        _PERSISTENCE,
    ),
    "course_months": Shape(36, "mean length of a course not stopped early (exponential)", _PERSISTENCE),
    "restart": Shape(
        0.46,
        "share of stopped courses restarted (the same drug) 1-6 months later",
        _PERSISTENCE,
    ),
    "denosumab_stop_early": Shape(
        0.15,
        "share of denosumab courses stopped after one injection; the rest last ~45 months on average (24-month"
        " persistence ~50 %)",
        "Silverman SL et al. Persistence at 24 months with denosumab among postmenopausal women with osteoporosis."
        " Arch Osteoporos 2018;13:85 (US patients: 50 %)",
    ),
    "denosumab_course_months": Shape(45, "mean length of a denosumab course not stopped early", "as above"),
    "denosumab_transition": Shape(
        0.3,
        "share of denosumab stops followed by a bisphosphonate 6-8 months after the last injection (the rest are"
        " lapses)",
        "ECTS 2021 advises the switch (Tsourdi E et al. J Clin Endocrinol Metab 2021;106:264-81); share: demo choice",
    ),
    # fractures
    "fracture_rate": Shape(
        0.012,
        "fractures a patient-year at a lowest T-score of -1 and age 65 (x 1.8 each SD lower, x 1.04 each year"
        " older, men x 0.6)",
        "Burge R et al. J Bone Miner Res 2007;22:465-75: > 2 million osteoporosis-related fractures in the US in"
        " 2005, about 2 % of adults 50+ a year",
    ),
    "fracture_before_exam": Shape(
        0.025, "share of exams that follow a fracture in the 6 months before (referred for a DXA)", "demo choice"
    ),
    "never_scanned": Shape(
        0.25, "people in the roster never scanned, per scanned patient (aged 40-90, 3 in 5 women)", "demo choice"
    ),
}

# What a screen of the demo shows, as of any day (tests/test_demo_registry.py screens one and checks each band).
DEMO_TARGETS: dict[str, tuple[float, float, str]] = {
    "overdue_dxa_share": (
        0.15,
        0.45,
        f"scanned patients alive and enrolled with {OVERDUE_DXA.name} open: well under half (lost to follow-up, late"
        " returns)",
    ),
    "on_treatment_share": (
        0.05,
        0.25,
        "scanned patients alive and enrolled covered by an osteoporosis drug on the as-of date",
    ),
    "osteoporosis_treated_share": (
        0.15,
        0.45,
        "of them whose latest exam shows osteoporosis, the share on treatment: US treatment rates of 20-40 % ("
        + _SOLOMON
        + ")",
    ),
    "women_osteoporosis_share": (0.15, 0.40, "women 50+ whose latest exam is osteoporosis (" + _NHANES + ")"),
    "men_osteoporosis_share": (0.01, 0.10, "men 50+ whose latest exam is osteoporosis (" + _NHANES + ")"),
    "women_to_men_osteoporosis": (3.0, 8.0, "ratio of the two (NHANES: 19.6 / 4.4 = 4.5)"),
    "last_year_exam_volume": (
        0.75,
        1.25,
        "exams in the 365 days before the as-of date, over the mean yearly volume of the export (steady)",
    ),
}

_DEMO_DRUGS = (  # (cumulative share of treated patients, drug cell as exported, days between fills, days_supply,
    # dose, longest course in days): bisphosphonates first, denosumab second (ACP 2023: Qaseem A et al. Ann Intern
    # Med 2023;176:224-38); courses capped as ASBMR 2016 reviews them (5 years oral, 3 years IV: Adler RA et al.
    # J Bone Miner Res 2016;31:16-35), teriparatide 2 years (label); shares: demo choice
    (0.40, "alendronate", 30, "30", None, 1826),
    (0.55, "Fosamax", 30, "", None, 1826),
    (0.63, "M05BA07", 30, "30", None, 1826),  # risedronate, by its ATC code
    (0.73, "Reclast", 365, "", "5", 1096),
    (0.93, "Prolia", 183, "", "60", 3652),
    (0.98, "Evista", 30, "30", None, 2922),
    (1.00, "teriparatide", 30, "", None, 730),
)
_DEMO_MAX_EXAMS = 32  # exams a patient can have (exam keys are patient x 32 + k)


def _shape(name: str) -> float:
    return DEMO_SHAPE[name].value


def anchored(as_of: dt.date) -> dict[str, dt.date]:
    """The demo registry's dates for a screen on ``as_of``: its first day (``window_years`` before) and the
    day of its last exam, fill and fracture (``export_lag_days`` before: exams run up to then)."""
    return {
        "first_exam": as_of - dt.timedelta(days=round(_shape("window_years") * 365.25)),
        "last_event": as_of - dt.timedelta(days=int(_shape("export_lag_days"))),
    }


def demo_inputs(patients: int, as_of: dt.date, seed: int = 7) -> dict[str, pl.DataFrame]:
    """The exports ``osteo demo`` screens on ``as_of``, as text: ``scans`` (exactly ``patients`` scanned
    patients), ``medications``, ``fractures`` and ``population`` (a roster with people never scanned), drawn
    with ``DEMO_SHAPE``. Days are counted from the export's first day; a patient entered the DXA service up to
    ``lead_in_years`` before it, so her first exam in the export may be a follow-up."""
    dates = anchored(as_of)
    start, span = dates["first_exam"], (dates["last_event"] - dates["first_exam"]).days
    people, exams = _demo_people(patients, span, seed)
    date = lambda days: pl.lit(start) + pl.duration(days=days)  # noqa: E731
    exams = exams.with_columns(exam_date=date(pl.col("day")), birth_date=date(pl.col("birth_day"))).with_columns(
        age=(pl.col("exam_date") - pl.col("birth_date")).dt.total_days() // 365
    )
    t = pl.col("bone") - pl.col("loss") * (pl.col("age") - 50).clip(0)
    exams = exams.with_columns(_low=t + pl.col("offset_min"), **_demo_frax(t, seed))
    present = _uniform(pl.col("e"), 42, seed) < 0.65
    frax = [
        pl.when(present).then(_fmt(pl.col("_mof").clip(1.0, 60.0), 1)).alias("frax_mof"),
        pl.when(present).then(_fmt(pl.col("_hip").clip(0.1, 40.0), 1)).alias("frax_hip"),
    ]
    scans = _spoil(_scan_text(exams, t, pl.col("e"), frax, seed), seed, 0.005, 0.002)  # as registry()'s
    fractures = _demo_fractures(people, exams, span, seed)
    meds = _demo_medications(people, exams, fractures, span, seed)
    ids = people.select("p", "patient_id", "birth_day")
    fractures = fractures.join(ids, on="p").sort("patient_id", "day")
    return {
        "scans": scans,
        "medications": meds.join(ids, on="p")
        .select("patient_id", "drug", date(pl.col("day")).cast(pl.Utf8).alias("event_date"), "days_supply", "dose_mg")
        .sort("patient_id", "event_date", "drug"),
        "fractures": fractures.select(
            "patient_id",
            date(pl.col("day")).cast(pl.Utf8).alias("fracture_date"),
            pl.when(_uniform(pl.col("f"), 84, seed) < 0.2).then(pl.lit("wrist")).otherwise(None).alias("site"),
            pl.when(_uniform(pl.col("f"), 84, seed) >= 0.2)
            .then(
                (_uniform(pl.col("f"), 86, seed) * len(_FRACTURE_CODES))
                .floor()
                .cast(pl.Int64)
                .replace_strict(dict(enumerate(_FRACTURE_CODES)), return_dtype=pl.Utf8)
            )
            .alias("icd10"),
            pl.when(_uniform(pl.col("f"), 87, seed) < 0.5)
            .then(date(pl.col("birth_day")).cast(pl.Utf8))
            .alias("birth_date"),
        ),
        "population": _demo_roster(people, exams, start, span, as_of, seed),
    }


def _demo_people(patients: int, span: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The first ``patients`` people (in draw order) with an exam in the export, and their exams (``day`` from the
    export's first day): each enters on a uniform day of the lead-in and the window, comes back at her result's
    interval until she is lost to follow-up or leaves the population."""
    candidates = patients * 2 + 100
    while True:
        people, exams = _demo_candidates(candidates, span, seed)
        kept = exams.filter(pl.col("day") >= 0).select("p").unique().sort("p").head(patients)
        if kept.height == patients:
            break
        candidates *= 2  # the same people first, whatever the number of candidates
    people = people.join(kept.with_row_index("n"), on="p").with_columns(
        patient_id=pl.format("P{}", pl.col("n").cast(pl.Utf8).str.zfill(7))
    )
    exams = exams.filter(pl.col("day") >= 0).join(people, on="p").sort("p", "k")
    return people.drop("n"), exams.drop("n")


def _demo_candidates(n: int, span: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    p = pl.col("p")
    u = lambda salt: _uniform(p, salt, seed)  # noqa: E731
    lead = int(_shape("lead_in_years") * 365.25)
    female = u(2) < _shape("women")
    people = pl.DataFrame({"p": pl.int_range(0, n, eager=True, dtype=pl.Int64)}).with_columns(
        female=female,
        entry_age=pl.when(female).then(45 + u(3) * 38).otherwise(50 + u(3) * 33).floor().cast(pl.Int64),
        entry_day=(-lead + u(4) * (lead + span)).floor().cast(pl.Int64),
        bone=_normal(p, 5, seed) * _shape("t_sd")
        + pl.when(female).then(_shape("women_t_at_50")).otherwise(_shape("men_t_at_50")),
        loss=pl.when(female).then(_shape("women_t_loss_per_year")).otherwise(_shape("men_t_loss_per_year")),
        device=pl.format("DXA-{}", (u(6) * 3).floor().cast(pl.Int64) + 1),
        # the lowest of the sites' own offsets (as _scan_text draws them): lowest T-score = T + offset_min
        offset_min=pl.min_horizontal([_normal(p, 20 + i, seed) * 0.45 for i in range(len(SITES))]),
        # glucocorticoids (a dose above 0) or cancer bone-loss therapy, as _scan_text draws them: a yearly DXA
        yearly=(u(56) < 0.06) | ((u(59) >= 0.05) & (u(59) < 0.09)),
        # how many exams she would have if she never left: one, then each time back unless lost to follow-up
        returns=(1 + ((1 - u(12)).log() / pl.lit(1 - _shape("not_back_after_exam")).log()).floor())
        .clip(1, _DEMO_MAX_EXAMS)
        .cast(pl.Int64),
    )
    people = people.with_columns(
        # the day she leaves the population (death, disenrolment): a constant rate from her entry
        leave_day=pl.col("entry_day") + (-(1 - u(13)).log() / _shape("leave_per_year") * 365.25).floor().cast(pl.Int64),
        birth_day=pl.col("entry_day") - pl.col("entry_age") * 365 - (u(11) * 364).floor().cast(pl.Int64),
        low_entry=pl.col("bone") - pl.col("loss") * (pl.col("entry_age") - 50).clip(0) + pl.col("offset_min"),
    )
    low = pl.col("low_entry")
    ue = _uniform(pl.col("e"), 10, seed)
    years = (
        pl.when(pl.col("yearly"))
        .then(_shape("rescan_years_glucocorticoids") + ue * 0.5)
        .when(low <= -2.5)
        .then(_shape("rescan_years_osteoporosis") + ue * 0.5)
        .when(low < -1.0)
        .then(_shape("rescan_years_osteopenia") + ue * ue * 2)
        .otherwise(_shape("rescan_years_normal") + ue * 2)
    )
    exams = (
        people.select("p", "entry_day", "leave_day", "returns", "yearly", "low_entry")
        .with_columns(k=pl.int_ranges(0, "returns"))
        .explode("k")
        .with_columns(e=pl.col("p") * _DEMO_MAX_EXAMS + pl.col("k"))
        .with_columns(gap=pl.when(pl.col("k") == 0).then(0.0).otherwise(years * 365.25))
        .with_columns(day=pl.col("entry_day") + pl.col("gap").cum_sum().over("p").floor().cast(pl.Int64))
        .filter((pl.col("day") <= span) & (pl.col("day") < pl.col("leave_day")))
        .select("p", "k", "e", "day")
    )
    return people, exams


def _demo_frax(t: pl.Expr, seed: int) -> dict[str, pl.Expr]:
    """FRAX-like 10-year probabilities (%, before clipping): rising with age and a lower femoral-neck T-score,
    lower for men, higher after a fragility fracture; shaped like the US FRAX tables (a woman of 65 at -2.5:
    MOF ~13 %, hip ~3 %), not FRAX."""
    p, e = pl.col("p"), pl.col("e")
    neck = t + _normal(p, 22, seed) * 0.45 + 1  # femoral neck T-score (SITES[2]'s offset), from -1
    fracture = (_uniform(p, 50, seed) >= 0.05) & (_uniform(p, 50, seed) < 0.17)  # prior_fragility_fracture true
    factor = pl.when(pl.col("female")).then(1.0).otherwise(0.6) * pl.when(fracture).then(1.6).otherwise(1.0)
    age = pl.col("age") - 65
    return {
        "_mof": 8.5 * (0.04 * age - 0.3 * neck + 0.15 * _normal(e, 41, seed)).exp() * factor,
        "_hip": 0.8 * (0.08 * age - 0.85 * neck + 0.2 * _normal(e, 43, seed)).exp() * factor,
    }


def _demo_fractures(people: pl.DataFrame, exams: pl.DataFrame, span: int, seed: int) -> pl.DataFrame:
    """Fractures (``p``, ``day``, key ``f``): each patient-year from entry to leaving (or the export's end) at a
    rate rising with a lower T-score and age, plus one in the months before some exams (the reason for the
    DXA); from two years before the export on."""
    end = pl.min_horizontal(pl.col("leave_day"), pl.lit(span + 1))
    years = people.with_columns(y=pl.int_ranges(0, ((end - pl.col("entry_day")) / 365).ceil().cast(pl.Int64).clip(0)))
    years = years.explode("y").drop_nulls("y").with_columns(key=pl.col("p") * 64 + pl.col("y"))
    rate = (
        _shape("fracture_rate")
        * pl.lit(1.8).pow(-(pl.col("low_entry") + 1))
        * pl.lit(1.04).pow(pl.col("entry_age") + pl.col("y") - 65)
        * pl.when(pl.col("female")).then(1.0).otherwise(0.6)
    ).clip(0.0, 0.15)
    day = pl.col("entry_day") + pl.col("y") * 365 + (_uniform(pl.col("key"), 81, seed) * 365).floor().cast(pl.Int64)
    background = years.filter(_uniform(pl.col("key"), 80, seed) < rate).select("p", day.alias("day"), end.alias("_end"))
    before = exams.filter(_uniform(pl.col("e"), 82, seed) < _shape("fracture_before_exam")).select(
        "p", (pl.col("day") - 10 - (_uniform(pl.col("e"), 83, seed) * 160).floor().cast(pl.Int64)).alias("day")
    )
    return (
        pl.concat([background.filter(pl.col("day") < pl.col("_end")).drop("_end"), before])
        .filter(pl.col("day") >= -730)
        .sort("p", "day")
        .with_row_index("f")
        .with_columns(pl.col("f").cast(pl.Int64))
    )


def _demo_medications(
    people: pl.DataFrame, exams: pl.DataFrame, fractures: pl.DataFrame, span: int, seed: int
) -> pl.DataFrame:
    """Fills (``p``, ``drug``, ``day``, ``days_supply``, ``dose_mg``): a course starts after an exam showing
    osteoporosis or osteopenia with a high FRAX, or after a fracture, with the patient's drug; it stops early or
    later as persistence goes, at its longest course, or when she leaves; some denosumab stops are followed by a
    bisphosphonate. Plus products that are not osteoporosis treatment (calcium, oncology denosumab)."""
    low, e = pl.col("_low"), pl.col("e")
    start_share = (
        pl.when(low <= -2.5)
        .then(_shape("treat_osteoporosis"))
        .when((low < -1.0) & ((pl.col("_mof") >= 20) | (pl.col("_hip") >= 3)))
        .then(_shape("treat_osteopenia_high_frax"))
        .otherwise(0.0)
    )
    after_exam = exams.filter(_uniform(e, 70, seed) < start_share).select(
        "p",
        (pl.col("day") + 7 + (_uniform(e, 74, seed) * 80).floor().cast(pl.Int64)).alias("start"),
        (e * 4).alias("key"),
    )
    f = pl.col("f")
    after_fracture = fractures.filter(_uniform(f, 85, seed) < _shape("treat_after_fracture")).select(
        "p",
        (pl.col("day") + 7 + (_uniform(f, 88, seed) * 140).floor().cast(pl.Int64)).alias("start"),
        (f * 4 + 1 + (1 << 40)).alias("key"),
    )
    pick = _uniform(pl.col("p"), 71, seed)
    columns = {"drug": pl.Utf8, "every": pl.Int64, "days_supply": pl.Utf8, "dose_mg": pl.Utf8, "cap": pl.Int64}
    chosen = {name: pl.lit(None, dtype=kind) for name, kind in columns.items()}
    for share, name, every, supply, dose, cap in reversed(_DEMO_DRUGS):
        values = {"drug": name, "every": every, "days_supply": supply or None, "dose_mg": dose, "cap": cap}
        chosen = {
            k: pl.when(pick < share).then(pl.lit(values[k], dtype=columns[k])).otherwise(v) for k, v in chosen.items()
        }
    courses = (
        pl.concat([after_exam, after_fracture]).join(people.select("p", "leave_day"), on="p").with_columns(**chosen)
    )
    first = _one_at_a_time(_fills(courses, seed))
    # a course stopped before its longest: restarted (the same drug) 1-6 months on, or not
    ends = _course_ends(first)
    again = ends.filter(pl.col("stopped") & (_uniform(pl.col("key"), 77, seed) < _shape("restart")))
    later = pl.col("day") + pl.col("every") + 30 + (_uniform(pl.col("key"), 78, seed) * 150).floor().cast(pl.Int64)
    restarts = _fills(again.with_columns(start=later, key=pl.col("key") + 3).drop("day", "stopped"), seed)
    # a denosumab stop (the last course): a bisphosphonate 6-8 months after the last injection, or a lapse
    last = pl.concat([ends.join(again, on="key", how="anti"), _course_ends(restarts)]).filter(
        pl.col("drug") == "Prolia"
    )
    switch = last.filter(_uniform(pl.col("key"), 75, seed) < _shape("denosumab_transition")).select(
        "p",
        "leave_day",
        (pl.col("day") + 183 + (_uniform(pl.col("key"), 76, seed) * 60).floor().cast(pl.Int64)).alias("start"),
        (pl.col("key") + 2).alias("key"),
        drug=pl.lit("alendronate"), every=pl.lit(30, pl.Int64), days_supply=pl.lit("30"),
        dose_mg=pl.lit(None, pl.Utf8), cap=pl.lit(1826, pl.Int64),
    )  # fmt: skip
    fills = _one_at_a_time(pl.concat([first, restarts, _fills(switch, seed)]))
    # not osteoporosis treatment: calcium for some, oncology denosumab for some on cancer therapy
    p = pl.col("p")
    end = pl.min_horizontal(pl.col("leave_day"), pl.lit(span)) - pl.col("entry_day")
    other = people.with_columns(at=pl.col("entry_day") + (_uniform(p, 91, seed) * end.clip(1)).floor().cast(pl.Int64))
    calcium = other.filter(_uniform(p, 90, seed) < 0.15).select(
        "p", "at", n=(_uniform(p, 92, seed) * 6).floor().cast(pl.Int64) + 1, every=pl.lit(30, pl.Int64),
        drug=pl.lit("calcium carbonate"), days_supply=pl.lit("30"), dose_mg=pl.lit(None, pl.Utf8),
    )  # fmt: skip
    cancer = (_uniform(p, 59, seed) >= 0.05) & (_uniform(p, 59, seed) < 0.09)
    oncology = other.filter(cancer & (_uniform(p, 93, seed) < 0.4)).select(
        "p", "at", n=pl.lit(6, pl.Int64), every=pl.lit(28, pl.Int64),
        drug=pl.lit("Xgeva"), days_supply=pl.lit(None, pl.Utf8), dose_mg=pl.lit("120"),
    )  # fmt: skip
    others = (
        pl.concat([calcium, oncology])
        .with_columns(i=pl.int_ranges(0, "n"))
        .explode("i")
        .select("p", "drug", (pl.col("at") + pl.col("i") * pl.col("every")).alias("day"), "days_supply", "dose_mg")
        .join(people.select("p", "leave_day"), on="p")
        .filter((pl.col("day") < pl.col("leave_day")) & (pl.col("day") <= span) & (pl.col("day") >= -365))
        .drop("leave_day")
    )
    treatment = fills.filter((pl.col("day") <= span) & (pl.col("day") >= -365))
    return pl.concat([treatment.select(others.columns), others])


def _fills(courses: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The fills of each course (``p``, ``start``, ``key``, ``leave_day`` and the drug's columns): one every
    ``every`` days from ``start`` for the course's length, at most ``cap`` days and never on or after
    ``leave_day``."""
    key = pl.col("key")
    denosumab = pl.col("drug") == "Prolia"
    early = _uniform(key, 72, seed) < pl.when(denosumab).then(_shape("denosumab_stop_early")).otherwise(
        _shape("stop_early")
    )
    months = pl.when(denosumab).then(_shape("denosumab_course_months")).otherwise(_shape("course_months"))
    days = (
        pl.when(early)
        .then(30 + _uniform(key, 73, seed) * 150)
        .otherwise(-(1 - _uniform(key, 73, seed)).log() * months * 30.44)
        .floor()
        .cast(pl.Int64)
    )
    return (
        courses.with_columns(length=pl.min_horizontal(days, pl.col("cap")))
        .with_columns(n=((pl.col("length") / pl.col("every")).ceil().cast(pl.Int64)).clip(1))
        .with_columns(i=pl.int_ranges(0, "n"))
        .explode("i")
        .with_columns(day=pl.col("start") + pl.col("i") * pl.col("every"))
        .filter(pl.col("day") < pl.col("leave_day"))
        .with_columns(stopped=pl.col("length") < pl.col("cap"))
        .select("p", "key", "drug", "day", "days_supply", "dose_mg", "every", "cap", "leave_day", "stopped")
    )


def _one_at_a_time(fills: pl.DataFrame) -> pl.DataFrame:
    """``fills`` without the courses that start while an earlier course of the patient still covers her (she is
    on treatment: nothing new starts)."""
    spans = (
        fills.group_by("key")
        .agg(
            pl.col("p").first(),
            pl.col("day").min().alias("start"),
            (pl.col("day") + pl.col("every")).max().alias("end"),
        )
        .sort("p", "start", "key")
    )
    covered = pl.col("end").cum_max().shift(1).over("p")
    kept = spans.filter(covered.is_null() | (pl.col("start") >= covered)).select("key")
    return fills.join(kept, on="key", how="semi")


def _course_ends(fills: pl.DataFrame) -> pl.DataFrame:
    """One row per course of ``fills``: its last fill (``day``), its drug's columns, and whether it stopped
    before its longest course."""
    return fills.sort("key", "day").group_by("key", maintain_order=True).last()


def _demo_roster(
    people: pl.DataFrame, exams: pl.DataFrame, start: dt.date, span: int, as_of: dt.date, seed: int
) -> pl.DataFrame:
    """A population roster: every scanned patient, enrolled from before her first exam (one in ten with a break
    before it) until she left (a disenrolment) or for good; one who left and was old more likely died instead;
    plus ``never_scanned`` people never scanned, a few of whom died or left lately. Routing: clinic, pcp_id."""
    today = (as_of - start).days
    first = exams.group_by("p").agg(pl.col("day").min().alias("first_day"))
    p = pl.col("p")
    u = lambda salt: _uniform(p, salt, seed)  # noqa: E731
    age_left = pl.col("entry_age") + (pl.col("leave_day") - pl.col("entry_day")) / 365.25
    left = pl.col("leave_day") <= today
    died = left & (u(96) < ((age_left - 55) / 35).clip(0.15, 0.85))
    scanned = people.join(first, on="p").with_columns(
        sex=pl.when(pl.col("female")).then(pl.lit("F")).otherwise(pl.lit("M")),
        _from=pl.min_horizontal("first_day", "entry_day") - 30 - (u(94) * 365 * 5).floor().cast(pl.Int64),
        _to=pl.when(left & ~died).then(pl.col("leave_day")),
        _died=pl.when(died).then(pl.col("leave_day")),
        _break=u(95) < 0.1,
    )
    # a break: enrolled, then not for a while, then again from before the first exam
    gap_from = pl.col("_from") + ((pl.col("first_day") - pl.col("_from")) * 0.3).floor().cast(pl.Int64)
    gap_to = pl.col("_from") + ((pl.col("first_day") - pl.col("_from")) * 0.6).floor().cast(pl.Int64)
    spans = pl.concat(
        [
            scanned.filter(~pl.col("_break")).select("patient_id", "sex", "birth_day", "_died", "_from", "_to"),
            scanned.filter(pl.col("_break")).select(
                "patient_id", "sex", "birth_day", "_died", "_from", gap_from.alias("_to")
            ),
            scanned.filter(pl.col("_break")).select(
                "patient_id", "sex", "birth_day", "_died", gap_to.alias("_from"), "_to"
            ),
        ]
    )
    q = pl.col("q")
    uq = lambda salt: _uniform(q, salt, seed)  # noqa: E731
    unscanned = pl.DataFrame(
        {"q": pl.int_range(0, int(people.height * _shape("never_scanned")), eager=True, dtype=pl.Int64)}
    ).select(
        pl.format("Q{}", q.cast(pl.Utf8).str.zfill(7)).alias("patient_id"),
        pl.when(uq(22) < 0.6).then(pl.lit("F")).otherwise(pl.lit("M")).alias("sex"),
        (today - ((40 + uq(21) * 50) * 365.25).floor().cast(pl.Int64)).alias("birth_day"),
        pl.when(uq(24) < 0.03).then(today - (uq(25) * 300).floor().cast(pl.Int64)).alias("_died"),
        (today - 60 - (uq(26) * 365 * 15).floor().cast(pl.Int64)).alias("_from"),
        pl.when((uq(24) >= 0.03) & (uq(24) < 0.08)).then(pl.lit(today - 40, pl.Int64)).alias("_to"),
    )
    date = lambda days: (pl.lit(start) + pl.duration(days=days)).cast(pl.Utf8)  # noqa: E731
    rows = pl.concat([spans, unscanned]).sort("patient_id", "_from")
    u = lambda salt: _uniform(pl.col("patient_id"), salt, seed)  # noqa: E731  (a patient's routing, every span)
    return rows.select(
        "patient_id",
        "sex",
        date(pl.col("birth_day")).alias("birth_date"),
        date(pl.col("_died")).alias("death_date"),
        date(pl.col("_from")).alias("enrolled_from"),
        date(pl.col("_to")).alias("enrolled_to"),
        pl.format("clinic-{}", (u(7) * 12).floor().cast(pl.Int64) + 1).alias("clinic"),
        pl.format("pcp-{}", (u(8) * 400).floor().cast(pl.Int64) + 1).alias("pcp_id"),
    )


# What a typed export (Parquet from a database) holds for each kind of field.

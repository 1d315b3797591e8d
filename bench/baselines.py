"""The comparison points of the benchmark, all reading their thresholds from the pipeline's own data files:

* ``duckdb_sql``: classification + eligibility (docs/rules.md §1–7) as one DuckDB query over the scans: the
  decisions alone, validating nothing (a lower bound);
* ``duckdb_equivalent``: what an analyst who can write SQL would run instead of the pipeline, doing the
  same work — the scans' required/readable/range/date-order checks as one query with a reject flag per
  row, the decisions on the rows that pass, and the untreated-high-risk list joined against the
  medications (recognised osteoporosis drugs, oncology products excluded);
* ``pandas_row``: a straightforward pandas row-by-row function, as analysts often write it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from osteo_core.decide.rules import RuleSet
from schemas.scans import BOOLEAN_COLUMNS, SCANS_FIELDS, SIDED_COLUMNS, UNSIDED_SCORE_COLUMNS, UNSPECIFIED_T

TRUE_WORDS = "('true','1','yes','y','t')"


def parquet_source(files: str) -> str:
    return f"read_parquet('{files}', union_by_name = true)"


def duckdb_sql(scans_glob: str, rules: RuleSet, source: str | None = None) -> str:
    """One query: text → typed → basis, lowest T/Z, WHO category, FRAX adjustment, reasons, decision.

    ``source`` (a FROM item) replaces reading ``scans_glob``."""
    who, zc, adj, rec, nxt = (
        rules[k] for k in ("who_category", "z_category", "frax_adjustment", "recommendation", "next_dxa")
    )
    z_age = rules["diagnostic_basis"]["z_score_under_age"]
    min_vert = rules["sites"]["min_spine_vertebrae"]
    order = rules["sites"]["diagnostic"]
    num = lambda c: f"TRY_CAST(replace(replace(trim({c}), '%', ''), '\u2212', '-') AS DOUBLE)"  # noqa: E731
    rnd = lambda c: f"round({c} + sign({c}) * 1e-9, 1)"  # noqa: E731
    flag = lambda c: f"coalesce(lower(trim({c})) IN {TRUE_WORDS}, false)"  # noqa: E731
    sites_t = ", ".join(f"{rnd(site + '_t')} AS {site}_t" for site in order)
    sites_z = ", ".join(f"{rnd(site + '_z')} AS {site}_z" for site in order)
    usable = lambda site, kind: (  # noqa: E731
        f"CASE WHEN spine_levels_n IS NULL OR spine_levels_n >= {min_vert} THEN {site}_{kind} END"
        if site == "spine"
        else f"{site}_{kind}"
    )
    lowest = lambda kind: f"least({', '.join(usable(s, kind) for s in order)})"  # noqa: E731
    lowest_site = "CASE " + " ".join(f"WHEN {usable(s, 't')} = lowest_t THEN '{s}'" for s in order) + " END"
    reason_sql = []
    for reason in rules.reasons:
        cond = {
            "hip_or_vertebral_fracture": "hip_vert",
            "fragility_fracture": "fragility",
            "who_category": "true",
            "frax_hip_at_least": f"frax_hip_adj >= {reason.get('threshold')}",
            "frax_mof_at_least": f"frax_mof_adj >= {reason.get('threshold')}",
            "weight_below": f"weight_kg < {reason.get('threshold')}",
            "risk_factor": " OR ".join(f"{c}_b" for c in reason.get("columns", [])) or "false",
            "glucocorticoid_exposure": f"gc_mg >= {reason.get('mg_at_least')} AND gc_months >= {reason.get('months_at_least')}",
        }.get(reason["condition"], "false")
        cats = ", ".join(f"'{c}'" for c in reason.get("categories", []))
        if cats:
            cond = f"({cond}) AND who_category IN ({cats})"
        reason_sql.append(f"CASE WHEN basis = 't_score' AND coalesce({cond}, false) THEN '{reason['code']}' END")
    high = ">=" if adj["high_dose_inclusive"] else ">"
    flags = BOOLEAN_COLUMNS
    return f"""
WITH typed AS (
  SELECT exam_id, patient_id, TRY_CAST(exam_date AS DATE) AS exam_date,
    CASE WHEN lower(trim(sex)) IN ('f','female') THEN 'F' WHEN lower(trim(sex)) IN ('m','male') THEN 'M' END AS sex,
    TRY_CAST(birth_date AS DATE) AS birth_date, {num("age_years")} AS age_given,
    nullif(lower(trim(menopausal_status)), 'unknown') AS meno, {num("weight_kg")} AS weight_kg,
    {", ".join(f"{num(s + '_t')} AS {s}_t, {num(s + '_z')} AS {s}_z" for s in order)},
    len(string_split(spine_levels, ',')) + 0 AS spine_levels_raw, spine_levels,
    {num("frax_mof")} AS frax_mof, {num("frax_hip")} AS frax_hip, {num("glucocorticoid_mg_daily")} AS gc_mg,
    {num("glucocorticoid_months")} AS gc_months, {num("egfr")} AS egfr,
    {", ".join(f"{flag(c)} AS {c}_b" for c in flags)}
  FROM {source or parquet_source(scans_glob)}
), aged AS (
  SELECT *, coalesce(date_diff('year', birth_date, exam_date)
      - CASE WHEN strftime(exam_date, '%m%d') < strftime(birth_date, '%m%d') THEN 1 ELSE 0 END,
      floor(age_given)) AS age_years,
    CASE WHEN spine_levels IS NULL THEN NULL
         WHEN regexp_full_match(upper(replace(spine_levels, ' ', '')), 'L([1-4])-L?([1-4])')
         THEN TRY_CAST(regexp_extract(upper(replace(spine_levels, ' ', '')), 'L([1-4])-L?([1-4])', 2) AS INT)
            - TRY_CAST(regexp_extract(upper(replace(spine_levels, ' ', '')), 'L([1-4])-L?([1-4])', 1) AS INT) + 1
         ELSE len(string_split(spine_levels, ',')) END AS spine_levels_n,
    prior_fragility_fracture_b OR prior_hip_fracture_b OR prior_vertebral_fracture_b AS fragility,
    prior_hip_fracture_b OR prior_vertebral_fracture_b AS hip_vert
  FROM typed
), rounded AS (
  SELECT * REPLACE ({sites_t}, {sites_z}) FROM aged
), scored AS (
  SELECT *, {lowest("t")} AS lowest_t, {lowest("z")} AS lowest_z,
    CASE WHEN (sex = 'M' AND age_years < {z_age}) OR (sex = 'F' AND (meno = 'pre' OR (meno IS NULL AND age_years < {z_age})))
         THEN 'z_score' ELSE 't_score' END AS basis,
    -- least() skips NULLs: an unknown FRAX must stay unknown, not become the cap
    CASE WHEN frax_mof IS NOT NULL THEN
    round(least(frax_mof * CASE WHEN gc_mg {high} {adj["high_dose_mg"]} THEN {adj["high_dose_mof_multiplier"]}
                              WHEN gc_mg > 0 AND gc_mg < {adj["low_dose_mg_below"]} THEN {adj["low_dose_mof_multiplier"]}
                              ELSE 1 END, {adj["cap_percent"]}), 9) END AS frax_mof_adj,
    CASE WHEN frax_hip IS NOT NULL THEN
    round(least(frax_hip * CASE WHEN gc_mg {high} {adj["high_dose_mg"]} THEN {adj["high_dose_hip_multiplier"]}
                              WHEN gc_mg > 0 AND gc_mg < {adj["low_dose_mg_below"]} THEN {adj["low_dose_hip_multiplier"]}
                              ELSE 1 END, {adj["cap_percent"]}), 9) END AS frax_hip_adj
  FROM rounded
), categorised AS (
  SELECT *, {lowest_site} AS lowest_t_site,
    CASE WHEN basis <> 't_score' OR lowest_t IS NULL THEN NULL
         WHEN lowest_t >= {who["normal_t_at_or_above"]} THEN 'normal'
         WHEN lowest_t <= {who["osteoporosis_t_at_or_below"]} AND fragility THEN 'severe_osteoporosis'
         WHEN lowest_t <= {who["osteoporosis_t_at_or_below"]} THEN 'osteoporosis' ELSE 'osteopenia' END AS who_category,
    CASE WHEN basis <> 'z_score' OR lowest_z IS NULL THEN NULL
         WHEN lowest_z <= {zc["below_expected_z_at_or_below"]} THEN 'below_expected' ELSE 'within_expected' END AS z_category
  FROM scored
), decided AS (
  SELECT *, list_filter([{", ".join(reason_sql)}], lambda x: x IS NOT NULL) AS eligibility_reasons FROM categorised
), final AS (
  SELECT *, CASE WHEN basis = 'z_score' THEN
                   CASE WHEN z_category = 'below_expected' OR fragility THEN 'specialist_review' ELSE 'not_eligible' END
                 WHEN len(eligibility_reasons) > 0 THEN 'eligible'
                 WHEN who_category = 'osteopenia' AND frax_mof IS NULL AND frax_hip IS NULL THEN 'needs_frax'
                 ELSE 'not_eligible' END AS eligibility
  FROM decided
)
SELECT exam_id, patient_id, exam_date, sex, age_years, basis AS diagnostic_basis, lowest_t AS lowest_t_score,
  lowest_t_site, who_category, lowest_z AS lowest_z_score, z_category, frax_mof_adj AS frax_mof_adjusted,
  frax_hip_adj AS frax_hip_adjusted, eligibility, eligibility_reasons,
  CASE eligibility WHEN 'eligible' THEN
         CASE WHEN egfr < {rec["denosumab_if_egfr_below"]} OR bisphosphonate_intolerance_b THEN 'denosumab'
              ELSE 'oral_bisphosphonate' END
       WHEN 'needs_frax' THEN 'calculate_frax' WHEN 'specialist_review' THEN 'secondary_causes_workup'
       ELSE 'lifestyle_and_monitor' END AS recommendation,
  (exam_date + CASE WHEN gc_mg > 0 OR cancer_bone_loss_therapy_b THEN INTERVAL {nxt["years_if_glucocorticoids_or_cancer_therapy"]} YEAR
                    WHEN basis = 't_score' AND who_category = 'normal' AND len(eligibility_reasons) = 0
                    THEN INTERVAL {nxt["years_if_normal_without_reason"]} YEAR
                    ELSE INTERVAL {nxt["years_otherwise"]} YEAR END)::DATE AS next_dxa_due,
  '{rules.label}' AS rule_set
FROM final
"""


def _text_number(column: str) -> str:
    return f"TRY_CAST(replace(replace(trim({column}), '%', ''), '\u2212', '-') AS DOUBLE)"


def reject_flag_sql(source: str, as_of: dt.date, bounds: dict[str, Any]) -> str:
    """Every scan row with ``_reject``: a required cell missing or unreadable, a number that is not one or is
    out of its range (``data/validation/scans.toml``), no birth date and no age, no score at all, an exam
    after the as-of date or before the earliest one, a birth after the exam, FRAX hip above FRAX MOF."""
    # the bench registry: one hip, canonical columns under generic (which reads no unsited T-score column)
    fields = {f.name: f for f in SCANS_FIELDS if f.name not in (*SIDED_COLUMNS, UNSPECIFIED_T)}
    blank = lambda c: f"nullif(trim({c}), '') IS NULL"  # noqa: E731
    problems = [f"{blank(f.name)}" for f in SCANS_FIELDS if f.required]
    problems.append(f"NOT {blank('exam_date')} AND TRY_CAST(trim(exam_date) AS DATE) IS NULL")
    problems.append(f"NOT {blank('birth_date')} AND TRY_CAST(trim(birth_date) AS DATE) IS NULL")
    problems.append(f"NOT {blank('sex')} AND lower(trim(sex)) NOT IN ('f', 'female', 'm', 'male')")
    for name, field in fields.items():
        if field.kind != "number":
            continue
        value = _text_number(name)
        problems.append(f"NOT {blank(name)} AND {value} IS NULL")
        if field.range_key:
            low, high = bounds["ranges"][field.range_key]
            upper = f" OR {value} > {high}" if high != float("inf") else ""
            if name == "age_years":  # checked only when the birth date is blank
                problems.append(f"{blank('birth_date')} AND ({value} < {low}{upper})")
            else:
                problems.append(f"{value} < {low}{upper}")
    problems.append(f"{blank('birth_date')} AND {blank('age_years')}")
    problems.append(" AND ".join(blank(c) for c in UNSIDED_SCORE_COLUMNS if c != UNSPECIFIED_T))
    exam, birth = "TRY_CAST(trim(exam_date) AS DATE)", "TRY_CAST(trim(birth_date) AS DATE)"
    problems.append(f"{exam} > DATE '{as_of}' OR {exam} < DATE '{bounds['earliest_exam_date']}'")
    problems.append(f"{birth} > {exam}")
    problems.append(f"{_text_number('frax_hip')} > {_text_number('frax_mof')}")
    flag = " OR ".join(f"coalesce({p}, false)" for p in problems)
    return f"SELECT *, ({flag}) AS _reject FROM {source}"


def duckdb_equivalent(
    con: Any, scans: str, meds: str, rules: RuleSet, as_of: dt.date, bounds: dict[str, Any], gaps: dict[str, Any]
) -> None:
    """The pipeline's work as DuckDB SQL, left in ``con`` as tables ``checked`` (every row, ``_reject``),
    ``screening`` (the decisions of the rows that pass) and ``untreated`` (patient, latest exam)."""
    from osteo_core import reference

    con.register("drug_words", reference.drug_lookup().to_arrow())
    con.execute(f"CREATE OR REPLACE TABLE checked AS {reject_flag_sql(scans, as_of, bounds)}")
    passing = "(SELECT * EXCLUDE (_reject) FROM checked WHERE NOT _reject)"
    con.execute(f"CREATE OR REPLACE TABLE screening AS {duckdb_sql('', rules, source=passing)}")
    lookback = gaps["untreated_high_risk"]["lookback_days"]
    con.execute(f"""
CREATE OR REPLACE TABLE untreated AS
WITH treatment AS (
  SELECT trim(m.patient_id) AS patient_id, TRY_CAST(trim(m.event_date) AS DATE) AS event_date
  FROM {meds} m
  JOIN drug_words d ON d.key = regexp_replace(lower(trim(m.drug)), '\\s+', ' ', 'g')
  WHERE NOT d.oncology_brand
    AND NOT coalesce({_text_number("m.dose_mg")} = d.oncology_dose_mg, false)
    AND TRY_CAST(trim(m.event_date) AS DATE) <= DATE '{as_of}'
), latest AS (
  SELECT * FROM screening WHERE exam_date <= DATE '{as_of}'
  QUALIFY row_number() OVER (PARTITION BY patient_id ORDER BY exam_date DESC, exam_id DESC) = 1
)
SELECT l.patient_id, l.exam_id, l.exam_date AS since FROM latest l
WHERE l.eligibility = 'eligible' AND NOT EXISTS (
  SELECT 1 FROM treatment t
  WHERE t.patient_id = l.patient_id AND t.event_date >= l.exam_date - INTERVAL {lookback} DAY)
""")


def _number(text: Any) -> float | None:
    if text is None or text != text or str(text).strip() == "":
        return None
    try:
        return float(str(text).strip().rstrip("%").replace("\u2212", "-"))
    except ValueError:
        return None


def _date(text: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _flag(text: Any) -> bool:
    return isinstance(text, str) and text.strip().lower() in ("true", "1", "yes", "y", "t")


def pandas_row(row: Any, rules: RuleSet) -> dict[str, Any]:
    """Classification and eligibility of one row, the way a notebook often does it (row by row)."""
    exam_date, birth = _date(row["exam_date"]), _date(row["birth_date"])
    age = None
    if exam_date and birth:
        age = exam_date.year - birth.year - ((exam_date.month, exam_date.day) < (birth.month, birth.day))
    sex = str(row["sex"]).strip().upper()[:1]
    meno = row["menopausal_status"] if isinstance(row["menopausal_status"], str) else None
    z_age = rules["diagnostic_basis"]["z_score_under_age"]
    young = age is not None and age < z_age
    basis = (
        "z_score"
        if (sex == "M" and young) or (sex == "F" and (meno == "pre" or (meno is None and young)))
        else "t_score"
    )
    t_scores = {}
    for site in rules["sites"]["diagnostic"]:
        value = _number(row[f"{site}_t"])
        if value is not None:
            t_scores[site] = round(value + (1e-9 if value >= 0 else -1e-9), 1)
    lowest_site = min(t_scores, key=lambda s: (t_scores[s], rules["sites"]["diagnostic"].index(s)), default=None)
    lowest = t_scores.get(lowest_site) if lowest_site else None
    fragility = any(
        _flag(row[c]) for c in ("prior_fragility_fracture", "prior_hip_fracture", "prior_vertebral_fracture")
    )
    who = rules["who_category"]
    category = None
    if basis == "t_score" and lowest is not None:
        if lowest >= who["normal_t_at_or_above"]:
            category = "normal"
        elif lowest <= who["osteoporosis_t_at_or_below"]:
            category = "severe_osteoporosis" if fragility else "osteoporosis"
        else:
            category = "osteopenia"
    gc_mg, gc_months = _number(row["glucocorticoid_mg_daily"]), _number(row["glucocorticoid_months"])
    adj = rules["frax_adjustment"]
    high = gc_mg is not None and (
        gc_mg >= adj["high_dose_mg"] if adj["high_dose_inclusive"] else gc_mg > adj["high_dose_mg"]
    )
    low = gc_mg is not None and 0 < gc_mg < adj["low_dose_mg_below"]

    def adjusted(value: float | None, kind: str) -> float | None:
        if value is None:
            return None
        factor = adj[f"high_dose_{kind}_multiplier"] if high else adj[f"low_dose_{kind}_multiplier"] if low else 1
        return min(round(value * factor, 9), adj["cap_percent"])

    raw_mof, raw_hip = _number(row["frax_mof"]), _number(row["frax_hip"])
    mof, hip = adjusted(raw_mof, "mof"), adjusted(raw_hip, "hip")
    reasons = []
    if basis == "t_score":
        for reason in rules.reasons:
            cats = reason.get("categories")
            if cats and category not in cats:
                continue
            kind = reason["condition"]
            hit = (
                (
                    kind == "hip_or_vertebral_fracture"
                    and (_flag(row["prior_hip_fracture"]) or _flag(row["prior_vertebral_fracture"]))
                )
                or (kind == "fragility_fracture" and fragility)
                or kind == "who_category"
                or (kind == "frax_hip_at_least" and hip is not None and hip >= reason["threshold"])
                or (kind == "frax_mof_at_least" and mof is not None and mof >= reason["threshold"])
                or (kind == "risk_factor" and any(_flag(row[c]) for c in reason["columns"]))
                or (kind == "weight_below" and (_number(row["weight_kg"]) or 999) < reason["threshold"])
                or (
                    kind == "glucocorticoid_exposure"
                    and gc_mg is not None
                    and gc_months is not None
                    and gc_mg >= reason["mg_at_least"]
                    and gc_months >= reason["months_at_least"]
                )
            )
            if hit:
                reasons.append(reason["code"])
    eligibility = (
        "eligible"
        if reasons
        else ("needs_frax" if category == "osteopenia" and raw_mof is None and raw_hip is None else "not_eligible")
    )
    return {"exam_id": row["exam_id"], "who_category": category, "eligibility": eligibility, "reasons": reasons}

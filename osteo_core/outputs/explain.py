"""``osteo explain EXAM_ID``: the decision trail of one exam, as a clinician would check it.

It re-evaluates the published run's own rule file (copied into the run folder) on that exam's inputs,
with the same expressions the screen used, and prints each rule with its threshold and compared value.
Only that exam's data is printed; no birth date.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from osteo_core.decide.conditions import CONDITIONS
from osteo_core.decide.eligibility import reason_test
from osteo_core.decide.rules import load_rules
from osteo_core.decide.screening import decide
from osteo_core.errors import InputError
from osteo_core.publish.folder import CURRENT, EXAMS, FRACTURES, RULES_COPY, no_screen_here, table_files
from schemas.scans import BOOLEAN_COLUMNS, UNSPECIFIED_T, sided
from schemas.sites import HIP_SITES, SIDES, SITE_LABELS, UNSPECIFIED_SITE


def _show(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value + 0.0:g}"  # + 0.0 shows -0.0 as 0
    return str(value)


def explain(out: Path, exam_id: str) -> str:
    run = out / CURRENT
    exam_files = table_files(run, EXAMS)
    if not exam_files:
        raise no_screen_here(out)
    exams = pl.scan_parquet(exam_files, glob=False).filter(pl.col("exam_id") == exam_id)
    if exams.select(pl.len()).collect().item() == 0:
        raise InputError(
            exam_id, f"no valid exam with this id in {out} (quarantined exams are in the quarantine table)"
        )
    rules = load_rules(str(run / RULES_COPY))
    reasons = rules.reasons
    checks = [
        expr
        for number, reason in enumerate(reasons)
        for expr in (
            reason_test(reason).alias(f"_fired_{number}"),
            CONDITIONS[reason["condition"]].compared(reason).cast(pl.Utf8).alias(f"_value_{number}"),
        )
    ]
    fracture_files = table_files(run, FRACTURES)
    fractures = pl.scan_parquet(fracture_files, glob=False) if fracture_files else None
    row = decide(exams, rules, fractures).with_columns(checks).collect().row(0, named=True)
    return "\n".join(_lines(row, rules, reasons))


def _lines(row: dict[str, Any], rules, reasons: list[dict[str, Any]]) -> list[str]:
    who, zc, sites, adj = rules["who_category"], rules["z_category"], rules["sites"], rules["frax_adjustment"]
    z_age = rules["diagnostic_basis"]["z_score_under_age"]
    high_op = ">=" if adj["high_dose_inclusive"] else ">"
    lines = [
        f"Exam {row['exam_id']} of {row['exam_date']}  —  rule set {rules.label} ({rules['rule_set']['source']})",
        "",
        "Inputs used",
        f"  sex {row['sex']}, age {int(row['age_years'])} at the exam, menopausal status "
        f"{_show(row['menopausal_status'])}, weight {_show(row['weight_kg'])} kg, eGFR {_show(row['egfr'])}",
    ]
    for kind, label in (("t", "T-scores"), ("z", "Z-scores")):
        values = ", ".join(f"{SITE_LABELS[s]} {_show(row[f'{s}_{kind}'])}" for s in SITE_LABELS)
        lines.append(f"  {label}: {values}")
        hips = {s: [row.get(sided(side, s, kind)) for side in SIDES] for s in HIP_SITES}
        if any(v is not None for pair in hips.values() for v in pair):
            each = ", ".join(
                f"{SITE_LABELS[s]} left {_show(left)} right {_show(right)}" for s, (left, right) in hips.items()
            )
            lines.append(f"    both hips given ({each}): the lower hip stands for the exam")
    if row.get(UNSPECIFIED_T) is not None:  # a profile's [scores] unsited_t = "use": no site stated
        lines.append(
            f"  T-score at no stated site {_show(row[UNSPECIFIED_T])} (the profile uses it for the WHO category as"
            f" site {UNSPECIFIED_SITE}; a stated site wins a tie; never a BMD change)"
        )
    lines.append(
        f"  spine levels {_show(row['spine_levels'])}; diagnostic sites {', '.join(sites['diagnostic'])}"
        + (f", and {UNSPECIFIED_SITE} (the profile's unsited T-score)" if row.get(UNSPECIFIED_T) is not None else "")
        + f" (spine needs >= {sites['min_spine_vertebrae']} vertebrae)"
    )
    lines.append(
        f"  FRAX MOF {_show(row['frax_mof'])} %, hip {_show(row['frax_hip'])} %; glucocorticoids "
        f"{_show(row['glucocorticoid_mg_daily'])} mg/day for {_show(row['glucocorticoid_months'])} months"
    )
    lines.append("  " + ", ".join(f"{c} {_show(row[c])}" for c in BOOLEAN_COLUMNS))
    lines += [
        "",
        "Classification",
        f"  diagnostic basis {row['diagnostic_basis']} (Z-scores for men under {z_age}"
        " and premenopausal women, or women of unknown status under that age)",
        f"  lowest T-score {_show(row['lowest_t_score'])} at {_show(row['lowest_t_site'])}"
        + (f" ({row['lowest_t_side']} hip, the lower of both hips)" if row.get("lowest_t_side") else "")
        + "; WHO category "
        f"{_show(row['who_category'])} (normal >= {who['normal_t_at_or_above']}, osteoporosis <= "
        f"{who['osteoporosis_t_at_or_below']}, severe with a fragility fracture: "
        f"{_show(row['has_fragility_fracture'])})",
        f"  fractures export: {row['fracture_count']} fragility fracture(s) on or before the exam, latest "
        f"{_show(row['latest_fracture_date'])}",
        f"  lowest Z-score {_show(row['lowest_z_score'])}; Z category "
        + (_show(row["z_category"]) if row["diagnostic_basis"] == "z_score" else "not used (T-score basis)")
        + " "
        f"(below expected <= {zc['below_expected_z_at_or_below']})",
        f"  FRAX after glucocorticoid adjustment: MOF {_show(row['frax_mof_adjusted'])} %, hip "
        f"{_show(row['frax_hip_adjusted'])} % (high dose {high_op} {adj['high_dose_mg']} mg/day, "
        f"low dose < {adj['low_dose_mg_below']})",
        "",
        "Eligibility rules (basis t_score only)",
    ]
    for number, reason in enumerate(reasons):
        condition = CONDITIONS[reason["condition"]].describe(reason)
        if "categories" in reason:
            within = f"WHO category in {'/'.join(reason['categories'])}"
            condition = within if reason["condition"] == "who_category" else f"{within} and {condition}"
        tier = " [very high risk]" if reason.get("tier") == "very_high_risk" else ""
        mark = "x" if row[f"_fired_{number}"] else " "
        lines.append(f"  [{mark}] {reason['code']}{tier}: {condition}; value: {_show(row[f'_value_{number}'])}")
    reasons_text = ", ".join(row["eligibility_reasons"]) or "none"
    lines += [
        "",
        f"Result: {row['eligibility']} (reasons: {reasons_text})",
        f"Recommendation: {row['recommendation']} ({_recommendation_rule(rules)})",
        f"Next DXA due: {row['next_dxa_due']} ({_next_dxa_rule(rules)})",
    ]
    return lines


def _recommendation_rule(rules) -> str:
    rec = rules["recommendation"]
    parts = []
    if "very_high_risk" in rec:
        parts.append(f"{rec['very_high_risk']} when a very-high-risk reason applies")
    intolerance = " or bisphosphonate intolerance" if rec["denosumab_if_bisphosphonate_intolerance"] else ""
    parts.append(
        f"eligible: denosumab if eGFR < {rec['denosumab_if_egfr_below']}{intolerance}, else oral_bisphosphonate"
    )
    return "; ".join(parts)


def _next_dxa_rule(rules) -> str:
    years = rules["next_dxa"]
    return (
        f"+{years['years_if_glucocorticoids_or_cancer_therapy']} y with glucocorticoids or cancer therapy, "
        f"+{years['years_if_normal_without_reason']} y if normal without a reason, else +{years['years_otherwise']} y"
    )

"""docs/rules.md (``templates/rules.md``): the default rule set step by step, every number from its file; and
docs/rule_sets.md (``templates/rule_sets.md``, a ``rule_set.md`` each): every shipped rule set, its reasons
and how it differs from the default."""

from __future__ import annotations

from osteo_core.decide.conditions import CONDITIONS
from osteo_core.decide.rules import RuleSet, load_rules, shipped_rule_sets
from osteo_core.docgen.markdown import code_list, generated, render, section, table

DEFAULT_RULE_SET = "standard"


def _reason_rows(rules: RuleSet) -> list[list[str]]:
    rows = []
    for reason in rules.reasons:
        applies = ", ".join(reason.get("categories", [])) or "any category"
        tier = " (very-high-risk tier)" if reason.get("tier") == "very_high_risk" else ""
        condition = CONDITIONS[reason["condition"]]
        test = condition.describe(reason)
        if reason["condition"] == "who_category":
            test = "WHO category is " + " or ".join(reason["categories"])
        rows.append([f"`{reason['code']}`", applies + tier, test])
    return rows


def _reasons_table(rules: RuleSet) -> list[str]:
    return table(["reason", "applies to", "true when"], _reason_rows(rules))


def rules_page() -> str:
    rules = load_rules(DEFAULT_RULE_SET)
    basis, sites, who = rules["diagnostic_basis"], rules["sites"], rules["who_category"]
    z, frax, nxt, rec = rules["z_category"], rules["frax_adjustment"], rules["next_dxa"], rules["recommendation"]
    return render(
        "rules",
        generated=generated(__name__),
        name=rules.name,
        version=rules.version,
        file=DEFAULT_RULE_SET,
        source=rules["rule_set"]["source"],
        z_score_under_age=f"{basis['z_score_under_age']:g}",
        diagnostic_sites=code_list(sites["diagnostic"]),
        min_spine_vertebrae=str(sites["min_spine_vertebrae"]),
        score_decimals=str(sites["score_decimals"]),
        normal_t=f"{who['normal_t_at_or_above']:g}",
        osteoporosis_t=f"{who['osteoporosis_t_at_or_below']:g}",
        below_expected_z=f"{z['below_expected_z_at_or_below']:g}",
        high_dose_op="≥" if frax["high_dose_inclusive"] else ">",
        high_dose_mg=f"{frax['high_dose_mg']:g}",
        high_dose_mof=f"{frax['high_dose_mof_multiplier']:g}",
        high_dose_hip=f"{frax['high_dose_hip_multiplier']:g}",
        low_dose_below=f"{frax['low_dose_mg_below']:g}",
        low_dose_mof=f"{frax['low_dose_mof_multiplier']:g}",
        low_dose_hip=f"{frax['low_dose_hip_multiplier']:g}",
        cap_percent=f"{frax['cap_percent']:g}",
        reasons_table=_reasons_table(rules),
        needs_frax_categories=" or ".join(rules["eligibility"]["needs_frax_categories"]),
        denosumab_if_egfr_below=f"{rec['denosumab_if_egfr_below']:g}",
        or_intolerance=" or `bisphosphonate_intolerance`" if rec["denosumab_if_bisphosphonate_intolerance"] else "",
        years_if_glucocorticoids_or_cancer_therapy=str(nxt["years_if_glucocorticoids_or_cancer_therapy"]),
        years_if_normal_without_reason=str(nxt["years_if_normal_without_reason"]),
        years_otherwise=str(nxt["years_otherwise"]),
    )


def _differences(rules: RuleSet, base: RuleSet) -> list[str]:
    """Every difference from ``base``, in words: sections' values, then reasons added, removed, moved."""
    found = []
    for name, values in rules.values.items():
        if name in ("rule_set", "eligibility"):
            continue
        for key, value in values.items():
            if base.values.get(name, {}).get(key) != value:
                was = base.values.get(name, {}).get(key, "not set")
                found.append(f"`[{name}] {key}` = `{value}` ({DEFAULT_RULE_SET}: `{was}`)")
    mine = {r["code"]: r for r in rules.reasons}
    theirs = {r["code"]: r for r in base.reasons}
    for code in theirs.keys() - mine.keys():
        found.append(f"no reason `{code}`")
    for code in mine.keys() - theirs.keys():
        found.append(f"adds reason `{code}` ({CONDITIONS[mine[code]['condition']].describe(mine[code])})")
    for code in mine.keys() & theirs.keys():
        if mine[code] != theirs[code]:
            found.append(f"reason `{code}` differs: `{mine[code]}` ({DEFAULT_RULE_SET}: `{theirs[code]}`)")
    if rules["eligibility"]["needs_frax_categories"] != base["eligibility"]["needs_frax_categories"]:
        found.append(f"needs_frax for {rules['eligibility']['needs_frax_categories']}")
    return sorted(found)


def _rule_set(name: str, base: RuleSet) -> str:
    rules = load_rules(name)
    differences = ""
    if name != DEFAULT_RULE_SET:
        bullets = [f"- {d}" for d in _differences(rules, base)]
        differences = render("rule_set_differences", base=DEFAULT_RULE_SET, differences=bullets) + "\n"
    return section(
        "rule_set",
        name=name,
        version=rules.version,
        source=rules["rule_set"]["source"],
        differences=differences,
        reasons_table=_reasons_table(rules),
    )


def rule_sets_page() -> str:
    base = load_rules(DEFAULT_RULE_SET)
    return render(
        "rule_sets",
        generated=generated(__name__),
        rule_sets="\n\n".join(_rule_set(name, base) for name in shipped_rule_sets()),
    )

"""Rule sets: the clinical thresholds as reviewed data files under ``data/rules/``.

A rule set is validated when loaded: an unknown section, key, condition or parameter, a missing key, or
a value of the wrong type is an ``InputError`` naming the file and the key. Python reads every clinical
number from here; ``osteo_core.decide.conditions`` holds only the shape of each condition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from osteo_core.decide.conditions import CONDITIONS, Number
from osteo_core.errors import InputError
from osteo_core.shipped import Shipped
from schemas.sites import SITES

WHO_CATEGORIES = ("normal", "osteopenia", "osteoporosis", "severe_osteoporosis")
TIERS = ("base", "very_high_risk")

# section -> key -> expected Python type(s); keys ending in "?" are optional
SPEC: dict[str, dict[str, Any]] = {
    "rule_set": {"name": str, "version": str, "source": str},
    "diagnostic_basis": {"z_score_under_age": Number},
    "sites": {"diagnostic": list, "min_spine_vertebrae": int, "score_decimals": int},
    "who_category": {"normal_t_at_or_above": Number, "osteoporosis_t_at_or_below": Number},
    "z_category": {"below_expected_z_at_or_below": Number},
    "frax_adjustment": {
        "high_dose_mg": Number,
        "high_dose_inclusive": bool,
        "high_dose_mof_multiplier": Number,
        "high_dose_hip_multiplier": Number,
        "low_dose_mg_below": Number,
        "low_dose_mof_multiplier": Number,
        "low_dose_hip_multiplier": Number,
        "cap_percent": Number,
    },
    "eligibility": {"needs_frax_categories": list, "reasons": list},
    "recommendation": {
        "denosumab_if_egfr_below": Number,
        "denosumab_if_bisphosphonate_intolerance": bool,
        "very_high_risk?": str,
    },
    "next_dxa": {
        "years_if_glucocorticoids_or_cancer_therapy": int,
        "years_if_normal_without_reason": int,
        "years_otherwise": int,
    },
}


@dataclass(frozen=True)
class RuleSet:
    source_path: str
    values: dict[str, dict[str, Any]]

    @property
    def name(self) -> str:
        return self.values["rule_set"]["name"]

    @property
    def version(self) -> str:
        return self.values["rule_set"]["version"]

    @property
    def label(self) -> str:
        """What ``screening.rule_set`` holds: name and version."""
        return f"{self.name}@{self.version}"

    @property
    def reasons(self) -> list[dict[str, Any]]:
        return self.values["eligibility"]["reasons"]

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]


RULE_SETS = Shipped("rules", "rule set", "rule-set file")  # data/rules/NAME.toml, or the user's file


def shipped_rule_sets() -> list[str]:
    return RULE_SETS.names()


def load_rules(name_or_path: str) -> RuleSet:
    """A shipped rule set by name or a user's TOML file by path, validated."""
    path = RULE_SETS.resolve(name_or_path)
    raw = RULE_SETS.read(path)
    validate_rules(raw, str(path))
    return RuleSet(source_path=str(path), values=raw)


def _check_section(section: str, given: Any, keys: dict[str, Any], where: str) -> None:
    if not isinstance(given, dict):
        raise InputError(where, f"missing section [{section}]")
    plain = {k.rstrip("?"): v for k, v in keys.items()}
    for key in given:
        if key not in plain:
            raise InputError(where, f"unknown key '{key}' in [{section}]")
    for key, kind in keys.items():
        name = key.rstrip("?")
        if name not in given:
            if key.endswith("?"):
                continue
            raise InputError(where, f"missing key '{name}' in [{section}]")
        value = given[name]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise InputError(where, f"[{section}] {name} has the wrong type ({type(value).__name__})")


def validate_rules(raw: dict[str, Any], where: str) -> None:

    for section in raw:
        if section not in SPEC:
            raise InputError(where, f"unknown section [{section}]")
    for section, keys in SPEC.items():
        _check_section(section, raw.get(section), keys, where)
    diagnostic = raw["sites"]["diagnostic"]
    if not diagnostic or len(set(diagnostic)) != len(diagnostic) or not set(diagnostic) <= set(SITES):
        raise InputError(where, f"[sites] diagnostic must list some of {', '.join(SITES)}, each once")
    _check_categories(raw["eligibility"]["needs_frax_categories"], "[eligibility] needs_frax_categories", where)
    codes: set[str] = set()
    for number, reason in enumerate(raw["eligibility"]["reasons"], start=1):
        label = f"[[eligibility.reasons]] #{number}"
        if not isinstance(reason, dict):
            raise InputError(where, f"{label} must be a table")
        code, condition = reason.get("code"), reason.get("condition")
        if not isinstance(code, str) or not code:
            raise InputError(where, f"{label}: missing key 'code'")
        if not re.fullmatch(r"[a-z0-9_]+", code):
            raise InputError(where, f"{label}: code '{code}' may hold only a-z, 0-9 and _")
        label = f"reason '{code}'"
        if code in codes:
            raise InputError(where, f"{label} is listed twice")
        codes.add(code)
        if condition not in CONDITIONS:
            raise InputError(
                where, f"{label}: unknown condition '{condition}' (known: {', '.join(sorted(CONDITIONS))})"
            )
        allowed = {"code", "condition", "categories", "tier", "description"} | set(CONDITIONS[condition].params)
        for key in reason:
            if key not in allowed:
                raise InputError(where, f"{label}: unknown key '{key}' for condition '{condition}'")
        for key, kind in CONDITIONS[condition].params.items():
            if key not in reason:
                raise InputError(where, f"{label}: missing key '{key}'")
            if (isinstance(reason[key], bool) and kind is not bool) or not isinstance(reason[key], kind):
                raise InputError(where, f"{label}: '{key}' has the wrong type ({type(reason[key]).__name__})")
        if "categories" in reason:
            _check_categories(reason["categories"], f"{label}: categories", where)
        if reason.get("tier", "base") not in TIERS:
            raise InputError(where, f"{label}: tier must be one of {', '.join(TIERS)}")
    very_high = [r["code"] for r in raw["eligibility"]["reasons"] if r.get("tier") == "very_high_risk"]
    if very_high and "very_high_risk" not in raw["recommendation"]:
        raise InputError(where, "very_high_risk reasons need [recommendation] very_high_risk")


def _check_categories(values: Any, label: str, where: str) -> None:
    if not isinstance(values, list) or not values or not set(values) <= set(WHO_CATEGORIES):
        raise InputError(where, f"{label} must list WHO categories ({', '.join(WHO_CATEGORIES)})")

"""Rule sets: the clinical thresholds as reviewed data files under ``data/rules/``.

A rule set is validated when loaded: an unknown section or key, a missing key, or a value of the wrong
type is an ``InputError`` naming the file and the key. Python code reads numbers from here only.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osteo_core.errors import InputError
from osteo_core.resources import data_dir, load_toml

Number = (int, float)
SITES = ("spine", "total_hip", "femoral_neck", "radius33")

# section -> key -> expected Python type(s)
SPEC: dict[str, dict[str, Any]] = {
    "rule_set": {"name": str, "version": str, "source": str},
    "diagnostic_basis": {"z_score_under_age": Number},
    "sites": {"tie_order": list, "min_spine_vertebrae": int, "score_decimals": int},
    "who_category": {"normal_t_at_or_above": Number, "osteoporosis_t_at_or_below": Number},
    "z_category": {"below_expected_z_at_or_below": Number},
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

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]


def shipped_rule_sets() -> list[str]:
    return sorted(p.stem for p in (data_dir() / "rules").glob("*.toml"))


def load_rules(name_or_path: str) -> RuleSet:
    """A shipped rule set by name or a user's TOML file by path, validated against ``SPEC``."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        path = data_dir() / "rules" / f"{name_or_path}.toml"
        if not path.exists():
            raise InputError(name_or_path, f"unknown rule set (shipped: {', '.join(shipped_rule_sets())})")
    if not path.is_file():
        raise InputError(str(path), "rule-set file not found")
    try:
        raw = load_toml(path)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"rule set is not valid TOML ({exc})") from None
    _validate(raw, str(path))
    return RuleSet(source_path=str(path), values=raw)


def _validate(raw: dict[str, Any], where: str) -> None:
    for section in raw:
        if section not in SPEC:
            raise InputError(where, f"unknown section [{section}]")
    for section, keys in SPEC.items():
        given = raw.get(section)
        if not isinstance(given, dict):
            raise InputError(where, f"missing section [{section}]")
        for key in given:
            if key not in keys:
                raise InputError(where, f"unknown key '{key}' in [{section}]")
        for key, kind in keys.items():
            if key not in given:
                raise InputError(where, f"missing key '{key}' in [{section}]")
            value = given[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise InputError(where, f"[{section}] {key} has the wrong type ({type(value).__name__})")
    order = raw["sites"]["tie_order"]
    if sorted(order) != sorted(SITES):
        raise InputError(where, f"[sites] tie_order must list each of {', '.join(SITES)} once")

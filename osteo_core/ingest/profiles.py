"""Profiles: how a vendor's export headers and value formats map onto the canonical scans columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from osteo_core.errors import InputError
from osteo_core.ingest.fhir import FhirSettings, fhir_settings
from osteo_core.ingest.long_layout import LongLayout, long_layout
from osteo_core.ingest.readers import header_key
from osteo_core.shipped import Shipped
from schemas.parsing import DECIMAL_MARKS
from schemas.population import POPULATION_FIELDS, ROSTER_DERIVED
from schemas.scans import MENOPAUSAL_WORDS, PATIENT_FACTS, SCANS_COLUMNS, SEX_WORDS, UNSPECIFIED_T
from schemas.tables import GAPS_SCHEMA, SOURCE_FILE, SOURCE_ROW, WORKLIST_PATIENT_COLUMNS, catalog_column_descriptions

_KNOWN_SECTIONS = {"profile", "formats", "headers", "values", "long", "population", "fhir", "scores"}
UNSITED_T_CHOICES = ("quarantine", "use")  # [scores] unsited_t: what a T-score whose site is not stated becomes
_VALUE_KINDS = {"sex": SEX_WORDS, "menopausal": MENOPAUSAL_WORDS}


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    date_formats: list[str]
    headers: dict[str, str] = field(default_factory=dict)  # header_key(export header) -> canonical
    words: dict[str, dict[str, str | None]] = field(default_factory=dict)  # kind -> word -> code
    description: str = ""
    decimal: str = "."  # "," for exports written with a decimal comma (88,5)
    long: LongLayout | None = None  # one row per measurement (``[long]``); None for one row per exam
    # roster columns passed through to the worklist (``[population] routing``); None when the profile names
    # none: then every column of the roster that is not one of its fields is a routing column (``roster_routing``)
    routing: tuple[str, ...] | None = None
    fhir: FhirSettings | None = None  # a FHIR profile's settings (``[fhir]``): it reads FHIR Bulk Data exports
    # ``[scores] unsited_t = "use"``: a T-score whose site the export does not state is read as ``unspecified_t``
    # (the WHO category's lowest T-score, site ``unspecified``; never BMD change); by default it is quarantined
    unsited_t: bool = False

    def canonical_name(self, header: str) -> str | None:
        """The canonical column a scans header maps to, or ``None`` when neither the profile nor the
        canonical names know it (the column is kept in the raw layer and reported as unmapped)."""
        key = header_key(header)
        if self.long is not None and key in self.long.headers:
            return self.long.headers[key]
        if self.long is not None and key in PATIENT_FACTS:  # a patient row's death and record number
            return key
        if key in self.headers:
            return self.headers[key]
        if key == UNSPECIFIED_T and not self.unsited_t:
            return None  # an unsited T-score column is read only when the profile says so
        return key if key in SCANS_COLUMNS else None


def _routing(section: dict, where: str) -> tuple[str, ...] | None:
    """``[population] routing``: roster columns (by header) a caller needs to route a gap, such as the
    clinic or the primary-care provider; kept as text, never read as clinical data. None when not given."""
    unknown = set(section) - {"routing"}
    if unknown:
        raise InputError(where, f"unknown [population] setting(s): {', '.join(sorted(unknown))} (known: routing)")
    if "routing" not in section:
        return None
    names = section["routing"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise InputError(where, "[population] routing must be a list of column names")
    keys = tuple(header_key(n) for n in names)
    for key in keys:
        if not routing_name_ok(key):
            raise InputError(where, f"[population] routing column '{key}' must be a plain name not used by the screen")
    return tuple(dict.fromkeys(keys))


def routing_name_ok(key: str) -> bool:
    """Whether a roster column may be a routing column: a plain name that is none of the roster's fields, the
    worklist's columns (per gap and per patient) or ``osteo worklist``'s options (a ``--NAME`` filter)."""
    taken = {f.name for f in POPULATION_FIELDS} | set(ROSTER_DERIVED) | {SOURCE_FILE, SOURCE_ROW}
    taken |= set(GAPS_SCHEMA)  # the worklist's care_gaps columns …
    taken |= set(catalog_column_descriptions("worklist"))  # … its own (days_open, outreach_status, hidden …)
    taken |= set(WORKLIST_PATIENT_COLUMNS)  # … the per-patient list's (gaps, days_on_list …)
    taken |= {"out", "all", "format", "limit", "by_gap"}  # osteo worklist's own options
    taken -= {"mrn"}  # a roster's mrn is the worklist's mrn where the export gives none (publish.folder.VIEWS)
    return key.isidentifier() and not key.startswith("_") and key not in taken


def roster_routing(profile: Profile, columns: list[str], where: str) -> tuple[str, ...]:
    """The routing columns of a roster with these (canonical) columns: the profile's, else every column that is
    not one of the roster's fields. A column that cannot be one (it clashes with a worklist column or option) is
    refused, naming it (``InputError``, exit 2)."""
    if profile.routing is not None:
        return profile.routing
    fields = {f.name for f in POPULATION_FIELDS} | {SOURCE_FILE, SOURCE_ROW}
    extra = [c for c in columns if c not in fields and not c.startswith("_")]
    for name in extra:
        if not routing_name_ok(name):
            raise InputError(
                where,
                f"roster column '{name}' would be a routing column but clashes with a worklist column or option:"
                " rename it, or name the routing columns in the profile ([population] routing)",
            )
    return tuple(dict.fromkeys(extra))


PROFILES = Shipped("profiles", "profile", "profile file")  # data/profiles/NAME.toml, or the user's file


def shipped_profiles() -> list[str]:
    return PROFILES.names()


def fhir_profiles() -> list[str]:
    """The shipped profiles that read FHIR Bulk Data exports (a ``[fhir]`` section, their own or their base's)."""
    return [name for name in shipped_profiles() if load_profile(name).fhir is not None]


def _merged(base: dict, own: dict) -> dict:
    """``own`` over ``base``, table by table (a key ``own`` gives wins; a table is merged, never replaced)."""
    merged = dict(base)
    for key, value in own.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_tables else value
    return merged


def _with_base(raw: dict, path: Path) -> dict:
    """A profile that says ``[profile] extends = "NAME"`` (a shipped profile): that profile's settings, its own
    over them. One level: the base may not extend another."""
    base_name = raw.get("profile", {}).get("extends")
    if base_name is None:
        return raw
    if base_name not in shipped_profiles():  # a name, never a path
        raise InputError(str(path), f"[profile] extends must name a shipped profile ({', '.join(shipped_profiles())})")
    shipped = PROFILES.shipped(base_name)
    if not shipped.is_file():
        raise InputError(str(path), f"[profile] extends must name a shipped profile ({', '.join(shipped_profiles())})")
    base = PROFILES.read(shipped)
    if "extends" in base.get("profile", {}):
        raise InputError(str(path), f"[profile] extends '{base_name}', which extends another profile")
    own_about = {k: v for k, v in raw.get("profile", {}).items() if k != "extends"}
    settings = _merged(
        {k: v for k, v in base.items() if k != "profile"}, {k: v for k, v in raw.items() if k != "profile"}
    )
    return {**settings, "profile": own_about}


def _unsited_t(raw: dict, where: str) -> bool:
    section = raw.get("scores", {})
    unknown = set(section) - {"unsited_t"}
    if unknown:
        raise InputError(where, f"unknown [scores] setting(s): {', '.join(sorted(unknown))} (known: unsited_t)")
    choice = section.get("unsited_t", UNSITED_T_CHOICES[0])
    if choice not in UNSITED_T_CHOICES:
        raise InputError(where, f"[scores] unsited_t must be one of {', '.join(UNSITED_T_CHOICES)}")
    return choice == "use"


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (``data/profiles/NAME.toml``) or a user's TOML file by path."""
    path = PROFILES.resolve(name_or_path)
    raw = _with_base(PROFILES.read(path), path)
    unknown = set(raw) - _KNOWN_SECTIONS
    if unknown:
        raise InputError(str(path), f"unknown profile section(s): {', '.join(sorted(unknown))}")
    headers: dict[str, str] = {}
    for header, canonical in raw.get("headers", {}).items():
        if canonical not in SCANS_COLUMNS:
            raise InputError(str(path), f"header '{header}' maps to unknown column '{canonical}'")
        headers[header_key(header)] = canonical
    words = {kind: dict(base) for kind, base in _VALUE_KINDS.items()}
    for kind, extra in raw.get("values", {}).items():
        if kind not in _VALUE_KINDS:
            raise InputError(str(path), f"unknown value list [values.{kind}] (known: sex, menopausal)")
        for word, code in extra.items():
            canonical_codes = {v for v in _VALUE_KINDS[kind].values() if v} | {"unknown"}
            if code not in canonical_codes:
                raise InputError(str(path), f"[values.{kind}] '{word}' maps to unknown value '{code}'")
            words[kind][word.lower()] = None if code == "unknown" else code
    dates = raw.get("formats", {}).get("dates", ["%Y-%m-%d"])
    if not isinstance(dates, list) or not all(isinstance(d, str) for d in dates):
        raise InputError(str(path), "[formats] dates must be a list of strftime patterns")
    decimal = raw.get("formats", {}).get("decimal", ".")
    if decimal not in DECIMAL_MARKS:
        raise InputError(str(path), f"[formats] decimal must be one of {', '.join(repr(m) for m in DECIMAL_MARKS)}")
    about = raw.get("profile", {})
    long = long_layout(raw["long"], str(path)) if "long" in raw else None
    if long is not None:
        taken = sorted(set(long.headers) & set(headers))
        if taken:
            raise InputError(str(path), f"[long] and [headers] both map '{taken[0]}'")
    unsited_t = _unsited_t(raw, str(path))
    named = [*headers.values(), *(long.measurements.values() if long else ())]
    if not unsited_t and any(name == UNSPECIFIED_T or f"{name}_t" == UNSPECIFIED_T for name in named):
        raise InputError(str(path), f"'{UNSPECIFIED_T}' is read only with [scores] unsited_t = \"use\"")
    if "fhir" in raw and long is None:
        raise InputError(str(path), "[fhir] is for FHIR Bulk Data exports, read as long exports: [long] is needed")
    return Profile(
        fhir=fhir_settings(raw, str(path)) if "fhir" in raw else None,
        unsited_t=unsited_t,
        routing=_routing(raw.get("population", {}), str(path)),
        name=about.get("name", path.stem),
        source=str(path),
        date_formats=dates,
        headers=headers,
        words=words,
        description=about.get("description", ""),
        decimal=decimal,
        long=long,
    )

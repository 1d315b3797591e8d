"""Quality-measure specifications: ``data/measures/*.toml``, one file per measure, and the value sets they
name (``data/reference/measure_value_sets.toml``). Every number of a measure (ages, intake dates, windows,
look-backs) is read from there; ``osteo_core.measures.members`` holds only the shape of each step.

A spec is checked when loaded: a missing or unknown key, a value of the wrong type or an unknown value set is
a ``ValueError`` naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Any

from osteo_core.resources import load_toml, shipped_toml
from osteo_core.shipped import Shipped

VALUE_SETS = "reference/measure_value_sets.toml"
MEASURES = "measures"
MEASURE_FILES = Shipped(MEASURES, "measure", "measure file")  # data/measures/NAME.toml
ENROLMENT = ("around_index", "none", "on_period_end")  # what the roster must show (see MeasureSpec)
VALUE_SET_NAMES = ("fracture", "bone_density_test", "osteoporosis_medication", "osteoporosis_diagnosis")


@dataclass(frozen=True)
class DayOfYear:
    """A day named relative to the measurement year: ``year`` 0 is that year, -1 the one before."""

    year: int
    month: int
    day: int

    def of(self, measurement_year: int) -> dt.date:
        return dt.date(measurement_year + self.year, self.month, self.day)


@dataclass(frozen=True)
class Exclusion:
    reason: str
    value_set: str
    days_before_index: int | None  # an event in [index − days, index − 1]
    ever_before_period_end: bool  # an event on or before the end of the period
    yields_to_numerator: bool  # applies only to patients who do not meet the numerator


@dataclass(frozen=True)
class MeasureSpec:
    """One measure. ``enrolment``: ``around_index`` (continuous enrolment from ``months_before`` the index
    event to ``days_after`` it), ``on_period_end`` (alive and enrolled on the period's last day, or the as-of
    date when earlier), ``none`` (listed in the roster)."""

    id: str
    name: str
    version: str
    steward: str
    source: str
    path: str
    sex: str
    min_age_years: int
    max_age_years: int
    index_value_set: str | None  # None: a measure without an index event (screening)
    index_from: DayOfYear | None
    index_to: DayOfYear | None
    enrolment: str
    enrolment_months_before: int | None
    enrolment_days_after: int | None
    numerator_value_sets: tuple[str, ...]
    numerator_days_after: int | None  # [index, index + days]
    numerator_months_after: int | None  # [index, index + calendar months]
    numerator_ever: bool  # on or before the end of the period (or the as-of date)
    exclusions: tuple[Exclusion, ...]

    def period(self, measurement_year: int) -> tuple[dt.date, dt.date]:
        return calendar_period(measurement_year)


def calendar_period(year: int) -> tuple[dt.date, dt.date]:
    """A measurement year's first and last day (every shipped spec's ``kind = "calendar_year"``)."""
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def _get(
    table: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    optional: bool = False,
    signed: bool = False,
) -> Any:
    if key not in table:
        if optional:
            return None
        raise ValueError(f"{where}: '{key}' is missing")
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    if not signed and isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"{where}: '{key}' must not be negative")
    return value


def _known(table: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}")


def _value_set(name: str, where: str) -> str:
    if name not in VALUE_SET_NAMES:
        raise ValueError(f"{where}: unknown value set '{name}' (known: {', '.join(VALUE_SET_NAMES)})")
    return name


def _day(table: Any, where: str) -> DayOfYear:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected {{ year = …, month = …, day = … }}")
    _known(table, {"year", "month", "day"}, where)
    day = DayOfYear(
        _get(table, "year", int, where, signed=True), _get(table, "month", int, where), _get(table, "day", int, where)
    )
    try:
        day.of(2001)  # a common year: 29 February is not a day of every measurement year
    except ValueError:
        raise ValueError(f"{where}: not a day of every year") from None
    return day


def parse_spec(raw: dict[str, Any], path: str) -> MeasureSpec:
    """A measure spec from its TOML tables (``path`` names the file in errors)."""
    _known(raw, {"measure", "period", "population", "index_event", "enrolment", "numerator", "exclusions"}, path)
    measure = _get(raw, "measure", dict, path)
    _known(measure, {"id", "name", "version", "steward", "source"}, f"{path} [measure]")
    period = _get(raw, "period", dict, path)
    if period.get("kind") != "calendar_year" or set(period) != {"kind"}:
        raise ValueError(f'{path} [period]: only kind = "calendar_year" is supported')
    population = _get(raw, "population", dict, path)
    where = f"{path} [population]"
    _known(population, {"sex", "min_age_years", "max_age_years", "age_on"}, where)
    if _get(population, "age_on", str, where) != "period_end":
        raise ValueError(f'{where}: only age_on = "period_end" is supported')
    sex = _get(population, "sex", str, where)
    if sex not in ("F", "M"):
        raise ValueError(f'{where}: sex must be "F" or "M"')
    ages = (_get(population, "min_age_years", int, where), _get(population, "max_age_years", int, where))
    if ages[0] > ages[1]:
        raise ValueError(f"{where}: min_age_years is above max_age_years")
    index = raw.get("index_event")
    index_from = index_to = index_set = None
    if index is not None:
        where = f"{path} [index_event]"
        _known(index, {"value_set", "from", "to", "first"}, where)
        if _get(index, "first", bool, where) is not True:
            raise ValueError(f"{where}: only first = true (the first event is the index) is supported")
        index_set = _value_set(_get(index, "value_set", str, where), where)
        index_from, index_to = _day(index.get("from"), f"{where} from"), _day(index.get("to"), f"{where} to")
    enrolment = _get(raw, "enrolment", dict, path)
    where = f"{path} [enrolment]"
    _known(enrolment, {"required", "months_before", "days_after"}, where)
    required = _get(enrolment, "required", str, where)
    if required not in ENROLMENT or (required == "around_index" and index is None):
        raise ValueError(f"{where}: required must be one of {ENROLMENT} (around_index needs an [index_event])")
    around = required == "around_index"
    numerator = _get(raw, "numerator", dict, path)
    where = f"{path} [numerator]"
    _known(numerator, {"value_sets", "days_after_index", "months_after_index", "ever"}, where)
    windows = [k for k in ("days_after_index", "months_after_index", "ever") if k in numerator]
    if len(windows) != 1 or (index is None) != (windows == ["ever"]):
        raise ValueError(f"{where}: give one of days_after_index / months_after_index (with an index event) or ever")
    numerator_sets = tuple(_value_set(v, where) for v in _get(numerator, "value_sets", list, where))
    if not numerator_sets:
        raise ValueError(f"{where}: value_sets is empty")
    days_after = _get(numerator, "days_after_index", int, where, optional=True)
    months_after = _get(numerator, "months_after_index", int, where, optional=True)
    ever_met = bool(_get(numerator, "ever", bool, where, optional=True))
    exclusions = []
    for number, item in enumerate(raw.get("exclusions", []), start=1):
        where = f"{path} [[exclusions]] {number}"
        _known(
            item, {"reason", "value_set", "days_before_index", "ever_before_period_end", "yields_to_numerator"}, where
        )
        days = _get(item, "days_before_index", int, where, optional=True)
        ever = bool(_get(item, "ever_before_period_end", bool, where, optional=True))
        if (days is None) == (not ever) or (days is not None and index is None):
            raise ValueError(f"{where}: give days_before_index (with an index event) or ever_before_period_end")
        yields = bool(_get(item, "yields_to_numerator", bool, where, optional=True))
        value_set = _value_set(_get(item, "value_set", str, where), where)
        exclusions.append(Exclusion(_get(item, "reason", str, where), value_set, days, ever, yields))
    return MeasureSpec(
        id=_get(measure, "id", str, f"{path} [measure]"),
        name=_get(measure, "name", str, f"{path} [measure]"),
        version=_get(measure, "version", str, f"{path} [measure]"),
        steward=_get(measure, "steward", str, f"{path} [measure]"),
        source=_get(measure, "source", str, f"{path} [measure]"),
        path=path,
        sex=sex,
        min_age_years=ages[0],
        max_age_years=ages[1],
        index_value_set=index_set,
        index_from=index_from,
        index_to=index_to,
        enrolment=required,
        enrolment_months_before=_get(enrolment, "months_before", int, f"{path} [enrolment]", optional=not around),
        enrolment_days_after=_get(enrolment, "days_after", int, f"{path} [enrolment]", optional=not around),
        numerator_value_sets=numerator_sets,
        numerator_days_after=days_after,
        numerator_months_after=months_after,
        numerator_ever=ever_met,
        exclusions=tuple(exclusions),
    )


@cache
def load_measures() -> tuple[MeasureSpec, ...]:
    """Every shipped measure (``data/measures/*.toml``), in the order of their ids."""
    specs = [parse_spec(load_toml(path), f"data/{MEASURES}/{path.name}") for path in MEASURE_FILES.paths()]
    ids = [spec.id for spec in specs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"data/{MEASURES}: a measure id is used twice: {ids}")
    return tuple(sorted(specs, key=lambda spec: spec.id))


@cache
def value_sets() -> dict[str, Any]:
    """``data/reference/measure_value_sets.toml``: the osteoporosis-medication generics and the osteoporosis
    diagnosis code prefixes (checked against the drugs the tool recognises)."""
    raw = shipped_toml(VALUE_SETS)
    from osteo_core import reference

    known = set(reference.drug_lookup().get_column("generic").unique().to_list())
    generics = raw["osteoporosis_medication"]["generics"]
    unknown = sorted(set(generics) - known)
    if unknown:
        raise ValueError(f"data/{VALUE_SETS}: generics the drug list does not know: {unknown}")
    missing = sorted(set(VALUE_SET_NAMES) - set(raw))
    if missing:
        raise ValueError(f"data/{VALUE_SETS}: value sets missing: {missing}")
    return raw

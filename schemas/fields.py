"""Field metadata shared by the Pandera schemas, the README's table reference and ``osteo sql --tables``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # text | date | sex | number | boolean | menopausal | spine_levels
    description: str
    required: bool = False
    range_key: str | None = None  # key into data/validation/*.toml [ranges]


def fields_of_kind(fields: tuple[Field, ...], *kinds: str) -> list[str]:
    return [f.name for f in fields if f.kind in kinds]

"""Where the shipped data files (profiles, rule sets, reference lists) live."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

OUTREACH = "reference/outreach.toml"  # the worklist's statuses (osteo worklist mark): read for --help too

_REPO_DATA = Path(__file__).resolve().parent.parent / "data"
_WHEEL_DATA = Path(__file__).resolve().parent / "_data"


def data_dir() -> Path:
    """The ``data/`` folder: the repository's in a checkout, the packaged copy in a wheel."""
    return _REPO_DATA if _REPO_DATA.is_dir() else _WHEEL_DATA


def load_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


@cache
def shipped_toml(relative: str) -> dict[str, Any]:
    """A shipped TOML file under ``data/``, parsed once per process."""
    return load_toml(data_dir() / relative)

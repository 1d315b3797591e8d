"""A shipped name or a user's file: a rule set or a profile is a TOML file shipped under ``data/`` (named on the
command line) or a user's own file (given by its path), resolved by the one resolver here; the quality measures are
shipped files of the same kind (``data/measures/``), listed by it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osteo_core.errors import InputError
from osteo_core.resources import data_dir, load_toml


@dataclass(frozen=True)
class Shipped:
    """A kind of TOML file shipped as ``data/FOLDER/NAME.toml`` that a user may also give by path: rule sets,
    profiles, quality measures. The one resolver of "a shipped name or a user's file"."""

    folder: str  # under data/
    what: str  # what one file is, in messages: "rule set"
    file_word: str  # a missing file, in messages: "rule-set file"

    def paths(self) -> list[Path]:
        """Every shipped file of this kind, sorted."""
        return sorted((data_dir() / self.folder).glob("*.toml"))

    def names(self) -> list[str]:
        """The names a user may give (each shipped file's stem), sorted."""
        return sorted(p.stem for p in (data_dir() / self.folder).glob("*.toml"))

    def shipped(self, name: str) -> Path:
        """Where the shipped file of that name is (or would be)."""
        return data_dir() / self.folder / f"{name}.toml"

    def resolve(self, name_or_path: str) -> Path:
        """A path ending ``.toml`` or naming something that exists is the user's file; anything else is a
        shipped name. Exit 2 (``InputError``) for an unknown name, listing the shipped ones, or a missing file."""
        path = Path(name_or_path)
        if not (path.suffix == ".toml" or path.exists()):
            path = self.shipped(name_or_path)
            if not path.exists():
                raise InputError(name_or_path, f"unknown {self.what} (shipped: {', '.join(self.names())})")
        if not path.is_file():
            raise InputError(str(path), f"{self.file_word} not found")
        return path

    def read(self, path: Path) -> dict[str, Any]:
        """The file's TOML; exit 2 naming the file when it is not TOML."""
        try:
            return load_toml(path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(str(path), f"{self.what} is not valid TOML ({exc})") from None

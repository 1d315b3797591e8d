"""Paths read literally. Polars' ``scan_csv``/``scan_parquet``/``read_parquet`` take ``glob=False``; ``scan_ndjson``
and DuckDB's ``read_parquet`` always expand ``*``, ``?`` and ``[...]``, so ``scans[1].csv`` would read ``scans1.csv``.
For those, ``escaped`` writes each such character as a one-character class (``[[]``, ``[*]``, ``[?]``): the pattern
then matches exactly the file named, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

_GLOB = re.compile(r"([\[*?])")


def escaped(path: str | Path) -> str:
    """``path`` as a glob pattern that matches only itself (``a[1].ndjson`` → ``a[[]1].ndjson``)."""
    return _GLOB.sub(r"[\1]", str(path))

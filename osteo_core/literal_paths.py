"""Paths read literally. Polars' ``scan_csv``/``scan_parquet``/``read_parquet`` take ``glob=False``; ``scan_ndjson``
and DuckDB's ``read_parquet`` always expand ``*``, ``?`` and ``[...]``, so ``scans[1].csv`` would read ``scans1.csv``.
For those, ``escaped`` writes each such character as a one-character class (``[[]``, ``[*]``, ``[?]``): the pattern
then matches exactly the file named, and nothing else. (``pl.read_parquet_schema`` has no ``glob``: the schema is
read with ``pyarrow.parquet.read_schema``, which never expands a pattern.)

DuckDB's glob also splits a path at a backslash, so a path holding a backslash and one of those characters matches
nothing however it is written: ``duckdb_parquet`` then hands DuckDB the files as an Arrow dataset instead. And a
database file DuckDB opens cannot have a ``?`` (what follows is read as options) or a backslash (read as a folder
separator) in its path: ``duckdb_database`` has such a file written elsewhere and moved into place.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_GLOB = re.compile(r"([\[*?])")


def escaped(path: str | Path) -> str:
    """``path`` as a glob pattern that matches only itself (``a[1].ndjson`` → ``a[[]1].ndjson``)."""
    return _GLOB.sub(r"[\1]", str(path))


def duckdb_literal(path: str | Path) -> str | None:
    """``path`` as a quoted SQL string DuckDB's ``read_parquet`` reads as exactly that file (``escaped``, quotes
    doubled), or None where DuckDB cannot name it (a backslash beside a glob character: see the module's note)."""
    text = str(path)
    pattern = escaped(text)
    if pattern != text and "\\" in text:
        return None
    return "'" + pattern.replace("'", "''") + "'"


def duckdb_read_parquet(files: Sequence[Path]) -> str | None:
    """A DuckDB ``read_parquet`` (a ``FROM`` item) of exactly these Parquet files, over ``duckdb_literal``
    patterns, no column taken from a folder's name; None where DuckDB cannot name one of them."""
    named = [duckdb_literal(f) for f in files]
    if any(n is None for n in named):
        return None
    # hive_partitioning off: a folder named like ``k=v`` in the path would add a column ``k``
    return f"read_parquet([{', '.join(n for n in named if n is not None)}], hive_partitioning = false)"


def duckdb_parquet(con: duckdb.DuckDBPyConnection, files: Sequence[Path], name: str) -> str:
    """A ``FROM`` item for the rows of these Parquet files, read as exactly these files: ``duckdb_read_parquet``,
    or, where DuckDB cannot name one of them, an Arrow dataset of the files registered on ``con`` as ``name``
    (it lives as long as the connection: not for a stored view)."""
    found = duckdb_read_parquet(files)
    if found is not None:
        return found
    import pyarrow.dataset as pa_ds

    con.register(name, pa_ds.dataset([str(f) for f in files], format="parquet"))
    return name


@contextmanager
def duckdb_database(path: Path) -> Iterator[Path]:
    """Where DuckDB can write the database file ``path``: there, or, when its real path holds a ``?`` or a
    backslash (see the module's note; DuckDB resolves links, so a plain link does not help), a temporary folder,
    from which the finished file is moved to ``path``. DuckDB's own temporary files may be kept beside it."""
    if not {"?", "\\"} & set(str(path.resolve())):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="osteo-duckdb-") as plain:
        built = Path(plain) / path.name
        yield built
        shutil.move(built, path)

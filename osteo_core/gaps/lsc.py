"""Per-device least significant change (``--lsc FILE``): CSV or Parquet with device_id, site, lsc.

``site`` is spine, total_hip or femoral_neck; ``lsc`` a fraction of the earlier BMD (0.053 = 5.3 %).
Devices or sites not listed use the defaults in ``data/reference/care_gaps.toml``.

The file is read as an export is (``readers.read_table``: exactly the file named, never a pattern; encoding, BOM
and delimiter sniffed), and no message quotes a cell: a bad row is named by its number and column.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from osteo_core.errors import InputError
from osteo_core.ingest.readers import read_table
from schemas.sites import LSC_SITES as SITES

COLUMNS = ("device_id", "site", "lsc")


def load_device_lsc(path_text: str) -> pl.DataFrame:
    path = Path(path_text)
    if not path.is_file():
        raise InputError(str(path), "LSC file not found")
    frame = read_table(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(str(path), f"required column(s) missing: {', '.join(missing)}")
    frame = frame.select(pl.col("device_id"), pl.col("site"), pl.col("lsc").cast(pl.Float64, strict=False))
    checks = {
        "site": pl.col("site").is_null() | ~pl.col("site").is_in(SITES),
        "lsc": pl.col("lsc").is_null() | (pl.col("lsc") <= 0) | (pl.col("lsc") >= 1),
    }
    bad = (
        frame.with_row_index("row", offset=1)
        .filter(pl.any_horizontal(checks.values()))
        .select("row", *(test.alias(column) for column, test in checks.items()))
    )
    if bad.height:
        first = bad.row(0, named=True)
        column = next(c for c in checks if first[c])
        raise InputError(
            f"{path} data row {first['row']}, column {column}",
            f"site must be one of {', '.join(SITES)} and lsc a fraction between 0 and 1",
        )
    if frame.select(pl.struct("device_id", "site").is_duplicated().any()).item():
        raise InputError(str(path), "a device and site is listed twice")
    return frame

"""Per-device least significant change (``--lsc FILE``): CSV or Parquet with device_id, site, lsc.

``site`` is spine, total_hip or femoral_neck; ``lsc`` a fraction of the earlier BMD (0.053 = 5.3 %).
Devices or sites not listed use the defaults in ``data/reference/care_gaps.toml``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from osteo_core.errors import InputError
from schemas.tables import LSC_SITES as SITES


def load_device_lsc(path_text: str) -> pl.DataFrame:
    path = Path(path_text)
    if not path.is_file():
        raise InputError(str(path), "LSC file not found")
    try:
        frame = pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # noqa: BLE001 - unreadable file is a user error
        raise InputError(str(path), f"cannot be read ({str(exc).splitlines()[0][:200]})") from None
    missing = [c for c in ("device_id", "site", "lsc") if c not in frame.columns]
    if missing:
        raise InputError(str(path), f"required column(s) missing: {', '.join(missing)}")
    frame = frame.select(
        pl.col("device_id").cast(pl.Utf8), pl.col("site").cast(pl.Utf8), pl.col("lsc").cast(pl.Float64, strict=False)
    )
    bad = frame.filter(
        ~pl.col("site").is_in(SITES) | pl.col("lsc").is_null() | (pl.col("lsc") <= 0) | (pl.col("lsc") >= 1)
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(
            str(path),
            f"bad row (site {row['site']!r}, lsc {row['lsc']!r}): site must be one of "
            f"{', '.join(SITES)} and lsc a fraction between 0 and 1",
        )
    if frame.select(pl.struct("device_id", "site").is_duplicated().any()).item():
        raise InputError(str(path), "a device and site is listed twice")
    return frame

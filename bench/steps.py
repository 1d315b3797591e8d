"""One benchmark step in its own process: `python bench/steps.py STEP DATA FORMAT WORK`.

Prints one JSON line: wall seconds, peak RSS (MiB) of this process, and the number of scan rows.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path

import polars as pl


def _files(data: Path, fmt: str, kind: str) -> list[Path]:
    return sorted((data / fmt / kind).glob(f"*.{SUFFIX.get(fmt, fmt)}"))


SUFFIX = {"typed": "parquet"}  # the typed export: Parquet files with typed columns (``bench/run.py``)


def floor(data: Path, fmt: str, work: Path) -> int:
    """Read every input file and write it back as Parquet: the I/O floor."""
    rows = 0
    for kind in ("scans", "meds", "fractures"):
        for i, path in enumerate(_files(data, fmt, kind)):
            frame = pl.scan_csv(path, infer_schema=False) if fmt == "csv" else pl.scan_parquet(path)
            frame.sink_parquet(work / f"{kind}-{i:03d}.parquet")
        if kind == "scans":
            rows = pl.scan_parquet(sorted(work.glob("scans-*.parquet"))).select(pl.len()).collect().item()
    return rows


def pipeline(data: Path, fmt: str, work: Path) -> int:
    from osteo_core.pipeline.stages import ScreenRequest, run_screen

    manifest = run_screen(
        ScreenRequest(
            scans=[str(data / fmt / "scans")],
            meds=str(data / fmt / "meds"),
            fractures=str(data / fmt / "fractures"),
            population=str(data / "roster" / "roster.parquet"),  # bench/run.py writes it (issue 34: with a roster)
            out=str(work / "out"),
            as_of="2026-07-01",
            max_reject_rate=0.05,
            keep_runs=1,
        )
    )
    return manifest["rows"]["rows_in"]


def duckdb_step(data: Path, fmt: str, work: Path) -> int:
    import duckdb

    from bench.baselines import duckdb_sql
    from osteo_core.decide.rules import load_rules

    source = data / "parquet" / "scans" / "*.parquet"
    if fmt == "csv":  # DuckDB reads the CSV files itself, all columns as text
        source_sql = f"read_csv('{data / 'csv' / 'scans' / '*.csv'}', all_varchar = true, union_by_name = true)"
        sql = duckdb_sql(str(source), load_rules("standard")).replace(
            f"read_parquet('{source}', union_by_name = true)", source_sql
        )
    else:
        sql = duckdb_sql(str(source), load_rules("standard"))
    con = duckdb.connect()
    con.execute(f"COPY ({sql}) TO '{work / 'duckdb_screening.parquet'}' (FORMAT parquet)")
    return con.sql(f"SELECT count(*) FROM read_parquet('{work / 'duckdb_screening.parquet'}')").fetchall()[0][0]


def duckdb_equivalent_step(data: Path, fmt: str, work: Path) -> int:
    """The pipeline's work as DuckDB SQL (reject flags, decisions, untreated-high-risk list), written out."""
    import datetime as dt

    import duckdb

    from bench.baselines import duckdb_equivalent, parquet_source
    from osteo_core import reference
    from osteo_core.decide.rules import load_rules
    from osteo_core.resources import shipped_toml

    def source(kind: str) -> str:
        if fmt == "csv":  # DuckDB reads the CSV files itself, all columns as text
            return f"read_csv('{data / 'csv' / kind / '*.csv'}', all_varchar = true, union_by_name = true)"
        return parquet_source(str(data / "parquet" / kind / "*.parquet"))

    con = duckdb.connect(str(work / "equivalent.duckdb"))
    duckdb_equivalent(
        con,
        source("scans"),
        source("meds"),
        load_rules("standard"),
        dt.date(2026, 7, 1),
        shipped_toml("validation/scans.toml"),
        reference.care_gap_parameters(),
    )
    for table in ("screening", "untreated"):
        con.execute(f"COPY {table} TO '{work / (table + '.parquet')}' (FORMAT parquet)")
    return con.sql("SELECT count(*) FROM checked").fetchall()[0][0]


def pandas_step(data: Path, fmt: str, work: Path) -> int:
    """Row-by-row pandas on a 100,000-row sample; the time is scaled to all scan rows."""
    import pandas as pd

    from bench.baselines import pandas_row
    from osteo_core.decide.rules import load_rules

    rules = load_rules("standard")
    total = pl.scan_parquet(_files(data, "parquet", "scans")).select(pl.len()).collect().item()
    first = _files(data, fmt, "scans")[0]
    sample = 100_000
    started = time.perf_counter()
    frame = (
        pd.read_parquet(first)
        if fmt == "parquet"
        else pd.read_csv(first, dtype=str, keep_default_na=False, na_values=[""])
    )
    frame = frame.head(sample)
    out = pd.DataFrame([pandas_row(row, rules) for _, row in frame.iterrows()])
    out.to_parquet(work / "pandas_screening.parquet")
    elapsed = time.perf_counter() - started
    global _SCALED
    _SCALED = elapsed * total / len(frame)
    return total


def prefect_fixed(data: Path, fmt: str, work: Path) -> int:
    """A one-exam screen through the Prefect flow minus the same screen without Prefect."""
    from flows.screen import run_flow
    from osteo_core.pipeline.stages import ScreenRequest, run_screen

    tiny = work / "tiny.csv"
    pl.read_parquet(_files(data, "parquet", "scans")[0]).head(1).write_csv(tiny)
    request = ScreenRequest(scans=[str(tiny)], out=str(work / "tiny-out"), as_of="2026-07-01", max_reject_rate=1.0)
    t0 = time.perf_counter()
    run_screen(request)
    plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_flow(request)
    global _SCALED
    _SCALED = (time.perf_counter() - t0) - plain
    return 1


_SCALED: float | None = None


def peak_rss_mib() -> float:
    """This process's own high-water mark (VmHWM). ru_maxrss is not used: Linux carries it across exec,
    so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


STEPS = {
    "floor": floor,
    "pipeline": pipeline,
    "duckdb": duckdb_step,
    "duckdb_equivalent": duckdb_equivalent_step,
    "pandas": pandas_step,
    "prefect_fixed": prefect_fixed,
}

if __name__ == "__main__":
    step, data, fmt, work = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    rows = STEPS[step](data, fmt, work)
    seconds = time.perf_counter() - started if _SCALED is None else _SCALED
    rss = peak_rss_mib()
    print(json.dumps({"seconds": seconds, "rss_mib": rss, "rows": rows}))

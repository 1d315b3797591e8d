"""A split's peak memory, before and after bounding its row groups:
`python bench/split_memory.py ROSTER.parquet [WAYS [COPIES]]`.

Ingest splits each input file by patient partition in one streaming pass (``pipeline.partitions.sink_split``); the
worst case is one long file split many ways, such as a health system's whole roster in one file (60M rows, 200
partitions at 100M exams). This writes a file COPIES times as long as ROSTER (each copy's patient ids made
distinct), then splits it WAYS ways both ways below, each in a fresh process, and prints one JSON line for each:
seconds, peak RSS (MiB), the row-group size asked for, the largest written, the files and rows written.

    default      Polars' own row-group size (what ingest did before: each output holds a whole group in memory)
    sink_split   the pipeline's: ROWS_IN_FLIGHT // WAYS rows per group, whatever the file's length
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

_CHILD = """
import resource, sys, time, polars as pl
from pathlib import Path
from osteo_core.pipeline import partitions
from osteo_core.pipeline.partitions import PARTITION, partition_key, sink_split, split_row_group
source, target, ways, mode = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if len(sys.argv) > 5:  # a smaller bound (the test's): rows in flight, smallest group
    partitions.ROWS_IN_FLIGHT, partitions.SMALLEST_ROW_GROUP = int(sys.argv[5]), int(sys.argv[6])
frame = pl.scan_parquet(source, glob=False).with_columns(partition_key(ways))
started = time.perf_counter()
if mode == "default":
    pl.collect_all([frame.sink_parquet(pl.PartitionBy(target, key=PARTITION, include_key=False), mkdir=True, lazy=True)])
else:
    pl.collect_all([sink_split(frame, target, PARTITION, ways)])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process's high-water mark, MiB
print(time.perf_counter() - started, split_row_group(ways) if mode != "default" else None, peak)
"""


def _longer(roster: Path, copies: int, work: Path) -> Path:
    frame = pl.read_parquet(roster, glob=False)
    longer = pl.concat([frame.with_columns(pl.col("patient_id") + f"-{i}") for i in range(copies)])
    path = work / "roster.parquet"
    longer.write_parquet(path, row_group_size=600_000)  # about one group per 1M exams, as bench/run.py writes it
    return path


def main(roster: Path, ways: int, copies: int, bound: tuple[int, int] | None = None) -> list[dict]:
    """Both splits of ROSTER made COPIES times as long, WAYS ways; ``bound``: (rows in flight, smallest group) in
    place of the pipeline's, for a small file."""
    work = Path(tempfile.mkdtemp(prefix="osteo-split-memory-"))
    results = []
    try:
        source = _longer(roster, copies, work)
        rows = pl.scan_parquet(source, glob=False).select(pl.len()).collect().item()
        for mode in ("default", "sink_split"):
            target = work / mode
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(source), str(target), str(ways), mode, *map(str, bound or ())],
                check=True,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            seconds, group, peak = done.stdout.split()
            results.append(
                {
                    "mode": mode,
                    "rows": rows,
                    "ways": ways,
                    "split_seconds": round(float(seconds), 2),
                    "process_seconds": round(wall, 2),
                    "peak_rss_mib": round(float(peak)),
                    "row_group": None if group == "None" else int(group),
                    "files": sum(1 for _ in target.rglob("*.parquet")),
                    "rows_written": sum(pq.ParquetFile(f).metadata.num_rows for f in target.rglob("*.parquet")),
                    "largest_row_group": max(
                        (
                            meta.row_group(g).num_rows
                            for meta in (pq.ParquetFile(f).metadata for f in target.rglob("*.parquet"))
                            for g in range(meta.num_row_groups)
                        ),
                        default=0,
                    ),
                }
            )
            shutil.rmtree(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    arguments = sys.argv[1:]
    for line in main(
        Path(arguments[0]),
        int(arguments[1]) if len(arguments) > 1 else 200,
        int(arguments[2]) if len(arguments) > 2 else 5,
    ):
        print(json.dumps(line))

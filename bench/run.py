"""Benchmark harness: the floor, the pipeline, DuckDB and pandas on the same synthetic files.

    .venv/bin/python bench/run.py --exams 1000000 [--repeats 3] [--format parquet|csv|both] [--record]

1. Writes a deterministic synthetic registry (scans, ~0.5 medication events and ~0.05 fractures per
   exam, ~0.5 % invalid rows) as Parquet and CSV under bench/out/data-N/ (kept for later runs), every
   cell text, and a typed Parquet copy (`typed/`: each column that reads as its field's type in that type).
2. Times, each step in a fresh process (wall time, peak RSS), median of --repeats:
   floor     Polars reads every input file and writes it back as Parquet, nothing else;
   pipeline  the full screen (osteo_core.pipeline.stages.run_screen: ingest, validate, classify, rules, gaps, publish),
             with the registry's population roster (`roster`: never-screened patients, the quality measures);
   duckdb    classification + eligibility as one DuckDB query (bench/baselines.py), validating nothing;
   duckdb_equivalent  the same work as the pipeline in DuckDB: reject flag per row from the range and
             required checks, the decisions, the untreated-high-risk list joined against medications;
   pandas    the same decisions row by row in pandas on a 100,000-row sample, extrapolated.
   plus Prefect's fixed cost: a one-exam screen through the flow minus the same screen without it.
3. Prints the table and the ratios; --record appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CHUNK_PATIENTS = 400_000  # ~1M exams per file
SAMPLE = 100_000


def generate(exams: int) -> Path:
    import polars as pl

    from osteo_core.demo import synthetic

    folder = OUT / f"data-{exams}"
    done = folder / "DONE"
    if done.exists():
        return typed_copy(folder)
    for kind in ("scans", "meds", "fractures"):
        for fmt in ("parquet", "csv"):
            (folder / fmt / kind).mkdir(parents=True, exist_ok=True)
    written, chunk = 0, 0
    while written < exams:
        scans = synthetic.registry(CHUNK_PATIENTS, seed=11, first_patient=chunk * CHUNK_PATIENTS).head(exams - written)
        frames = {
            "scans": scans,
            "meds": synthetic.medications(scans, seed=11),
            "fractures": synthetic.fractures(scans, seed=11),
        }
        for kind, frame in frames.items():
            frame.write_parquet(folder / "parquet" / kind / f"{chunk:03d}.parquet")
            frame.write_csv(folder / "csv" / kind / f"{chunk:03d}.csv")
        written += scans.height
        chunk += 1
        print(f"  generated {written:,} exams", file=sys.stderr)
    counts = {
        k: pl.scan_parquet(folder / "parquet" / k / "*.parquet").select(pl.len()).collect().item()
        for k in ("scans", "meds", "fractures")
    }
    (folder / "counts.json").write_text(json.dumps(counts))
    done.touch()
    return typed_copy(folder)


def roster(data: Path) -> Path:
    """``data/roster/roster.parquet``: the population roster of the registry (``demo.synthetic.roster``: every
    scanned patient and a quarter as many never scanned, with clinic and pcp_id routing), written once."""
    import polars as pl

    from osteo_core.demo import synthetic

    target = data / "roster" / "roster.parquet"
    if target.exists():
        return target
    files = sorted((data / "parquet" / "scans").glob("*.parquet"))
    target.parent.mkdir(parents=True, exist_ok=True)
    columns = ("patient_id", "sex", "birth_date")
    if len(files) <= ROSTER_IN_ONE:  # the 10M roster of the tables in RESULTS.md, made from all scans at once
        scans = pl.scan_parquet(files).select(columns)
        synthetic.roster(scans.collect(), seed=34).write_parquet(target)
        return target
    # larger registries: one scans file (its own 400k patients) at a time, appended (all at once needs more than
    # 24 GiB at 100M); the never-scanned ids get the file's number, so they stay unique
    import pyarrow.parquet as pq

    writer = None
    try:
        for number, path in enumerate(files):
            part = synthetic.roster(pl.read_parquet(path, columns=list(columns)), seed=34)
            never = pl.col("patient_id").str.starts_with("Q")
            part = part.with_columns(
                pl.when(never)
                .then(pl.format("Q{}-{}", pl.lit(f"{number:04d}"), pl.col("patient_id")))
                .otherwise(pl.col("patient_id"))
                .alias("patient_id")
            ).to_arrow()
            writer = writer or pq.ParquetWriter(target.with_suffix(".tmp"), part.schema)
            writer.write_table(part)
    finally:
        if writer is not None:
            writer.close()
    target.with_suffix(".tmp").rename(target)
    return target


ROSTER_IN_ONE = 20  # scans files (about 1M exams each) a roster is made from at once


def typed_copy(folder: Path) -> Path:
    """``folder/typed``: the Parquet files as a typed export holds them (a column whose every cell reads as its
    field's type cast to it: ``synthetic.as_typed_export``), written once from ``folder/parquet``."""
    import polars as pl

    from osteo_core.demo.synthetic import as_typed_export
    from osteo_core.pipeline.request import FIELDS

    done = folder / "typed" / "DONE"
    if done.exists():
        return folder
    for kind in ("scans", "meds", "fractures"):
        (folder / "typed" / kind).mkdir(parents=True, exist_ok=True)
        for path in sorted((folder / "parquet" / kind).glob("*.parquet")):
            typed, _ = as_typed_export(pl.read_parquet(path), FIELDS[kind])
            typed.write_parquet(folder / "typed" / kind / path.name)
    done.touch()
    return folder


def _step(name: str, data: Path, fmt: str, work: Path) -> dict:
    """Run one step in a fresh Python process; it prints {"seconds", "rss_mib", "rows"}."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "steps.py"), name, str(data), fmt, str(work)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


ALL_STEPS = ("floor", "pipeline", "duckdb", "duckdb_equivalent", "pandas")


def measure(data: Path, fmt: str, repeats: int, steps: tuple[str, ...] = ALL_STEPS) -> dict[str, dict]:
    results = {}
    for name in steps:
        runs = [_step(name, data, fmt, OUT / "work") for _ in range(repeats if name != "pandas" else 1)]
        results[name] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "runs": [round(r["seconds"], 2) for r in runs],
            "rss_mib": max(r["rss_mib"] for r in runs),
            "rows": runs[0]["rows"],
        }
        print(f"  {fmt} {name}: {results[name]['runs']} s, peak {results[name]['rss_mib']:.0f} MiB", file=sys.stderr)
    return results


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}"


def table(exams: int, fmt: str, results: dict[str, dict], prefect_fixed: float) -> str:
    exam_rows = next(iter(results.values()))["rows"]
    lines = [
        f"### {exams:,} exams, {fmt} input",
        "",
        "| step | median wall | runs | rows/s (exams) | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        label = f"{name} (100k sample, extrapolated)" if name == "pandas" else name
        lines.append(
            f"| {label} | {r['seconds']:.2f} s | {', '.join(map(str, r['runs']))} | "
            f"{exam_rows / r['seconds']:,.0f} | {r['rss_mib'] / 1024:.2f} GiB |"
        )
    seconds = {name: r["seconds"] for name, r in results.items()}
    ratios = []
    if "pipeline" in seconds and "floor" in seconds:
        ratios.append(f"pipeline / floor = **{seconds['pipeline'] / seconds['floor']:.2f}**")
    if "pipeline" in seconds and "duckdb_equivalent" in seconds:
        ratios.append(f"pipeline / DuckDB-equivalent = **{seconds['pipeline'] / seconds['duckdb_equivalent']:.2f}**")
    for name in ("duckdb", "pandas"):
        if "pipeline" in seconds and name in seconds:
            ratios.append(f"{name} / pipeline = {seconds[name] / seconds['pipeline']:.2f}")
    if prefect_fixed:
        ratios.append(f"Prefect fixed cost (one-exam screen through the flow minus without it) = {prefect_fixed:.1f} s")
    if ratios:
        lines += ["", "; ".join(ratios)]
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exams", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--format",
        choices=("parquet", "csv", "typed", "both"),
        default="both",
        help="parquet and csv hold every cell as text; typed is Parquet with typed columns (both = parquet, csv)",
    )
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    parser.add_argument(
        "--steps", default=",".join(ALL_STEPS), help="comma-separated subset of " + ", ".join(ALL_STEPS)
    )
    args = parser.parse_args()
    started = time.perf_counter()
    data = generate(args.exams)
    roster(data)
    counts = json.loads((data / "counts.json").read_text())
    print(f"data: {counts} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    steps = tuple(s for s in ALL_STEPS if s in args.steps.split(","))
    if args.format == "typed" and set(steps) - {"floor", "pipeline"}:
        parser.error("--format typed times the floor and the pipeline only: add --steps floor,pipeline")
    prefect_fixed = _step("prefect_fixed", data, "parquet", OUT / "work")["seconds"] if steps == ALL_STEPS else 0.0
    formats = ("parquet", "csv") if args.format == "both" else (args.format,)
    report = [
        f"## Benchmark — `bench/run.py --exams {args.exams} --repeats {args.repeats} --format {args.format}"
        f"{'' if steps == ALL_STEPS else ' --steps ' + ','.join(steps)}`",
        "",
        f"Machine: {machine()}. Inputs: {counts['scans']:,} scan rows, {counts['meds']:,} medication "
        f"events, {counts['fractures']:,} fracture rows (~0.5 % invalid scan rows).",
        "",
    ]
    medians = {}
    for fmt in formats:
        results = measure(data, fmt, args.repeats, steps)
        medians[fmt] = results.get("pipeline", {}).get("seconds", 0.0)
        report.append(table(args.exams, fmt, results, prefect_fixed))
    if len(formats) == 2 and all(medians.values()):
        report.append(f"CSV / Parquet pipeline time = **{medians['csv'] / medians['parquet']:.2f}**\n")
    text = "\n".join(report)
    print(text)
    if args.record:
        with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()

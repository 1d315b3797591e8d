"""Run settings from ``OSTEO_*`` environment variables (one place, read once per process)."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OSTEO_")

    out: str = "osteo-out"  # default --out
    keep_runs: int = 5  # run folders kept under OUT/runs (the published one is never removed)
    max_reject_rate: float = 0.05
    max_shrink: float = 0.5  # refuse a run with fewer than half the last published run's valid exams
    partitions: int = 0  # patient partitions; 0 = one per 500,000 scan rows
    workers: int = 1  # partitions screened at once on this machine (each uses all cores through Polars)
    dask_address: str | None = None  # tcp://host:port of a Dask scheduler to run partitions on
    # osteo.duckdb: "copy" holds the tables themselves (works wherever the folder goes; costs a copy of the rows),
    # "views" only views over this run folder's Parquet files by absolute path (tiny; breaks if the folder moves)
    catalog: Literal["copy", "views"] = "copy"
    sql_threads: int = 0  # DuckDB threads of osteo sql and the notebook's connection; 0 = one per core
    prefect_telemetry: bool = False  # Prefect's anonymous usage data; off unless OSTEO_PREFECT_TELEMETRY=true


def settings() -> Settings:
    return Settings()

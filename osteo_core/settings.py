"""Run settings from ``OSTEO_*`` environment variables (one place, read once per process)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OSTEO_")

    out: str = "osteo-out"  # default --out
    keep_runs: int = 5  # run folders kept under OUT/runs (the published one is never removed)
    max_reject_rate: float = 0.05


def settings() -> Settings:
    return Settings()

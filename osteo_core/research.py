"""``osteo export-research``: de-identified copies of ``screening``, ``patients`` and ``care_gaps``.

* patient ids → keyed HMAC-SHA256 pseudonyms (key from an environment variable; refuses without one),
  computed inside DuckDB, so the same key gives the same pseudonyms in every run;
* every date → year and month (``YYYY-MM``), also inside the gap ``detail`` text;
* ages above 89 → 90; exam ids and device ids removed.
The rules live in ``data/reference/research_extract.toml``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb

from osteo_core.errors import InputError
from osteo_core.publish import CURRENT, MANIFEST
from osteo_core.resources import shipped_toml

_BLOCK = 64  # SHA-256 block size, for HMAC's key padding
TABLES = {
    "screening": {"drop": ["exam_id"], "dates": ["exam_date", "next_dxa_due"], "age": "age_years"},
    "patients": {"drop": ["latest_exam_id"], "dates": ["latest_exam_date", "next_dxa_due", "last_treatment_date"]},
    "care_gaps": {"drop": ["exam_id"], "dates": ["since"], "text_dates": ["detail"]},
}


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    k = key if len(key) <= _BLOCK else hashlib.sha256(key).digest()
    k = k.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x5C for b in k), bytes(b ^ 0x36 for b in k)


def research_key(params: dict[str, Any]) -> bytes:
    name = params["key"]["environment_variable"]
    key = os.environ.get(name, "")
    if len(key) < params["key"]["min_length"]:
        raise InputError(
            name,
            f"set a secret key of at least {params['key']['min_length']} characters; "
            "the extract is not written without one",
        )
    return key.encode()


def _select(table: str, columns: list[str], params: dict[str, Any]) -> str:
    spec = TABLES[table]
    ages = params["ages"]
    parts = []
    for column in columns:
        if column in spec["drop"]:
            continue
        if column == "patient_id":
            parts.append("sha256($opad || unhex(sha256($ipad || encode(patient_id)))) AS patient_pseudonym")
        elif column in spec["dates"]:
            parts.append(f"strftime({column}, '%Y-%m') AS {column}")
        elif column == spec.get("age"):
            parts.append(
                f"CASE WHEN {column} > {ages['top_coded_above']} THEN {ages['top_code']} ELSE {column} END AS {column}"
            )
        elif column in spec.get("text_dates", []):
            parts.append(f"regexp_replace({column}, '(\\d{{4}}-\\d{{2}})-\\d{{2}}', '\\1', 'g') AS {column}")
        else:
            parts.append(column)
    return ", ".join(parts)


def export_research(out: Path, dest: Path) -> dict[str, int]:
    params = shipped_toml("reference/research_extract.toml")
    opad, ipad = _hmac_pads(research_key(params))
    run = out / CURRENT
    if not (run / MANIFEST).exists():
        raise InputError(str(out), "no published screen here (run osteo screen first)")
    if dest.resolve() == out.resolve() or dest.resolve().is_relative_to(out.resolve()):
        raise InputError(str(dest), "--dest must be outside the output folder")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    con = duckdb.connect()
    written = {}
    try:
        for table in TABLES:
            source = str((run / f"{table}.parquet").resolve()).replace("'", "''")
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{source}')").fetchall()]
            target = str(tmp / f"{table}.parquet").replace("'", "''")
            con.execute(
                f"COPY (SELECT {_select(table, columns, params)} FROM read_parquet('{source}')) "
                f"TO '{target}' (FORMAT parquet)",
                {"opad": opad, "ipad": ipad},
            )
            written[table] = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0]
    finally:
        con.close()
    manifest = json.loads((run / MANIFEST).read_text())
    (tmp / "extract.json").write_text(
        json.dumps(
            {
                "source_run": manifest["run_id"],
                "as_of_month": manifest["as_of"][:7],
                "rule_set": manifest["rule_set"]["name"],
                "rule_set_version": manifest["rule_set"]["version"],
                "tables": written,
                "de_identification": params["reference"],
            },
            indent=2,
        )
        + "\n"
    )
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return written

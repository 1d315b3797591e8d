"""Issue 30 item 2: no message, log, Prefect state, stored exception or artifact holds a cell of an input.

Before: a scans CSV with one stray quote gave ``cannot be read (could not parse "P0000030,X000000242,2018-11-15,
F,1935-07-18,…`` on stderr, and the same text was stored in Prefect's database (``flow_run_state.message``) and
its exception storage under ``PREFECT_HOME``. Each screen here fails, as a user's would, through the installed
``osteo`` command and its own Prefect engine under a fresh ``PREFECT_HOME``; then stderr, stdout, every file under
``PREFECT_HOME`` (the database, its write-ahead log, result and exception storage) and the refused run's manifest are
searched for every patient id and birth date of the inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import exam, write_ndjson_export, write_scans_csv

OSTEO = Path(sys.executable).parent / "osteo"
AS_OF = "2026-01-01"


def _patients(count: int) -> list[dict]:
    return [
        exam(patient_id=f"PX{n:05d}Q", exam_id=f"EX{n:05d}Q", birth_date=f"19{40 + n % 30:02d}-0{1 + n % 9}-1{n % 10}")
        for n in range(count)
    ]


def _secrets(rows: list[dict]) -> set[str]:
    return {r["patient_id"] for r in rows} | {r["exam_id"] for r in rows} | {r["birth_date"] for r in rows}


def _run(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(home)
    return subprocess.run([str(OSTEO), *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


def _found_in(home: Path, secrets: set[str]) -> list[str]:
    """The files under ``home`` holding any secret (as UTF-8 text, as JSON would write it)."""
    hits = []
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: {s}" for s in secrets if s.encode() in data]
    return hits


def test_failed_screens_leave_no_patient_id_or_birth_date_in_any_message_log_state_or_artifact(tmp_path):
    home = tmp_path / "prefect-home"
    secrets: set[str] = set()

    # 1. a stray quote: exit 2 naming the file and line
    rows = _patients(40)
    secrets |= _secrets(rows)
    quoted = write_scans_csv(tmp_path / "quote.csv", rows)
    lines = quoted.read_text(encoding="utf-8").splitlines()
    lines[21] = '"' + lines[21]
    quoted.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stray = _run(["screen", "--scans", str(quoted), "--out", str(tmp_path / "o1"), "--as-of", AS_OF], home, tmp_path)
    assert stray.returncode == 2
    assert (
        stray.stderr.strip() == f"osteo: {quoted}: cannot be read as CSV (line 22: a quote opened there is never"
        " closed (a stray quote?))"
    )

    # 2. bad dates: every exam quarantined, the run refused (exit 3) with counts only
    bad = [dict(r, patient_id=r["patient_id"] + "B", exam_date="2024-02-30") for r in _patients(30)]
    secrets |= _secrets(bad) | {"2024-02-30"}
    dates = write_scans_csv(tmp_path / "dates.csv", bad)
    refused = _run(["screen", "--scans", str(dates), "--out", str(tmp_path / "o2"), "--as-of", AS_OF], home, tmp_path)
    assert refused.returncode == 3 and "quarantined" in refused.stderr

    # 3. a malformed NDJSON line among good ones: exit 2 naming the line
    patients = [
        {"resourceType": "Patient", "id": f"FP{n:04d}Z", "gender": "female", "birthDate": f"1951-03-{10 + n:02d}"}
        for n in range(12)
    ]
    secrets |= {p["id"] for p in patients} | {p["birthDate"] for p in patients}
    export = write_ndjson_export(tmp_path / "export", Patient=patients)
    text = (export / "Patient.ndjson").read_text(encoding="utf-8").splitlines()
    text[7] = text[7][:-1]  # the closing brace lost: not JSON
    (export / "Patient.ndjson").write_text("\n".join(text) + "\n", encoding="utf-8")
    broken = _run(["screen", "--scans", str(export), "--out", str(tmp_path / "o3"), "--as-of", AS_OF], home, tmp_path)
    assert broken.returncode == 2 and "Patient.ndjson: line 8" in broken.stderr

    said = "\n".join(p.stdout + p.stderr for p in (stray, refused, broken))
    assert not [s for s in secrets if s in said]
    stored = [f.read_bytes() for f in home.rglob("*") if f.is_file()]
    assert any(b"line 22: a quote opened there is never closed" in data for data in stored)  # the state was kept
    assert _found_in(home, secrets) == []
    manifests = [json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "o2").rglob("manifest.json")]
    assert manifests and not [s for s in secrets if s in json.dumps(manifests)]


def test_the_summary_artifact_shows_every_name_as_text_never_as_markup(tmp_path):
    """Before: a profile or rule set named ``<script>…</script>`` arrived in the Markdown as is."""
    from flows.artifacts import summary_markdown
    from osteo_core.pipeline.stages import ScreenRequest, run_screen

    hostile = "<script>alert(1)</script>"
    profile = tmp_path / "vendor.toml"
    profile.write_text(f'[profile]\nname = "{hostile}"\n', encoding="utf-8")
    rules = tmp_path / "rules.toml"
    standard = (Path(__file__).resolve().parents[2] / "data" / "rules" / "standard.toml").read_text(encoding="utf-8")
    rules.write_text(standard.replace('name = "standard"', f'name = "{hostile} | [x](javascript:y)"', 1), "utf-8")
    scans = write_scans_csv(tmp_path / "scans `[1]`.csv", _patients(3))
    request = ScreenRequest(
        scans=[str(scans)], out=str(tmp_path / "out"), as_of=AS_OF, profile=str(profile), rules=str(rules)
    )
    manifest = run_screen(request)
    assert manifest["profile"] == hostile and manifest["rule_set"]["name"].startswith(hostile)
    text = summary_markdown(manifest)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "](javascript" not in text and "\\[x\\]\\(javascript:y\\)" in text
    assert "scans \\`\\[1\\]\\`.csv" in text  # a file name is text too

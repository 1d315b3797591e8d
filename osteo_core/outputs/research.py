"""``osteo export-research``: de-identified copies of ``screening``, ``patients`` and ``care_gaps``.

* patient ids → keyed HMAC-SHA256 pseudonyms (key from an environment variable; refuses without one),
  computed inside DuckDB, so the same key gives the same pseudonyms in every run;
* every date → year and month (``YYYY-MM``), also inside the gap ``detail`` text;
* ages above 89 → 90; exam ids, device ids and medical record numbers (``patients.mrn``) removed.
The rules live in ``data/reference/research_extract.toml``.

``--dest`` is written only when it is new, an empty folder or a previous extract (recognised by the marker
and file list in its own ``extract.json``), and is replaced in one atomic swap; nothing else is ever deleted.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from osteo_core.errors import InputError
from osteo_core.literal_paths import duckdb_parquet
from osteo_core.publish.folder import CURRENT, MANIFEST, no_screen_here, read_manifest
from osteo_core.resources import shipped_toml

_BLOCK = 64  # SHA-256 block size, for HMAC's key padding
TABLES = {
    "screening": {"drop": ["exam_id"], "dates": ["exam_date", "next_dxa_due"], "age": "age_years"},
    "patients": {
        "drop": ["latest_exam_id", "mrn"],
        "dates": ["latest_exam_date", "next_dxa_due", "last_treatment_date"],
    },
    "care_gaps": {"drop": ["exam_id"], "dates": ["since", "first_seen"], "text_dates": ["detail"]},
}


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    k = key if len(key) <= _BLOCK else hashlib.sha256(key).digest()
    k = k.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x5C for b in k), bytes(b ^ 0x36 for b in k)


def research_key(params: dict[str, Any]) -> bytes:
    """The HMAC key from the environment; a short or repetitive key makes pseudonyms guessable, so it is refused.

    The message names the variable and the rule, never the key itself.
    """
    rules = params["key"]
    name, shortest, distinct = rules["environment_variable"], rules["min_length"], rules["min_distinct_characters"]
    key = os.environ.get(name, "")
    if not key:
        problem = "is not set"
    elif len(key) < shortest:
        problem = f"is shorter than {shortest} characters"
    elif len(set(key)) < distinct:
        problem = f"has fewer than {distinct} different characters"
    else:
        return key.encode()
    raise InputError(
        name,
        f"the key {problem}; set a secret key of at least {shortest} characters, {distinct} or more of them "
        "different; the extract is not written without one",
    )


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
    """Write the extract into a fresh hidden folder beside ``dest``, then put it at ``dest`` in one rename.

    ``dest`` must be new, an empty folder, or a previous extract (recognised by its own manifest); anything
    else is refused, so a user's files are never deleted. Only folders this call created are ever removed.
    """
    params = shipped_toml("reference/research_extract.toml")
    opad, ipad = _hmac_pads(research_key(params))
    run = (out / CURRENT).resolve()  # once: a screen published meanwhile must not mix two runs in one extract
    if not (run / MANIFEST).exists():
        raise no_screen_here(out)
    dest = dest.absolute()
    if dest.name in ("", ".."):
        dest = dest.resolve()
    if dest.resolve() == out.resolve() or dest.resolve().is_relative_to(out.resolve()):
        raise InputError(str(dest), "--dest must be outside the output folder")
    previous = _check_dest(dest)
    staging = _staging_folder(dest)
    try:
        written = _write_extract(run, staging, params, opad, ipad)
        old = _install(staging, dest, previous)
    except _Stranded:
        raise  # the staging name holds what was at dest: never remove it
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        try:
            shutil.rmtree(old)
        except OSError as exc:
            raise InputError(
                str(old), f"the new extract is in {dest}, but the previous one could not be removed ({exc.strerror})"
            ) from None
    return written


def _write_extract(run: Path, folder: Path, params: dict[str, Any], opad: bytes, ipad: bytes) -> dict[str, int]:
    """The de-identified tables and ``extract.json`` (with the marker and file list that make it ours)."""
    import pyarrow.parquet as pq

    con = duckdb.connect()
    written = {}
    try:
        for table in TABLES:
            # read as exactly that file: under an --out named ``out[1]`` the path is no pattern (literal_paths)
            source = duckdb_parquet(con, [(run / f"{table}.parquet").resolve()], f"_source_{table}")
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
            target = str(folder / f"{table}.parquet").replace("'", "''")  # written: a path DuckDB never expands
            con.execute(
                f"COPY (SELECT {_select(table, columns, params)} FROM {source}) TO '{target}' (FORMAT parquet)",
                {"opad": opad, "ipad": ipad},
            )
            written[table] = pq.read_metadata(folder / f"{table}.parquet").num_rows  # the file written, by its path
    finally:
        con.close()
    manifest = read_manifest(run)
    (folder / EXTRACT_MANIFEST).write_text(
        json.dumps(
            {
                "format": EXTRACT_FORMAT,
                "files": [f"{table}.parquet" for table in TABLES] + [EXTRACT_MANIFEST],
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
    return written


# --- where the extract goes: refuse what is not ours, replace what is in one step -------------------------

EXTRACT_FORMAT = "osteo-research-extract"
EXTRACT_MANIFEST = "extract.json"
_NOT_OURS = "--dest is not empty and is not a previous research extract; choose an empty or new folder"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class _Stranded(InputError):
    """A swap could not be undone: the staging folder holds what was at ``--dest``, so it must be kept."""


def is_previous_extract(folder: Path) -> bool:
    """True when ``folder`` holds only plain files that its own ``extract.json`` (with our marker) lists.

    One foreign entry (a user's note, a sub-folder, a link) makes it someone else's folder, never deleted.
    """
    try:
        manifest = json.loads((folder / EXTRACT_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("format") != EXTRACT_FORMAT:
        return False
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return False
    listed = {*files, EXTRACT_MANIFEST}
    try:
        with os.scandir(folder) as entries:
            return all(entry.name in listed and entry.is_file(follow_symlinks=False) for entry in entries)
    except OSError:
        return False


def _check_dest(dest: Path) -> bool:
    """Refuse a ``--dest`` we may not replace (exit 2); True when it holds a previous extract to swap out."""
    try:
        if dest.is_symlink():
            raise InputError(str(dest), "--dest is a symbolic link; give the folder it points to")
        if not dest.exists():
            return False
        if not dest.is_dir():
            raise InputError(str(dest), "--dest is a file, not a folder; choose an empty or new folder")
        with os.scandir(dest) as entries:
            if next(entries, None) is None:
                return False
    except OSError as exc:
        raise InputError(str(dest), f"cannot read --dest ({exc.strerror})") from None
    if is_previous_extract(dest):
        return True
    raise InputError(str(dest), _NOT_OURS)


def _staging_folder(dest: Path) -> Path:
    """A new hidden folder beside ``dest`` (same file system, so the final rename is atomic; a random name,
    so it cannot be a user's path), with the permissions ``dest`` has or a plain ``mkdir`` would give."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    except OSError as exc:
        raise InputError(str(dest.parent), f"cannot create the extract folder here ({exc.strerror})") from None
    try:
        if dest.is_dir():
            mode = dest.stat().st_mode & 0o7777
        else:
            mask = os.umask(0o077)
            os.umask(mask)
            mode = 0o777 & ~mask
        staging.chmod(mode)
    except OSError:
        pass  # mkdtemp's private 0700 is a safe fallback
    return staging


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _install(staging: Path, dest: Path, previous: bool) -> Path | None:
    """Put ``staging`` at ``dest``; returns where the previous extract now is (to remove), if there was one.

    The previous extract is checked again after it is moved aside, just before anything is deleted: a file
    added to it meanwhile puts everything back as it was and refuses.
    """
    if not previous:  # dest is absent or an empty folder: rename(2) replaces only an empty one
        try:
            os.rename(staging, dest)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise InputError(str(dest), _NOT_OURS) from None
            raise
        return None
    if _exchange(staging, dest):
        if is_previous_extract(staging):
            return staging  # the previous extract, now at the staging name
        try:
            undone = _exchange(staging, dest)
        except OSError:
            undone = False
        if not undone:
            raise _Stranded(str(dest), f"changed during the export; its contents are now in {staging}")
        raise InputError(str(dest), _NOT_OURS)
    aside = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        os.rename(dest, aside)  # onto mkdtemp's empty folder
    except OSError:
        aside.rmdir()
        raise
    try:
        if not is_previous_extract(aside):
            raise InputError(str(dest), _NOT_OURS)
        os.rename(staging, dest)
    except BaseException:
        try:
            os.rename(aside, dest)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)  # only the new extract: what was at dest stays in aside
            raise _Stranded(str(dest), f"changed during the export; its contents are now in {aside}") from exc
        raise
    return aside

"""``osteo export-research`` never deletes a user's files: ``--dest`` rules, atomic replacement, key strength."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import screen_synthetic, write_synthetic

from osteo_core.cli import main
from osteo_core.outputs import research

KEY = "a-research-key-of-decent-length"
OTHER_KEY = "another-research-key-entirely"
EXTRACT_FILES = {"screening.parquet", "patients.parquet", "care_gaps.parquet", "extract.json"}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One small screened registry, shared by every test (they only read it)."""
    folder = tmp_path_factory.mktemp("research-pub")
    screen_synthetic(write_synthetic(folder, 60, seed=11), folder / "out", "2026-07-01")
    return folder / "out"


@pytest.fixture(autouse=True)
def key(monkeypatch) -> None:
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", KEY)


def export(out: Path, dest: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["export-research", "--out", str(out), "--dest", str(dest)])
    return code, capsys.readouterr().err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to prove nothing was changed or removed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def pseudonyms(dest: Path) -> list[str]:
    return pl.read_parquet(dest / "patients.parquet").get_column("patient_pseudonym").to_list()


def assert_one_line_refusal(err: str, path: Path, reason: str) -> None:
    assert err.startswith("osteo: ") and err.strip().count("\n") == 0, err
    assert str(path) in err and reason in err, err


def test_dest_with_a_users_file_is_refused_and_left_untouched(out, tmp_path, capsys):
    dest = tmp_path / "x"
    dest.mkdir()
    (dest / "notes.txt").write_text("my own notes")
    code, err = export(out, dest, capsys)
    assert code == 2
    assert_one_line_refusal(err, dest, "is not empty and is not a previous research extract")
    assert snapshot(dest) == {"notes.txt": b"my own notes"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no staging folder left beside it


def test_a_users_sibling_tmp_folder_survives_an_export(out, tmp_path, capsys):
    mine = tmp_path / "x.tmp"
    mine.mkdir()
    (mine / "draft.csv").write_text("a,b\n1,2\n")
    assert export(out, tmp_path / "x", capsys)[0] == 0
    assert snapshot(mine) == {"draft.csv": b"a,b\n1,2\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x", "x.tmp"]


def test_new_and_empty_dest_folders_are_accepted(out, tmp_path, capsys):
    assert export(out, tmp_path / "deeper" / "new", capsys)[0] == 0
    assert {p.name for p in (tmp_path / "deeper" / "new").iterdir()} == EXTRACT_FILES
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o750)
    empty.chmod(0o750)
    assert export(out, empty, capsys)[0] == 0
    assert {p.name for p in empty.iterdir()} == EXTRACT_FILES
    assert empty.stat().st_mode & 0o777 == 0o750  # the folder's permissions are kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deeper", "empty"]


@pytest.mark.parametrize("exchange", ["renameat2", "two renames"])
def test_reexport_replaces_a_previous_extract_whole(out, tmp_path, capsys, monkeypatch, exchange):
    if exchange == "two renames":  # a system without renameat2(RENAME_EXCHANGE)
        monkeypatch.setattr(research, "_exchange", lambda a, b: False)
    dest = tmp_path / "x"
    assert export(out, dest, capsys)[0] == 0
    first = pseudonyms(dest)
    manifest = json.loads((dest / "extract.json").read_text())
    assert manifest["format"] == "osteo-research-extract" and set(manifest["files"]) == EXTRACT_FILES
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", OTHER_KEY)
    assert export(out, dest, capsys)[0] == 0
    assert not set(pseudonyms(dest)) & set(first)  # the new extract, not the old one
    assert {p.name for p in dest.iterdir()} == EXTRACT_FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no staging or old folder left behind


@pytest.mark.parametrize("foreign", ["file", "folder"])
def test_a_previous_extract_with_a_users_entry_added_is_refused(out, tmp_path, capsys, foreign):
    dest = tmp_path / "x"
    assert export(out, dest, capsys)[0] == 0
    if foreign == "file":
        (dest / "analysis.R").write_text("summary(x)")
    else:
        (dest / "figures").mkdir()
        (dest / "figures" / "fig1.txt").write_text("mine")
    before = snapshot(dest)
    code, err = export(out, dest, capsys)
    assert code == 2
    assert_one_line_refusal(err, dest, "is not a previous research extract")
    assert snapshot(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_a_folder_whose_extract_json_is_not_ours_is_refused(out, tmp_path, capsys):
    dest = tmp_path / "x"
    dest.mkdir()
    (dest / "extract.json").write_text(json.dumps({"files": ["extract.json"]}))  # no marker: not our manifest
    code, err = export(out, dest, capsys)
    assert code == 2 and "is not a previous research extract" in err
    assert snapshot(dest) == {"extract.json": b'{"files": ["extract.json"]}'}


def test_dest_that_is_a_file_is_refused(out, tmp_path, capsys):
    dest = tmp_path / "x"
    dest.write_text("not a folder")
    code, err = export(out, dest, capsys)
    assert code == 2
    assert_one_line_refusal(err, dest, "is a file")
    assert dest.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_dest_that_is_a_symbolic_link_is_refused(out, tmp_path, capsys):
    target = tmp_path / "real"
    assert export(out, target, capsys)[0] == 0
    before = snapshot(target)
    (tmp_path / "x").symlink_to(target)
    code, err = export(out, tmp_path / "x", capsys)
    assert code == 2 and "symbolic link" in err
    assert snapshot(target) == before and (tmp_path / "x").is_symlink()


def test_an_export_failing_midway_leaves_the_previous_extract_and_no_temp_folder(out, tmp_path, capsys, monkeypatch):
    dest = tmp_path / "x"
    assert export(out, dest, capsys)[0] == 0
    before = snapshot(dest)
    select = research._select

    def fail_on_care_gaps(table, columns, params):
        if table == "care_gaps":
            raise RuntimeError("disk went away")
        return select(table, columns, params)

    monkeypatch.setattr(research, "_select", fail_on_care_gaps)
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", OTHER_KEY)
    with pytest.raises(RuntimeError, match="disk went away"):
        main(["export-research", "--out", str(out), "--dest", str(dest)])
    assert snapshot(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


@pytest.mark.parametrize("exchange", ["renameat2", "two renames"])
def test_a_file_added_while_exporting_is_kept_and_the_swap_undone(out, tmp_path, capsys, monkeypatch, exchange):
    """The previous extract is checked again just before it would be deleted."""
    if exchange == "two renames":
        monkeypatch.setattr(research, "_exchange", lambda a, b: False)
    dest = tmp_path / "x"
    assert export(out, dest, capsys)[0] == 0
    write = research._write_extract

    def write_then_user_adds_a_file(*args):
        written = write(*args)
        (dest / "late.txt").write_text("added meanwhile")
        return written

    monkeypatch.setattr(research, "_write_extract", write_then_user_adds_a_file)
    before_extract = snapshot(dest)
    code, err = export(out, dest, capsys)
    assert code == 2 and "is not a previous research extract" in err
    assert snapshot(dest) == {**before_extract, "late.txt": b"added meanwhile"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ("abcdefghijklmno", False),  # 15 characters
        ("abcdefghabcdefgh", True),  # 16 characters, 8 different
        ("abcdefgabcdefgab", False),  # 16 characters, only 7 different
        ("aaaaaaaaaaaaaaaaaaaaaaaa", False),  # long but one character
    ],
)
def test_key_strength(out, tmp_path, capsys, monkeypatch, key, accepted):
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", key)
    code, err = export(out, tmp_path / "x", capsys)
    if accepted:
        assert code == 0 and (tmp_path / "x" / "extract.json").exists()
        return
    assert code == 2
    assert err.startswith("osteo: OSTEO_RESEARCH_KEY: ") and err.strip().count("\n") == 0, err
    assert key not in err and key[:8] not in err
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []


def test_every_date_column_of_an_exported_table_is_coarsened_or_dropped():
    """A date column added to a published table (care_gaps' first_seen, say) must not reach the extract whole."""
    import polars as pl

    from osteo_core.outputs.research import TABLES
    from schemas.tables import DTYPES

    for table, spec in TABLES.items():
        dated = {c for c, t in DTYPES[table].items() if t == pl.Date}
        assert dated <= set(spec["dates"]) | set(spec["drop"]), table

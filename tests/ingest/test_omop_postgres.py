"""Issue 31, items 1 and 5 on PostgreSQL: ``osteo screen --omop postgresql://HOST[:PORT]/DB --omop-schema NAME``
reads the Eunomia CDM from a real server (``postgres_server``, tests/postgres_server.py; ``make postgres``), the
credentials from PGUSER/PGPASSWORD only, and gives the same published tables as the Parquet folder. The server is
asked only for the needed columns of the needed concepts' rows: ``pg_stat_statements`` counts what it sent. Before:
exit 2, "a PostgreSQL CDM is not read yet"."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from osteo_core.cli import main
from osteo_core.ingest import omop

CDM = Path(__file__).resolve().parent.parent / "data" / "omop_synthea27nj"
AS_OF = "2022-10-10"
DXA_ROWS = 3  # Eunomia's measurement rows of a DXA LOINC concept (38265-5), among 10,040
NOT_DXA = 3004249  # LOINC 8480-6, systolic blood pressure: Eunomia's most frequent measurement concept
TABLES = ("person", "measurement", "concept", "death", "drug_exposure", "condition_occurrence", "procedure_occurrence")


def _screen(source: str | Path, out: Path, *more: str) -> int:
    return main(
        ["screen", "--omop", str(source), "--out", str(out), "--as-of", AS_OF, "--profile", "omop_unsited_t", *more]
    )


def _published(out: Path) -> dict[str, pl.DataFrame]:  # as tests/ingest/test_omop.py compares them
    tables = ("screening", "care_gaps", "patients", "treatment_intervals")
    return {t: pl.read_parquet(out / f"{t}.parquet").drop("rule_set", strict=False) for t in tables}


def _schema_of_views(server, schema: str, leave_out: str | None = None, **tables: str) -> None:
    """``schema``: a view of each CDM table of ``cdm`` but ``leave_out``, or the SELECT given for it."""
    with server.connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        for table in TABLES:
            if table != leave_out:
                conn.execute(f"CREATE VIEW {schema}.{table} AS {tables.get(table, f'SELECT * FROM cdm.{table}')}")


@pytest.fixture
def credentials(postgres_server, monkeypatch):
    for name, value in postgres_server.environment().items():
        monkeypatch.setenv(name, value)
    return postgres_server


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prefect_engine, postgres_server) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("omop_postgres")
    assert _screen(CDM, folder / "parquet") == 0
    with pytest.MonkeyPatch.context() as patch:
        for name, value in postgres_server.environment().items():
            patch.setenv(name, value)
        assert _screen(postgres_server.url(), folder / "postgres", "--omop-schema", "cdm") == 0
    return {"parquet": folder / "parquet", "postgres": folder / "postgres"}


def test_the_eunomia_cdm_from_postgresql_gives_the_same_published_tables_as_from_parquet(runs, postgres_server):
    expected = _published(runs["parquet"])
    for table, frame in _published(runs["postgres"]).items():
        assert frame.equals(expected[table]), table
    assert expected["screening"].height == 3 and expected["patients"].height == 28
    manifest = json.loads((runs["postgres"] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["omop"]["source"] == postgres_server.url() and manifest["omop"]["schema"] == "cdm"
    assert manifest["omop"]["values_from_source_value"] == 3
    assert "@" not in manifest["omop"]["source"]
    # each table's rows as the server counts them, not as the filtered pull holds them: the same accounting
    parquet = json.loads((runs["parquet"] / "manifest.json").read_text(encoding="utf-8"))["omop"]["tables"]
    assert manifest["omop"]["tables"] == parquet and parquet["measurement"]["rows"] == 10_040
    secret = postgres_server.password.encode()
    assert not [p for p in runs["postgres"].rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_a_postgres_url_reads_the_same_cdm(credentials):
    con = omop.open_cdm(credentials.url("postgres"), "cdm")
    try:
        assert con.execute("SELECT count(*) FROM person").fetchone()[0] == 28
        assert con.execute("SELECT count(*) FROM measurement").fetchone()[0] == DXA_ROWS
    finally:
        con.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://osteo_test:{password}@{host}:{port}/warehouse",
        "postgres://:{password}@{host}:{port}/warehouse",
        "postgresql://{host}:{port}/warehouse?sslmode=prefer&password={password}",
        "postgresql://osteo_test@{host}:{port}/warehouse",
    ],
)
def test_a_url_naming_a_password_or_user_is_refused_without_echoing_it(postgres_server, tmp_path, capsys, url):
    given = url.format(password="Sekr3t-pw", host=postgres_server.host, port=postgres_server.port)
    assert _screen(given, tmp_path / "out", "--omop-schema", "cdm") == 2
    said = capsys.readouterr()
    assert said.err.count("\n") == 1 and "names no user or password" in said.err and "PGPASSWORD" in said.err
    assert "Sekr3t" not in said.err + said.out and given not in said.err and "osteo_test" not in said.err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def damaged_schemas(postgres_server) -> None:
    _schema_of_views(postgres_server, "no_person", leave_out="person")
    _schema_of_views(
        postgres_server,
        "no_value",
        measurement="SELECT measurement_id, person_id, measurement_concept_id FROM cdm.measurement",
    )
    _schema_of_views(postgres_server, "no_loinc", concept="SELECT * FROM cdm.concept WHERE vocabulary_id <> 'LOINC'")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("no_person", "(schema no_person): table 'person' missing"),
        ("no_value", "(schema no_value): table 'measurement': column 'measurement_date' missing"),
        ("no_loinc", "(schema no_loinc): table 'concept' holds no LOINC concept"),
        (None, "(schema public): table 'person' missing"),  # the default schema, empty here
    ],
)
def test_a_bad_cdm_in_postgresql_is_one_line_naming_the_table(
    credentials, damaged_schemas, tmp_path, capsys, schema, message
):
    more = ("--omop-schema", schema) if schema else ()
    assert _screen(credentials.url(), tmp_path / "out", *more) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{credentials.url()} {message}" in err
    assert not (tmp_path / "out").exists()


def test_a_server_not_reachable_or_a_wrong_password_is_one_line_naming_host_and_database(
    credentials, monkeypatch, tmp_path, capsys
):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _screen(f"postgresql://127.0.0.1:{closed}/warehouse", tmp_path / "a", "--omop-schema", "cdm") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"host 127.0.0.1, port {closed}, database warehouse" in err
    assert "cannot be reached" in err
    monkeypatch.setenv("PGPASSWORD", "Wr0ng-pw")
    assert _screen(credentials.url(), tmp_path / "b", "--omop-schema", "cdm") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {credentials.port}, database warehouse" in err
    assert "user or password was refused" in err and "Wr0ng" not in err and "osteo_test" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def bulky(postgres_server) -> str:
    """Schema ``bulky``: the CDM with 100,000 more measurements of a concept no DXA result has."""
    _schema_of_views(postgres_server, "bulky", measurement="SELECT * FROM cdm.measurement")
    with postgres_server.connect() as conn:
        conn.execute("DROP VIEW bulky.measurement")
        conn.execute("CREATE TABLE bulky.measurement AS SELECT * FROM cdm.measurement")
        conn.execute(
            "INSERT INTO bulky.measurement (measurement_id, person_id, measurement_concept_id, measurement_date,"
            " value_as_number, measurement_source_value, value_source_value)"
            f" SELECT 1000000 + g, 1 + g % 28, {NOT_DXA}, DATE '2015-01-01' + g % 2000, 120 + g % 40, '8480-6',"
            " (120 + g % 40)::text FROM generate_series(1, 100000) g"
        )
    return "bulky"


def _rows_sent(conn, table: str) -> int:
    """Rows the server sent for the statements reading ``bulky.<table>`` (``pg_stat_statements``)."""
    return conn.execute(
        "SELECT coalesce(sum(rows), 0) FROM pg_stat_statements WHERE query LIKE %s",
        [f'COPY (SELECT % FROM "bulky"."{table}" %'],
    ).fetchone()[0]


def test_only_the_needed_concepts_rows_and_columns_leave_the_server(credentials, bulky):
    with credentials.connect() as conn:
        assert conn.execute("SELECT count(*) FROM bulky.measurement").fetchone()[0] == 10_040 + 100_000
        conn.execute("SELECT pg_stat_statements_reset()")
        con = omop.open_cdm(credentials.url(), bulky)
        try:
            assert con.execute("SELECT count(*) FROM measurement").fetchone()[0] == DXA_ROWS
            assert {r[0] for r in con.execute("DESCRIBE measurement").fetchall()} == set(
                omop.settings()["tables"]["required"]["measurement"]
            )
            concepts = con.execute("SELECT count(*) FROM concept").fetchone()[0]
        finally:
            con.close()
        assert _rows_sent(conn, "measurement") == DXA_ROWS  # not 110,040
        assert _rows_sent(conn, "concept") == concepts < 50  # of 2,294
        assert _rows_sent(conn, "person") == 28
        conn.execute("SELECT pg_stat_statements_reset()")  # the checks before a run: the persons, no event
        con = omop.open_cdm(credentials.url(), bulky, events=False)
        assert con.execute("SELECT count(*) FROM measurement").fetchone()[0] == 0
        con.close()
        assert _rows_sent(conn, "measurement") == _rows_sent(conn, "drug_exposure") == 0
        assert _rows_sent(conn, "concept") == 1 and _rows_sent(conn, "person") == 28

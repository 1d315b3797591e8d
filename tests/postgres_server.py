"""A real PostgreSQL server for the OMOP tests (``postgres_server``, a session fixture tests/conftest.py imports):
Debian's ``postgresql`` (``make postgres`` installs it; ``make test`` runs that first), started once per test
session in a temporary data directory on a free loopback port, and stopped at the end. PostgreSQL refuses to run
as root: as root the server runs as the ``postgres`` account (made by Debian's package), else as an
``osteo-postgres`` system account made here."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

EUNOMIA = Path(__file__).resolve().parent / "data" / "omop_synthea27nj"
ACCOUNT = "osteo-postgres"  # made (as root) only when Debian's postgres account is missing
SUPERUSER = "osteo_test"
DATABASE = "warehouse"
PG_TYPES = {
    pl.Int8: "smallint",
    pl.Int16: "smallint",
    pl.Int32: "integer",
    pl.Int64: "bigint",
    pl.Float32: "real",
    pl.Float64: "double precision",
    pl.Utf8: "text",
    pl.Date: "date",
    pl.Boolean: "boolean",
}


@dataclass(frozen=True)
class Postgres:
    """A running server: its superuser's password is given to the code under test in PGPASSWORD only."""

    host: str
    port: int
    database: str
    user: str
    password: str

    def url(self, scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.host}:{self.port}/{self.database}"

    def environment(self) -> dict[str, str]:
        return {"PGUSER": self.user, "PGPASSWORD": self.password}

    def connect(self, database: str | None = None):
        import psycopg

        url = f"postgresql://{self.host}:{self.port}/{database or self.database}"
        return psycopg.connect(url, user=self.user, password=self.password, autocommit=True)


def _binary(name: str) -> str | None:
    """On the PATH, else Debian's versioned folder (``/usr/lib/postgresql/15/bin``; newest version first)."""
    found = shutil.which(name)
    if found:
        return found
    versions = [p for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if p.parts[-3].isdigit()]
    return str(max(versions, key=lambda p: int(p.parts[-3]))) if versions else None


def _account() -> pwd.struct_passwd | None:
    """Who runs the server: ourselves, unless we are root (then an unprivileged account, made if missing)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", ACCOUNT):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
         ACCOUNT],
        capture_output=True, text=True,
    )  # fmt: skip
    try:  # another pytest worker may have made it meanwhile
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        pytest.fail(f"PostgreSQL refuses to run as root, and the account {ACCOUNT} could not be made: {made.stderr}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as(account: pwd.struct_passwd | None, command: list[str], **options) -> subprocess.CompletedProcess:
    switch = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    return subprocess.run(command, env=environment, capture_output=True, text=True, **switch, **options)


def load_cdm(server: Postgres, schema: str, folder: Path = EUNOMIA) -> None:
    """Every ``*.parquet`` of ``folder`` as a table of ``schema`` (types as the Parquet's; NULLs kept)."""
    from psycopg import sql

    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for file in sorted(folder.glob("*.parquet")):
            frame = pl.read_parquet(file)
            columns = [
                sql.SQL("{} {}").format(
                    sql.Identifier(name),
                    sql.SQL(
                        "timestamp"
                        if isinstance(dtype, pl.Datetime)
                        else f"numeric({dtype.precision}, {dtype.scale})"
                        if isinstance(dtype, pl.Decimal)
                        else PG_TYPES[dtype.base_type()]
                    ),
                )
                for name, dtype in frame.schema.items()
            ]
            table = sql.Identifier(schema, file.stem)
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(columns)))
            with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL server of this session, with ``pg_stat_statements`` (what each statement sent), and the Eunomia
    CDM in schema ``cdm`` of database ``warehouse``."""
    initdb, pg_ctl, postgres = _binary("initdb"), _binary("pg_ctl"), _binary("postgres")
    if not (initdb and pg_ctl and postgres):
        pytest.fail("the OMOP PostgreSQL tests need a PostgreSQL server: run `make postgres`")
    account = _account()
    home = Path(tempfile.mkdtemp(prefix="osteo-pg-"))  # not under pytest's folder: the account must reach it
    data, log, password, started = home / "data", home / "server.log", secrets.token_urlsafe(18), False
    try:
        (home / "pwfile").write_text(password + "\n", encoding="utf-8")
        if account is not None:
            os.chown(home, account.pw_uid, account.pw_gid)
            os.chown(home / "pwfile", account.pw_uid, account.pw_gid)
        made = _as(
            account,
            [initdb, "-D", str(data), "-U", SUPERUSER, f"--pwfile={home / 'pwfile'}", "--auth-local=trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
        )  # fmt: skip
        (home / "pwfile").unlink()
        assert made.returncode == 0, made.stderr[-2000:]
        port = _free_port()
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{data}'\n"
                "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_utility = on\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        run = _as(account, [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"])
        started = True
        assert run.returncode == 0, run.stderr[-2000:] + (log.read_text()[-2000:] if log.exists() else "")
        server = Postgres("127.0.0.1", port, DATABASE, SUPERUSER, password)
        with server.connect("postgres") as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        with server.connect() as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        load_cdm(server, "cdm")
        yield server
    finally:
        if started:
            _as(account, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(home, ignore_errors=True)

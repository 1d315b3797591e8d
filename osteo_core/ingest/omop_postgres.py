"""An OMOP CDM in PostgreSQL: ``osteo screen --omop postgresql://HOST[:PORT]/DB --omop-schema NAME`` (default
``public``), read into the same in-memory DuckDB views as a folder or DuckDB file (``omop.open_cdm``), so that
``omop.check`` and ``omop.extract`` run unchanged on it.

Credentials come from libpq's environment (``PGUSER``, ``PGPASSWORD``, ``PGSERVICE`` …) or ``~/.pgpass``, never the
URL: a URL naming a user or password is refused (exit 2) without being echoed, so the URL the manifest records holds
none. The server is asked, in one read-only snapshot, for only what the extraction can use (never a whole
``measurement``): the ids of the ``concept`` rows the shared code tables recognise (the DXA LOINC grid, RxNorm codes
and drug names, SNOMED CT fractures, DXA procedures), then each table's needed columns (``omop.toml``) and only the
rows of those concepts; a drug or condition row is also pulled when its source value names a known RxNorm code or
an ICD-10 fracture or osteoporosis prefix, as ``extract`` reads them. These filters only ever keep more than
``extract`` does (never less): ``extract`` makes the final choice. The other tables (``person``, ``death``,
``observation_period``, ``cdm_source``: a row or a few per person) are read whole, their needed columns only.
Each pull is a ``COPY (SELECT …) TO STDOUT`` in CSV, read by Arrow in the column's own type (integers, floats,
dates, timestamps; any other type as its text, which ``extract`` casts as it casts a CSV folder's).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pyarrow import csv as pa_csv

from osteo_core import reference
from osteo_core.errors import InputError
from osteo_core.resources import shipped_toml

SCHEMA = "public"  # --omop-schema's default for a PostgreSQL CDM
CONNECT_TIMEOUT = 10  # seconds, unless the URL (connect_timeout) or PGCONNECT_TIMEOUT says otherwise
CREDENTIALS = ("user", "password", "sslpassword")  # never in the URL: it is kept in the manifest and shell history
FORM = "postgresql://HOST[:PORT]/DB"
EVENTS = ("measurement", "drug_exposure", "condition_occurrence", "procedure_occurrence")  # pulled filtered
ARROW_TYPES = {
    "smallint": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "real": pa.float64(),
    "double precision": pa.float64(),
    "date": pa.date32(),
    "timestamp without time zone": pa.timestamp("us"),
}  # any other type (numeric, text, varchar …) is read as its text: extract casts what it reads


def connection_settings(source: str) -> dict[str, str]:
    """The URL's settings; refused (exit 2, the URL never echoed) when libpq cannot read it or it names a user or
    a password."""
    try:
        given = conninfo_to_dict(source)
    except psycopg.Error:
        raise InputError("--omop", f"not a PostgreSQL URL libpq can read ({FORM})") from None
    named = [key for key in CREDENTIALS if key in given]
    if named:
        raise InputError(
            "--omop",
            f"a PostgreSQL URL names no user or password ({FORM}; this one names a {' and a '.join(named)}, not"
            " repeated here): set PGUSER and PGPASSWORD, or use ~/.pgpass",
        )
    return {k: str(v) for k, v in given.items()}


def where(given: dict[str, str]) -> str:
    """Host, port and database as libpq resolves them (the URL, else PGHOST, PGPORT, PGDATABASE)."""
    host = given.get("host") or given.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = given.get("port") or os.environ.get("PGPORT") or "5432"
    database = given.get("dbname") or os.environ.get("PGDATABASE") or "the user's default"
    return f"host {host}, port {port}, database {database}"


def _reason(exc: psycopg.Error) -> str:
    """Why the connection failed, in our words (libpq's own may name the user)."""
    said = str(exc).lower()
    if exc.sqlstate in ("28P01", "28000") or "authentication" in said or "no password" in said or "role" in said:
        return "the user or password was refused (PGUSER and PGPASSWORD, or ~/.pgpass)"
    if exc.sqlstate == "3D000" or ("database" in said and "does not exist" in said):
        return "no such database"
    if "timeout" in said:
        return "no answer in time"
    return "the server cannot be reached"


def open_views(
    source: str,
    schema: str | None,
    tables: dict[str, dict[str, list[str]]],
    events: bool = True,
    row_counts: str = "_table_rows",
) -> tuple[duckdb.DuckDBPyConnection, str]:
    """The CDM at the URL ``source`` as views of an in-memory DuckDB, one per table of ``tables`` (``omop.toml``'s
    required and optional) found in ``schema``, and the name to give it in messages (the URL, which holds no
    credential, and the schema). With ``events`` false the event tables (``EVENTS``) are given without rows and
    ``concept`` with one LOINC concept: enough for ``omop.check`` and the persons' checks, before a run extracts.
    A CDM missing a table or column is given without any row: ``omop.check`` names what is missing. With the
    event rows, a table named ``row_counts`` holds each event table's own row count (the accounting's)."""
    given = connection_settings(source)
    schema = schema or SCHEMA
    named = f"{source} (schema {schema})"
    extra: dict[str, Any] = {}
    if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
        extra["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in given and not os.environ.get("PGAPPNAME"):
        extra["application_name"] = "osteo-screen"
    try:
        conn = psycopg.connect(source, **extra)
    except psycopg.Error as exc:
        raise InputError(named, f"cannot connect to PostgreSQL ({where(given)}): {_reason(exc)}") from None
    con = duckdb.connect(":memory:")
    try:
        conn.read_only = True  # one read-only snapshot of every table, never a write to the warehouse
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.cursor() as cur:
            cur.execute("SET client_encoding = 'UTF8'")  # text as Arrow reads it, whatever the database's encoding
            cur.execute("SET DateStyle = 'ISO, YMD'")  # dates as Arrow reads them, whatever the server's default
            cur.execute("SET extra_float_digits = 3")  # floats exact (PostgreSQL 12+: in their shortest exact text)
            wanted = {**tables["required"], **tables["optional"]}
            present = _present(cur, schema, wanted)
            whole = all(t in present for t in tables["required"]) and all(
                len(columns) == len(wanted[t]) for t, columns in present.items()
            )
            filters = _filters(cur, schema) if events and whole else {}
            loinc = shipped_toml(reference.OMOP)["vocabularies"]["loinc"]
            if filters:  # each filtered table's own rows, counted in the same snapshot (the extraction's accounting)
                con.register(row_counts, _row_counts(cur, schema, [t for t in EVENTS if t in present]))
            for table, columns in present.items():
                if not whole or (not events and table in EVENTS):
                    con.register(table, _empty(columns))
                elif not events and table == "concept":
                    con.register(table, _pull(cur, schema, table, columns, "vocabulary_id::text = %s", [loinc], 1))
                else:  # filtered, or a table of a row or a few per person (person, death …): whole
                    con.register(table, _pull(cur, schema, table, columns, *filters.get(table, ("true", []))))
    except psycopg.errors.InsufficientPrivilege:
        con.close()
        raise InputError(named, "a CDM table cannot be read: permission denied to the user") from None
    except (psycopg.Error, pa.ArrowException, OSError):
        con.close()  # never the driver's or Arrow's own words: they may hold a cell
        raise InputError(named, "cannot be read as an OMOP CDM (a table or value PostgreSQL could not send)") from None
    except BaseException:
        con.close()
        raise
    finally:
        conn.close()
    return con, named


def _present(cur: psycopg.Cursor, schema: str, wanted: dict[str, list[str]]) -> dict[str, dict[str, tuple[str, str]]]:
    """Each wanted table (or view) of ``schema`` the user may read → its needed columns present (name as
    ``omop.toml`` has it → name as the CDM spells it, and type). ``omop.check`` names what is missing."""
    cur.execute(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = ANY(%s) ORDER BY table_name, ordinal_position",
        [schema, list(wanted)],
    )
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for table, column, kind in cur.fetchall():
        columns = found.setdefault(table, {})
        if column.lower() in wanted[table]:
            columns.setdefault(column.lower(), (column, kind))
    return found


def _filters(cur: psycopg.Cursor, schema: str) -> dict[str, tuple[str, list[Any]]]:
    """Table → (condition, parameters) keeping the rows the extraction may read, from the ids of the concepts the
    shared code tables recognise (asked of ``concept`` first); ``concept`` itself: those concepts, and one LOINC
    concept for ``omop.check``. Each condition keeps at least what ``extract`` keeps."""
    vocab = shipped_toml(reference.OMOP)["vocabularies"]
    rxnorm = reference.rxnorm_codes().get_column("code").to_list()
    systems = vocab["procedure_systems"]
    procedures = shipped_toml("reference/dxa_procedures.toml")["code"]
    diagnoses = shipped_toml("reference/measure_value_sets.toml")["osteoporosis_diagnosis"]["icd10_prefixes"]
    icd10 = [*reference.fracture_codes()["fhir"]["fracture_prefixes"], *diagnoses]
    kinds = {  # as extract joins concept: measurement, _drugs, _conditions, _procedures
        "measurement": "vocabulary_id::text = %(loinc)s AND concept_code::text = ANY(%(grid)s)",
        "drug_exposure": "(vocabulary_id::text = ANY(%(rxnorm_vocabularies)s) AND concept_code::text = ANY(%(rxnorm)s))"
        " OR lower(concept_name::text) LIKE ANY(%(drug_words)s)",  # extract: a drug word; here: the word anywhere
        "condition_occurrence": "vocabulary_id::text = %(snomed)s AND concept_code::text = ANY(%(snomed_codes)s)",
        "procedure_occurrence": "vocabulary_id::text || chr(31) || concept_code::text = ANY(%(procedures)s)",
    }
    cur.execute(
        sql.SQL("SELECT * FROM (SELECT concept_id, {} FROM {}) c WHERE {}").format(
            sql.SQL(", ").join(sql.SQL(f"coalesce({c}, false) AS {k}") for k, c in kinds.items()),
            sql.Identifier(schema, "concept"),
            sql.SQL(" OR ").join(sql.Identifier(k) for k in kinds),
        ),
        {
            "loinc": vocab["loinc"],
            "grid": reference.dxa_loinc().get_column("code").to_list(),
            "rxnorm_vocabularies": list(vocab["rxnorm"]),
            "rxnorm": rxnorm,
            "drug_words": [f"%{_like(w)}%" for w in reference.drug_lookup().get_column("key").to_list()],
            "snomed": vocab["snomed"],
            "snomed_codes": reference.snomed_conditions().get_column("code").to_list(),
            "procedures": [f"{systems[c['system']]}\x1f{c['code']}" for c in procedures if c["system"] in systems],
        },
    )
    ids: dict[str, list[int]] = {k: [] for k in kinds}
    for concept_id, *flags in cur.fetchall():
        for kind, flag in zip(kinds, flags, strict=True):
            if flag:
                ids[kind].append(concept_id)
    cur.execute(
        sql.SQL("SELECT concept_id FROM {} WHERE vocabulary_id::text = %s LIMIT 1").format(
            sql.Identifier(schema, "concept")
        ),
        [vocab["loinc"]],
    )
    concepts = sorted({*(r[0] for r in cur.fetchall()), *(i for found in ids.values() for i in found)})
    return {
        "concept": ("concept_id = ANY(%s)", [concepts]),
        "measurement": ("measurement_concept_id = ANY(%s)", [ids["measurement"]]),
        "drug_exposure": (  # extract: the concept's RxNorm code or name, else the code in drug_source_value
            "drug_concept_id = ANY(%s) OR regexp_replace(btrim(drug_source_value::text), %s, '') = ANY(%s)",
            [ids["drug_exposure"], "\\.0+$", rxnorm],
        ),
        "condition_occurrence": (  # extract: a SNOMED CT concept, else an ICD-10 prefix of the source value
            "condition_concept_id = ANY(%s)"
            " OR upper(replace(btrim(condition_source_value::text), '.', '')) LIKE ANY(%s)",
            [ids["condition_occurrence"], [f"{_like(p.replace('.', '').upper())}%" for p in icd10]],
        ),
        "procedure_occurrence": ("procedure_concept_id = ANY(%s)", [ids["procedure_occurrence"]]),
    }


def _row_counts(cur: psycopg.Cursor, schema: str, tables: list[str]) -> pa.Table:
    """(table_name, rows): each table's rows as the server counts them (``omop.table_rows``)."""
    counts = []
    for table in tables:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
        counts.append(cur.fetchone()[0])
    return pa.table({"table_name": pa.array(tables, pa.string()), "rows": pa.array(counts, pa.int64())})


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _arrow_types(columns: dict[str, tuple[str, str]]) -> dict[str, pa.DataType]:
    return {name: ARROW_TYPES.get(kind, pa.string()) for name, (_, kind) in columns.items()}


def _empty(columns: dict[str, tuple[str, str]]) -> pa.Table:
    """No rows, the columns present (a table without any: one placeholder column, so ``omop.check`` names one)."""
    types = _arrow_types(columns) or {"_no_needed_column": pa.null()}
    return pa.schema(types.items()).empty_table()


def _pull(
    cur: psycopg.Cursor,
    schema: str,
    table: str,
    columns: dict[str, tuple[str, str]],
    condition: str,
    parameters: list[Any],
    limit: int | None = None,
) -> pa.Table:
    """``table``'s needed ``columns`` (named as ``omop.toml`` names them) of the rows ``condition`` keeps."""
    query = sql.SQL("COPY (SELECT {} FROM {} WHERE {}{}) TO STDOUT (FORMAT csv, HEADER true)").format(
        sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.Identifier(actual), sql.Identifier(name))
            for name, (actual, _) in columns.items()
        ),
        sql.Identifier(schema, table),
        sql.SQL(condition),
        sql.SQL(f" LIMIT {int(limit)}" if limit else ""),
    )
    with tempfile.TemporaryFile() as spool:  # on disk, not in memory, until Arrow reads it
        with cur.copy(query, parameters) as copy:
            for block in copy:
                spool.write(block)
        spool.seek(0)
        return pa_csv.read_csv(
            spool,
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=_arrow_types(columns),
                null_values=[""],  # PostgreSQL's CSV: NULL is an empty field, an empty text is ""
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )

"""An OMOP CDM (5.4) as the screen's input: ``osteo screen --omop SOURCE`` (docs/inputs.md, "OMOP CDM").

SOURCE is a folder of CDM tables (``person.parquet`` or ``person.csv`` …) or a DuckDB database file. Each is opened as
an in-memory DuckDB whose views are the CDM's tables (files read literally, never as patterns); ``check`` refuses a
CDM without a required table or column (exit 2, naming it). ``extract`` then asks the CDM, in SQL pushed down to it,
for only the rows and columns the screen reads, recognised through ``concept`` by the same code tables as every other
input (``data/reference/omop.toml`` says which vocabulary is which):

- ``measurement`` rows of a DXA LOINC concept (``dxa_loinc.toml``) → a long export (patient, exam = the visit, else
  patient and date, code, text, value, unit), read with the ``omop`` profiles as the FHIR export is: the text is the
  source's own (``measurement_source_value``; the concept's name is the code's meaning, and 38265-5's names the radius
  even where the source used it for any T-score); the value is ``value_as_number``, else ``value_source_value`` as
  written (counted; one that is not a number is quarantined by the screen's checks, never dropped);
- ``person`` (+ ``death``) → per-patient rows (sex from ``gender_concept_id``, else its source value; the birth date,
  a missing month or day put in the middle of the period and counted; the death) and the population roster (every
  person, enrolled from birth: an EHR-built CDM's observation periods end at the last event);
- ``drug_exposure`` of a known drug (RxNorm code, ``drugs.toml``; else the drug its concept name or source value
  names) → medication rows (``days_supply`` 0 or blank: end − start + 1 days, else the drug's default);
- ``condition_occurrence`` of a fracture or osteoporosis concept (SNOMED CT, ``fracture_codes.toml``) or ICD-10 source
  value → fracture rows; ``procedure_occurrence`` of a DXA procedure (``dxa_procedures.toml``) → DXA procedures.

Each is written as a Parquet file named after its CDM table in the run's folder, and the screen reads those as it
reads any export. ``patient_id`` is ``person_source_value`` when every person has a distinct one, else ``person_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from osteo_core import reference
from osteo_core.errors import InputError
from osteo_core.literal_paths import escaped
from osteo_core.resources import shipped_toml

SUFFIXES = (".parquet", ".csv")
PROFILE = "omop"
POSTGRES = ("postgresql://", "postgres://")


@cache
def settings() -> dict[str, Any]:
    return shipped_toml(reference.OMOP)


@dataclass
class Extracted:
    """The files a CDM was written to, by input kind, and what the manifest counts of the extraction."""

    files: dict[str, list[Path]]
    counts: dict[str, int] = field(default_factory=dict)
    # CDM table → {"rows", "read", "not_read": {reason: rows}, "file"}: every row of each table read is read or
    # not read by reason (``account``); the screen's quarantine adds what it set aside of the rows read
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)


# Why a row of a CDM table is not read: a concept the screen does not use (per table), or a person_id that is not in
# ``person`` (an orphan row: no sex or birth date to screen it with), or a person's second record of a death
UNKNOWN_PERSON = "person_not_in_person_table"
NOT_USED = {
    "measurement": "not_a_dxa_result",
    "drug_exposure": "not_an_osteoporosis_drug",
    "condition_occurrence": "not_a_fracture_or_osteoporosis",
    "procedure_occurrence": "not_a_dxa_procedure",
}
LATER_DEATH = "another_record_of_the_death"
NOT_FRAGILITY_SITE = "fracture_not_of_a_fragility_site"  # fingers, toes, skull or face: as a FHIR Condition's
SKIP = "_skip_"  # a column _skip_REASON of an extraction's SQL: that row is not read, counted under REASON
ROW_COUNTS = "_omop_table_rows"  # (table_name, rows): a PostgreSQL CDM's own row counts (its views hold fewer)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: list[str]) -> str:
    return "(" + ", ".join(_sql_text(v) for v in values) + ")" if values else "(NULL)"


def open_cdm(source: str, schema: str | None = None, events: bool = True) -> duckdb.DuckDBPyConnection:
    """The CDM at ``source`` as views of an in-memory DuckDB, one per table the screen reads; checked (``check``).
    A PostgreSQL URL's views hold only the rows ``extract`` may read, pulled from the server (``omop_postgres``);
    with ``events`` false no measurement, drug, condition or procedure row: enough to check the CDM and its persons
    before a run (a folder's or DuckDB file's views are read lazily: ``events`` changes nothing there)."""
    if source.startswith(POSTGRES):
        from osteo_core.ingest import omop_postgres

        con, named = omop_postgres.open_views(source, schema, settings()["tables"], events, ROW_COUNTS)
        try:
            check(con, named)
        except BaseException:
            con.close()
            raise
        return con
    path = Path(source)
    con = duckdb.connect(":memory:")
    wanted = [*settings()["tables"]["required"], *settings()["tables"]["optional"]]
    try:
        if path.is_dir():
            for table in wanted:
                found = [path / f"{table}{suffix}" for suffix in SUFFIXES if (path / f"{table}{suffix}").is_file()]
                if not found:
                    continue
                file = escaped(found[0])
                reader = (
                    f"read_parquet({_sql_text(file)}, hive_partitioning = false)"
                    if found[0].suffix == ".parquet"
                    else f"read_csv({_sql_text(file)}, header = true, all_varchar = true, hive_partitioning = false)"
                )
                con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {reader}')
        elif path.is_file():
            con.execute(f"ATTACH {_sql_text(str(path))} AS cdm (READ_ONLY)")
            where = schema or "main"
            present = {
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'cdm' AND table_schema = ?",
                    [where],
                ).fetchall()
            }
            schemas = sorted(
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_catalog = 'cdm'"
                ).fetchall()
            )
            if where not in schemas:
                listed = ", ".join(schemas) or "none"
                raise InputError(source, f"no table in schema '{where}' (--omop-schema; the file's schemas: {listed})")
            for table in wanted:
                if table in present:
                    con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM cdm."{where}"."{table}"')
        elif path.exists():
            raise InputError(source, "not a folder of CDM tables nor a DuckDB database file")
        else:
            raise InputError(source, "not found (a folder of CDM tables, or a DuckDB database file)")
        check(con, source)
    except duckdb.Error:
        con.close()
        raise InputError(source, "cannot be read as an OMOP CDM (damaged, or not Parquet, CSV or DuckDB)") from None
    except BaseException:
        con.close()
        raise
    return con


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str] | None:
    try:
        return {r[0].lower() for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
    except duckdb.CatalogException:
        return None


def check(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Every required table with its columns, every optional table present with its columns, and LOINC concepts in
    ``concept``; else ``InputError`` naming the table (and the column)."""
    tables = settings()["tables"]
    for kind in ("required", "optional"):
        for table, needed in tables[kind].items():
            have = _columns(con, table)
            if have is None:
                if kind == "required":
                    raise InputError(
                        source, f"table '{table}' missing (an OMOP CDM needs {', '.join(tables['required'])})"
                    )
                continue
            missing = [c for c in needed if c not in have]
            if missing:
                raise InputError(source, f"table '{table}': column '{missing[0]}' missing")
    missing_id, repeated = con.execute(
        "SELECT count(*) FILTER (WHERE person_id IS NULL), count(person_id) - count(DISTINCT person_id) FROM person"
    ).fetchall()[0]
    if missing_id or repeated:  # the CDM's key: every event row names its person by it
        said = f"{missing_id:,} row(s) without a person_id" if missing_id else f"{repeated:,} person_id(s) repeated"
        raise InputError(source, f"table 'person': {said} (person_id identifies one person)")
    loinc = settings()["vocabularies"]["loinc"]
    if not con.execute("SELECT count(*) FROM concept WHERE vocabulary_id = ?", [loinc]).fetchall()[0][0]:
        raise InputError(source, f"table 'concept' holds no {loinc} concept: DXA results cannot be recognised")


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql).to_arrow_table())


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return _columns(con, table) is not None


PATIENT_ID_COLUMNS = ("person_source_value", "person_id")  # --omop-patient-id
ENROLMENTS = ("birth", "observation_period")  # --omop-enrolment: every living person from birth, or the periods
_SOURCE_VALUE = "nullif(trim(CAST(person_source_value AS VARCHAR)), '')"


def patient_id_column(con: duckdb.DuckDBPyConnection, wanted: str | None = None) -> str:
    """The CDM column that gives ``patient_id``: ``wanted`` (``--omop-patient-id``), else ``person_source_value``
    when every person has a distinct non-blank one (the id a caller can look up), else ``person_id``.
    ``person_source_value`` wanted where it is not distinct is ``InputError`` saying how many persons share one
    or have none, never which."""
    if wanted == "person_id":
        return wanted
    blank, shared = con.execute(
        "SELECT count(*) FILTER (WHERE v IS NULL), count(*) FILTER (WHERE v IS NOT NULL AND n > 1)"
        f" FROM (SELECT {_SOURCE_VALUE} AS v, count(*) OVER (PARTITION BY {_SOURCE_VALUE}) AS n FROM person)"
    ).fetchall()[0]
    if not blank and not shared:
        return "person_source_value"
    if wanted is None:
        return "person_id"
    raise InputError(
        "--omop-patient-id",
        f"person_source_value is not a distinct id in this CDM: {shared:,} person(s) share theirs with another"
        f" and {blank:,} have none; use person_id (the default for such a CDM)",
    )


def _patient_ids(con: duckdb.DuckDBPyConnection, wanted: str | None = None) -> str:
    """The patient id (``patient_id_column``) and the other id kept beside it (``other_id``: the per-person rows'
    ``mrn``, shown beside ``patient_id`` in the patients table and the worklist), made a table ``_ids``
    (person_id → patient_id, other_id). Returns which column gives ``patient_id``."""
    chosen = patient_id_column(con, wanted)
    ids = [_SOURCE_VALUE, "CAST(person_id AS VARCHAR)"]
    patient, other = ids if chosen == "person_source_value" else reversed(ids)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _ids AS SELECT person_id, {patient} AS patient_id, {other} AS other_id"
        " FROM person"
    )
    return chosen


def extract(
    con: duckdb.DuckDBPyConnection, folder: Path, patient_id: str | None = None, enrolment: str = "birth"
) -> Extracted:
    """The CDM's rows the screen reads, written under ``folder`` by input kind (see the module's docstring).
    ``patient_id``: the column that gives it (``patient_id_column``); ``enrolment``: ``birth`` (every person
    enrolled from birth) or ``observation_period`` (each period a coverage span of the roster)."""
    omop = settings()
    vocab = omop["vocabularies"]
    birth = omop["birth"]
    counts: dict[str, int] = {}
    tables: dict[str, dict[str, Any]] = {}
    if enrolment == "observation_period" and not has_table(con, "observation_period"):
        raise InputError("--omop-enrolment", "observation_period: the CDM has no table 'observation_period'")
    chosen = _patient_ids(con, patient_id)
    counts["patient_ids_from_person_id"] = int(chosen == "person_id")
    files: dict[str, list[Path]] = {}

    # scans: DXA results, and the persons' sex, birth date and death
    grid = reference.dxa_loinc().get_column("code").to_list()
    source_value = "trim(CAST(m.value_source_value AS VARCHAR))"
    # value_as_number, else the source value as written: a number is read; anything else ('-2,7', '<-2.5') reaches
    # validation as written and is quarantined there as not a number, never dropped
    value = (
        "CASE WHEN TRY_CAST(m.value_as_number AS DOUBLE) IS NOT NULL"
        " THEN CAST(TRY_CAST(m.value_as_number AS DOUBLE) AS VARCHAR) "
        f"ELSE nullif({source_value}, '') END"
    )
    measurement = f"""
        SELECT i.patient_id,
               coalesce('visit-' || CAST(m.visit_occurrence_id AS VARCHAR),
                        i.patient_id || '@' || strftime(CAST(m.measurement_date AS DATE), '%Y-%m-%d')) AS exam_id,
               strftime(CAST(m.measurement_date AS DATE), '%Y-%m-%d') AS exam_date,
               CAST(c.concept_code AS VARCHAR) AS code,
               nullif(trim(CAST(m.measurement_source_value AS VARCHAR)), '') AS text, {value} AS value,
               CAST(m.unit_source_value AS VARCHAR) AS unit,
               TRY_CAST(m.value_as_number AS DOUBLE) IS NULL AND {value} IS NOT NULL AS _from_source,
               i.person_id IS NULL AS _unknown_person
        FROM measurement m
        JOIN concept c ON c.concept_id = m.measurement_concept_id
        LEFT JOIN _ids i ON i.person_id = m.person_id
        WHERE c.vocabulary_id = {_sql_text(vocab["loinc"])} AND CAST(c.concept_code AS VARCHAR) IN {_sql_list(grid)}
        ORDER BY i.patient_id, exam_date"""
    scans = folder / "scans"
    rows = _read(con, "measurement", measurement, scans / "measurement.parquet", tables)
    counts["values_from_source_value"] = int(rows.get_column("_from_source").sum() or 0)
    rows.drop("_from_source").write_parquet(scans / "measurement.parquet")
    female, male = omop["gender"]["F"], omop["gender"]["M"]
    death = (
        "LEFT JOIN (SELECT person_id, min(CAST(death_date AS DATE)) AS death_date FROM death GROUP BY person_id) d"
        " ON d.person_id = p.person_id"
        if has_table(con, "death")
        else "LEFT JOIN (SELECT NULL AS person_id, NULL::DATE AS death_date) d ON false"
    )
    month = f"coalesce(TRY_CAST(p.month_of_birth AS BIGINT), {birth['month_when_unknown']})"
    day = (
        f"coalesce(TRY_CAST(p.day_of_birth AS BIGINT), CASE WHEN TRY_CAST(p.month_of_birth AS BIGINT) IS NULL"
        f" THEN {birth['day_when_unknown']}"
        f" ELSE {birth['day_when_only_month_known']} END)"
    )
    person = f"""
        SELECT i.patient_id,
               CASE WHEN TRY_CAST(p.gender_concept_id AS BIGINT) IN ({", ".join(map(str, female))}) THEN 'F'
                    WHEN TRY_CAST(p.gender_concept_id AS BIGINT) IN ({", ".join(map(str, male))}) THEN 'M'
                    ELSE CAST(p.gender_source_value AS VARCHAR) END AS sex,
               strftime(make_date(TRY_CAST(p.year_of_birth AS BIGINT), {month}, {day}), '%Y-%m-%d') AS birth_date,
               CASE WHEN d.person_id IS NOT NULL THEN 'true' ELSE 'false' END AS deceased,
               strftime(d.death_date, '%Y-%m-%d') AS death_date,
               i.other_id AS mrn,
               TRY_CAST(p.year_of_birth AS BIGINT) IS NOT NULL
               AND (TRY_CAST(p.month_of_birth AS BIGINT) IS NULL OR TRY_CAST(p.day_of_birth AS BIGINT) IS NULL)
               AS _imputed
        FROM person p JOIN _ids i ON i.person_id = p.person_id {death}
        ORDER BY i.patient_id"""
    people = _frame(con, person)
    tables["person"] = account(table_rows(con, "person"), people.height, {}, scans / "person.parquet")
    if has_table(con, "death"):
        tables["death"] = _deaths(con)
    counts["birth_dates_imputed"] = int(people.get_column("_imputed").sum() or 0)
    people = people.drop("_imputed")
    people.write_parquet(scans / "person.parquet")
    files["scans"] = [scans / "measurement.parquet", scans / "person.parquet"]
    roster = folder / "population" / "person.parquet"
    roster.parent.mkdir(parents=True, exist_ok=True)
    members = people.select("patient_id", "sex", "birth_date", "death_date")
    if enrolment == "observation_period":  # a claims CDM: each observation period a coverage span
        periods = _read(
            con,
            "observation_period",
            """
            SELECT i.patient_id,
                   strftime(CAST(o.observation_period_start_date AS DATE), '%Y-%m-%d') AS enrolled_from,
                   strftime(CAST(o.observation_period_end_date AS DATE), '%Y-%m-%d') AS enrolled_to,
                   i.person_id IS NULL AS _unknown_person
            FROM observation_period o LEFT JOIN _ids i ON i.person_id = o.person_id
            ORDER BY i.patient_id, enrolled_from, enrolled_to""",
            roster,
            tables,
        )
        counts["observation_periods"] = periods.height
        members = members.join(periods, on="patient_id", how="inner", maintain_order="left_right")
        counts["persons_without_observation_period"] = people.height - members.get_column("patient_id").n_unique()
    members.write_parquet(roster)
    files["population"] = [roster]

    if has_table(con, "drug_exposure"):
        files["meds"] = [_drugs(con, folder / "meds" / "drug_exposure.parquet", vocab, counts, tables)]
    if has_table(con, "condition_occurrence"):
        files["fractures"] = [_conditions(con, folder / "fractures" / "condition_occurrence.parquet", vocab, tables)]
    if has_table(con, "procedure_occurrence"):
        target = folder / "dxa_procedures" / "procedure_occurrence.parquet"
        files["dxa_procedures"] = [_procedures(con, target, vocab, tables)]
    return Extracted(files, counts, tables)


def table_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """A CDM table's rows: as the server counted them for a PostgreSQL CDM (its views hold only the rows the
    extraction may read: ``omop_postgres``), else the view's."""
    if has_table(con, ROW_COUNTS):
        found = con.execute(f'SELECT "rows" FROM "{ROW_COUNTS}" WHERE table_name = ?', [table]).fetchall()
        if found:
            return int(found[0][0])
    return int(con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0])


def account(rows: int, read: int, not_read: dict[str, int], file: Path | None = None) -> dict[str, Any]:
    """One CDM table's row accounting: ``rows`` = ``read`` + the rows not read, by reason (a reason with none is
    kept, as 0: the reader sees what was looked for). ``file``: where the rows read went, for the quarantine."""
    if read + sum(not_read.values()) != rows:
        raise AssertionError(f"OMOP row accounting does not hold: {rows} rows, {read} read, {not_read} not read")
    entry: dict[str, Any] = {"rows": rows, "read": read, "not_read": not_read}
    if file is not None:
        entry["file"] = str(file)
    return entry


def _read(
    con: duckdb.DuckDBPyConnection, table: str, sql: str, target: Path, tables: dict[str, dict[str, Any]]
) -> pl.DataFrame:
    """The rows of ``table`` that ``sql`` keeps (a concept the screen uses), less those of a person not in
    ``person`` (its ``_unknown_person``) and those a column ``_skip_REASON`` of ``sql`` sets aside for that
    reason; ``table``'s account (``account``) goes to ``tables``."""
    rows = _frame(con, sql)
    flags = ["_unknown_person", *(c for c in rows.columns if c.startswith(SKIP))]
    known = pl.col("_unknown_person").not_()  # a row of an unknown person is counted as such, whatever else
    counted = {f: int(rows.select((pl.col(f) & (known if f != flags[0] else True)).sum()).item()) for f in flags}
    rows = rows.filter(~pl.any_horizontal(flags)).drop(flags)
    total = table_rows(con, table)
    left = total - rows.height - sum(counted.values())
    not_read = {NOT_USED[table]: left} if table in NOT_USED else {}
    not_read |= {flag.removeprefix(SKIP): n for flag, n in counted.items() if flag.startswith(SKIP)}
    tables[table] = account(total, rows.height, not_read | {UNKNOWN_PERSON: counted["_unknown_person"]}, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return rows


def _deaths(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """``death``'s account: a person's first record read (the earliest date), any other not read, and a record of a
    person not in ``person`` (a PostgreSQL CDM's ``death`` is read whole: its view holds every row)."""
    rows, unknown, read = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE i.person_id IS NULL),"
        " count(DISTINCT d.person_id) FILTER (WHERE i.person_id IS NOT NULL)"
        " FROM death d LEFT JOIN _ids i ON i.person_id = d.person_id"
    ).fetchall()[0]
    return account(rows, read, {LATER_DEATH: rows - unknown - read, UNKNOWN_PERSON: unknown})


def _drugs(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    vocab: dict[str, Any],
    counts: dict[str, int],
    tables: dict[str, dict[str, Any]],
) -> Path:
    """Exposures of a drug the screen knows: by RxNorm concept code, else the code in ``drug_source_value``
    (``'904419.0'``), else a drug word of ``drugs.toml`` in the concept's name."""
    codes = reference.rxnorm_codes().select("code", "drug", "strength_mg")
    con.register("_rxnorm", codes.to_arrow())
    words = reference.drug_lookup().select("key").to_series().to_list()
    pattern = "\\b(" + "|".join(w.replace("'", "''") for w in sorted(words, key=len, reverse=True)) + ")\\b"
    rxnorm = _sql_list(list(vocab["rxnorm"]))
    source_code = "regexp_replace(trim(CAST(e.drug_source_value AS VARCHAR)), '\\.0+$', '')"
    sql = f"""
        SELECT i.patient_id,
               coalesce(r.drug, s.drug, regexp_extract(lower(c.concept_name), '{pattern}', 1)) AS drug,
               strftime(CAST(e.drug_exposure_start_date AS DATE), '%Y-%m-%d') AS event_date,
               CASE WHEN TRY_CAST(e.days_supply AS BIGINT) > 0 THEN CAST(TRY_CAST(e.days_supply AS BIGINT) AS VARCHAR)
                    WHEN CAST(e.drug_exposure_end_date AS DATE) >= CAST(e.drug_exposure_start_date AS DATE)
                    THEN CAST(date_diff('day', CAST(e.drug_exposure_start_date AS DATE),
                                        CAST(e.drug_exposure_end_date AS DATE)) + 1 AS VARCHAR)
               END AS days_supply,
               CAST(coalesce(r.strength_mg, s.strength_mg) AS VARCHAR) AS dose_mg,
               coalesce(TRY_CAST(e.days_supply AS BIGINT) <= 0, true) AS _supply_made,
               i.person_id IS NULL AS _unknown_person
        FROM drug_exposure e
        LEFT JOIN _ids i ON i.person_id = e.person_id
        LEFT JOIN concept c ON c.concept_id = e.drug_concept_id
        LEFT JOIN _rxnorm r ON c.vocabulary_id IN {rxnorm} AND r.code = CAST(c.concept_code AS VARCHAR)
        LEFT JOIN _rxnorm s ON s.code = {source_code}
        WHERE r.drug IS NOT NULL OR s.drug IS NOT NULL OR regexp_matches(lower(c.concept_name), '{pattern}')
        ORDER BY i.patient_id, event_date"""
    rows = _read(con, "drug_exposure", sql, target, tables)
    counts["days_supply_from_dates_or_default"] = int(rows.get_column("_supply_made").sum() or 0)
    rows.drop("_supply_made").write_parquet(target)
    return target


def _conditions(
    con: duckdb.DuckDBPyConnection, target: Path, vocab: dict[str, Any], tables: dict[str, dict[str, Any]]
) -> Path:
    """Fractures and osteoporosis: an ICD-10 source value with a fracture or osteoporosis prefix (read as the
    fractures export reads it), else a SNOMED CT concept of ``fracture_codes.toml`` (its site and ICD-10 category),
    as a FHIR Condition is read: a concept of a site that is not a fragility fracture site (fingers, toes, skull
    or face) is not read, counted (``NOT_FRAGILITY_SITE``)."""
    snomed = reference.snomed_conditions().select("code", "site", "icd10")
    con.register("_snomed", snomed.to_arrow())
    diagnoses = shipped_toml("reference/measure_value_sets.toml")["osteoporosis_diagnosis"]["icd10_prefixes"]
    prefixes = [*reference.fracture_codes()["fhir"]["fracture_prefixes"], *diagnoses]
    source = "upper(replace(trim(CAST(o.condition_source_value AS VARCHAR)), '.', ''))"
    # NULL-safe: a condition with no source value is read by its concept alone
    starts = " OR ".join(f"starts_with({source}, {_sql_text(p.replace('.', ''))})" for p in prefixes) or "false"
    starts = f"coalesce({starts}, false)"
    fragile = [site for site, is_fragility in reference.fracture_codes()["sites"].items() if is_fragility]
    sql = f"""
        SELECT i.patient_id, strftime(CAST(o.condition_start_date AS DATE), '%Y-%m-%d') AS fracture_date,
               CASE WHEN NOT ({starts}) THEN s.site END AS site,
               CASE WHEN {starts} THEN trim(CAST(o.condition_source_value AS VARCHAR)) ELSE s.icd10 END AS icd10,
               i.person_id IS NULL AS _unknown_person,
               coalesce(NOT ({starts}) AND s.site IS NOT NULL AND s.site NOT IN {_sql_list(fragile)}, false)
               AS {SKIP}{NOT_FRAGILITY_SITE}
        FROM condition_occurrence o
        LEFT JOIN _ids i ON i.person_id = o.person_id
        LEFT JOIN concept c ON c.concept_id = o.condition_concept_id
        LEFT JOIN _snomed s
            ON c.vocabulary_id = {_sql_text(vocab["snomed"])} AND s.code = CAST(c.concept_code AS VARCHAR)
        WHERE s.code IS NOT NULL OR {starts}
        ORDER BY i.patient_id, fracture_date"""
    _read(con, "condition_occurrence", sql, target, tables).write_parquet(target)
    return target


def _procedures(
    con: duckdb.DuckDBPyConnection, target: Path, vocab: dict[str, Any], tables: dict[str, dict[str, Any]]
) -> Path:
    """DXA procedures (``dxa_procedures.toml``, each code's system as the CDM's vocabulary)."""
    systems = vocab["procedure_systems"]
    pairs = [
        (systems[c["system"]], str(c["code"]))
        for c in shipped_toml("reference/dxa_procedures.toml")["code"]
        if c["system"] in systems
    ]
    wanted = " OR ".join(
        f"(c.vocabulary_id = {_sql_text(v)} AND CAST(c.concept_code AS VARCHAR) = {_sql_text(code)})"
        for v, code in pairs
    )
    sql = f"""
        SELECT i.patient_id, strftime(CAST(p.procedure_date AS DATE), '%Y-%m-%d') AS procedure_date,
               CAST(c.concept_code AS VARCHAR) AS code, i.person_id IS NULL AS _unknown_person
        FROM procedure_occurrence p
        LEFT JOIN _ids i ON i.person_id = p.person_id
        JOIN concept c ON c.concept_id = p.procedure_concept_id
        WHERE {wanted or "false"}
        ORDER BY i.patient_id, procedure_date"""
    _read(con, "procedure_occurrence", sql, target, tables).write_parquet(target)
    return target


@dataclass(frozen=True)
class Probe:
    """What the checks before a run need of a CDM, asked in one opening (``probe``)."""

    release_date: str | None  # cdm_source.source_release_date
    patient_id_column: str  # the column that gives patient_id (``patient_id_column``)
    has_observation_period: bool


_probed: dict[tuple, Probe] = {}


def _fingerprint(source: str) -> tuple | None:
    """A folder's or DuckDB file's state (each table file's name, size and modification time): a CDM rewritten
    in place is probed again. None for a PostgreSQL URL (its probes last until ``forget``)."""
    if source.startswith(POSTGRES):
        return None
    path = Path(source)
    try:
        entries = sorted(path.iterdir()) if path.is_dir() else [path]
        return tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries)
    except OSError:
        return ("unreadable",)


def probe(source: str, schema: str | None = None, patient_id: str | None = None) -> Probe:
    """The CDM checked (``open_cdm`` without its event rows) and what the checks before a run ask of it, opened
    once per screen: ``osteo screen`` asks for the as-of date, then checks its arguments before the engine starts
    and again under the output folder's lock; each would otherwise open the CDM (a PostgreSQL CDM's persons pulled
    each time). A refusal is never kept: it is asked again. ``forget`` ends a screen's probes."""
    key = (source, schema, patient_id, _fingerprint(source))
    if key not in _probed:
        con = open_cdm(source, schema, events=False)
        try:
            _probed[key] = Probe(
                release_date(con), patient_id_column(con, patient_id), has_table(con, "observation_period")
            )
        finally:
            con.close()
            del con
    return _probed[key]


def forget() -> None:
    """Forget every probe (``probe``): a screen's end."""
    _probed.clear()


def release_date(con: duckdb.DuckDBPyConnection) -> str | None:
    """The CDM's release date (``cdm_source.source_release_date``), when it has one."""
    if not has_table(con, "cdm_source"):
        return None
    found = con.execute("SELECT max(CAST(source_release_date AS DATE)) FROM cdm_source").fetchall()[0][0]
    return None if found is None else str(found)[:10]

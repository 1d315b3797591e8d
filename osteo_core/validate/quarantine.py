"""Turn Pandera failure cases into quarantine rows (docs/tables.md ``quarantine``)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.config import ValidationDepth, config_context

from schemas.readers import EXPRESSION, PARSED_EQUIVALENT
from schemas.tables import QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_ROW

ROW = "_row"  # position of the row in the frame being validated
_FAILURES = {"index": pl.Int64, "column": pl.Utf8, "check": pl.Utf8, "failure_case": pl.Utf8}


def _check_expression(check: pa.Check, column: str | None) -> pl.Expr | None:
    """The boolean expression a check tests (True = passes), or ``None`` for a check we cannot read."""
    build = getattr(check, EXPRESSION, None)
    if build is not None:
        return build(column)
    stats, value = check.statistics or {}, pl.col(column) if column else None
    if value is None:
        return None
    if check.name == "in_range":
        low = value >= stats["min_value"] if stats.get("include_min", True) else value > stats["min_value"]
        high = value <= stats["max_value"] if stats.get("include_max", True) else value < stats["max_value"]
        return low & high
    if check.name == "greater_than_or_equal_to":
        return value >= stats["min_value"]
    return None


def passing_rows(
    schema: pa.DataFrameSchema, frame: pl.DataFrame, parsed: pl.DataFrame | None = None
) -> pl.Series | None:
    """True for each row that passes every check of ``schema``, all checks evaluated in one ``select``.

    The same expressions Pandera runs, with its null rule (``ignore_na``: a null outcome passes), so a row
    marked True would give Pandera no failure case. ``None`` when some check cannot be read here.
    ``parsed``, row for row the same rows already parsed, answers the text tier's "readable" checks
    without parsing each cell again (a cell is readable when it is blank or parsed to a value).
    """
    tests = []
    for name, column in schema.columns.items():
        for check in column.checks:
            tests.append((check, name))
    tests += [(check, None) for check in schema.checks]
    exprs = []
    for check, column in tests:
        applies = getattr(check, PARSED_EQUIVALENT, None)
        if applies is not None and parsed is not None and column in parsed.columns:
            value = pl.lit(parsed.get_column(column))
            exprs.append(applies().not_() | pl.col(column).is_null() | value.is_not_null())
            continue
        expr = _check_expression(check, column)
        if expr is None:
            return None
        exprs.append(expr.fill_null(check.ignore_na))
    if not exprs:
        return pl.Series("_passes", [True] * frame.height, dtype=pl.Boolean)
    # one column per check (Polars evaluates them in parallel), then one AND across them
    outcomes = frame.select(expr.alias(f"_check_{i}") for i, expr in enumerate(exprs))
    return outcomes.select(pl.all_horizontal(pl.all()).alias("_passes")).to_series()


def failures(schema: pa.DataFrameSchema, frame: pl.DataFrame, parsed: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every failing cell as (``_row``, column, check, failure_case); empty when the frame is valid.

    Row-level checks report ``column`` null. All checks are first evaluated together in one ``select``
    (``passing_rows``); Pandera then validates the rows that fail one (and the schema itself, on that
    subset), and its failure cases are the quarantine's. The only check that looks across rows,
    ``unique_exam_id``, fails every copy of a repeated id, so all copies are in the subset together.
    Data checks run with ``SCHEMA_AND_DATA`` depth so that no range check is skipped.
    """
    passes = passing_rows(schema, frame, parsed)
    if passes is not None:
        frame = frame.filter(passes.not_())
    # no row fails a check: Pandera checks the schema (columns, types) only, as no data check can fail on no rows
    depth = ValidationDepth.SCHEMA_ONLY if frame.is_empty() else ValidationDepth.SCHEMA_AND_DATA
    with config_context(validation_depth=depth):
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as err:
            cases = err.failure_cases
        else:
            return pl.DataFrame(schema={ROW: pl.Int64, **{k: v for k, v in _FAILURES.items() if k != "index"}})
    cases = cases.select(
        pl.col("index").cast(pl.Int64),
        pl.when(pl.col("schema_context") == "DataFrameSchema").then(None).otherwise(pl.col("column")).alias("column"),
        pl.col("check").cast(pl.Utf8),
        pl.col("failure_case").cast(pl.Utf8),
    )
    structural = cases.filter(pl.col("index").is_null())
    if structural.height:  # a schema-level failure (wrong dtype): a bug in our own casting, not bad input
        raise RuntimeError(f"{schema.name}: schema-level failures {structural.to_dicts()[:3]}")
    positions = frame.get_column(ROW)
    rows = positions.gather(cases.get_column("index"))
    return cases.with_columns(rows.alias(ROW)).select(ROW, "column", "check", "failure_case")


def quarantine_rows(
    failed: pl.DataFrame,
    raw: pl.DataFrame,
    input_name: str,
    id_columns: dict[str, str | None],
    derived: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Join failures back to the raw text of their rows.

    ``value`` is the cell as the user wrote it (a typed cell as text: ``88.5``, ``2024-01-31``); for checks on values
    the pipeline derived (age at the exam, listed in ``derived``), the failing derived value. ``id_columns`` names
    the raw columns holding patient and exam ids.
    """
    if failed.is_empty():
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    raw = raw.filter(pl.col(ROW).is_in(failed.get_column(ROW).unique().implode()))  # only the failing rows
    columns = [c for c in failed.get_column("column").unique().drop_nulls().to_list() if c in raw.columns]
    long = (
        raw.select(ROW, *(pl.col(c).cast(pl.Utf8) for c in columns)).unpivot(
            index=ROW, variable_name="column", value_name="raw_value"
        )
        if columns
        else None
    )
    joined = failed
    if long is not None:
        joined = joined.join(long, on=[ROW, "column"], how="left")
    else:
        joined = joined.with_columns(pl.lit(None, dtype=pl.Utf8).alias("raw_value"))
    ids = [pl.col(SOURCE_FILE), pl.col(SOURCE_ROW)]
    for target, source in id_columns.items():
        ids.append((pl.col(source) if source else pl.lit(None, dtype=pl.Utf8)).alias(target))
    joined = joined.join(raw.select(ROW, *ids), on=ROW, how="left")
    return joined.select(
        pl.col(SOURCE_FILE),
        pl.col(SOURCE_ROW),
        pl.lit(input_name).alias("input"),
        pl.col("column"),
        pl.col("check"),
        pl.when(pl.col("column").is_null())
        .then(None)
        .when(pl.col("column").is_in(list(derived)))
        .then(pl.col("failure_case"))
        .otherwise(pl.coalesce("raw_value", "failure_case"))
        .alias("value"),
        *(pl.col(t) for t in id_columns),
    ).cast(QUARANTINE_SCHEMA)

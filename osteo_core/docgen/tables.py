"""docs/tables.md (``templates/tables.md``, a ``table.md`` each): the published tables and catalog views, column
by column, from the one registry (``schemas.tables``); and docs/worklist.md (``templates/worklist.md``): the
outreach statuses and how long they hide a gap (``data/reference/outreach.toml``), the log's and the worklist
view's own columns."""

from __future__ import annotations

import polars as pl

from osteo_core.docgen.markdown import generated, render, section, table
from osteo_core.publish import outreach
from schemas.gaps import GAP_VIEWS
from schemas.tables import (
    COLUMN_DESCRIPTIONS,
    DTYPES,
    EVENT_TABLES,
    TABLE_DESCRIPTIONS,
    TABLES,
    catalog_column_descriptions,
)


def _dtype(dtype: pl.DataType) -> str:
    return str(dtype).replace("String", "text").replace("Float64", "decimal").replace("Int64", "integer")


def _columns_table(name: str) -> list[str]:
    """A table's columns, types and descriptions."""
    rows = [[f"`{c}`", _dtype(t), COLUMN_DESCRIPTIONS[name][c]] for c, t in DTYPES[name].items()]
    return table(["column", "type", "description"], rows)


def tables_page() -> str:
    tables = [
        section("table", name=name, description=TABLE_DESCRIPTIONS[name], columns_table=_columns_table(name))
        for name in TABLES
    ]
    catalog_only = [[f"`{name}`", TABLE_DESCRIPTIONS[name]] for name in (*GAP_VIEWS, "worklist", *EVENT_TABLES)]
    return render(
        "tables",
        generated=generated(__name__),
        tables="\n\n".join(tables),
        catalog_only_table=table(["name", "what it is"], catalog_only),
        outreach_table=_columns_table("outreach"),
    )


def worklist_page() -> str:
    hide, longest = outreach.hide_days(), outreach.max_hide_days()
    statuses = [
        [f"`{name}`", meaning, f"{hide[name]} days (`--until DATE`: at most {longest})" if name in hide else "no"]
        for name, meaning in outreach.statuses().items()
    ]
    own = {c: d for c, d in catalog_column_descriptions("worklist").items() if c not in DTYPES["care_gaps"]}
    return render(
        "worklist",
        generated=generated(__name__),
        version=str(outreach.version()),
        statuses_table=table(["status", "meaning", "hides the gap from the default worklist"], statuses),
        max_hide_days=str(longest),
        outreach_table=_columns_table("outreach"),
        columns_table=table(["column", "description"], [[f"`{c}`", d] for c, d in own.items()]),
    )

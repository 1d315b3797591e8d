"""The reference pages under ``docs/``, generated from the code, the shipped data files and the templates beside
this package, so they cannot drift from what runs: ``python -m osteo_core.docgen`` (``make docs``) writes them,
and ``tests/docgen/test_docs.py`` fails when a committed page differs from what this package generates.

    docs/inputs.md      inputs.py      the input exports: columns, types, required cells, bounds, code lists
    docs/tables.md      tables.py      the published tables and views: columns, types, descriptions
    docs/worklist.md    tables.py      outreach statuses, the log, the worklist's own columns
    docs/rules.md       rules.py       the default rule set, step by step, with the numbers of data/rules/standard.toml
    docs/rule_sets.md   rules.py       every shipped rule set: reasons, thresholds, and how it differs from standard
    docs/care_gaps.md   care_gaps.py   the care gaps: when each opens, its windows and priority (care_gaps.toml)
    docs/measures.md    measures.py    the quality measures, step by step, with the numbers of data/measures/*.toml

A page's fixed prose is its template, ``templates/<page>.md`` (``string.Template``: ``${name}`` is what the
page's module fills in: a table, a list, a number of a data file); ``markdown.py`` holds the pieces every page
shares, ``pages.py`` the list of pages and the writer. Build time only: nothing else in ``osteo_core`` imports
this package.
"""

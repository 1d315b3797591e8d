"""docs/: the reference pages are generated from the code and data, and the committed ones are current."""

import re
from pathlib import Path

import pytest

from osteo_core.outputs import docs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("page", sorted(docs.PAGES))
def test_committed_page_is_what_the_code_generates(page):
    committed = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert committed == docs.PAGES[page](), f"docs/{page} is stale: run `make docs`"


def test_every_page_is_listed_in_the_docs_index():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"\]\(([a-z_]+\.md)\)", index)) == set(docs.PAGES)


def test_rule_set_page_lists_a_reason_a_rule_set_drops(tmp_path, monkeypatch):
    """A difference made in the data shows on the page, with no edit to the page code."""
    page = docs.rule_sets_page()
    bhof = page[page.index("## `bhof2022`") : page.index("## `standard`")]
    assert "no reason `osteopenia_with_smoking`" in bhof
    assert "`[sites] diagnostic`" in bhof
    assert "no reason `hip_or_vertebral_fracture`" not in page


def test_rules_page_takes_its_numbers_from_the_rule_file(monkeypatch):
    from osteo_core.decide import rules as rules_module

    real = rules_module.load_rules("standard")
    changed = dict(real.values, who_category={**real["who_category"], "osteoporosis_t_at_or_below": -2.7})
    monkeypatch.setattr(docs, "load_rules", lambda name: rules_module.RuleSet(real.source_path, changed))
    assert "≤ -2.7" in docs.rules_page() and "≤ -2.5" not in docs.rules_page()


def test_no_link_or_citation_leaves_the_repository():
    """The docs, README and every shipped data file cite only files a clone has."""
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "data").rglob("*.toml")]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for pattern in (r"\.\./shared", r"RULES\.md", r"CONTRACT\.md", r"clinical_evidence\.md"):
            assert not re.search(pattern, text), f"{path.relative_to(ROOT)} cites {pattern}"
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to missing {target}"
